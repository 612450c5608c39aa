//! The breaker composed with tower's own layers (issue 15): a timeout *outside* the breaker is
//! seen through the drop rule, fail-fast never waits for a saturated inner service, and
//! nothing holds an inner permit while it waits. Paused time throughout; every wait bounded.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bulwark_breaker::{BreakerState, CircuitBreakerLayer, CircuitWait};
use bulwark_http::{BoxError, CircuitOpen};
use http::{Request, Response};
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready, task};
use tower::{
    limit::ConcurrencyLimitLayer, service_fn, timeout::error::Elapsed, timeout::TimeoutLayer,
    Layer, Service, ServiceBuilder, ServiceExt,
};

/// What the fake upstream does with a request.
#[derive(Clone, Copy, Debug)]
enum Up {
    /// Answers with the upstream's current status (200, or 503 while it is down).
    Answer,
    /// Never answers.
    Hang,
}

/// An upstream that answers 200 (503 while `down`), or hangs; counts calls.
#[derive(Clone, Default)]
struct Upstream {
    down: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Upstream {
    fn service(
        &self,
    ) -> impl Service<
        Request<Up>,
        Response = Response<()>,
        Error = BoxError,
        Future = impl std::future::Future<Output = Result<Response<()>, BoxError>> + Send,
    > + Clone
           + Send {
        let up = self.clone();
        service_fn(move |req: Request<Up>| {
            let up = up.clone();
            async move {
                up.calls.fetch_add(1, Ordering::SeqCst);
                if let Up::Hang = req.body() {
                    std::future::pending::<()>().await;
                }
                let status = if up.down.load(Ordering::SeqCst) {
                    503
                } else {
                    200
                };
                Ok::<_, BoxError>(Response::builder().status(status).body(()).unwrap())
            }
        })
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn req(up: Up) -> Request<Up> {
    Request::new(up)
}

fn is_open(err: &BoxError) -> Option<Duration> {
    err.downcast_ref::<CircuitOpen>().map(|o| o.retry_after)
}

/// Whether `svc` is ready on the first poll (a `ConcurrencyLimit` with its permit free is).
fn ready_at_once<S: Service<Request<Up>>>(svc: &mut S) -> bool {
    let mut ready = task::spawn(std::future::poll_fn(|cx| svc.poll_ready(cx)));
    matches!(ready.poll(), std::task::Poll::Ready(Ok(())))
}

/// Issue 15, finding 2: `TimeoutLayer(1 s)` outside the breaker over a hanging upstream left the
/// breaker closed with `calls = 0` after any number of timeouts. With the default settings
/// (five consecutive failures, a 1 s slow-call threshold) the fifth timeout opens it.
#[tokio::test(start_paused = true)]
async fn an_outer_timeout_over_a_hanging_upstream_opens_the_breaker() {
    let up = Upstream::default();
    let layer = CircuitBreakerLayer::new();
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .layer(layer.clone())
        .service(up.service());
    for i in 0..5 {
        assert_eq!(layer.handle().state(), BreakerState::Closed, "timeout {i}");
        let err = svc.clone().oneshot(req(Up::Hang)).await.unwrap_err();
        assert!(err.is::<Elapsed>(), "timeout {i}: {err}");
    }
    let metrics = layer.handle().metrics();
    assert_eq!((metrics.calls, metrics.failures), (5, 5));
    assert_eq!(metrics.abandoned, 5, "each was given up on by the timeout");
    assert!(matches!(metrics.state, BreakerState::Open { .. }));
    // Open: the next call fails at once, without reaching the upstream or waiting for the timeout.
    let start = Instant::now();
    let err = svc.clone().oneshot(req(Up::Hang)).await.unwrap_err();
    assert_eq!(is_open(&err), Some(Duration::from_secs(30)));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(up.calls(), 5);
}

/// Regression (a review of issue 19): with the call's start stamped at its first poll rather
/// than at `call`, a response future polled 10 ms after `call` — as a `Buffer` worker's or a
/// joined future's is — ran "0.99 s" when the outer 1 s timeout fired, under the 1 s
/// threshold, and five timeouts left the breaker closed with nothing counted.
#[tokio::test(start_paused = true)]
async fn an_outer_timeout_is_seen_when_the_first_poll_comes_late() {
    let up = Upstream::default();
    let layer = CircuitBreakerLayer::new();
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .layer(layer.clone())
        .service(up.service());
    for i in 0..5 {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        let fut = svc.call(req(Up::Hang));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let err = fut.await.unwrap_err();
        assert!(err.is::<Elapsed>(), "timeout {i}: {err}");
    }
    let metrics = layer.handle().metrics();
    assert_eq!(
        (metrics.calls, metrics.failures, metrics.abandoned),
        (5, 5, 5)
    );
    assert!(matches!(metrics.state, BreakerState::Open { .. }));
}

/// A timeout shorter than the slow-call threshold goes unseen unless the threshold is lowered
/// to it: `slow_call_threshold` is the knob.
#[tokio::test(start_paused = true)]
async fn a_short_outer_timeout_is_seen_at_a_lower_threshold() {
    let up = Upstream::default();
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(3)
        .slow_call_threshold(Duration::from_millis(200))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(250)))
        .layer(layer.clone())
        .service(up.service());
    for _ in 0..3 {
        assert!(svc.clone().oneshot(req(Up::Hang)).await.is_err());
    }
    assert!(matches!(layer.handle().state(), BreakerState::Open { .. }));
}

/// The other side of the drop rule: callers that give up after 1 ms (cancellations, lost races)
/// are not held against the upstream — however many of them.
#[tokio::test(start_paused = true)]
async fn callers_that_give_up_early_are_not_held_against_the_upstream() {
    let up = Upstream::default();
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .minimum_calls(1)
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(1)))
        .layer(layer.clone())
        .service(up.service());
    for _ in 0..50 {
        let err = svc.clone().oneshot(req(Up::Hang)).await.unwrap_err();
        assert!(err.is::<Elapsed>());
    }
    assert_eq!(up.calls(), 50, "every call reached the upstream");
    let metrics = layer.handle().metrics();
    assert_eq!(metrics.state, BreakerState::Closed);
    assert_eq!(
        (metrics.calls, metrics.failures, metrics.abandoned),
        (0, 0, 0)
    );
    // A future dropped by hand, after 1 ms, is the same.
    let mut call = task::spawn(svc.clone().oneshot(req(Up::Hang)));
    assert_pending!(call.poll());
    tokio::time::advance(Duration::from_millis(1)).await;
    drop(call);
    assert_eq!(layer.handle().metrics().failures, 0);
    assert_eq!(layer.handle().state(), BreakerState::Closed);
}

