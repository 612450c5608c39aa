//! `CircuitBreakerLayer` behaviour through the public API, with paused time.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bulwark_breaker::{BreakerState, CircuitBreaker, CircuitBreakerLayer, Transition, Window};
use bulwark_http::{BoxError, CircuitOpen, RateLimited};
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt};

/// What the fake upstream does with a request.
#[derive(Clone, Copy, Debug)]
enum Up {
    Ok,
    Fail,
    NotFound,
    Throttled,
    Limited,
    Slow(u64),
    /// A 503 after this many milliseconds.
    SlowFail(u64),
}

fn req(up: Up) -> Request<Up> {
    Request::new(up)
}

#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<AtomicUsize>,
}

impl Service<Request<Up>> for Upstream {
    type Response = Response<()>;
    type Error = BoxError;
    type Future = futures_like::BoxFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Up>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let up = *req.body();
        Box::pin(async move {
            let status = match up {
                Up::Ok => 200,
                Up::Fail => 503,
                Up::NotFound => 404,
                Up::Throttled => 429,
                Up::Limited => return Err(RateLimited::new(Duration::from_secs(1)).into()),
                Up::Slow(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    200
                }
                Up::SlowFail(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    503
                }
            };
            Ok(Response::builder().status(status).body(()).unwrap())
        })
    }
}

mod futures_like {
    pub(crate) type BoxFuture = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<http::Response<()>, bulwark_http::BoxError>>
                + Send,
        >,
    >;
}

fn breaker(layer: &CircuitBreakerLayer) -> (CircuitBreaker<Upstream>, Upstream) {
    let up = Upstream::default();
    (layer.layer(up.clone()), up)
}

async fn send(svc: &CircuitBreaker<Upstream>, up: Up) -> Result<u16, BoxError> {
    svc.clone()
        .oneshot(req(up))
        .await
        .map(|r| r.status().as_u16())
}

fn is_open(err: &BoxError) -> Option<Duration> {
    err.downcast_ref::<CircuitOpen>().map(|o| o.retry_after)
}

