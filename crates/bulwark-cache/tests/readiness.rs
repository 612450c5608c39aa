//! Nothing held while waiting: the cache takes the inner service's readiness only for a
//! request it is about to send upstream (tower's `ConcurrencyLimitLayer` inside), on paused
//! time.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bulwark_cache::{CacheStatus, StaleCacheLayer};
use bulwark_http::{BoxError, BufferedBody};
use http::{Method, Request, Response};
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::{limit::ConcurrencyLimitLayer, util::BoxCloneService, Layer, ServiceExt};

type Svc = BoxCloneService<Request<BufferedBody>, Response<BufferedBody>, BoxError>;

/// An upstream whose answers to paths starting `/slow` take 10 s, the others none; it records
/// the paths it was called with, in order.
fn upstream(calls: &Arc<Mutex<Vec<String>>>) -> Svc {
    let calls = Arc::clone(calls);
    BoxCloneService::new(tower::service_fn(move |req: Request<BufferedBody>| {
        let path = req.uri().path().to_owned();
        calls.lock().unwrap().push(path.clone());
        async move {
            if path.starts_with("/slow") {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            Ok::<_, BoxError>(Response::new(BufferedBody::from(path)))
        }
    }))
}

fn get(path: &str) -> Request<BufferedBody> {
    Request::get(format!("https://api.test{path}"))
        .body(BufferedBody::empty())
        .unwrap()
}

/// Regression: a request that followed an identical one in flight took the inner service's
/// readiness (a `ConcurrencyLimit` permit) in `poll_ready` and held it for the whole wait, so
/// with a limit of 2 an unrelated request waited for the leader to finish.
#[tokio::test(start_paused = true)]
async fn a_coalesced_follower_holds_no_inner_permit() {
    let calls = Arc::default();
    let inner = ConcurrencyLimitLayer::new(2).layer(upstream(&calls));
    let svc = StaleCacheLayer::new().layer(inner);

    let mut leader = task::spawn(svc.clone().oneshot(get("/slow/a")));
    assert_pending!(leader.poll()); // one permit, calling the upstream for 10 s
    let mut follower = task::spawn(svc.clone().oneshot(get("/slow/a")));
    assert_pending!(follower.poll()); // waits for the leader's answer
    let mut other = task::spawn(svc.clone().oneshot(get("/slow/b")));
    assert_pending!(other.poll()); // the second permit: its own 10 s call
    assert_eq!(
        *calls.lock().unwrap(),
        ["/slow/a", "/slow/b"],
        "/slow/b went upstream at once: the follower holds no permit"
    );

    tokio::time::advance(Duration::from_secs(10)).await;
    let res = assert_ready_ok!(leader.poll());
    assert_eq!(
        res.headers()["cache-status"],
        "bulwark; fwd=uri-miss; stored"
    );
    let res = assert_ready_ok!(follower.poll());
    assert_eq!(
        res.headers()["cache-status"],
        "bulwark; fwd=uri-miss; collapsed"
    );
    assert_ready_ok!(other.poll());
    assert_eq!(calls.lock().unwrap().len(), 2, "the follower never called");
}

/// Regression: `poll_ready` waited for the inner service even for a request the cache then
/// answered from memory, so a fresh hit queued behind a saturated `ConcurrencyLimit(1)`.
#[tokio::test(start_paused = true)]
async fn a_fresh_hit_does_not_wait_for_the_inner_services_capacity() {
    let calls = Arc::default();
    let inner = ConcurrencyLimitLayer::new(1).layer(upstream(&calls));
    let svc = StaleCacheLayer::new()
        .fresh_for(Duration::from_secs(60))
        .stale_while_revalidate(Duration::from_secs(60))
        .layer(inner);
    let stored = svc.clone().oneshot(get("/a")).await.unwrap();
    assert_eq!(stored.extensions().get(), Some(&CacheStatus::Live));

    let mut busy = task::spawn(svc.clone().oneshot(get("/slow")));
    assert_pending!(busy.poll()); // holds the only permit for 10 s
    let mut hit = task::spawn(svc.clone().oneshot(get("/a")));
    let res = assert_ready_ok!(hit.poll(), "answered from memory at once");
    assert!(matches!(
        res.extensions().get(),
        Some(CacheStatus::Fresh { .. })
    ));

    // Within stale-while-revalidate: answered at once too; the refresh waits for the permit
    // in the background.
    tokio::time::advance(Duration::from_secs(61)).await;
    let mut revalidating = task::spawn(svc.clone().oneshot(get("/a")));
    let res = assert_ready_ok!(revalidating.poll());
    assert!(matches!(
        res.extensions().get(),
        Some(CacheStatus::Stale { .. })
    ));
    assert_ready_ok!(busy.poll());
    // The refresh runs once the permit is free (bounded: a few yields).
    for _ in 0..10 {
        if calls.lock().unwrap().len() == 3 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(*calls.lock().unwrap(), ["/a", "/slow", "/a"]);
}

/// A request the cache passes through (a write) takes the inner readiness in its future: a
/// second write waits for the permit there, and goes once the first is done.
#[tokio::test(start_paused = true)]
async fn a_passthrough_waits_for_the_inner_service_in_its_future() {
    let calls = Arc::default();
    let inner = ConcurrencyLimitLayer::new(1).layer(upstream(&calls));
    let svc = StaleCacheLayer::new().layer(inner);
    let post = |path: &str| {
        Request::builder()
            .method(Method::POST)
            .uri(format!("https://api.test{path}"))
            .body(BufferedBody::from("{}"))
            .unwrap()
    };
    let mut first = task::spawn(svc.clone().oneshot(post("/slow/1")));
    assert_pending!(first.poll());
    let mut second = task::spawn(svc.clone().oneshot(post("/slow/2")));
    assert_pending!(second.poll());
    assert_eq!(*calls.lock().unwrap(), ["/slow/1"]);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_ready_ok!(first.poll());
    assert!(second.is_woken());
    assert_pending!(second.poll()); // now calling, for 10 s
    assert_eq!(*calls.lock().unwrap(), ["/slow/1", "/slow/2"]);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_ready_ok!(second.poll());
}
