//! Issue 15: no panic from any setting or any upstream value. Regression tests for the
//! overflows found, and a property test that drives every numeric setter of `RetryLayer`,
//! `Backoff` and `RetryBudget` with `0`, 1 ns, `Duration::MAX`, `u32::MAX` and random values,
//! against upstreams that send extreme `Retry-After` values.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use bulwark_http::{BoxError, Class, Classify, HttpClassifier};
use bulwark_retry::{Backoff, Jitter, RetryBudget, RetryLayer};
use http::{Request, Response};
use proptest::prelude::*;
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceExt};

/// What the upstream answers while it fails.
#[derive(Debug, Clone)]
enum Failure {
    /// This status, with this `Retry-After` (if any).
    Status(u16, Option<String>),
    /// A 599 that [`Extreme`] classifies as throttled for this long (beyond what the
    /// `Retry-After` parser would ever return).
    ThrottledFor(Duration),
    /// A refused connection.
    Refused,
}

/// An upstream that fails `failures` times, then answers 200; counts its calls.
fn upstream(
    failure: Failure,
    failures: u32,
    calls: Arc<AtomicU32>,
) -> impl Service<Request<String>, Response = Response<String>, Error = BoxError, Future: Send>
       + Clone
       + Send {
    service_fn(move |_req: Request<String>| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        let failure = failure.clone();
        async move {
            if n >= failures {
                return Ok(Response::new("ok".to_owned()));
            }
            let (status, retry_after) = match failure {
                Failure::Status(status, retry_after) => (status, retry_after),
                Failure::ThrottledFor(_) => (599, None),
                Failure::Refused => {
                    return Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into())
                }
            };
            let mut res = Response::builder().status(status);
            if let Some(value) = retry_after {
                res = res.header("retry-after", value);
            }
            Ok(res.body(String::new())?)
        }
    })
}

/// [`HttpClassifier`], except that 599 is `Throttled` with a wait of its choosing.
#[derive(Debug, Clone, Copy)]
struct Extreme(Duration);

impl Classify for Extreme {
    fn classify_response<B>(&self, res: &Response<B>) -> Class {
        if res.status() == 599 {
            return Class::Throttled {
                retry_after: Some(self.0),
            };
        }
        HttpClassifier.classify_response(res)
    }

    fn classify_error(&self, err: &(dyn std::error::Error + 'static)) -> Class {
        HttpClassifier.classify_error(err)
    }
}

fn get() -> Request<String> {
    Request::get("http://upstream.test/")
        .body(String::new())
        .unwrap()
}

/// Issue 15 reproduction: `total_timeout(Duration::MAX)` panicked on the first call with
/// "overflow when adding duration to instant" (`Instant::now() + timeout`). A deadline no
/// clock can reach is no deadline.
#[tokio::test(start_paused = true)]
async fn total_timeout_of_duration_max_does_not_panic_on_the_first_call() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = RetryLayer::new()
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .total_timeout(Duration::MAX);
    let up = upstream(Failure::Status(503, None), 2, calls.clone());
    let res = layer.layer(up).oneshot(get()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// A wait of `Duration::MAX` (a constant backoff of "forever") under a deadline panicked in
/// the deadline check (`now + wait`); it crosses any deadline, so the layer gives up at once.
#[tokio::test(start_paused = true)]
async fn a_backoff_of_duration_max_under_a_deadline_gives_up_instead_of_overflowing() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = RetryLayer::new()
        .backoff(Backoff::constant(Duration::MAX))
        .total_timeout(Duration::from_secs(1));
    let start = Instant::now();
    let up = upstream(Failure::Status(503, None), 1, calls.clone());
    let res = layer.layer(up).oneshot(get()).await.unwrap();
    assert_eq!(res.status(), 503, "the last answer, returned at once");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(Instant::now(), start);
    assert_eq!(layer.stats().gave_up, 1);
}

/// The same for a `Retry-After` of `Duration::MAX` (from a classifier of one's own) that
/// `max_retry_after(Duration::MAX)` lets through.
#[tokio::test(start_paused = true)]
async fn a_retry_after_of_duration_max_under_a_deadline_gives_up_instead_of_overflowing() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = RetryLayer::new()
        .max_retry_after(Duration::MAX)
        .total_timeout(Duration::from_secs(1))
        .classify(Extreme(Duration::MAX));
    let up = upstream(Failure::ThrottledFor(Duration::MAX), 1, calls.clone());
    let res = layer.layer(up).oneshot(get()).await.unwrap();
    assert_eq!(res.status(), 599);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Without a deadline, "forever" is a wait that does not end: the future stays pending
/// (no panic, no busy loop) and sends nothing more.
#[tokio::test(start_paused = true)]
async fn a_backoff_of_duration_max_without_a_deadline_just_waits() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = RetryLayer::new().backoff(Backoff::constant(Duration::MAX));
    let up = upstream(Failure::Status(503, None), 1, calls.clone());
    let mut svc = layer.layer(up);
    let mut fut = tokio_test::task::spawn(svc.ready().await.unwrap().call(get()));
    tokio_test::assert_pending!(fut.poll());
    tokio::time::advance(Duration::from_secs(10 * 365 * 86_400)).await;
    tokio_test::assert_pending!(fut.poll());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::MAX),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..5_000).prop_map(Duration::from_millis),
    ]
}

