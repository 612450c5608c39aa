//! [`CircuitBreakerLayer`] and [`CircuitBreakerBuilder`].

use std::{borrow::Cow, fmt, sync::Arc, time::Duration};

use bulwark_http::{Classify, HttpClassifier, InvalidConfig};
use tower_layer::Layer;

use crate::{
    handle::{BreakerHandle, Transition},
    service::CircuitBreaker,
    shared::{Config, Core, OnTransition, Shared},
    window::Window,
};

/// A circuit breaker shared by every clone of this layer (see the [crate docs](crate)).
///
/// # Clone
/// The breaker's state lives in an `Arc` owned by the layer: every service the layer makes,
/// and every clone of those, shares one breaker. Build a second layer for a second upstream.
#[must_use]
pub struct CircuitBreakerLayer<C = HttpClassifier> {
    shared: Arc<Shared>,
    classify: C,
}

impl CircuitBreakerLayer {
    /// A breaker with the defaults listed on each [`CircuitBreakerBuilder`] setter.
    ///
    /// # Panics
    /// Never: the defaults are valid.
    pub fn new() -> Self {
        Self::builder()
            .build()
            .unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }

    /// A builder starting from the defaults.
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder {
            config: Config {
                failure_ratio: 0.5,
                minimum_calls: 20,
                window: Window::time(Duration::from_secs(30)),
                consecutive_failures: 5,
                slow_call_threshold: DEFAULT_SLOW_CALL_THRESHOLD,
                slow_call_ratio: None,
                break_duration: Duration::from_secs(30),
                max_break_duration: Duration::from_secs(300),
                break_jitter: 0.0,
                max_wait: Duration::ZERO,
                half_open_calls: 1,
                count_throttled: false,
            },
            half_open_calls: 1,
            threshold_set_by: "slow_call_threshold",
            classify: HttpClassifier,
            on_transition: None,
            name: Cow::Borrowed(bulwark_http::DEFAULT_NAME),
        }
    }
}

impl Default for CircuitBreakerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// The breaker's state, controls and metrics.
    #[must_use]
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            core: Arc::clone(&self.shared.core),
        }
    }
}

impl<C: Clone> Clone for CircuitBreakerLayer<C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            classify: self.classify.clone(),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for CircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.shared.core)
            .field("classify", &self.classify)
            .finish()
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::from_parts(inner, Arc::clone(&self.shared), self.classify.clone())
    }
}

/// Settings of a [`CircuitBreakerLayer`], validated by [`build`](Self::build).
#[must_use]
pub struct CircuitBreakerBuilder<C = HttpClassifier> {
    config: Config,
    /// Kept wide so `build` can reject values that do not fit the packed state.
    half_open_calls: u32,
    /// The setter that set the slow-call threshold last, for `InvalidConfig`.
    threshold_set_by: &'static str,
    classify: C,
    on_transition: Option<OnTransition>,
    name: Cow<'static, str>,
}

/// The default [`slow_call_threshold`](CircuitBreakerBuilder::slow_call_threshold).
const DEFAULT_SLOW_CALL_THRESHOLD: Duration = Duration::from_secs(1);

impl<C: fmt::Debug> fmt::Debug for CircuitBreakerBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("classify", &self.classify)
            .finish_non_exhaustive()
    }
}

impl<C> CircuitBreakerBuilder<C> {
    /// Opens when the share of failures among the window's calls is at least this (once
    /// [`minimum_calls`](Self::minimum_calls) calls were seen). Defaults to 0.5.
    pub fn failure_ratio(mut self, ratio: f64) -> Self {
        self.config.failure_ratio = ratio;
        self
    }

