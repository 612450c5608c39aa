//! Protecting an axum service with bulwark, no `HandleErrorLayer` needed:
//!
//! * the whole API sits behind a token bucket per client IP in reject mode (5 requests/s,
//!   burst 5): over the limit → 429 with `Retry-After` and IETF `RateLimit` headers;
//! * `/flaky` calls an "upstream" that can be switched down; a circuit breaker guards it
//!   (opens after 3 consecutive 500s, 2 s break): while open → 503 `circuit_open` with
//!   `Retry-After`, without calling the upstream; after the break one probe goes through and,
//!   if it succeeds, the circuit closes.
//!
//! [`RejectionResponseLayer`] turns both refusals into responses. The control routes
//! `POST /upstream/down` and `POST /upstream/up` and `GET /metrics` are added after the layers,
//! so they are neither rate-limited nor guarded.
//!
//! `GET /metrics` serves the layers' metrics in Prometheus text format
//! (`metrics-exporter-prometheus`; with the `metrics` feature, the layers record requests by
//! outcome, the breaker's state and transitions, the bucket's waits), each layer under the
//! `name` it was given (`api`, `upstream`).
//!
//! ```sh
//! cargo run --example axum_server            # serves on 127.0.0.1:0, sends itself a scripted
//!                                            # set of requests, prints each answer, exits 0
//! cargo run --example axum_server --features metrics  # the same, and prints its /metrics
//! cargo run --example axum_server -- --serve # keeps serving on 127.0.0.1:3000
//! curl -i localhost:3000/ ; curl -X POST localhost:3000/upstream/down ; curl -i localhost:3000/flaky
//! curl localhost:3000/metrics
//! ```

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, State},
    http::StatusCode,
    routing::{get, post},
    Router,
};
use bulwark::{
    breaker::{BreakerState, CircuitBreakerLayer},
    bucket::{Rate, TokenBucketLayer},
    http::{BoxError, RejectionResponseLayer},
};
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower::ServiceBuilder;

/// Whether the pretend upstream behind `/flaky` is up.
#[derive(Debug, Clone)]
struct Upstream(Arc<AtomicBool>);

async fn flaky(State(upstream): State<Upstream>) -> (StatusCode, &'static str) {
    if upstream.0.load(Ordering::SeqCst) {
        (StatusCode::OK, "upstream answered\n")
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "upstream failed\n")
    }
}

