//! `CircuitBreakerLayer` against FakeNotion during an outage, and rendered by
//! `RejectionResponseLayer` in an axum router.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{body::Body, http::StatusCode, routing::get, Router};
use bulwark::{
    breaker::{BreakerState, CircuitBreakerLayer, Transition},
    http::{BufferedBody, CircuitOpen, RejectionResponseLayer},
};
use bulwark_testkit::FakeNotion;
use http::Request;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Layer, ServiceBuilder, ServiceExt};

fn read(base: &str) -> Request<BufferedBody> {
    Request::get(format!("{base}/v1/users/me"))
        .header("authorization", "Bearer secret")
        .header("notion-version", "2025-09-03")
        .body(BufferedBody::empty())
        .unwrap()
}

/// A client sending 20 requests/s through the breaker during a 30 s outage: FakeNotion sees a
/// handful of requests (the failures that open the circuit, then one probe per break), not 600.
#[tokio::test(start_paused = true)]
async fn a_30_second_outage_reaches_the_upstream_a_handful_of_times() {
    let fake = FakeNotion::builder().no_rate_limit().start().await.unwrap();
    let transitions = Arc::new(Mutex::new(Vec::<Transition>::new()));
    let seen = transitions.clone();
    let layer = CircuitBreakerLayer::builder()
        .break_duration(Duration::from_secs(10))
        .on_transition(move |t| seen.lock().unwrap().push(*t))
        .build()
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let svc = layer.layer(client);

    // Healthy traffic first.
    for _ in 0..20 {
        assert_eq!(
            svc.clone()
                .oneshot(read(&fake.url()))
                .await
                .unwrap()
                .status(),
            200
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fake.clear_requests();
    fake.faults().outage(true);
    let (mut failed, mut rejected) = (0, 0);
    for _ in 0..600 {
        match svc.clone().oneshot(read(&fake.url())).await {
            Ok(res) => {
                assert_eq!(res.status(), 503);
                failed += 1;
            }
            Err(err) => {
                assert!(err.is::<CircuitOpen>(), "{err}");
                rejected += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fake.faults().outage(false);
    let reached = fake.requests().len();
    let probes = transitions
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.to == BreakerState::HalfOpen)
        .count();
    // 5 consecutive failures open it; one probe after each break (10 s, then 20 s).
    assert_eq!(reached, failed);
    assert!(
        reached <= 5 + probes,
        "{reached} requests reached FakeNotion, {probes} probes"
    );
    assert!(reached < 10, "{reached}");
    assert_eq!(rejected, 600 - failed);

    // After the outage the next probe closes the circuit.
    let mut closed_after = None;
    for i in 0..1200 {
        if svc.clone().oneshot(read(&fake.url())).await.is_ok()
            && layer.handle().state() == BreakerState::Closed
        {
            closed_after = Some(i);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        closed_after.is_some(),
        "the breaker closed once FakeNotion recovered"
    );
    assert_eq!(layer.handle().metrics().opens, 1 + probes as u64);
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_is_a_503_with_retry_after_in_an_axum_router() {
    let failing = Arc::new(AtomicBool::new(true));
    let flag = failing.clone();
    let breaker = CircuitBreakerLayer::builder()
        .consecutive_failures(3)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/",
            get(move || {
                let failing = flag.load(Ordering::SeqCst);
                async move {
                    if failing {
                        (StatusCode::SERVICE_UNAVAILABLE, "down")
                    } else {
                        (StatusCode::OK, "up")
                    }
                }
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(RejectionResponseLayer::new())
                .layer(breaker.clone()),
        );
    let get_root = || Request::get("/").body(Body::empty()).unwrap();
    for _ in 0..3 {
        assert_eq!(app.clone().oneshot(get_root()).await.unwrap().status(), 503);
    }
    failing.store(false, Ordering::SeqCst);
    let res = app.clone().oneshot(get_root()).await.unwrap();
    assert_eq!(
        res.status(),
        503,
        "rejected by the open circuit, the handler is healthy"
    );
    assert_eq!(res.headers()["retry-after"], "30");
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("circuit_open"));
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(app.clone().oneshot(get_root()).await.unwrap().status(), 200);
    assert_eq!(breaker.handle().state(), BreakerState::Closed);
}