/// A half-open probe whose future is dropped never wedges the breaker: dropped early it gives
/// its permit back (the next call is the probe); dropped after the slow-call threshold it is a
/// failed probe (open again, and after that break the next probe goes).
#[tokio::test(start_paused = true)]
async fn a_dropped_half_open_probe_does_not_wedge_the_breaker() {
    let up = Upstream::default();
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .break_duration(Duration::from_secs(10))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(up.service());
    up.set_down(true);
    svc.clone().oneshot(req(Up::Answer)).await.unwrap();
    up.set_down(false);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(handle.state(), BreakerState::HalfOpen);

    // Dropped after 1 ms: the permit comes back, nothing is recorded.
    let mut probe = task::spawn(svc.clone().oneshot(req(Up::Hang)));
    assert_pending!(probe.poll());
    let busy = svc.clone().oneshot(req(Up::Answer)).await.unwrap_err();
    assert_eq!(
        is_open(&busy),
        Some(Duration::ZERO),
        "the only permit is taken"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    drop(probe);
    assert_eq!(handle.state(), BreakerState::HalfOpen);
    assert_eq!(
        handle.metrics().failures,
        1,
        "only the failure that opened it"
    );

    // Dropped after 2 s (> the 1 s threshold): a failed probe, open for twice the break.
    let mut probe = task::spawn(svc.clone().oneshot(req(Up::Hang)));
    assert_pending!(probe.poll());
    tokio::time::advance(Duration::from_secs(2)).await;
    drop(probe);
    assert_eq!(
        handle.state(),
        BreakerState::Open {
            retry_after: Duration::from_secs(20)
        }
    );
    assert_eq!(handle.metrics().abandoned, 1);

    // Not wedged: after the break the next probe goes, succeeds, and closes it.
    tokio::time::advance(Duration::from_secs(20)).await;
    let calls = up.calls();
    assert_eq!(
        svc.clone().oneshot(req(Up::Answer)).await.unwrap().status(),
        200
    );
    assert_eq!(up.calls(), calls + 1);
    assert_eq!(handle.state(), BreakerState::Closed);
}

/// Issue 15, finding 3: a forced-open breaker over `ConcurrencyLimitLayer(1)` whose only permit
/// is held by a call that never completes made the next call wait for the inner readiness
/// forever. It must be ready at once and refuse with `CircuitOpen`.
#[tokio::test(start_paused = true)]
async fn an_open_breaker_over_a_saturated_concurrency_limit_fails_fast() {
    let up = Upstream::default();
    let layer = CircuitBreakerLayer::new();
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(ConcurrencyLimitLayer::new(1))
        .service(up.service());
    // The only permit, taken by a call in flight that never completes.
    let mut in_flight = task::spawn(svc.clone().oneshot(req(Up::Hang)));
    assert_pending!(in_flight.poll());
    assert!(
        !ready_at_once(&mut svc.get_ref().clone()),
        "the permit is taken"
    );

    layer.handle().force_open();
    let start = Instant::now();
    let mut caller = svc.clone();
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        caller.ready().await?;
        caller.call(req(Up::Answer)).await
    })
    .await
    .expect("an open breaker fails fast, without waiting for the inner service's readiness");
    assert!(is_open(&refused.unwrap_err()).is_some());
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        up.calls(),
        1,
        "only the call in flight reached the upstream"
    );
    drop(in_flight);
}

