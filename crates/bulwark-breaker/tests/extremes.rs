//! Extreme settings never panic (issue 15, finding 1 for the breaker): every duration and
//! number setter of `CircuitBreakerBuilder` gets `0`, `1 ns`, `Duration::MAX`, `u32::MAX`,
//! NaN, infinities, negatives and random values. `build()` either names an invalid setting —
//! exactly the ones its `# Errors` section lists — or gives a breaker that, driven through
//! calls, timeouts, waits, breaks, probes and manual controls on paused time, never panics.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bulwark_breaker::{BreakerState, CircuitBreakerLayer, CircuitWait, Window};
use bulwark_http::BoxError;
use http::{Request, Response};
use proptest::prelude::*;
use tower::{service_fn, Layer, ServiceExt};

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(1)),
        Just(Duration::from_millis(10)),
        Just(Duration::from_secs(1)),
        Just(Duration::from_secs(30)),
        Just(Duration::from_secs(u64::from(u32::MAX))),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX),
        (0u64..100_000_000_000).prop_map(Duration::from_nanos),
        any::<u64>().prop_map(Duration::from_millis),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn number() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(2),
        Just(5),
        Just(65_535),
        Just(65_536),
        Just(1_000_000),
        Just(1_000_001),
        Just(u32::MAX),
        0u32..50,
        any::<u32>(),
    ]
}

fn fraction() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-1.0),
        Just(-0.0),
        Just(0.0),
        Just(f64::MIN_POSITIVE),
        Just(0.5),
        Just(1.0),
        Just(1.000_000_1),
        Just(f64::MAX),
        -2.0f64..2.0,
        any::<f64>(),
    ]
}

fn window() -> impl Strategy<Value = Window> {
    prop_oneof![
        number().prop_map(Window::count),
        duration().prop_map(Window::time)
    ]
}

/// Each setter is left at its default (`None`) or set.
#[derive(Debug, Clone)]
struct Settings {
    failure_ratio: Option<f64>,
    minimum_calls: Option<u32>,
    window: Option<Window>,
    consecutive_failures: Option<u32>,
    slow_call: Option<(Duration, f64)>,
    slow_call_threshold: Option<Duration>,
    break_duration: Option<Duration>,
    max_break_duration: Option<Duration>,
    break_jitter: Option<f64>,
    max_wait: Option<Duration>,
    half_open_calls: Option<u32>,
    count_throttled: bool,
}

fn maybe<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::weighted(0.25, s)
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        (
            maybe(fraction()),
            maybe(number()),
            maybe(window()),
            maybe(number()),
            maybe((duration(), fraction())),
            maybe(duration()),
        ),
        (
            maybe(duration()),
            maybe(duration()),
            maybe(fraction()),
            maybe(duration()),
            maybe(number()),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (
                    failure_ratio,
                    minimum_calls,
                    window,
                    consecutive_failures,
                    slow_call,
                    slow_call_threshold,
                ),
                (
                    break_duration,
                    max_break_duration,
                    break_jitter,
                    max_wait,
                    half_open_calls,
                    count_throttled,
                ),
            )| Settings {
                failure_ratio,
                minimum_calls,
                window,
                consecutive_failures,
                slow_call,
                slow_call_threshold,
                break_duration,
                max_break_duration,
                break_jitter,
                max_wait,
                half_open_calls,
                count_throttled,
            },
        )
}

impl Settings {
    fn layer(&self) -> Result<CircuitBreakerLayer, bulwark_http::InvalidConfig> {
        let mut b = CircuitBreakerLayer::builder().count_throttled(self.count_throttled);
        if let Some(v) = self.failure_ratio {
            b = b.failure_ratio(v);
        }
        if let Some(v) = self.minimum_calls {
            b = b.minimum_calls(v);
        }
        if let Some(v) = self.window {
            b = b.window(v);
        }
        if let Some(v) = self.consecutive_failures {
            b = b.consecutive_failures(v);
        }
        if let Some((threshold, ratio)) = self.slow_call {
            b = b.slow_call(threshold, ratio);
        }
        if let Some(v) = self.slow_call_threshold {
            b = b.slow_call_threshold(v);
        }
        if let Some(v) = self.break_duration {
            b = b.break_duration(v);
        }
        if let Some(v) = self.max_break_duration {
            b = b.max_break_duration(v);
        }
        if let Some(v) = self.break_jitter {
            b = b.break_jitter(v);
        }
        if let Some(v) = self.max_wait {
            b = b.max_wait(v);
        }
        if let Some(v) = self.half_open_calls {
            b = b.half_open_calls(v);
        }
        b.build()
    }

