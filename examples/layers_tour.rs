//! A tour of the four layers one at a time: FakeNotion with scripted faults, a mix of reads and
//! writes, and a table of how bulwark classified each outcome. (The main demo, the same workload
//! with and without bulwark side by side, is `notion_demo`.)
//!
//! ```sh
//! cargo run --example layers_tour
//! ```
//!
//! No credentials and no network: FakeNotion runs on `127.0.0.1` inside this process.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bulwark::{
    breaker::{BreakerState, CircuitBreakerLayer},
    bucket::{Rate, TokenBucketLayer},
    cache::{CacheStatus, StaleCacheLayer},
    http::{BoxError, CircuitOpen, Class, Classify, HttpClassifier},
    retry::{RetryEvent, RetryLayer},
};
use bulwark_testkit::{FakeNotion, Fault, Matcher};
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{util::BoxCloneService, Layer, ServiceBuilder, ServiceExt};

const TOKEN: &str = "secret_demo";

/// One demo row: what is sent, and the fault FakeNotion injects for it.
struct Case {
    kind: &'static str,
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
    token: Option<&'static str>,
    fault: Option<Fault>,
}

type HttpService = BoxCloneService<Request<Full<Bytes>>, Response<Incoming>, BoxError>;

fn client() -> HttpService {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .service(client)
        .map_err(BoxError::from)
        .boxed_clone()
}

fn request(
    base: &str,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    token: Option<&str>,
) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("notion-version", "2025-09-03")
        .header("content-type", "application/json");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    req.body(Full::new(body)).expect("a valid request")
}

