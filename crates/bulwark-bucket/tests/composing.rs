//! Composing with tower's own layers (issue 15): nothing holds the inner service's readiness
//! while it waits for a token, a refusal never waits for the inner service, and a setter on a
//! clone of the layer keeps the clone's bucket shared. Paused time; every await is bounded.

use std::{future::Future, time::Duration};

use bulwark_bucket::{Rate, RateLimited, TokenBucketLayer};
use bulwark_http::BoxError;
use http::{Request, Response};
use tokio::time::{timeout, Instant};
use tower::{limit::ConcurrencyLimitLayer, service_fn, Layer, Service, ServiceBuilder, ServiceExt};

/// Longer than any wait these tests expect to finish without: a bound, not a timing.
const BOUND: Duration = Duration::from_millis(10);

/// Echoes the request's `x-key`; a request with `x-hang` takes an hour.
async fn echo(req: Request<()>) -> Result<Response<String>, BoxError> {
    if req.headers().contains_key("x-hang") {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let key = req
        .headers()
        .get("x-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(Response::new(key))
}

fn request(key: &str) -> Request<()> {
    Request::builder().header("x-key", key).body(()).unwrap()
}

fn hanging(key: &str) -> Request<()> {
    Request::builder()
        .header("x-key", key)
        .header("x-hang", "1")
        .body(())
        .unwrap()
}

/// The bucket's key: the `x-key` header.
fn key(req: &Request<()>) -> Option<Vec<u8>> {
    req.headers().get("x-key").map(|v| v.as_bytes().to_vec())
}

/// Awaits `f` for at most [`BOUND`] of virtual time.
async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    match timeout(BOUND, f).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: still pending after {BOUND:?}"),
    }
}

/// Regression (issue 15, finding 4): a request waiting for its token held the permit of the
/// `ConcurrencyLimitLayer(1)` below for its whole wait, so key B's request — whose bucket was
/// full — waited a second behind key A's: head-of-line blocking across keys.
#[tokio::test(start_paused = true)]
async fn a_waiting_request_holds_no_concurrency_permit_across_keys() {
    let layer = TokenBucketLayer::new(Rate::per_second(1))
        .burst(1)
        .keyed(key);
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(ConcurrencyLimitLayer::new(1))
        .service_fn(echo);
    // Two callers (two connections, say), each with its own clone.
    let (mut a, mut b) = (svc.clone(), svc);
    let start = Instant::now();

    let first = bounded("A's first", a.ready().await.unwrap().call(request("a"))).await;
    assert_eq!(first.unwrap().body(), "a");
    // A's second request must wait a second for A's next token.
    bounded("A's ready", a.ready()).await.unwrap();
    let mut waiting = tokio_test::task::spawn(a.call(request("a")));
    tokio_test::assert_pending!(waiting.poll());

    // Meanwhile B's bucket is full and nothing is in flight: B goes at once.
    let svc_b = bounded("B's ready (the permit is free)", b.ready())
        .await
        .unwrap();
    let res = bounded("B's call", svc_b.call(request("b"))).await.unwrap();
    assert_eq!(res.body(), "b");
    assert_eq!(Instant::now(), start, "B did not wait");

    // A's request goes at its token, a second later.
    tokio::time::advance(Duration::from_secs(1)).await;
    let res = bounded("A's second", waiting).await.unwrap();
    assert_eq!(res.body(), "a");
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
    let stats = layer.stats();
    assert_eq!((stats.admitted, stats.waited, stats.rejected), (3, 1, 0));
}