    /// The settings `build` must reject, by the rules of its `# Errors` section.
    fn invalid(&self) -> Vec<&'static str> {
        let ratio_ok = |r: f64| r > 0.0 && r <= 1.0;
        let mut invalid = Vec::new();
        if self.failure_ratio.is_some_and(|r| !ratio_ok(r)) {
            invalid.push("failure_ratio");
        }
        if self.minimum_calls == Some(0) {
            invalid.push("minimum_calls");
        }
        if let Some(w) = self.window {
            let bad_count = w.size().is_some_and(|n| n == 0 || n > 1_000_000);
            let bad_time = w.duration().is_some_and(|d| d < Duration::from_millis(10));
            if bad_count || bad_time {
                invalid.push("window");
            }
        }
        if self.slow_call.is_some_and(|(_, ratio)| !ratio_ok(ratio)) {
            invalid.push("slow_call");
        }
        match (self.slow_call_threshold, self.slow_call) {
            (Some(t), _) if t.is_zero() => invalid.push("slow_call_threshold"),
            (None, Some((t, _))) if t.is_zero() => invalid.push("slow_call"),
            _ => {}
        }
        let break_duration = self.break_duration.unwrap_or(Duration::from_secs(30));
        if break_duration.is_zero() {
            invalid.push("break_duration");
        }
        if self.break_jitter.is_some_and(|j| !(0.0..=1.0).contains(&j)) {
            invalid.push("break_jitter");
        }
        if self.max_break_duration.unwrap_or(Duration::from_secs(300)) < break_duration {
            invalid.push("max_break_duration");
        }
        if self
            .half_open_calls
            .is_some_and(|n| n == 0 || n > u32::from(u16::MAX))
        {
            invalid.push("half_open_calls");
        }
        invalid
    }
}

/// What the upstream does with a request.
#[derive(Debug, Clone, Copy)]
enum Up {
    Ok,
    Fail,
    Throttled,
    Hang,
    Slow(Duration),
}

#[derive(Debug, Clone)]
enum Step {
    /// A call, given up on after `Duration` (an outer timeout; bounds every step).
    Call(Up, Duration),
    /// A call carrying its own `CircuitWait`.
    Wait(Duration),
    Advance(Duration),
    ForceOpen,
    Disable,
    Reset,
}

fn up() -> impl Strategy<Value = Up> {
    prop_oneof![
        3 => Just(Up::Ok),
        4 => Just(Up::Fail),
        1 => Just(Up::Throttled),
        2 => Just(Up::Hang),
        1 => duration().prop_map(Up::Slow),
    ]
}

/// Up to 100 years at a time: the breaker's state word holds ~1100 years, and a few steps
/// of this go past it.
fn advance() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(1)),
        Just(Duration::from_secs(1)),
        Just(Duration::from_secs(30)),
        Just(Duration::from_secs(100 * 365 * 24 * 3600)),
        (0u64..600_000).prop_map(Duration::from_millis),
    ]
}

fn giving_up() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(1)),
        Just(Duration::from_secs(1)),
        Just(Duration::from_secs(5)),
        (0u64..10_000).prop_map(Duration::from_millis),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (up(), giving_up()).prop_map(|(u, t)| Step::Call(u, t)),
        2 => duration().prop_map(Step::Wait),
        3 => advance().prop_map(Step::Advance),
        1 => Just(Step::ForceOpen),
        1 => Just(Step::Disable),
        1 => Just(Step::Reset),
    ]
}