fn describe(class: &Class) -> String {
    match class.retry_after() {
        Some(wait) => format!("{} (retry after {}s)", class.as_str(), wait.as_secs()),
        None => class.as_str().to_owned(),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let fake = FakeNotion::builder()
        .tokens([TOKEN])
        .rate_limit(3, 3)
        .start()
        .await?;
    println!("bulwark layers_tour: FakeNotion at {}", fake.url());
    classification(&fake).await?;
    retries(&fake).await?;
    outage(&fake).await?;
    rate_limit(&fake).await?;
    stale(&fake).await?;
    fake.shutdown().await;
    Ok(())
}

/// Part 1: what each outcome means, with a bare client.
async fn classification(fake: &FakeNotion) -> Result<(), BoxError> {
    let base = fake.url();
    let svc = client();
    let faults = fake.faults();
    let new_page = serde_json::json!({
        "parent": {"database_id": bulwark_testkit::SEED_DATABASE_ID},
        "properties": {"Name": {"title": [{"text": {"content": "Demo page"}}]}}
    });

    println!("\n## 1. How bulwark classifies each outcome (bare hyper-util client, 1 s timeout)\n");
    println!(
        "{:<3} {:<32} {:<26} {:<28} class",
        "#", "request", "fault injected", "outcome"
    );
    println!("{}", "-".repeat(112));

    let case = |kind, method, path: &str, body, token, fault| Case {
        kind,
        method,
        path: path.to_owned(),
        body,
        token,
        fault,
    };
    let me = "/v1/users/me";
    let query = format!(
        "/v1/data_sources/{}/query",
        bulwark_testkit::SEED_DATA_SOURCE_ID
    );
    let cases = [
        case("read", Method::GET, me, None, Some(TOKEN), None),
        case(
            "write",
            Method::POST,
            "/v1/pages",
            Some(new_page.clone()),
            Some(TOKEN),
            None,
        ),
        case(
            "read",
            Method::GET,
            "/v1/pages/00000000-0000-0000-0000-000000000000",
            None,
            Some(TOKEN),
            None,
        ),
        case("read", Method::GET, me, None, Some("revoked"), None),
        case(
            "query",
            Method::POST,
            &query,
            Some(serde_json::json!({"page_size": 10})),
            Some(TOKEN),
            Some(Fault::Status(502)),
        ),
        case(
            "read",
            Method::GET,
            me,
            None,
            Some(TOKEN),
            Some(Fault::RateLimited {
                retry_after_secs: 2,
            }),
        ),
        case(
            "read",
            Method::GET,
            me,
            None,
            Some(TOKEN),
            Some(Fault::Status(529)),
        ),
        case(
            "read",
            Method::GET,
            me,
            None,
            Some(TOKEN),
            Some(Fault::CloudflareHtml(522)),
        ),
        case(
            "write",
            Method::POST,
            "/v1/pages",
            Some(new_page.clone()),
            Some(TOKEN),
            Some(Fault::StatusAfterApply(504)),
        ),
        case(
            "read",
            Method::GET,
            me,
            None,
            Some(TOKEN),
            Some(Fault::DropConnection),
        ),
        case(
            "read",
            Method::GET,
            me,
            None,
            Some(TOKEN),
            Some(Fault::Delay(Duration::from_secs(3))),
        ),
    ];

    let mut row = 0;
    for Case {
        kind,
        method,
        path,
        body,
        token,
        fault,
    } in cases
    {
        row += 1;
        // Stay under FakeNotion's 3 requests/second; rate limiting proper arrives with the bucket layer.
        tokio::time::sleep(Duration::from_millis(350)).await;
        let fault_name = fault.as_ref().map_or_else(|| "-".to_owned(), fault_label);
        if let Some(fault) = fault {
            faults.script_for(Matcher::new(method.clone(), path.clone()), [fault]);
        }
        let label = fit(&format!("{kind} {method} {path}"), 32);
        let result = svc
            .clone()
            .oneshot(request(&base, method, &path, body, token))
            .await;
        let class = HttpClassifier.classify_result(&result);
        let outcome = match result {
            Ok(res) => {
                let status = res.status();
                let body = res.into_body().collect().await?.to_bytes();
                let code = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned));
                match code {
                    Some(code) => format!("{} {code}", status.as_u16()),
                    None => format!(
                        "{} {}",
                        status.as_u16(),
                        status.canonical_reason().unwrap_or("")
                    ),
                }
            }
            Err(err) => format!("error: {}", short_error(&err)),
        };
        let outcome = fit(&outcome, 28);
        println!(
            "{row:<3} {label:<32} {fault_name:<26} {outcome:<28} {}",
            describe(&class)
        );
    }

    // A closed port: the connection is refused before anything is sent.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let result = svc
        .clone()
        .oneshot(request(
            &format!("http://127.0.0.1:{closed}"),
            Method::GET,
            "/v1/users/me",
            None,
            Some(TOKEN),
        ))
        .await;
    let class = HttpClassifier.classify_result(&result);
    row += 1;
    println!(
        "{row:<3} {:<32} {:<26} {:<28} {}",
        "read GET (closed port)",
        "-",
        fit(
            &result.err().map_or_else(
                || "answered".to_owned(),
                |e| format!("error: {}", short_error(&e))
            ),
            28
        ),
        describe(&class)
    );

    println!(
        "\nFakeNotion received {} requests; {} pages exist (one write got a 504 *after* it was applied: a blind retry would duplicate it).",
        fake.requests().len(),
        fake.page_count()
    );
    Ok(())
}

/// One request of part 2 and the faults FakeNotion answers it with, in order.
struct RetryCase {
    what: &'static str,
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
    extra_header: Option<(&'static str, &'static str)>,
    faults: Vec<Fault>,
}