/// The same while half-open: the one probe holds the only inner permit; another caller is
/// refused at once (no free probe permit) instead of queueing for the inner permit.
#[tokio::test(start_paused = true)]
async fn a_half_open_breaker_over_a_saturated_concurrency_limit_fails_fast() {
    let up = Upstream::default();
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .break_duration(Duration::from_secs(1))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(ConcurrencyLimitLayer::new(1))
        .service(up.service());
    up.set_down(true);
    svc.clone().oneshot(req(Up::Answer)).await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let mut probe = task::spawn(svc.clone().oneshot(req(Up::Hang)));
    assert_pending!(probe.poll());
    assert_eq!(up.calls(), 2, "the probe is in flight with the permit");
    let mut caller = svc.clone();
    let refused = tokio::time::timeout(Duration::from_millis(100), async {
        caller.ready().await?;
        caller.call(req(Up::Answer)).await
    })
    .await
    .expect("refused at once");
    assert_eq!(is_open(&refused.unwrap_err()), Some(Duration::ZERO));
    drop(probe);
}

/// Readiness taken while closed is given back when the circuit opens before `call`: the
/// refused request leaves the inner permit free while its service lives on.
#[tokio::test(start_paused = true)]
async fn readiness_taken_while_closed_is_given_back_when_the_call_is_refused() {
    let up = Upstream::default();
    let layer = CircuitBreakerLayer::new();
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(ConcurrencyLimitLayer::new(1))
        .service(up.service());
    let mut caller = svc.clone();
    caller.ready().await.unwrap();
    assert!(
        !ready_at_once(&mut svc.get_ref().clone()),
        "ready() took the permit"
    );
    layer.handle().force_open();
    let err = caller.call(req(Up::Answer)).await.unwrap_err();
    assert!(is_open(&err).is_some());
    assert!(
        ready_at_once(&mut svc.get_ref().clone()),
        "the refused request gave the permit back"
    );
    // The caller's service still works once the circuit closes.
    layer.handle().reset();
    let res = caller.ready().await.unwrap().call(req(Up::Answer)).await;
    assert_eq!(res.unwrap().status(), 200);
}

/// A caller queued for the inner permit while closed, polled again once the circuit is open,
/// is ready at once and drops its place in the queue (and any permit granted meanwhile).
#[tokio::test(start_paused = true)]
async fn a_caller_queued_for_the_inner_permit_lets_go_when_the_circuit_opens() {
    let up = Upstream::default();
    let layer = CircuitBreakerLayer::new();
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(ConcurrencyLimitLayer::new(1))
        .service(up.service());
    let mut in_flight = task::spawn(svc.clone().oneshot(req(Up::Hang)));
    assert_pending!(in_flight.poll());
    let mut caller = svc.clone();
    {
        let mut ready = task::spawn(std::future::poll_fn(|cx| caller.poll_ready(cx)));
        assert_pending!(ready.poll(), "queued for the permit");
    }
    layer.handle().force_open();
    // The call in flight ends (dropped early: not recorded); its permit goes to the queue.
    drop(in_flight);
    let mut ready = task::spawn(std::future::poll_fn(|cx| caller.poll_ready(cx)));
    assert!(assert_ready!(ready.poll()).is_ok());
    drop(ready);
    assert!(
        ready_at_once(&mut svc.get_ref().clone()),
        "the permit is not held by the caller an open circuit will refuse"
    );
    let err = caller.call(req(Up::Answer)).await.unwrap_err();
    assert!(is_open(&err).is_some());
}

