//! `TokenBucketLayer` and an exhausted upstream quota: once a response says the allowance is
//! gone until a far reset, the bucket refuses at once with `QuotaExhausted` — in wait mode too
//! — until the reset, then lets requests through again (paused time).

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use bulwark_bucket::{Rate, TokenBucketLayer};
use bulwark_http::{BoxError, QuotaExhausted, Rejection};
use http::{Request, Response};
use tokio::time::Instant;
use tower::{service_fn, Layer, ServiceExt};

#[tokio::test(start_paused = true)]
async fn a_far_reset_locks_the_bucket_until_then() {
    let calls = Arc::new(AtomicU32::new(0));
    let exhausted = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let svc = {
        let (calls, exhausted) = (calls.clone(), exhausted.clone());
        service_fn(move |_req: Request<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let res = if exhausted.load(Ordering::SeqCst) {
                Response::builder()
                    .status(429)
                    .header("x-ratelimit-limit", "5000")
                    .header("x-ratelimit-remaining", "0")
                    .header("x-ratelimit-reset", "3600")
                    .body(())
                    .unwrap()
            } else {
                Response::new(())
            };
            async move { Ok::<_, BoxError>(res) }
        })
    };
    // Wait mode (30 s): a quota an hour away is not waited for.
    let layer = TokenBucketLayer::new(Rate::per_second(100));
    let service = layer.layer(svc);
    let res = service.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 429);

    let started = Instant::now();
    let err = service.clone().oneshot(Request::new(())).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO, "refused at once");
    let refusal = err
        .downcast_ref::<QuotaExhausted>()
        .expect("QuotaExhausted");
    assert_eq!(refusal.resets_in, Some(Duration::from_secs(3600)));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not sent");
    // Rendered for a server: 429 with Retry-After.
    let rendered = Rejection::from_error(&*err);
    assert_eq!(rendered.status(), 429);
    assert_eq!(rendered.code(), "quota_exhausted");
    let res = rendered.to_response();
    assert_eq!(res.headers()["retry-after"], "3600");

    // The reset comes: requests go through again.
    exhausted.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(3600)).await;
    let res = service.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn clear_quota_lock_ends_it_and_pause_off_never_locks() {
    let svc = service_fn(|_req: Request<()>| async {
        Ok::<_, BoxError>(
            Response::builder()
                .status(429)
                .header("x-usage-remaining", "0")
                .body(())
                .unwrap(),
        )
    });
    let layer = TokenBucketLayer::new(Rate::per_second(100));
    let service = layer.layer(svc);
    assert_eq!(
        service
            .clone()
            .oneshot(Request::new(()))
            .await
            .unwrap()
            .status(),
        429
    );
    let err = service.clone().oneshot(Request::new(())).await.unwrap_err();
    assert!(err.is::<QuotaExhausted>());
    layer.clear_quota_lock();
    assert_eq!(
        service
            .clone()
            .oneshot(Request::new(()))
            .await
            .unwrap()
            .status(),
        429
    );

    let off = TokenBucketLayer::new(Rate::per_second(100)).pause_on_retry_after(false);
    let service = off.layer(svc);
    for _ in 0..3 {
        assert_eq!(
            service
                .clone()
                .oneshot(Request::new(()))
                .await
                .unwrap()
                .status(),
            429
        );
    }
}

/// Regression: the lock only lifted on an answer carrying usage headers with allowance left;
/// a probe answered `200` without them (or with `warn_below(None)`) left it locked for good.
#[tokio::test(start_paused = true)]
async fn a_successful_probe_without_usage_headers_ends_the_lock() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = {
        let calls = calls.clone();
        service_fn(move |_req: Request<()>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let res = if n == 0 {
                Response::builder()
                    .status(429)
                    .header("x-usage-remaining", "0")
                    .body(())
                    .unwrap()
            } else {
                Response::new(())
            };
            async move { Ok::<_, BoxError>(res) }
        })
    };
    let layer = TokenBucketLayer::new(Rate::per_second(100))
        .warn_below(None)
        .quota_recheck(Duration::from_secs(60));
    let service = layer.layer(svc);
    assert_eq!(
        service
            .clone()
            .oneshot(Request::new(()))
            .await
            .unwrap()
            .status(),
        429
    );
    assert!(service
        .clone()
        .oneshot(Request::new(()))
        .await
        .unwrap_err()
        .is::<QuotaExhausted>());
    tokio::time::advance(Duration::from_secs(60)).await;
    // The probe: a plain 200.
    assert_eq!(
        service
            .clone()
            .oneshot(Request::new(()))
            .await
            .unwrap()
            .status(),
        200
    );
    // Unlocked: the next ones go through.
    for _ in 0..3 {
        assert_eq!(
            service
                .clone()
                .oneshot(Request::new(()))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

/// Regression: requests already queued for a token when the quota ran out were sent anyway
/// once their turn came (the check ran only at admission).
#[tokio::test(start_paused = true)]
async fn requests_queued_before_the_lock_are_refused_when_their_turn_comes() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = {
        let calls = calls.clone();
        service_fn(move |_req: Request<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Ok::<_, BoxError>(
                    Response::builder()
                        .status(429)
                        .header("x-usage-remaining", "0")
                        .body(())
                        .unwrap(),
                )
            }
        })
    };
    // One per second, waiting up to 30 s: the second and third wait for tokens.
    let layer = TokenBucketLayer::new(Rate::per_second(1)).burst(1);
    let service = layer.layer(svc);
    let queued: Vec<_> = (0..3)
        .map(|_| tokio::spawn(service.clone().oneshot(Request::new(()))))
        .collect();
    let mut answers = Vec::new();
    for call in queued {
        answers.push(call.await.unwrap());
    }
    assert_eq!(answers[0].as_ref().unwrap().status(), 429);
    for later in &answers[1..] {
        let err = later.as_ref().unwrap_err();
        assert!(err.is::<QuotaExhausted>(), "{err}");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "nothing sent after the lock"
    );
}