async fn set_upstream(State(upstream): State<Upstream>, up: bool) -> StatusCode {
    upstream.0.store(up, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

/// The Prometheus recorder, installed before the first request (each layer registers its
/// metrics on first use), with buckets for the `*_seconds` histograms.
fn install_prometheus() -> Result<PrometheusHandle, BoxError> {
    let buckets = [0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0];
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)?
        .install_recorder()?)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let prometheus = install_prometheus()?;
    let limit = TokenBucketLayer::new(Rate::per_second(5))
        .name("api")
        .burst(5)
        .max_wait(Duration::ZERO) // reject, don't queue: this is a server
        .emit_headers(true)
        .keyed(|req: &Request<axum::body::Body>| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip())
        });
    let breaker = CircuitBreakerLayer::builder()
        .name("upstream")
        .consecutive_failures(3)
        .break_duration(Duration::from_secs(2))
        .build()?;
    let upstream = Upstream(Arc::new(AtomicBool::new(true)));

    let app = Router::new()
        .route("/", get(|| async { "hello from behind bulwark\n" }))
        // The breaker guards the one route that depends on the flaky upstream; its own
        // RejectionResponseLayer renders CircuitOpen as 503 + Retry-After.
        .route(
            "/flaky",
            get(flaky).layer(
                ServiceBuilder::new()
                    .layer(RejectionResponseLayer::new())
                    .layer(breaker.clone()),
            ),
        )
        // The bucket protects every route above (the layer applies to routes added before it).
        .layer(
            ServiceBuilder::new()
                .layer(RejectionResponseLayer::new())
                .layer(limit.clone()),
        )
        .route(
            "/upstream/down",
            post(|s: State<Upstream>| set_upstream(s, false)),
        )
        .route(
            "/upstream/up",
            post(|s: State<Upstream>| set_upstream(s, true)),
        )
        .route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
        )
        .with_state(upstream);

    let serve_forever = std::env::args().any(|a| a == "--serve");
    let addr = if serve_forever {
        "127.0.0.1:3000"
    } else {
        "127.0.0.1:0"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    println!("listening on http://{local}");
    println!("  /        5 requests/second per client IP, burst 5 (429 beyond)");
    println!("  /flaky   circuit breaker: opens after 3 consecutive failures, 2 s break (503)");
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    if serve_forever {
        server.await??;
        return Ok(());
    }

    let demo = Demo {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{local}"),
    };

    println!("\n== token bucket: a burst of 8 at / ==");
    let mut retry_after = 1;
    for i in 1..=8 {
        let answer = demo.send(Method::GET, "/").await?;
        println!("request {i}: {answer}");
        if answer.status == 429 {
            retry_after = answer.retry_after.parse().unwrap_or(1);
        }
    }
    let stats = limit.stats();
    println!(
        "admitted {}, rejected {}, client IPs tracked {}",
        stats.admitted, stats.rejected, stats.keys
    );
    println!("(waiting {retry_after} s as Retry-After says, so the bucket has tokens again)");
    tokio::time::sleep(Duration::from_secs(retry_after)).await;

    println!("\n== circuit breaker: the upstream behind /flaky goes down ==");
    let answer = demo.send(Method::POST, "/upstream/down").await?;
    println!("POST /upstream/down: {}", answer.status);
    let mut retry_after = 2;
    for i in 1..=5 {
        let answer = demo.send(Method::GET, "/flaky").await?;
        println!(
            "request {i}: {answer}  breaker: {}",
            breaker.handle().state().as_str()
        );
        if answer.status == 503 {
            retry_after = answer.retry_after.parse().unwrap_or(2);
        }
    }

    let answer = demo.send(Method::POST, "/upstream/up").await?;
    println!("POST /upstream/up: {}", answer.status);
    println!("(waiting {retry_after} s for the break to end)");
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    println!("breaker: {}", breaker.handle().state().as_str());
    let probe = demo.send(Method::GET, "/flaky").await?;
    println!(
        "probe:     {probe}  breaker: {}",
        breaker.handle().state().as_str()
    );
    let after = demo.send(Method::GET, "/flaky").await?;
    println!(
        "request 6: {after}  breaker: {}",
        breaker.handle().state().as_str()
    );
    let metrics = breaker.handle().metrics();
    println!("\nbreaker metrics: {metrics:?}");

    println!("\n== GET /metrics (Prometheus text format), bulwark's series ==");
    let scrape = demo.send(Method::GET, "/metrics").await?;
    for line in scrape.body.lines().filter(|l| l.starts_with("bulwark_")) {
        println!("{line}");
    }
    let exported = scrape
        .body
        .contains(r#"bulwark_breaker_transitions_total{name="upstream",to="open"}"#);
    if cfg!(feature = "metrics") && !exported {
        return Err("the breaker's transitions are missing from /metrics".into());
    }
    if !cfg!(feature = "metrics") {
        println!("(none: the layers record metrics with `--features metrics`)");
    }

    server.abort();
    let recovered = probe.status == 200 && matches!(breaker.handle().state(), BreakerState::Closed);
    if !recovered {
        return Err("the breaker did not close after a successful probe".into());
    }
    Ok(())
}

/// The self-demonstration's client.
struct Demo {
    client: Client<HttpConnector, Empty<bytes::Bytes>>,
    base: String,
}

/// What the demo prints of one answer.
struct Answer {
    status: u16,
    retry_after: String,
    ratelimit: String,
    body: String,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} retry-after: {:<3} ratelimit: {:<22} body: {}",
            self.status, self.retry_after, self.ratelimit, self.body
        )
    }
}

impl Demo {
    async fn send(&self, method: Method, path: &str) -> Result<Answer, BoxError> {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .body(Empty::new())?;
        // Bounded: a demo that hangs is worse than one that fails.
        let res = tokio::time::timeout(Duration::from_secs(5), self.client.request(req)).await??;
        let status = res.status().as_u16();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        let (retry_after, ratelimit) = (header("retry-after"), header("ratelimit"));
        let body = res.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            retry_after,
            ratelimit,
            body: String::from_utf8_lossy(&body).trim().to_owned(),
        })
    }
}