/// `poll_ready` while open takes no inner readiness; if the circuit closes before `call`, the
/// admitted request readies a clone of the inner service in its future and goes through.
#[tokio::test(start_paused = true)]
async fn a_request_readied_while_open_and_admitted_after_all_goes_through() {
    let up = Upstream::default();
    let layer = CircuitBreakerLayer::new();
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(ConcurrencyLimitLayer::new(1))
        .service(up.service());
    layer.handle().force_open();
    let mut caller = svc.clone();
    caller.ready().await.unwrap();
    layer.handle().reset();
    let res = tokio::time::timeout(Duration::from_secs(1), caller.call(req(Up::Answer)))
        .await
        .expect("bounded")
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        layer.handle().metrics().calls,
        1,
        "recorded as a closed call"
    );
    assert!(
        ready_at_once(&mut svc.get_ref().clone()),
        "its permit went back"
    );
}

/// Issue 15, finding 4 for the breaker: a request waiting for an open circuit (`max_wait`)
/// holds no inner `ConcurrencyLimit` permit — even while the service it was called on lives —
/// so another request goes through the inner service meanwhile.
#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_an_open_circuit_holds_no_inner_permit() {
    let up = Upstream::default();
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .break_duration(Duration::from_secs(2))
        .max_wait(Duration::from_secs(10))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(ConcurrencyLimitLayer::new(1))
        .service(up.service());
    up.set_down(true);
    for _ in 0..2 {
        svc.clone().oneshot(req(Up::Answer)).await.unwrap();
    }
    assert!(matches!(layer.handle().state(), BreakerState::Open { .. }));
    up.set_down(false);

    let mut caller = svc.clone();
    caller.ready().await.unwrap();
    let mut waiter = task::spawn(caller.call(req(Up::Answer)));
    assert_pending!(waiter.poll(), "waits for the break to end");
    // `caller` is alive, and so is the waiter: neither holds the permit.
    let mut inner = svc.get_ref().clone();
    assert!(
        ready_at_once(&mut inner),
        "the waiting request holds no permit"
    );
    let res = inner.call(req(Up::Answer)).await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "another request went through the inner service"
    );

    tokio::time::advance(Duration::from_secs(2)).await;
    let res = tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .expect("admitted as the probe when the break ends")
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(layer.handle().state(), BreakerState::Closed);
    drop(caller);

    // A per-request wait behaves the same.
    up.set_down(true);
    for _ in 0..2 {
        svc.clone().oneshot(req(Up::Answer)).await.unwrap();
    }
    up.set_down(false);
    let mut patient = req(Up::Answer);
    patient
        .extensions_mut()
        .insert(CircuitWait(Duration::from_secs(5)));
    let mut caller = svc.clone();
    caller.ready().await.unwrap();
    let mut waiter = task::spawn(caller.call(patient));
    assert_pending!(waiter.poll());
    assert!(ready_at_once(&mut svc.get_ref().clone()));
}

/// The recommended placement: a timeout inside the breaker is an ordinary failed outcome
/// (tower's `Elapsed` is `Transient`), whatever its length — even far below the slow-call
/// threshold.
#[tokio::test(start_paused = true)]
async fn a_timeout_inside_the_breaker_is_a_failure_whatever_its_length() {
    let up = Upstream::default();
    let layer = CircuitBreakerLayer::new();
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(TimeoutLayer::new(Duration::from_millis(1)))
        .service(up.service());
    for _ in 0..5 {
        let err = svc.clone().oneshot(req(Up::Hang)).await.unwrap_err();
        assert!(err.is::<Elapsed>());
    }
    let metrics = layer.handle().metrics();
    assert!(matches!(metrics.state, BreakerState::Open { .. }));
    assert_eq!((metrics.failures, metrics.abandoned), (5, 0));
}