/// Part 2: the same kinds of faults through `RetryLayer`.
async fn retries(fake: &FakeNotion) -> Result<(), BoxError> {
    let base = fake.url();
    let events = Arc::new(Mutex::new(Vec::<RetryEvent>::new()));
    let seen = Arc::clone(&events);
    let query = format!(
        "/v1/data_sources/{}/query",
        bulwark_testkit::SEED_DATA_SOURCE_ID
    );
    let layer = RetryLayer::new()
        .idempotent_when(|method, uri| method == Method::POST && uri.path().ends_with("/query"))
        .on_retry(move |event| seen.lock().expect("not poisoned").push(*event));
    let svc = layer.layer(client());
    let page_id = fake
        .pages()
        .first()
        .map(|p| p.id.clone())
        .ok_or("part 1 created no page")?;
    let new_page = |title: &str| {
        serde_json::json!({
            "parent": {"database_id": bulwark_testkit::SEED_DATABASE_ID},
            "properties": {"Name": {"title": [{"text": {"content": title}}]}}
        })
    };
    let case = |what, method, path: &str, body, faults| RetryCase {
        what,
        method,
        path: path.to_owned(),
        body,
        extra_header: None,
        faults,
    };
    let page = format!("/v1/pages/{page_id}");
    let mut keyed = case(
        "write, Idempotency-Key",
        Method::POST,
        "/v1/pages",
        Some(new_page("keyed")),
        vec![Fault::Status(502)],
    );
    keyed.extra_header = Some(("idempotency-key", "demo-key-1"));
    let cases = [
        case(
            "read",
            Method::GET,
            &page,
            None,
            vec![Fault::Status(502), Fault::Status(503)],
        ),
        case(
            "read",
            Method::GET,
            &page,
            None,
            vec![Fault::RateLimited {
                retry_after_secs: 1,
            }],
        ),
        case(
            "read",
            Method::GET,
            &page,
            None,
            vec![Fault::DropConnection],
        ),
        case("read", Method::GET, &page, None, vec![Fault::Status(404)]),
        case(
            "read-only query (POST)",
            Method::POST,
            &query,
            Some(serde_json::json!({"page_size": 5})),
            vec![Fault::Status(502)],
        ),
        case(
            "write",
            Method::POST,
            "/v1/pages",
            Some(new_page("throttled")),
            vec![Fault::RateLimited {
                retry_after_secs: 1,
            }],
        ),
        case(
            "write",
            Method::POST,
            "/v1/pages",
            Some(new_page("ambiguous")),
            vec![Fault::StatusAfterApply(502)],
        ),
        keyed,
    ];

    println!("\n## 2. The same faults through RetryLayer (defaults: 3 retries, 200 ms full-jitter backoff, Retry-After ≤ 60 s)\n");
    println!(
        "{:<3} {:<26} {:<30} {:<9} {:<34} result",
        "#", "request", "faults injected", "attempts", "waits"
    );
    println!("{}", "-".repeat(118));
    let pages_before = fake.page_count();
    for (n, c) in cases.into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let labels: Vec<String> = c.faults.iter().map(fault_label).collect();
        fake.faults()
            .script_for(Matcher::new(c.method.clone(), c.path.clone()), c.faults);
        let mut req = request(&base, c.method, &c.path, c.body, Some(TOKEN));
        if let Some((name, value)) = c.extra_header {
            req.headers_mut()
                .insert(name, http::HeaderValue::from_static(value));
        }
        let before = layer.stats().attempts;
        let result = svc.clone().oneshot(req).await;
        let attempts = layer.stats().attempts - before;
        let waits: Vec<String> = events
            .lock()
            .expect("not poisoned")
            .drain(..)
            .map(|e| {
                let source = if e.from_retry_after {
                    "Retry-After"
                } else {
                    "backoff"
                };
                format!("{} ms {source}", e.wait.as_millis())
            })
            .collect();
        let result = match result {
            Ok(res) => res.status().as_u16().to_string(),
            Err(err) => format!("error: {}", short_error(&err)),
        };
        println!(
            "{:<3} {:<26} {:<30} {:<9} {:<34} {}",
            n + 1,
            fit(c.what, 26),
            fit(&labels.join(", "), 30),
            attempts,
            fit(
                &if waits.is_empty() {
                    "-".to_owned()
                } else {
                    waits.join(", ")
                },
                34
            ),
            fit(&result, 28)
        );
    }
    let stats = layer.stats();
    println!(
        "\nRetryLayer: {} attempts, {} retries, {} gave up. Writes sent: 3 POST /v1/pages, pages created: {} \
         (the write answered 502 after it was applied was NOT repeated, so nothing was duplicated).",
        stats.attempts,
        stats.retries,
        stats.gave_up,
        fake.page_count() - pages_before
    );
    Ok(())
}
/// Part 3: a 4 s outage behind `CircuitBreakerLayer`: it opens, fails fast, probes, closes.
async fn outage(fake: &FakeNotion) -> Result<(), BoxError> {
    let base = fake.url();
    let start = tokio::time::Instant::now();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let transitions = Arc::clone(&log);
    let breaker = CircuitBreakerLayer::builder()
        .consecutive_failures(3)
        .break_duration(Duration::from_secs(1))
        .on_transition(move |t| {
            transitions.lock().expect("not poisoned").push(format!(
                "breaker {} -> {}{}",
                t.from.as_str(),
                t.to.as_str(),
                match t.to {
                    BreakerState::Open { retry_after } =>
                        format!(" for {} ms", retry_after.as_millis()),
                    _ => String::new(),
                }
            ));
        })
        .build()?;
    let svc = breaker.layer(client());
    println!("\n## 3. A 4 s outage behind CircuitBreakerLayer (3 failures in a row open it, 1 s break, doubling)\n");
    println!("{:>6}  {:<22} {:<40} breaker", "t", "event", "outcome");
    println!("{}", "-".repeat(96));
    let received_before = fake.requests().len();
    let mut reached_during_outage = 0;
    let mut rejected = 0;
    for tick in 0..30u32 {
        let at = Duration::from_millis(u64::from(tick) * 350);
        tokio::time::sleep_until(start + at).await;
        let event = match tick {
            4 => {
                fake.faults().outage(true);
                "outage starts"
            }
            16 => {
                fake.faults().outage(false);
                "outage ends"
            }
            _ => "",
        };
        let before = fake.requests().len();
        let result = svc
            .clone()
            .oneshot(request(
                &base,
                Method::GET,
                "/v1/users/me",
                None,
                Some(TOKEN),
            ))
            .await;
        let reached = fake.requests().len() > before;
        let outcome = match result {
            Ok(res) => format!("{} (reached FakeNotion)", res.status().as_u16()),
            Err(err) => match err.downcast_ref::<CircuitOpen>() {
                Some(open) => {
                    rejected += 1;
                    format!(
                        "rejected locally, retry after {} ms",
                        open.retry_after.as_millis()
                    )
                }
                None => format!("error: {}", short_error(&err)),
            },
        };
        if fake.faults().is_outage() && reached {
            reached_during_outage += 1;
        }
        let changes: Vec<String> = log.lock().expect("not poisoned").drain(..).collect();
        println!(
            "{:>5.2}s  {:<22} {:<40} {}",
            at.as_secs_f64(),
            event,
            outcome,
            if changes.is_empty() {
                breaker.handle().state().as_str().to_owned()
            } else {
                changes.join("; ")
            }
        );
    }
    let metrics = breaker.handle().metrics();
    println!(
        "\nDuring the outage FakeNotion received {reached_during_outage} of the requests sent; {rejected} were refused locally \
         without touching it. Breaker: opened {} times, final state {}. FakeNotion received {} requests in part 3.",
        metrics.opens,
        metrics.state.as_str(),
        fake.requests().len() - received_before
    );
    Ok(())
}