async fn drive(layer: CircuitBreakerLayer, steps: Vec<Step>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let handle = layer.handle();
    let svc = layer.layer(service_fn(move |req: Request<Up>| {
        counted.fetch_add(1, Ordering::Relaxed);
        async move {
            let status = match *req.body() {
                Up::Ok => 200,
                Up::Fail => 503,
                Up::Throttled => 429,
                Up::Hang => std::future::pending().await,
                Up::Slow(d) => {
                    tokio::time::sleep(d).await;
                    200
                }
            };
            Ok::<_, BoxError>(Response::builder().status(status).body(()).unwrap())
        }
    }));
    // A few calls in flight across the steps: dropped late, after states changed.
    let mut held = Vec::new();
    for step in steps {
        match step {
            Step::Call(up, give_up) => {
                let call = svc.clone().oneshot(Request::new(up));
                let _ = tokio::time::timeout(give_up, call).await;
            }
            Step::Wait(wait) => {
                let mut req = Request::new(Up::Ok);
                req.extensions_mut().insert(CircuitWait(wait));
                let mut call = tokio_test::task::spawn(svc.clone().oneshot(req));
                let _ = call.poll();
                held.push(call);
                if held.len() > 3 {
                    drop(held.remove(0));
                }
            }
            Step::Advance(d) => tokio::time::advance(d).await,
            Step::ForceOpen => handle.force_open(),
            Step::Disable => handle.disable(),
            Step::Reset => handle.reset(),
        }
        let metrics = handle.metrics();
        assert!(metrics.failures <= metrics.calls, "{metrics:?}");
        assert!(metrics.abandoned <= metrics.failures, "{metrics:?}");
        if let BreakerState::Open { retry_after } = handle.state() {
            let _ = retry_after.as_secs_f64();
        }
    }
    // Whatever happened, a reset breaker lets a call through.
    drop(held);
    handle.reset();
    let res = tokio::time::timeout(
        Duration::from_secs(1),
        svc.clone().oneshot(Request::new(Up::Ok)),
    )
    .await;
    assert_eq!(res.expect("bounded").expect("a 200").status(), 200);
    assert!(calls.load(Ordering::Relaxed) > 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn extreme_settings_are_rejected_by_name_or_never_panic(
        settings in settings(),
        steps in proptest::collection::vec(step(), 1..30),
    ) {
        let invalid = settings.invalid();
        match settings.layer() {
            Err(err) => prop_assert!(
                invalid.contains(&err.field()),
                "rejected {:?} ({}), expected one of {:?}", err.field(), err, invalid
            ),
            Ok(layer) => {
                prop_assert!(invalid.is_empty(), "accepted, but {:?} are invalid", invalid);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .start_paused(true)
                    .build()
                    .unwrap();
                rt.block_on(drive(layer, steps));
            }
        }
    }
}

/// The named extremes, each alone, so a regression names its setter.
#[tokio::test(start_paused = true)]
async fn each_setter_at_its_extremes() {
    let steps = || {
        vec![
            Step::Call(Up::Fail, Duration::from_secs(1)),
            Step::Call(Up::Hang, Duration::from_secs(5)),
            Step::Call(Up::Hang, Duration::from_secs(5)),
            Step::Call(Up::Fail, Duration::from_secs(1)),
            Step::Call(Up::Fail, Duration::from_secs(1)),
            Step::Call(Up::Fail, Duration::from_secs(1)),
            Step::Wait(Duration::MAX),
            Step::Advance(Duration::from_secs(31)),
            Step::Call(Up::Hang, Duration::from_secs(5)),
            Step::Advance(Duration::from_secs(100 * 365 * 24 * 3600)),
            Step::Call(Up::Ok, Duration::from_secs(1)),
            Step::ForceOpen,
            Step::Wait(Duration::from_nanos(1)),
            Step::Call(Up::Ok, Duration::from_secs(1)),
        ]
    };
    let durations = [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ];
    let b = CircuitBreakerLayer::builder;
    for d in durations {
        for (name, built) in [
            (
                "break_duration",
                b().break_duration(d).max_break_duration(d).build(),
            ),
            ("max_break_duration", b().max_break_duration(d).build()),
            ("max_wait", b().max_wait(d).build()),
            ("slow_call_threshold", b().slow_call_threshold(d).build()),
            ("slow_call", b().slow_call(d, 0.5).build()),
            ("window", b().window(Window::time(d)).build()),
        ] {
            match built {
                Ok(layer) => drive(layer, steps()).await,
                Err(err) => assert_eq!(err.field(), name, "{d:?}"),
            }
        }
    }
    for n in [0, 1, u32::MAX] {
        for (name, built) in [
            ("minimum_calls", b().minimum_calls(n).build()),
            ("consecutive_failures", b().consecutive_failures(n).build()),
            ("half_open_calls", b().half_open_calls(n).build()),
            ("window", b().window(Window::count(n)).build()),
        ] {
            match built {
                Ok(layer) => drive(layer, steps()).await,
                Err(err) => assert_eq!(err.field(), name, "{n}"),
            }
        }
    }
    for f in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1.0, 1e300] {
        for (name, built) in [
            ("failure_ratio", b().failure_ratio(f).build()),
            ("break_jitter", b().break_jitter(f).build()),
            (
                "slow_call",
                b().slow_call(Duration::from_secs(1), f).build(),
            ),
        ] {
            match built {
                Ok(layer) => drive(layer, steps()).await,
                Err(err) => assert_eq!(err.field(), name, "{f}"),
            }
        }
    }
}

/// A break under a millisecond is still a break (it was rounded down to none, so the circuit
/// was half-open the moment it opened): it lasts at least 1 ms.
#[tokio::test(start_paused = true)]
async fn a_one_nanosecond_break_is_still_a_break() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .break_duration(Duration::from_nanos(1))
        .max_break_duration(Duration::from_nanos(1))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, BoxError>(Response::builder().status(503).body(()).unwrap())
    }));
    svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(
        handle.state(),
        BreakerState::Open {
            retry_after: Duration::from_millis(1)
        }
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(handle.state(), BreakerState::HalfOpen);
}

/// `call` made outside a Tokio runtime (legal for a `Service`) on an open circuit with a
/// `max_wait` used to create its sleep at once and panic ("there is no reactor running"); the
/// sleep is now created when the future is first polled, inside the runtime.
#[test]
fn a_waiting_call_made_outside_a_runtime_does_not_panic() {
    use tower::Service;
    let layer = CircuitBreakerLayer::builder()
        .break_duration(Duration::from_secs(1))
        .max_wait(Duration::from_secs(10))
        .build()
        .unwrap();
    layer.handle().force_open();
    let mut svc = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, BoxError>(Response::new(()))
    }));
    let call = svc.call(Request::new(()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let err = rt.block_on(call).unwrap_err();
    assert!(err.is::<bulwark_http::CircuitOpen>(), "{err}");
}