    /// No ratio decision below this many calls in the window. Defaults to 20.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.config.minimum_calls = calls;
        self
    }

    /// The window the ratios are computed over. Defaults to `Window::time(30 s)` (ten buckets).
    pub fn window(mut self, window: Window) -> Self {
        self.config.window = window;
        self
    }

    /// Opens on this many failures in a row, whatever the window says; 0 turns it off.
    /// Defaults to 5.
    pub fn consecutive_failures(mut self, failures: u32) -> Self {
        self.config.consecutive_failures = failures;
        self
    }

    /// A call taking at least `threshold` is slow (this sets
    /// [`slow_call_threshold`](Self::slow_call_threshold)); opens when the share of slow calls
    /// in the window is at least `ratio`. A slow half-open probe then counts as failed.
    /// Defaults to off: slow calls are counted in the metrics but never open the circuit.
    pub fn slow_call(mut self, threshold: Duration, ratio: f64) -> Self {
        self.config.slow_call_threshold = threshold;
        self.config.slow_call_ratio = Some(ratio);
        self.threshold_set_by = "slow_call";
        self
    }

    /// How long a call may run before it is *slow*. Defaults to 1 s.
    ///
    /// Two rules use it:
    /// - **A dropped call.** When a call's response future is dropped before the inner
    ///   service answered — a [`tower::timeout`] *outside* the breaker gave up on it, or a
    ///   caller went away — the breaker records it as a **failure** (and a slow call) if it
    ///   had run at least this long, exactly as if the upstream had answered with a 504; a
    ///   call dropped sooner is not held against the upstream (a cancelled client says
    ///   nothing about it) and, if it was a half-open probe, gives its permit back. Set it
    ///   at or below the timeout you put around the breaker, or that timeout goes unseen;
    ///   `Duration::MAX` turns the rule off. Time spent in layers below the breaker (waiting
    ///   for a token bucket, for a `ConcurrencyLimit` permit) counts toward it.
    /// - **Slow calls.** With a ratio given to [`slow_call`](Self::slow_call), completed
    ///   calls at least this long are counted in
    ///   [`BreakerMetrics::slow_calls`](crate::BreakerMetrics::slow_calls) and open the circuit
    ///   once their share reaches it. Without one, a completed call's duration is not measured
    ///   (with a count window, one clock read per call instead of two), and only dropped calls
    ///   are counted slow.
    ///
    /// See [where a timeout belongs](crate#where-a-timeout-belongs).
    ///
    /// [`tower::timeout`]: https://docs.rs/tower/latest/tower/timeout/index.html
    pub fn slow_call_threshold(mut self, threshold: Duration) -> Self {
        self.config.slow_call_threshold = threshold;
        self.threshold_set_by = "slow_call_threshold";
        self
    }

    /// How long the circuit stays open before probing, rounded up to whole milliseconds.
    /// Defaults to 30 s.
    pub fn break_duration(mut self, duration: Duration) -> Self {
        self.config.break_duration = duration;
        self
    }

    /// Each failed half-open doubles the next break, up to this. Defaults to 5 minutes.
    pub fn max_break_duration(mut self, duration: Duration) -> Self {
        self.config.max_break_duration = duration;
        self
    }

    /// Lengthens each break by a random fraction of itself, up to `jitter` (`0.25`: a 4 s break
    /// lasts 4 to 5 s), so that the breakers of many processes that opened together probe at
    /// different times. Defaults to 0 (exact breaks).
    pub fn break_jitter(mut self, jitter: f64) -> Self {
        self.config.break_jitter = jitter;
        self
    }

    /// How long a request may wait for an open circuit to let it through — the breaker's
    /// counterpart of the token bucket's `max_wait` — instead of failing at once with
    /// `CircuitOpen`. A waiting request asks again when the break ends (and every 100 ms
    /// while a half-open circuit has no probe permit free), so it goes as the probe, or once
    /// the circuit closes; if the next chance lies past its wait it fails with `CircuitOpen`
    /// then. It holds no permit of the inner service while it waits (it takes a clone's
    /// readiness once admitted), and dropping it leaves nothing behind. The request extension
    /// [`CircuitWait`](crate::CircuitWait) overrides it per request. `Duration::MAX` waits as
    /// long as it takes (the deadline saturates at a century). Defaults to zero: fail fast.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.config.max_wait = wait;
        self
    }

    /// How many probes a half-open circuit lets through; all must succeed to close it.
    /// Defaults to 1.
    pub fn half_open_calls(mut self, calls: u32) -> Self {
        self.half_open_calls = calls;
        self
    }

    /// Counts `Throttled` (429, 529) as failures. Defaults to `false`: a 429 is back-pressure,
    /// not ill health.
    pub fn count_throttled(mut self, count: bool) -> Self {
        self.config.count_throttled = count;
        self
    }

    /// Classifies outcomes with `classify`. Defaults to [`HttpClassifier`].
    pub fn classify<C2: Classify>(self, classify: C2) -> CircuitBreakerBuilder<C2> {
        CircuitBreakerBuilder {
            config: self.config,
            half_open_calls: self.half_open_calls,
            threshold_set_by: self.threshold_set_by,
            classify,
            on_transition: self.on_transition,
            name: self.name,
        }
    }

    /// The instance name: the `name` label of this breaker's metrics (feature `metrics`, see
    /// `bulwark_http::metrics`), so that two breakers in one process keep separate series
    /// (`bulwark_breaker_state{name="…"}`). Defaults to `"default"`.
    ///
    /// ```
    /// let layer = bulwark_breaker::CircuitBreakerLayer::builder().name("billing-api").build()?;
    /// assert!(format!("{layer:?}").contains("billing-api"));
    /// # Ok::<(), bulwark_http::InvalidConfig>(())
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Calls `f` on every state change. Defaults to none (a `tracing` event is always emitted).
    pub fn on_transition<F>(mut self, f: F) -> Self
    where
        F: Fn(&Transition) + Send + Sync + 'static,
    {
        self.on_transition = Some(Box::new(f));
        self
    }

    /// Validates the settings and builds the layer.
    ///
    /// # Errors
    /// [`InvalidConfig`] naming the setting when:
    /// - `failure_ratio` is not in `(0, 1]`;
    /// - `minimum_calls` is 0;
    /// - the window is a count of 0 or over 1 000 000, or a duration under 10 ms;
    /// - `slow_call` has a zero threshold or a ratio not in `(0, 1]`;
    /// - `slow_call_threshold` is zero (the field named is the setter that set it last);
    /// - `break_duration` is zero or `max_break_duration` is shorter than it;
    /// - `break_jitter` is not in `0.0..=1.0` (NaN included);
    /// - `half_open_calls` is 0 or over 65 535.
    ///
    /// Everything else is accepted at any value, up to `Duration::MAX` and `u32::MAX`.
    ///
    /// # Panics
    /// Never, and neither does the layer it builds, whatever the settings: durations that do
    /// not fit the clock saturate (a `Duration::MAX` break or wait lasts "forever"; breaks are
    /// kept in whole milliseconds, rounded up, at least 1 ms, and at most ~1100 years),
    /// counters saturate.
    pub fn build(self) -> Result<CircuitBreakerLayer<C>, InvalidConfig> {
        let mut config = self.config;
        let ratio_ok = |r: f64| r.is_finite() && r > 0.0 && r <= 1.0;
        if !ratio_ok(config.failure_ratio) {
            return Err(InvalidConfig::new(
                "failure_ratio",
                format!("{} is not in (0, 1]", config.failure_ratio),
            ));
        }
        if config.minimum_calls == 0 {
            return Err(InvalidConfig::new("minimum_calls", "must be at least 1"));
        }
        match (config.window.size(), config.window.duration()) {
            (Some(n), _) if n == 0 || n > 1_000_000 => {
                return Err(InvalidConfig::new(
                    "window",
                    format!("a count of {n} is not in 1..=1000000"),
                ));
            }
            (_, Some(d)) if d < Duration::from_millis(10) => {
                return Err(InvalidConfig::new(
                    "window",
                    format!("{d:?} is shorter than 10ms"),
                ));
            }
            _ => {}
        }
        if let Some(ratio) = config.slow_call_ratio {
            if !ratio_ok(ratio) {
                return Err(InvalidConfig::new(
                    "slow_call",
                    format!("ratio {ratio} is not in (0, 1]"),
                ));
            }
        }
        if config.slow_call_threshold.is_zero() {
            return Err(InvalidConfig::new(
                self.threshold_set_by,
                "the slow-call threshold must be longer than zero",
            ));
        }
        if config.break_duration.is_zero() {
            return Err(InvalidConfig::new(
                "break_duration",
                "must be longer than zero",
            ));
        }
        if !(0.0..=1.0).contains(&config.break_jitter) {
            return Err(InvalidConfig::new(
                "break_jitter",
                format!("{} is not in 0.0..=1.0", config.break_jitter),
            ));
        }
        if config.max_break_duration < config.break_duration {
            return Err(InvalidConfig::new(
                "max_break_duration",
                format!(
                    "{:?} is shorter than break_duration {:?}",
                    config.max_break_duration, config.break_duration
                ),
            ));
        }
        config.half_open_calls = match u16::try_from(self.half_open_calls) {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(InvalidConfig::new(
                    "half_open_calls",
                    format!("{} is not in 1..=65535", self.half_open_calls),
                ));
            }
        };
        Ok(CircuitBreakerLayer {
            shared: Arc::new(Shared::new(Core::new(
                config,
                self.on_transition,
                self.name,
            ))),
            classify: self.classify,
        })
    }
}
