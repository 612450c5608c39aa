//! `TokenBucketLayer` behaviour through the public API, with paused time.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bulwark_bucket::{Rate, RateLimited, TokenBucketLayer};
use bulwark_http::BoxError;
use futures_util::FutureExt;
use http::{Request, Response};
use tokio::time::Instant;
use tower::{service_fn, util::BoxCloneService, Layer, Service, ServiceExt};

type Log = Arc<Mutex<Vec<(Instant, u32)>>>;

/// An upstream that records when each request (tagged by its body) arrived and answers with
/// the status found in the tag's hundreds (0 → 200).
fn upstream(log: Log) -> BoxCloneService<Request<u32>, Response<()>, BoxError> {
    BoxCloneService::new(service_fn(move |req: Request<u32>| {
        let log = log.clone();
        async move {
            let tag = *req.body();
            log.lock().unwrap().push((Instant::now(), tag));
            let mut res = Response::builder();
            if tag >= 429_000 {
                res = res.status(429).header("retry-after", "2");
            }
            Ok::<_, BoxError>(res.body(()).unwrap())
        }
    }))
}

fn times(log: &Log, start: Instant) -> Vec<Duration> {
    log.lock()
        .unwrap()
        .iter()
        .map(|(t, _)| *t - start)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn burst_then_steady_rate() {
    let log = Log::default();
    let layer = TokenBucketLayer::new(Rate::per_second(3));
    let svc = layer.layer(upstream(log.clone()));
    let start = Instant::now();
    for i in 0..9 {
        svc.clone().oneshot(Request::new(i)).await.unwrap();
    }
    let thirds = |m: u64| Duration::from_nanos(m * 1_000_000_000 / 3);
    let expected = [0, 0, 0, 1, 2, 3, 4, 5, 6].map(thirds);
    // 3 at once, then one every third of a second (tokio's timer rounds up to the next ms).
    for (got, want) in times(&log, start).into_iter().zip(expected) {
        assert!(
            got >= want && got - want <= Duration::from_millis(1),
            "{got:?} vs {want:?}"
        );
    }
    let stats = layer.stats();
    assert_eq!((stats.admitted, stats.waited, stats.rejected), (9, 6, 0));
}

#[tokio::test(start_paused = true)]
async fn wait_within_max_wait_reject_beyond_it_at_once() {
    let log = Log::default();
    let layer = TokenBucketLayer::new(Rate::per_second(1)).max_wait(Duration::from_secs(1));
    let svc = layer.layer(upstream(log.clone()));
    let start = Instant::now();
    svc.clone().oneshot(Request::new(1)).await.unwrap();
    // The next token is exactly max_wait away: it waits.
    let waiter = tokio::spawn(svc.clone().oneshot(Request::new(2)));
    tokio::task::yield_now().await;
    // The one after is 2 s away: refused at once, nothing reserved.
    let err = svc.clone().oneshot(Request::new(3)).await.unwrap_err();
    assert_eq!(Instant::now(), start, "refused without waiting");
    let limited = err.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(limited.retry_after, Duration::from_secs(2));
    assert_eq!(limited.policy.unwrap().quota, 1);
    waiter.await.unwrap().unwrap();
    assert_eq!(times(&log, start), [Duration::ZERO, Duration::from_secs(1)]);
    assert_eq!(layer.stats().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn reject_mode_with_zero_max_wait() {
    let layer = TokenBucketLayer::new(Rate::per_second(2)).max_wait(Duration::ZERO);
    let svc = layer.layer(upstream(Log::default()));
    assert!(svc.clone().oneshot(Request::new(0)).await.is_ok());
    assert!(svc.clone().oneshot(Request::new(0)).await.is_ok());
    let err = svc.clone().oneshot(Request::new(0)).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<RateLimited>().unwrap().retry_after,
        Duration::from_millis(500)
    );
    tokio::time::advance(Duration::from_millis(500)).await;
    assert!(svc.clone().oneshot(Request::new(0)).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_arrival_order() {
    let log = Log::default();
    let layer = TokenBucketLayer::new(Rate::per_second(10)).burst(1);
    let svc = layer.layer(upstream(log.clone()));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let call = svc.clone().oneshot(Request::new(i));
            tokio::spawn(call)
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let order: Vec<u32> = log.lock().unwrap().iter().map(|(_, tag)| *tag).collect();
    assert_eq!(order, (0..20).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_gives_its_slot_back() {
    let log = Log::default();
    let layer = TokenBucketLayer::new(Rate::per_second(1));
    let mut svc = layer.layer(upstream(log.clone()));
    let start = Instant::now();
    svc.clone().oneshot(Request::new(1)).await.unwrap();
    let mut waiter = tokio_test::task::spawn(svc.ready().await.unwrap().call(Request::new(2)));
    tokio_test::assert_pending!(waiter.poll());
    drop(waiter);
    // The slot at 1 s is free again: the next request gets it, not the one at 2 s.
    svc.clone().oneshot(Request::new(3)).await.unwrap();
    assert_eq!(times(&log, start), [Duration::ZERO, Duration::from_secs(1)]);
    let tags: Vec<u32> = log.lock().unwrap().iter().map(|(_, t)| *t).collect();
    assert_eq!(tags, [1, 3]);
}

#[tokio::test(start_paused = true)]
async fn an_upstream_429_with_retry_after_pauses_everyone() {
    let log = Log::default();
    let layer = TokenBucketLayer::new(Rate::per_second(100));
    let svc = layer.layer(upstream(log.clone()));
    let start = Instant::now();
    // Tokens are plentiful, but the upstream says "Retry-After: 2".
    let res = svc.clone().oneshot(Request::new(429_000)).await.unwrap();
    assert_eq!(res.status(), 429);
    let tasks: Vec<_> = (1..=5)
        .map(|i| tokio::spawn(svc.clone().oneshot(Request::new(i))))
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let t = times(&log, start);
    assert_eq!(t[0], Duration::ZERO);
    assert!(t[1..].iter().all(|t| *t >= Duration::from_secs(2)), "{t:?}");
    assert_eq!(layer.stats().paused, 1);

    // With the pause turned off, the next request goes at once.
    let log = Log::default();
    let layer = TokenBucketLayer::new(Rate::per_second(100)).pause_on_retry_after(false);
    let svc = layer.layer(upstream(log.clone()));
    let start = Instant::now();
    svc.clone().oneshot(Request::new(429_000)).await.unwrap();
    svc.clone().oneshot(Request::new(1)).await.unwrap();
    assert_eq!(times(&log, start), [Duration::ZERO, Duration::ZERO]);
}

#[tokio::test(start_paused = true)]
async fn keys_are_isolated() {
    let log = Log::default();
    let layer = TokenBucketLayer::new(Rate::per_second(1))
        .max_wait(Duration::ZERO)
        .keyed(|req: &Request<u32>| Some(*req.body() % 2));
    let svc = layer.layer(upstream(log));
    assert!(svc.clone().oneshot(Request::new(0)).await.is_ok());
    assert!(
        svc.clone().oneshot(Request::new(2)).await.is_err(),
        "key 0 is spent"
    );
    assert!(
        svc.clone().oneshot(Request::new(1)).await.is_ok(),
        "key 1 is not"
    );
    assert_eq!(layer.stats().keys, 2);
}

#[tokio::test(start_paused = true)]
async fn a_million_keys_stay_bounded() {
    let layer = TokenBucketLayer::new(Rate::per_second(1))
        .max_wait(Duration::ZERO)
        .max_keys(10_000)
        .keyed(|req: &Request<u32>| Some(*req.body()));
    let mut svc = layer.layer(service_fn(|_req: Request<u32>| async {
        Ok::<_, BoxError>(Response::new(()))
    }));
    for key in 0..1_000_000u32 {
        let fut = svc.call(Request::new(key));
        let res = fut.now_or_never().expect("admitted at once");
        assert!(res.is_ok(), "every new key has a full bucket");
    }
    let keys = layer.stats().keys;
    assert!(keys <= 10_000, "{keys} keys held");
    assert_eq!(layer.stats().admitted, 1_000_000);
}

#[tokio::test(start_paused = true)]
async fn clones_of_the_layer_share_the_bucket() {
    let layer = TokenBucketLayer::new(Rate::per_second(2)).max_wait(Duration::ZERO);
    let a = layer.clone().layer(upstream(Log::default()));
    let b = layer.layer(upstream(Log::default()));
    assert!(a.clone().oneshot(Request::new(0)).await.is_ok());
    assert!(b.clone().oneshot(Request::new(0)).await.is_ok());
    assert!(a.clone().oneshot(Request::new(0)).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn zero_count_admits_nothing_and_zero_period_everything() {
    let closed = TokenBucketLayer::new(Rate::new(0, Duration::from_secs(1)));
    let svc = closed.layer(upstream(Log::default()));
    assert!(svc
        .oneshot(Request::new(0))
        .await
        .unwrap_err()
        .is::<RateLimited>());
    let open = TokenBucketLayer::new(Rate::new(1, Duration::ZERO));
    let svc = open.layer(upstream(Log::default()));
    for _ in 0..1000 {
        svc.clone().oneshot(Request::new(0)).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn emit_headers_on_admitted_responses() {
    let layer = TokenBucketLayer::new(Rate::per_second(10)).emit_headers(true);
    let svc = layer.layer(upstream(Log::default()));
    let res = svc.clone().oneshot(Request::new(0)).await.unwrap();
    assert_eq!(res.headers()["ratelimit-policy"], r#""default";q=10;w=1"#);
    assert_eq!(res.headers()["ratelimit"], r#""default";r=9;t=1"#);
}
