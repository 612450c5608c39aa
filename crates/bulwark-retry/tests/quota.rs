//! An exhausted quota (`Class::QuotaExhausted`) is not retried — unless its announced reset is
//! within `max_retry_after` — and the give-up reason says so (paused time).

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bulwark_http::BufferedBody;
use bulwark_retry::{event::GiveUp, RetryLayer};
use http::{Request, Response};
use tokio::time::Instant;
use tower::{service_fn, Layer, ServiceExt};

/// An upstream that answers `first` once, then 200; counts calls.
fn upstream(
    first: Response<()>,
    calls: Arc<AtomicU32>,
) -> impl tower::Service<
    Request<BufferedBody>,
    Response = Response<()>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    let first = Arc::new(Mutex::new(Some(first)));
    service_fn(move |_req: Request<BufferedBody>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let res = first
            .lock()
            .unwrap()
            .take()
            .unwrap_or_else(|| Response::new(()));
        async move { Ok(res) }
    })
}

fn too_many(headers: &[(&str, &str)]) -> Response<()> {
    let mut res = Response::builder().status(429);
    for (k, v) in headers {
        res = res.header(*k, *v);
    }
    res.body(()).unwrap()
}

fn get() -> Request<BufferedBody> {
    Request::get("http://upstream.test/x")
        .body(BufferedBody::default())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_billing_period_quota_is_returned_at_once_with_its_reason() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = RetryLayer::new();
    let res = layer
        .layer(upstream(
            too_many(&[("x-usage-remaining", "0"), ("x-usage-quota", "1000")]),
            calls.clone(),
        ))
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "never retried");
    assert_eq!(layer.stats().gave_up, 1);
    assert_eq!(GiveUp::QuotaExhausted.as_str(), "quota_exhausted");
}

#[tokio::test(start_paused = true)]
async fn a_reset_within_max_retry_after_is_waited_for() {
    // Remaining 0, reset in 2 minutes: beyond the classifier's one-minute horizon
    // (QuotaExhausted), but within this layer's five-minute max_retry_after.
    let calls = Arc::new(AtomicU32::new(0));
    let layer = RetryLayer::new().max_retry_after(Duration::from_secs(300));
    let started = Instant::now();
    let res = layer
        .layer(upstream(
            too_many(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "120")]),
            calls.clone(),
        ))
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(120),
        "{:?}",
        started.elapsed()
    );

    // With the default one-minute max_retry_after: not retried.
    let calls = Arc::new(AtomicU32::new(0));
    let res = RetryLayer::new()
        .layer(upstream(
            too_many(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "120")]),
            calls.clone(),
        ))
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_reset_within_the_horizon_is_an_ordinary_throttle() {
    // Remaining 0 and a reset in 3 s, no Retry-After: waited out like one.
    let calls = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let res = RetryLayer::new()
        .layer(upstream(
            too_many(&[("ratelimit", r#""default";r=0;t=3"#)]),
            calls.clone(),
        ))
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() >= Duration::from_secs(3));
}