fn count() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), Just(1), Just(u32::MAX), 0u32..8, any::<u32>()]
}

fn ratio() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-1.0),
        Just(-0.0),
        Just(0.0),
        Just(1000.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        any::<f64>(),
        0.0f64..2.0,
    ]
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
        Just(Jitter::None)
    ]
}

fn backoff() -> impl Strategy<Value = Backoff> {
    (
        any::<bool>(),
        duration(),
        proptest::option::of(duration()),
        jitter(),
    )
        .prop_map(|(constant, base, max_delay, jitter)| {
            let b = if constant {
                Backoff::constant(base)
            } else {
                Backoff::exponential(base)
            };
            let b = match max_delay {
                Some(max) => b.max_delay(max),
                None => b,
            };
            b.jitter(jitter)
        })
}

#[derive(Debug, Clone)]
enum Budget {
    Default,
    Unlimited,
    New(Duration, u32, f64),
}

fn budget() -> impl Strategy<Value = Budget> {
    prop_oneof![
        Just(Budget::Default),
        Just(Budget::Unlimited),
        (duration(), count(), ratio()).prop_map(|(w, m, r)| Budget::New(w, m, r)),
        (1u64..86_400, count(), ratio()).prop_map(|(w, m, r)| Budget::New(
            Duration::from_secs(w),
            m,
            r
        )),
    ]
}

fn retry_after_value() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just("0".to_owned()),
        Just("1".to_owned()),
        Just("1.5".to_owned()),
        Just("-1".to_owned()),
        Just("31536000".to_owned()),
        Just("31536001".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("99999999999999999999999999".to_owned()),
        Just("Fri, 31 Dec 9999 23:59:59 GMT".to_owned()),
        Just("Thu, 01 Jan 1970 00:00:00 GMT".to_owned()),
        Just("soon".to_owned()),
        any::<u64>().prop_map(|n| n.to_string()),
    ])
}

fn failure() -> impl Strategy<Value = Failure> {
    prop_oneof![
        (
            prop_oneof![Just(429u16), Just(503), Just(500), Just(529)],
            retry_after_value()
        )
            .prop_map(|(s, ra)| Failure::Status(s, ra)),
        duration().prop_map(Failure::ThrottledFor),
        Just(Failure::Refused),
    ]
}

#[derive(Debug, Clone)]
struct Settings {
    max_retries: u32,
    backoff: Option<Backoff>,
    max_retry_after: Option<Duration>,
    total_timeout: Option<Duration>,
    budget: Budget,
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        count(),
        proptest::option::of(backoff()),
        proptest::option::of(duration()),
        proptest::option::of(duration()),
        budget(),
    )
        .prop_map(
            |(max_retries, backoff, max_retry_after, total_timeout, budget)| Settings {
                max_retries,
                backoff,
                max_retry_after,
                total_timeout,
                budget,
            },
        )
}