/// Regression (issue 15, finding 3 for the bucket): in reject mode a refused request waited
/// for the inner service's readiness first, so a saturated `ConcurrencyLimitLayer(1)` below
/// (one request in flight for an hour) delayed the `RateLimited` answer by that hour.
#[tokio::test(start_paused = true)]
async fn reject_mode_refuses_at_once_over_a_saturated_inner_service() {
    let layer = TokenBucketLayer::new(Rate::per_second(1))
        .burst(1)
        .max_wait(Duration::ZERO)
        .keyed(key);
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(ConcurrencyLimitLayer::new(1))
        .service_fn(echo);
    let start = Instant::now();
    // Key A's token goes to a request that hangs, holding the only permit.
    bounded("the first ready", svc.ready()).await.unwrap();
    let mut in_flight = tokio_test::task::spawn(svc.call(hanging("a")));
    tokio_test::assert_pending!(in_flight.poll());

    // Key A is out of tokens: refused at once, whatever the inner service is doing.
    let err = bounded("refusal", svc.clone().oneshot(request("a")))
        .await
        .unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().expect("RateLimited");
    assert_eq!(limited.retry_after, Duration::from_secs(1));
    assert_eq!(Instant::now(), start, "refused without waiting");

    // Key B has its token: admitted, it waits for the permit in its future (holding no
    // permit while refusals keep flowing), and goes when the hanging request ends.
    let mut admitted = tokio_test::task::spawn(svc.clone().oneshot(request("b")));
    tokio_test::assert_pending!(admitted.poll());
    let err = bounded("second refusal", svc.clone().oneshot(request("a")))
        .await
        .unwrap_err();
    assert!(err.is::<RateLimited>());
    drop(in_flight);
    let res = bounded("B after the permit came back", admitted)
        .await
        .unwrap();
    assert_eq!(res.body(), "b");
    let stats = layer.stats();
    assert_eq!((stats.admitted, stats.rejected), (2, 2));
}

/// Regression (issue 15): a refused request kept the readiness its `poll_ready` had taken, so
/// the service that refused it sat on the `ConcurrencyLimitLayer(1)` permit and every other
/// caller's `ready()` stayed pending with nothing in flight.
#[tokio::test(start_paused = true)]
async fn a_refused_request_gives_the_inner_readiness_back() {
    let layer = TokenBucketLayer::new(Rate::per_second(1))
        .burst(1)
        .max_wait(Duration::ZERO);
    let svc = ServiceBuilder::new()
        .layer(layer)
        .layer(ConcurrencyLimitLayer::new(1))
        .service_fn(echo);
    let (mut a, mut b) = (svc.clone(), svc);
    bounded("first", a.ready().await.unwrap().call(request("x")))
        .await
        .unwrap();
    // The bucket is empty now, the permit free: `a` takes it, is refused, and keeps living.
    let err = bounded("refusal", a.ready().await.unwrap().call(request("x")))
        .await
        .unwrap_err();
    assert!(err.is::<RateLimited>());
    // `b` is ready at once: nothing is in flight.
    bounded("b's ready", b.ready()).await.unwrap();
    drop(a);
}

/// The same with a request that must wait in wait mode, one service only: after queueing it,
/// the service is ready again for the next caller without anything in flight.
#[tokio::test(start_paused = true)]
async fn a_queued_request_leaves_its_service_ready_for_the_next() {
    let layer = TokenBucketLayer::new(Rate::per_second(1)).burst(1);
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .layer(ConcurrencyLimitLayer::new(1))
        .service_fn(echo);
    bounded("first", svc.ready().await.unwrap().call(request("x")))
        .await
        .unwrap();
    bounded("ready", svc.ready()).await.unwrap();
    let mut second = tokio_test::task::spawn(svc.call(request("x")));
    tokio_test::assert_pending!(second.poll());
    let mut other = svc.clone();
    bounded("another caller's ready", other.ready())
        .await
        .unwrap();
    drop(other);
    tokio::time::advance(Duration::from_secs(1)).await;
    bounded("second", second).await.unwrap();
}

/// In wait mode `poll_ready` still passes the inner service's backpressure on: with the only
/// permit taken by a request in flight, the next caller's `ready()` waits for it (its request
/// might go at once, and would need the permit).
#[tokio::test(start_paused = true)]
async fn wait_mode_passes_the_inner_backpressure_on() {
    let layer = TokenBucketLayer::new(Rate::per_second(10));
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .layer(ConcurrencyLimitLayer::new(1))
        .service_fn(echo);
    bounded("ready", svc.ready()).await.unwrap();
    let in_flight = tokio_test::task::spawn(svc.call(hanging("a")));
    let mut other = svc.clone();
    let mut ready = tokio_test::task::spawn(other.ready());
    tokio_test::assert_pending!(ready.poll());
    drop(in_flight);
    assert!(ready.is_woken());
    tokio_test::assert_ready_ok!(ready.poll());
}