fn count_layer() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .window(Window::count(10))
        .minimum_calls(10)
        .failure_ratio(0.5)
        .consecutive_failures(0)
        .break_duration(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn count_window_opens_on_the_tenth_call_when_half_failed() {
    let layer = count_layer();
    let (svc, up) = breaker(&layer);
    // 4 failures in 9 calls: closed (and below the minimum anyway).
    for up in [
        Up::Fail,
        Up::Ok,
        Up::Fail,
        Up::Ok,
        Up::Fail,
        Up::Ok,
        Up::Fail,
        Up::Ok,
        Up::Ok,
    ] {
        send(&svc, up).await.unwrap();
    }
    assert_eq!(layer.handle().state(), BreakerState::Closed);
    // The 10th call fails: 5 of 10 = 0.5 ≥ 0.5 → open.
    assert_eq!(send(&svc, Up::Fail).await.unwrap(), 503);
    assert_eq!(
        layer.handle().state(),
        BreakerState::Open {
            retry_after: Duration::from_secs(30)
        }
    );
    let err = send(&svc, Up::Ok).await.unwrap_err();
    assert_eq!(is_open(&err), Some(Duration::from_secs(30)));
    assert_eq!(
        up.calls.load(Ordering::SeqCst),
        10,
        "the rejected call never reached the upstream"
    );
    assert_eq!(layer.handle().metrics().rejections, 1);
}

#[tokio::test(start_paused = true)]
async fn count_window_below_ratio_stays_closed() {
    let layer = count_layer();
    let (svc, _) = breaker(&layer);
    for i in 0..100 {
        send(&svc, if i % 3 == 0 { Up::Fail } else { Up::Ok })
            .await
            .unwrap();
    }
    assert_eq!(layer.handle().state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_failures() {
    let layer = CircuitBreakerLayer::builder()
        .window(Window::time(Duration::from_secs(10)))
        .minimum_calls(4)
        .failure_ratio(0.5)
        .consecutive_failures(0)
        .build()
        .unwrap();
    let (svc, _) = breaker(&layer);
    send(&svc, Up::Fail).await.unwrap();
    send(&svc, Up::Fail).await.unwrap();
    send(&svc, Up::Fail).await.unwrap();
    // 11 s later those three are out of the window.
    tokio::time::advance(Duration::from_secs(11)).await;
    send(&svc, Up::Ok).await.unwrap();
    send(&svc, Up::Ok).await.unwrap();
    send(&svc, Up::Ok).await.unwrap();
    send(&svc, Up::Fail).await.unwrap();
    assert_eq!(
        layer.handle().state(),
        BreakerState::Closed,
        "1 of 4 in the window"
    );
    // Without the wait, the same sequence opens.
    let layer2 = CircuitBreakerLayer::builder()
        .window(Window::time(Duration::from_secs(10)))
        .minimum_calls(4)
        .consecutive_failures(0)
        .build()
        .unwrap();
    let (svc2, _) = breaker(&layer2);
    for up in [Up::Fail, Up::Fail, Up::Fail, Up::Ok] {
        send(&svc2, up).await.unwrap();
    }
    send(&svc2, Up::Fail).await.unwrap();
    assert!(matches!(layer2.handle().state(), BreakerState::Open { .. }));
}

/// Regression: calls longer than the window (failures that took 35 s, in a 30 s window) were
/// filed at their start, in a bucket reused by the time they ended, and never counted: the
/// ratio never tripped. They are filed when they end.
#[tokio::test(start_paused = true)]
async fn time_window_counts_calls_longer_than_the_window() {
    let layer = CircuitBreakerLayer::builder()
        .window(Window::time(Duration::from_secs(30)))
        .minimum_calls(4)
        .failure_ratio(0.5)
        .consecutive_failures(0)
        .build()
        .unwrap();
    let (svc, _) = breaker(&layer);
    let slow: Vec<_> = (0..4)
        .map(|_| tokio::spawn(send_owned(svc.clone(), Up::SlowFail(35_000))))
        .collect();
    // One success 31 s in (its bucket is the one the slow calls started in, reused), three
    // more at 34 s; the four failures end at 35 s: 4 of 8 in the window.
    tokio::time::sleep(Duration::from_secs(31)).await;
    send(&svc, Up::Ok).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for _ in 0..3 {
        send(&svc, Up::Ok).await.unwrap();
    }
    for call in slow {
        assert_eq!(call.await.unwrap().unwrap(), 503);
    }
    assert!(
        matches!(layer.handle().state(), BreakerState::Open { .. }),
        "half of the calls in the window failed: {:?}",
        layer.handle().metrics()
    );
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_whatever_the_window_says() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(3)
        .build()
        .unwrap();
    let (svc, _) = breaker(&layer);
    for _ in 0..50 {
        send(&svc, Up::Ok).await.unwrap();
    }
    send(&svc, Up::Fail).await.unwrap();
    send(&svc, Up::Fail).await.unwrap();
    send(&svc, Up::Ok).await.unwrap(); // resets the run
    send(&svc, Up::Fail).await.unwrap();
    send(&svc, Up::Fail).await.unwrap();
    assert_eq!(layer.handle().state(), BreakerState::Closed);
    send(&svc, Up::Fail).await.unwrap();
    assert!(matches!(layer.handle().state(), BreakerState::Open { .. }));
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_the_circuit() {
    let layer = CircuitBreakerLayer::builder()
        .slow_call(Duration::from_secs(2), 0.5)
        .minimum_calls(4)
        .window(Window::count(4))
        .build()
        .unwrap();
    let (svc, _) = breaker(&layer);
    send(&svc, Up::Slow(100)).await.unwrap();
    send(&svc, Up::Slow(3000)).await.unwrap();
    send(&svc, Up::Slow(100)).await.unwrap();
    assert_eq!(layer.handle().state(), BreakerState::Closed);
    send(&svc, Up::Slow(2500)).await.unwrap();
    assert!(matches!(layer.handle().state(), BreakerState::Open { .. }));
    assert_eq!(layer.handle().metrics().slow_calls, 2);
}

async fn open_it(layer: &CircuitBreakerLayer, svc: &CircuitBreaker<Upstream>) {
    for _ in 0..5 {
        let _ = send(svc, Up::Fail).await;
    }
    assert!(matches!(layer.handle().state(), BreakerState::Open { .. }));
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_only_the_probe_limit_to_concurrent_callers() {
    let layer = CircuitBreakerLayer::builder()
        .half_open_calls(2)
        .build()
        .unwrap();
    let (svc, up) = breaker(&layer);
    open_it(&layer, &svc).await;
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(layer.handle().state(), BreakerState::HalfOpen);
    let before = up.calls.load(Ordering::SeqCst);
    // Ten concurrent callers, each slow enough to still be in flight when the others arrive.
    let calls: Vec<_> = (0..10)
        .map(|_| tokio::spawn(send_owned(svc.clone(), Up::Slow(1000))))
        .collect();
    let mut admitted = 0;
    let mut rejected = 0;
    for c in calls {
        match c.await.unwrap() {
            Ok(200) => admitted += 1,
            Err(e) if is_open(&e) == Some(Duration::ZERO) => rejected += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((admitted, rejected), (2, 8));
    assert_eq!(up.calls.load(Ordering::SeqCst) - before, 2);
    assert_eq!(
        layer.handle().state(),
        BreakerState::Closed,
        "both probes succeeded"
    );
}

async fn send_owned(svc: CircuitBreaker<Upstream>, up: Up) -> Result<u16, BoxError> {
    svc.oneshot(req(up)).await.map(|r| r.status().as_u16())
}

#[tokio::test(start_paused = true)]
async fn failed_probes_double_the_break_up_to_the_cap() {
    let transitions = Arc::new(Mutex::new(Vec::<Transition>::new()));
    let seen = transitions.clone();
    let layer = CircuitBreakerLayer::builder()
        .break_duration(Duration::from_secs(10))
        .max_break_duration(Duration::from_secs(35))
        .on_transition(move |t| seen.lock().unwrap().push(*t))
        .build()
        .unwrap();
    let (svc, _) = breaker(&layer);
    open_it(&layer, &svc).await;
    let mut breaks = vec![];
    for _ in 0..4 {
        let BreakerState::Open { retry_after } = layer.handle().state() else {
            panic!()
        };
        breaks.push(retry_after.as_secs());
        tokio::time::advance(retry_after).await;
        assert_eq!(
            send(&svc, Up::Fail).await.unwrap(),
            503,
            "the probe reached the upstream"
        );
    }
    assert_eq!(breaks, [10, 20, 35, 35]);
    assert_eq!(layer.handle().metrics().opens, 5);
    // A successful probe closes and resets the break.
    tokio::time::advance(Duration::from_secs(35)).await;
    send(&svc, Up::Ok).await.unwrap();
    assert_eq!(layer.handle().state(), BreakerState::Closed);
    open_it(&layer, &svc).await;
    assert_eq!(
        layer.handle().state(),
        BreakerState::Open {
            retry_after: Duration::from_secs(10)
        }
    );
    let names: Vec<_> = transitions
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.to.as_str())
        .collect();
    assert_eq!(&names[..3], ["open", "half_open", "open"]);
}

#[tokio::test(start_paused = true)]
async fn late_outcomes_are_counted_but_do_not_reopen_or_extend() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .build()
        .unwrap();
    let (svc, _) = breaker(&layer);
    // A slow call starts while closed …
    let late = tokio::spawn(send_owned(svc.clone(), Up::Slow(5_000)));
    tokio::task::yield_now().await;
    // … the circuit opens meanwhile …
    send(&svc, Up::Fail).await.unwrap();
    send(&svc, Up::Fail).await.unwrap();
    assert_eq!(
        layer.handle().state(),
        BreakerState::Open {
            retry_after: Duration::from_secs(30)
        }
    );
    // … and the late call ends (5 s later). It changes nothing.
    late.await.unwrap().unwrap();
    assert_eq!(
        layer.handle().state(),
        BreakerState::Open {
            retry_after: Duration::from_secs(25)
        }
    );
    assert_eq!(layer.handle().metrics().calls, 3);
    assert_eq!(layer.handle().metrics().opens, 1);
}

#[tokio::test(start_paused = true)]
async fn late_failures_from_before_a_close_do_not_reopen() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let (svc, _) = breaker(&layer);
    send(&svc, Up::Fail).await.unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;
    send(&svc, Up::Ok).await.unwrap(); // the probe closes it
    assert_eq!(layer.handle().state(), BreakerState::Closed);
    let handle = layer.handle();
    assert_eq!(handle.metrics().opens, 1);
}

#[tokio::test(start_paused = true)]
async fn forced_open_disabled_and_reset() {
    let layer = CircuitBreakerLayer::new();
    let (svc, up) = breaker(&layer);
    let handle = layer.handle();
    handle.force_open();
    assert_eq!(handle.state(), BreakerState::ForcedOpen);
    assert!(is_open(&send(&svc, Up::Ok).await.unwrap_err()).is_some());
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert!(send(&svc, Up::Ok).await.is_err(), "forced open stays open");

    handle.disable();
    assert_eq!(handle.state(), BreakerState::Disabled);
    for _ in 0..20 {
        assert_eq!(send(&svc, Up::Fail).await.unwrap(), 503);
    }
    assert_eq!(handle.state(), BreakerState::Disabled, "nothing recorded");

    handle.reset();
    assert_eq!(handle.state(), BreakerState::Closed);
    assert_eq!(send(&svc, Up::Ok).await.unwrap(), 200);
    assert_eq!(up.calls.load(Ordering::SeqCst), 21);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_frees_its_permit() {
    let layer = CircuitBreakerLayer::new();
    let (svc, _) = breaker(&layer);
    open_it(&layer, &svc).await;
    tokio::time::advance(Duration::from_secs(30)).await;
    let mut probe = tokio_test::task::spawn(svc.clone().oneshot(req(Up::Slow(10_000))));
    tokio_test::assert_pending!(probe.poll());
    // The only permit is taken.
    assert_eq!(
        is_open(&send(&svc, Up::Ok).await.unwrap_err()),
        Some(Duration::ZERO)
    );
    drop(probe);
    // Given back: the next call is the probe, and closes the circuit.
    assert_eq!(send(&svc, Up::Ok).await.unwrap(), 200);
    assert_eq!(layer.handle().state(), BreakerState::Closed);
}

/// Fifty rounds of probes cancelled in every order: every permit comes back each time, so the
/// half-open state never runs out of probes nobody is using.
#[tokio::test(start_paused = true)]
async fn many_cancelled_probes_leak_no_permit() {
    let layer = CircuitBreakerLayer::builder()
        .half_open_calls(3)
        .build()
        .unwrap();
    let (svc, up) = breaker(&layer);
    open_it(&layer, &svc).await;
    tokio::time::advance(Duration::from_secs(30)).await;
    let orders: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for round in 0..50 {
        let mut probes: Vec<Option<_>> = (0..3)
            .map(|_| {
                let mut probe = tokio_test::task::spawn(svc.clone().oneshot(req(Up::Slow(60_000))));
                tokio_test::assert_pending!(probe.poll(), "round {round}: a probe is admitted");
                Some(probe)
            })
            .collect();
        assert_eq!(
            is_open(&send(&svc, Up::Ok).await.unwrap_err()),
            Some(Duration::ZERO),
            "round {round}: the three permits are taken"
        );
        for i in orders[round % orders.len()] {
            drop(probes[i].take());
        }
        assert_eq!(layer.handle().state(), BreakerState::HalfOpen);
    }
    // The three permits are free: three successful probes close the circuit.
    let calls = up.calls.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(
            send(&svc, Up::Ok).await.unwrap(),
            200,
            "a probe is admitted"
        );
    }
    assert_eq!(up.calls.load(Ordering::SeqCst), calls + 3);
    assert_eq!(layer.handle().state(), BreakerState::Closed);
}

/// Jittered breaks last between the break and the break plus its jitter, and differ.
#[tokio::test(start_paused = true)]
async fn jittered_breaks_stay_within_their_bounds() {
    let mut lengths = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let layer = CircuitBreakerLayer::builder()
            .break_duration(Duration::from_secs(4))
            .break_jitter(0.25)
            .build()
            .unwrap();
        let (svc, _) = breaker(&layer);
        open_it(&layer, &svc).await;
        let opened = tokio::time::Instant::now();
        let mut waited = Duration::ZERO;
        while matches!(layer.handle().state(), BreakerState::Open { .. }) {
            assert!(waited <= Duration::from_secs(6), "bounded");
            tokio::time::advance(Duration::from_millis(10)).await;
            waited = opened.elapsed();
        }
        assert!(
            waited >= Duration::from_secs(4) && waited <= Duration::from_millis(5_010),
            "{waited:?}"
        );
        lengths.insert(waited.as_millis());
    }
    assert!(lengths.len() > 5, "jitter varies the breaks: {lengths:?}");
    for bad in [-0.1, 1.5, f64::NAN] {
        let err = CircuitBreakerLayer::builder()
            .break_jitter(bad)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "break_jitter");
    }
}

#[tokio::test(start_paused = true)]
async fn throttled_rejected_and_404_are_not_failures() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .build()
        .unwrap();
    let (svc, _) = breaker(&layer);
    for _ in 0..10 {
        send(&svc, Up::Throttled).await.unwrap();
        assert!(send(&svc, Up::Limited)
            .await
            .unwrap_err()
            .is::<RateLimited>());
        send(&svc, Up::NotFound).await.unwrap();
    }
    assert_eq!(layer.handle().state(), BreakerState::Closed);
    let counted = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .count_throttled(true)
        .build()
        .unwrap();
    let (svc, _) = breaker(&counted);
    send(&svc, Up::Throttled).await.unwrap();
    send(&svc, Up::Throttled).await.unwrap();
    assert!(matches!(
        counted.handle().state(),
        BreakerState::Open { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_breaker() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .build()
        .unwrap();
    let (a, _) = breaker(&layer.clone());
    let (b, _) = breaker(&layer);
    send(&a, Up::Fail).await.unwrap();
    send(&b, Up::Fail).await.unwrap();
    assert!(send(&a.clone(), Up::Ok).await.is_err());
}

#[test]
fn invalid_configs_name_the_field() {
    let field = |b: bulwark_breaker::CircuitBreakerBuilder| b.build().unwrap_err().field();
    assert_eq!(
        field(CircuitBreakerLayer::builder().failure_ratio(0.0)),
        "failure_ratio"
    );
    assert_eq!(
        field(CircuitBreakerLayer::builder().failure_ratio(f64::NAN)),
        "failure_ratio"
    );
    assert_eq!(
        field(CircuitBreakerLayer::builder().minimum_calls(0)),
        "minimum_calls"
    );
    assert_eq!(
        field(CircuitBreakerLayer::builder().window(Window::count(0))),
        "window"
    );
    assert_eq!(
        field(CircuitBreakerLayer::builder().window(Window::time(Duration::ZERO))),
        "window"
    );
    assert_eq!(
        field(CircuitBreakerLayer::builder().slow_call(Duration::ZERO, 0.5)),
        "slow_call"
    );
    assert_eq!(
        field(CircuitBreakerLayer::builder().break_duration(Duration::ZERO)),
        "break_duration"
    );
    assert_eq!(
        field(CircuitBreakerLayer::builder().max_break_duration(Duration::from_secs(1))),
        "max_break_duration"
    );
    assert_eq!(
        field(CircuitBreakerLayer::builder().half_open_calls(0)),
        "half_open_calls"
    );
    assert_eq!(
        field(CircuitBreakerLayer::builder().half_open_calls(70_000)),
        "half_open_calls"
    );
}