/// Part 4: a burst of reads against FakeNotion's 3 requests/second, without and with
/// `TokenBucketLayer`.
async fn rate_limit(fake: &FakeNotion) -> Result<(), BoxError> {
    let base = fake.url();
    println!("\n## 4. 12 reads at once against FakeNotion's 3 requests/second, without and with TokenBucketLayer(3/s)\n");
    let burst = |svc: HttpService| {
        let base = base.clone();
        async move {
            let start = tokio::time::Instant::now();
            let calls: Vec<_> = (0..12)
                .map(|_| {
                    let req = request(&base, Method::GET, "/v1/users/me", None, Some(TOKEN));
                    tokio::spawn(svc.clone().oneshot(req))
                })
                .collect();
            let mut statuses = Vec::new();
            for call in calls {
                statuses.push(match call.await {
                    Ok(Ok(res)) => res.status().as_u16(),
                    _ => 0,
                });
            }
            (statuses, start.elapsed())
        }
    };
    // Let FakeNotion's bucket refill after the earlier parts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (bare, bare_time) = burst(client()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let layer = TokenBucketLayer::new(Rate::per_second(3));
    let limited: HttpService = ServiceBuilder::new()
        .layer(layer.clone())
        .service(client())
        .boxed_clone();
    let (shaped, shaped_time) = burst(limited).await;
    let count = |v: &[u16], s: u16| v.iter().filter(|x| **x == s).count();
    println!(
        "without the bucket: {:>2} × 200, {:>2} × 429 rate_limited   in {:.2}s",
        count(&bare, 200),
        count(&bare, 429),
        bare_time.as_secs_f64()
    );
    println!(
        "with the bucket:    {:>2} × 200, {:>2} × 429 rate_limited   in {:.2}s ({} waited for their token, in arrival order)",
        count(&shaped, 200),
        count(&shaped, 429),
        shaped_time.as_secs_f64(),
        layer.stats().waited
    );
    Ok(())
}