/// Builds the layer from `settings`, checking that `RetryBudget::new` rejects (never panics
/// on) what it cannot use.
fn build(settings: &Settings, failure: &Failure) -> RetryLayer<Extreme> {
    let mut layer = RetryLayer::new().max_retries(settings.max_retries);
    if let Some(backoff) = settings.backoff {
        layer = layer.backoff(backoff);
    }
    if let Some(max) = settings.max_retry_after {
        layer = layer.max_retry_after(max);
    }
    if let Some(timeout) = settings.total_timeout {
        layer = layer.total_timeout(timeout);
    }
    layer = match settings.budget {
        Budget::Default => layer,
        Budget::Unlimited => layer.budget(RetryBudget::unlimited()),
        Budget::New(window, min, ratio) => match RetryBudget::new(window, min, ratio) {
            Ok(budget) => layer.budget(budget),
            Err(err) => {
                assert!(matches!(err.field(), "window" | "ratio"), "{err}");
                let window_ok =
                    (Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&window);
                let ratio_ok = ratio.is_finite() && (0.0..=1000.0).contains(&ratio);
                assert!(!(window_ok && ratio_ok), "{err} for valid values");
                layer
            }
        },
    };
    let wait = match failure {
        Failure::ThrottledFor(wait) => *wait,
        _ => Duration::ZERO,
    };
    layer.classify(Extreme(wait))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever the settings and whatever the upstream says: no panic, at most
    /// `max_retries + 1` calls (and no more than needed), and with a `total_timeout` no wait
    /// that crosses it. The upstream recovers after a few failures, so every run is bounded.
    #[test]
    fn every_setter_with_extreme_values_never_panics(
        settings in settings(),
        failure in failure(),
        failures in 0u32..5,
        post in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let layer = build(&settings, &failure);
        let calls = Arc::new(AtomicU32::new(0));
        let svc = layer.layer(upstream(failure, failures, calls.clone()));
        let req = if post {
            Request::post("http://upstream.test/").body("{}".to_owned()).unwrap()
        } else {
            get()
        };
        let (result, elapsed) = runtime.block_on(async move {
            let start = Instant::now();
            let result = svc.oneshot(req).await;
            (result, Instant::now() - start)
        });
        let calls = calls.load(Ordering::SeqCst);
        prop_assert!(calls >= 1);
        prop_assert!(calls <= settings.max_retries.saturating_add(1), "{} calls", calls);
        prop_assert!(calls <= failures + 1, "{} calls", calls);
        if let Some(timeout) = settings.total_timeout {
            // tokio's timer rounds each wait up to the next millisecond.
            let slack = Duration::from_millis(u64::from(calls));
            prop_assert!(elapsed <= timeout.saturating_add(slack), "{:?} > {:?}", elapsed, timeout);
        }
        if calls > failures {
            prop_assert_eq!(result.unwrap().status(), 200);
        }
        let stats = layer.stats();
        prop_assert_eq!(stats.attempts, u64::from(calls));
        prop_assert!(stats.budget_remaining >= 0.0);
    }
}

/// `Backoff` and `RetryBudget` on their own with the extremes: pure functions, no panic, the
/// cap holds.
#[test]
fn backoff_and_budget_constructors_at_the_extremes() {
    let extremes = [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_secs(1),
        Duration::from_secs(86_400),
        Duration::MAX,
    ];
    for base in extremes {
        for cap in extremes {
            for jitter in [
                Jitter::Full,
                Jitter::Equal,
                Jitter::Decorrelated,
                Jitter::None,
            ] {
                for b in [Backoff::exponential(base), Backoff::constant(base)] {
                    let b = b.max_delay(cap).jitter(jitter);
                    for retry in [0, 1, 31, 32, 63, 64, u32::MAX] {
                        for random in [0.0, 0.5, 1.0, f64::NAN, -1.0, f64::INFINITY] {
                            for previous in extremes {
                                assert!(b.delay(retry, previous, random) <= cap);
                            }
                        }
                    }
                }
            }
        }
    }
    for window in extremes {
        for min in [0, 1, u32::MAX] {
            for ratio in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1000.0, 1000.1] {
                let _ = RetryBudget::new(window, min, ratio);
            }
        }
    }
}