/// Regression (issue 15, finding 6): `l.clone().emit_headers(true)` got a bucket of its own —
/// a fresh burst — while `l` was refused.
#[tokio::test(start_paused = true)]
async fn a_setter_on_a_clone_keeps_the_bucket_shared() {
    let l = TokenBucketLayer::new(Rate::per_second(1))
        .burst(1)
        .max_wait(Duration::ZERO);
    let l2 = l.clone().emit_headers(true);
    let a = l.layer(service_fn(echo));
    let b = l2.layer(service_fn(echo));
    bounded("a", a.oneshot(request("x"))).await.unwrap();
    let err = bounded("b", b.oneshot(request("x"))).await.unwrap_err();
    assert!(err.is::<RateLimited>(), "the clone shares the spent token");
    assert_eq!(l.stats().rejected, 1);
    assert_eq!(l2.stats().admitted, 1);
}

/// Every setter that only changes how requests use the bucket keeps it shared — including
/// `max_wait` and `pause_on_retry_after` — and a clone's `max_wait` applies to its services.
#[tokio::test(start_paused = true)]
async fn usage_setters_on_clones_share_the_bucket_and_keep_their_own_wait() {
    let l = TokenBucketLayer::new(Rate::per_second(1)).burst(1);
    let rejecting = l
        .clone()
        .max_wait(Duration::ZERO)
        .pause_on_retry_after(false)
        .emit_headers(true);
    let waiting = l.layer(service_fn(echo));
    let refusing = rejecting.layer(service_fn(echo));
    bounded("first", waiting.clone().oneshot(request("x")))
        .await
        .unwrap();
    // The clone rejects: its max_wait is zero.
    let err = bounded("refused", refusing.oneshot(request("x")))
        .await
        .unwrap_err();
    assert!(err.is::<RateLimited>());
    // The original still waits (30 s by default) for the same bucket's next token.
    let start = Instant::now();
    let res = timeout(Duration::from_secs(2), waiting.oneshot(request("x"))).await;
    assert!(res.unwrap().is_ok());
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
}

/// Setters that define the bucket (`burst`, `keyed`, `max_keys`) necessarily give the clone
/// a bucket of its own.
#[tokio::test(start_paused = true)]
async fn bucket_setters_on_clones_make_a_new_bucket() {
    let l = TokenBucketLayer::new(Rate::per_second(1))
        .burst(1)
        .max_wait(Duration::ZERO);
    let l2 = l.clone().burst(2);
    bounded("l", l.layer(service_fn(echo)).oneshot(request("x")))
        .await
        .unwrap();
    bounded("l2", l2.layer(service_fn(echo)).oneshot(request("x")))
        .await
        .unwrap();
    assert_eq!((l.stats().admitted, l2.stats().admitted), (1, 1));
}

/// A keyed layer keeps idle keys for the longest `max_wait` set before its first service was
/// made; a longer one set on a clone afterwards is capped at that (a waiter must never outlive
/// its key), and `validate` says so.
#[tokio::test(start_paused = true)]
async fn a_longer_max_wait_on_a_clone_of_a_used_keyed_layer_is_capped() {
    // (`max_wait` before `keyed`: the default 30 s would count as set otherwise.)
    let l = TokenBucketLayer::new(Rate::per_second(1))
        .burst(1)
        .max_wait(Duration::from_secs(1))
        .keyed(key);
    // Set before the first service: covered.
    let early = l.clone().max_wait(Duration::from_millis(1_500));
    assert!(early.validate().is_ok());
    let svc = l.layer(service_fn(echo));
    let late = l.clone().max_wait(Duration::from_secs(60));
    let err = late.validate().unwrap_err();
    assert_eq!(err.field(), "max_wait");
    assert!(l.validate().is_ok() && early.validate().is_ok());

    bounded("first", svc.oneshot(request("k"))).await.unwrap();
    let late_svc = late.layer(service_fn(echo));
    let early_svc = early.layer(service_fn(echo));
    // The next token is 1 s away, the one after 2 s: `early` (1.5 s) queues for the first …
    let mut queued = tokio_test::task::spawn(early_svc.oneshot(request("k")));
    tokio_test::assert_pending!(queued.poll());
    // … and `late` asked for 60 s but gets the 1.5 s the keys cover: refused, not queued.
    let mut refused = tokio_test::task::spawn(late_svc.clone().oneshot(request("k")));
    tokio_test::assert_ready_err!(refused.poll());
    tokio::time::advance(Duration::from_secs(1)).await;
    bounded("queued", queued).await.unwrap();
}