/// Part 5: reads through `StaleCacheLayer` before, during and after an outage.
async fn stale(fake: &FakeNotion) -> Result<(), BoxError> {
    let base = fake.url();
    println!("\n## 5. Reads through StaleCacheLayer (always live; on failure the last good copy, if < 5 min old)\n");
    let cache = StaleCacheLayer::new();
    let svc = cache.layer(client());
    let pages: Vec<String> = fake
        .pages()
        .iter()
        .take(2)
        .map(|p| format!("/v1/pages/{}", p.id))
        .collect();
    let paths = [
        pages[0].clone(),
        pages[1].clone(),
        "/v1/users/me".to_owned(),
    ];
    println!(
        "{:<10} {:<48} {:<7} cache-status",
        "phase", "request", "status"
    );
    println!("{}", "-".repeat(104));
    for (phase, outage, which) in [
        ("before", false, &paths[..2]),
        ("outage", true, &paths[..]),
        ("after", false, &paths[..1]),
    ] {
        fake.faults().outage(outage);
        tokio::time::sleep(Duration::from_millis(700)).await;
        for path in which {
            let res = svc
                .clone()
                .oneshot(request(&base, Method::GET, path, None, Some(TOKEN)))
                .await?;
            let marker = match res.extensions().get::<CacheStatus>() {
                Some(CacheStatus::Stale { age }) => format!("stale, {} ms old", age.as_millis()),
                Some(CacheStatus::Fresh { .. }) => "fresh".to_owned(),
                Some(CacheStatus::Live) => "live".to_owned(),
                None => "-".to_owned(),
            };
            let header = res
                .headers()
                .get("cache-status")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned();
            println!(
                "{phase:<10} {:<48} {:<7} {header} ({marker})",
                fit(&format!("GET {path}"), 48),
                res.status().as_u16()
            );
        }
    }
    fake.faults().outage(false);
    let stats = cache.stats();
    println!(
        "\nStaleCacheLayer: {} stored, {} answered stale during the outage; /v1/users/me was never read before it, so its 503 passed through.",
        stats.stores, stats.stale_served
    );
    Ok(())
}

/// Truncates `text` to `width` characters, marking the cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width - 2).collect();
    cut.push('…');
    cut
}

fn fault_label(fault: &Fault) -> String {
    match fault {
        Fault::Status(status) => format!("{status}"),
        Fault::StatusAfterApply(status) => format!("{status} after applying"),
        Fault::RateLimited { retry_after_secs } => format!("429, Retry-After: {retry_after_secs}"),
        Fault::DropConnection => "connection dropped".to_owned(),
        Fault::CloudflareHtml(status) => format!("Cloudflare HTML {status}"),
        Fault::Delay(d) => format!("{}s delay, 1s timeout", d.as_secs()),
        other => format!("{other:?}"),
    }
}

fn short_error(err: &BoxError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}
