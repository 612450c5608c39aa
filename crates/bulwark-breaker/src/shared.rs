//! The shared breaker: state word, probes, window, and every transition.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use crossbeam_utils::CachePadded;
use tokio::time::Instant;

use crate::{
    handle::{BreakerMetrics, BreakerState, Transition},
    metrics::Metrics,
    state::{Probes, Word, CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, OPEN},
    window::{thread_stripe, Window, WindowState},
};

pub(crate) type OnTransition = Box<dyn Fn(&Transition) + Send + Sync>;

/// Validated settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) failure_ratio: f64,
    pub(crate) minimum_calls: u32,
    pub(crate) window: Window,
    pub(crate) consecutive_failures: u32,
    /// A call that runs at least this long is slow; one dropped past it is a failure.
    pub(crate) slow_call_threshold: Duration,
    /// Opens when the share of slow calls reaches this (`None`: slow calls never open it).
    pub(crate) slow_call_ratio: Option<f64>,
    pub(crate) break_duration: Duration,
    pub(crate) max_break_duration: Duration,
    /// Each break is lengthened by up to this fraction of itself, at random.
    pub(crate) break_jitter: f64,
    /// How long a request may wait for an open circuit (0: refused at once).
    pub(crate) max_wait: Duration,
    pub(crate) half_open_calls: u16,
    pub(crate) count_throttled: bool,
}

/// What the breaker let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A normal call while closed, of this generation.
    Closed(u16),
    /// A half-open probe of this generation.
    Probe(u16),
    /// The breaker is disabled: nothing is recorded.
    Pass,
    /// Rejected: come back after this long.
    Reject(Duration),
}

/// What an outcome means to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure,
    /// Neither (throttled unless counted, rejected by an inner layer, a local error).
    Ignored,
}

/// A reference to the [`Core`] with a reference count of its own, on its own cache lines.
pub(crate) type Lane = Arc<CachePadded<Arc<Core>>>;

/// What the layer and its services share: the core, and one [`Lane`] per window stripe.
///
/// An admitted call's future must keep the core alive until its outcome is recorded, so it
/// holds a reference. Cloning the core's own `Arc` on every call would make every thread
/// write the same reference count, bouncing one cache line between cores on the closed path;
/// a call takes its thread's lane instead, so threads on different stripes touch different
/// counts.
pub(crate) struct Shared {
    pub(crate) core: Arc<Core>,
    lanes: Box<[Lane]>,
}

impl Shared {
    pub(crate) fn new(core: Core) -> Self {
        let core = Arc::new(core);
        let lanes = (0..core.window.stripes())
            .map(|_| Arc::new(CachePadded::new(Arc::clone(&core))))
            .collect();
        Self { core, lanes }
    }

    /// A reference to the core for a call on this thread.
    pub(crate) fn lane(&self) -> Lane {
        // `lanes.len()` is the window's stripe count, a power of two.
        Arc::clone(&self.lanes[thread_stripe() & (self.lanes.len() - 1)])
    }
}

pub(crate) struct Core {
    pub(crate) config: Config,
    start: Instant,
    state: AtomicU64,
    probes: AtomicU64,
    break_ms: AtomicU64,
    consecutive: AtomicU32,
    window: WindowState,
    rejections: AtomicU64,
    opens: AtomicU64,
    abandoned: AtomicU64,
    on_transition: Option<OnTransition>,
    /// The instance's metric handles (its `name` label).
    pub(crate) metrics: Metrics,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.metrics.name())
            .field("config", &self.config)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A break in whole milliseconds, rounded up and at least 1 (a 1 ns break is still a break).
fn break_millis(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Core {
    pub(crate) fn new(
        config: Config,
        on_transition: Option<OnTransition>,
        name: std::borrow::Cow<'static, str>,
    ) -> Self {
        let stripes = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            config,
            start: Instant::now(),
            state: AtomicU64::new(
                Word {
                    kind: CLOSED,
                    generation: 0,
                    until_ms: 0,
                }
                .encode(),
            ),
            probes: AtomicU64::new(0),
            break_ms: AtomicU64::new(break_millis(config.break_duration)),
            consecutive: AtomicU32::new(0),
            window: WindowState::new(config.window, stripes),
            rejections: AtomicU64::new(0),
            opens: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            on_transition,
            metrics: Metrics::new(name),
        }
    }

    fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.start)
    }

    fn now_ms(&self) -> u64 {
        millis(self.elapsed(Instant::now()))
    }

    /// Whether a call now would likely be refused (open, forced open, or half-open with its
    /// few probes): `poll_ready` then answers at once without the inner service's readiness.
    pub(crate) fn may_refuse(&self) -> bool {
        matches!(
            Word::decode(self.state.load(Ordering::Acquire)).kind,
            OPEN | HALF_OPEN | FORCED_OPEN
        )
    }

    /// Decides whether a call may go through.
    pub(crate) fn admit(&self) -> Admission {
        loop {
            let raw = self.state.load(Ordering::Acquire);
            let word = Word::decode(raw);
            match word.kind {
                CLOSED => return Admission::Closed(word.generation),
                DISABLED => return Admission::Pass,
                FORCED_OPEN => {
                    return self.reject(Duration::from_millis(self.break_ms.load(Ordering::Relaxed)));
                }
                OPEN => {
                    let now = self.now_ms();
                    if now < word.until_ms {
                        return self.reject(Duration::from_millis(word.until_ms - now));
                    }
                    let next = word.next(HALF_OPEN, 0);
                    if self
                        .state
                        .compare_exchange(raw, next.encode(), Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        self.fresh_probes(next.generation);
                        self.transitioned(word, next);
                    }
                }
                _ /* HALF_OPEN */ => {
                    if self.try_probe(word.generation) {
                        return Admission::Probe(word.generation);
                    }
                    if self.state.load(Ordering::Acquire) == raw {
                        return self.reject(Duration::ZERO);
                    }
                }
            }
        }
    }

    fn reject(&self, retry_after: Duration) -> Admission {
        self.rejections.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "bulwark_breaker", retry_after_ms = millis(retry_after), "refused: circuit open");
        Admission::Reject(retry_after)
    }

    /// Resets the probe counters for `generation`, unless a racing caller already did.
    fn fresh_probes(&self, generation: u16) {
        let _ = self
            .probes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |raw| {
                let p = Probes::decode(raw);
                (p.generation != generation).then(|| {
                    Probes {
                        generation,
                        started: 0,
                        succeeded: 0,
                    }
                    .encode()
                })
            });
    }

    /// Takes a probe permit of half-open `generation`, if it is still the state and a permit
    /// is left.
    fn try_probe(&self, generation: u16) -> bool {
        let current = || {
            let word = Word::decode(self.state.load(Ordering::Acquire));
            word.kind == HALF_OPEN && word.generation == generation
        };
        let limit = self.config.half_open_calls;
        let taken = self
            .probes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |raw| {
                let mut p = Probes::decode(raw);
                if p.generation != generation {
                    // Counters of an older half-open: reset them, but only for the live one
                    // (a caller holding a stale state word must not clobber a newer count).
                    if !current() {
                        return None;
                    }
                    p = Probes {
                        generation,
                        started: 0,
                        succeeded: 0,
                    };
                }
                (p.started < limit).then(|| {
                    p.started += 1;
                    p.encode()
                })
            })
            .is_ok();
        if taken && !current() {
            // The half-open ended while the permit was taken: not a probe of a live state.
            self.release_probe(generation);
            return false;
        }
        taken
    }

    /// Gives a probe permit back (its future was dropped, or its outcome says nothing).
    pub(crate) fn release_probe(&self, generation: u16) {
        let _ = self
            .probes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |raw| {
                let mut p = Probes::decode(raw);
                (p.generation == generation && p.started > 0).then(|| {
                    p.started -= 1;
                    p.encode()
                })
            });
    }

    /// An admitted call's response future was dropped before its outcome was known.
    ///
    /// A call that had run at least the slow-call threshold was given up on — most often by a
    /// timeout outside the breaker — and is recorded as a (slow) failure; one dropped earlier
    /// (a cancelled client, a lost race) says nothing about the upstream and only gives its
    /// probe permit back. A call never sent (`started` is `None`) is never recorded.
    pub(crate) fn abandon(&self, admission: Admission, started: Option<Instant>) {
        let now = Instant::now();
        let ran = started.map(|started| now.saturating_duration_since(started));
        match ran {
            Some(ran) if ran >= self.config.slow_call_threshold => {
                self.abandoned.fetch_add(1, Ordering::Relaxed);
                self.metrics.abandoned();
                tracing::debug!(
                    target: "bulwark_breaker",
                    ran_ms = millis(ran),
                    "a call dropped past the slow-call threshold counts as a failure"
                );
                self.record(admission, Outcome::Failure, true, Some(now));
            }
            _ => {
                if let Admission::Probe(generation) = admission {
                    self.release_probe(generation);
                }
            }
        }
    }

    /// Records an admitted call's outcome.
    pub(crate) fn complete(
        &self,
        admission: Admission,
        outcome: Outcome,
        started: Option<Instant>,
    ) {
        // The clock is read again only where it matters: a time window files the call at its
        // end (a call longer than a bucket, filed at its start, would land in a reused bucket
        // and be lost), and a slow-call ratio needs its duration. A count window without a
        // ratio reads the clock once per call, at admission (for the drop rule).
        let now =
            (self.window.needs_time() || self.config.slow_call_ratio.is_some()).then(Instant::now);
        let slow = match (started, now) {
            (Some(started), Some(now)) => {
                now.saturating_duration_since(started) >= self.config.slow_call_threshold
            }
            _ => false,
        };
        self.record(admission, outcome, slow, now.or(started));
    }

    /// Records an outcome known to be `slow` (or not), filed at `at` in a time window.
    fn record(&self, admission: Admission, outcome: Outcome, slow: bool, at: Option<Instant>) {
        match admission {
            Admission::Closed(generation) => self.complete_closed(generation, outcome, slow, at),
            Admission::Probe(generation) => self.complete_probe(generation, outcome, slow),
            Admission::Pass | Admission::Reject(_) => {}
        }
    }

    fn complete_closed(&self, generation: u16, outcome: Outcome, slow: bool, now: Option<Instant>) {
        if outcome == Outcome::Ignored {
            return;
        }
        let failure = outcome == Outcome::Failure;
        let raw = self.state.load(Ordering::Acquire);
        let word = Word::decode(raw);
        if word.kind != CLOSED || word.generation != generation {
            // Started before the circuit opened: counted, but it changes nothing.
            self.window.count_metrics(failure, slow);
            return;
        }
        let nanos = if self.window.needs_time() {
            // A call admitted without a start time (never the case on the closed path) is
            // filed now.
            let at = now.unwrap_or_else(Instant::now);
            u64::try_from(self.elapsed(at).as_nanos()).unwrap_or(u64::MAX)
        } else {
            0
        };
        self.window.record(nanos, failure, slow);
        let config = &self.config;
        if failure {
            let run = self
                .consecutive
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    Some(n.saturating_add(1))
                })
                .unwrap_or_else(|n| n)
                .saturating_add(1);
            if config.consecutive_failures > 0 && run >= config.consecutive_failures {
                self.trip(raw, "consecutive_failures");
                return;
            }
        } else if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
        if failure || slow {
            let totals = self.window.totals(nanos);
            if totals.calls < u64::from(config.minimum_calls) || totals.calls == 0 {
                return;
            }
            let calls = totals.calls as f64;
            if failure && totals.failures as f64 / calls >= config.failure_ratio {
                self.trip(raw, "failure_ratio");
            } else if let Some(ratio) = config.slow_call_ratio {
                if slow && totals.slow as f64 / calls >= ratio {
                    self.trip(raw, "slow_call_ratio");
                }
            }
        }
    }

    /// `ms` lengthened by up to `break_jitter` of itself, so breakers of many processes that
    /// opened together do not probe together.
    fn jittered(&self, ms: u64) -> u64 {
        if self.config.break_jitter <= 0.0 {
            return ms;
        }
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let extra = (ms as f64 * self.config.break_jitter * fastrand::f64()) as u64;
        ms.saturating_add(extra)
    }

    fn complete_probe(&self, generation: u16, outcome: Outcome, slow: bool) {
        let raw = self.state.load(Ordering::Acquire);
        let word = Word::decode(raw);
        // A slow probe fails only where slow calls count (the slow-call ratio is on).
        let slow_fails = slow && self.config.slow_call_ratio.is_some();
        let failure = outcome == Outcome::Failure || (outcome == Outcome::Success && slow_fails);
        if outcome != Outcome::Ignored {
            self.window.count_metrics(failure, slow);
        }
        if word.kind != HALF_OPEN || word.generation != generation {
            return;
        }
        match outcome {
            Outcome::Ignored => self.release_probe(generation),
            _ if failure => {
                let grown = self
                    .break_ms
                    .load(Ordering::Acquire)
                    .saturating_mul(2)
                    .min(break_millis(self.config.max_break_duration));
                let next = word.next(OPEN, self.now_ms().saturating_add(self.jittered(grown)));
                if self
                    .state
                    .compare_exchange(raw, next.encode(), Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.break_ms.store(grown, Ordering::Release);
                    self.opens.fetch_add(1, Ordering::Relaxed);
                    self.transitioned(word, next);
                }
            }
            _ => {
                let Ok(before) =
                    self.probes
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |raw| {
                            let mut p = Probes::decode(raw);
                            (p.generation == generation).then(|| {
                                p.succeeded = p.succeeded.saturating_add(1);
                                p.encode()
                            })
                        })
                else {
                    return;
                };
                if Probes::decode(before).succeeded.saturating_add(1) >= self.config.half_open_calls
                {
                    self.close_from(raw, word);
                }
            }
        }
    }

    fn close_from(&self, raw: u64, word: Word) {
        let next = word.next(CLOSED, 0);
        if self
            .state
            .compare_exchange(raw, next.encode(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.window.reset();
            self.consecutive.store(0, Ordering::Release);
            self.break_ms
                .store(break_millis(self.config.break_duration), Ordering::Release);
            self.transitioned(word, next);
        }
    }

    /// Closed → open, if `raw` is still the state.
    fn trip(&self, raw: u64, reason: &'static str) {
        let word = Word::decode(raw);
        let break_ms = self.break_ms.load(Ordering::Acquire);
        let next = word.next(OPEN, self.now_ms().saturating_add(self.jittered(break_ms)));
        if self
            .state
            .compare_exchange(raw, next.encode(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.consecutive.store(0, Ordering::Release);
            self.opens.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "bulwark_breaker", reason, break_ms, "circuit opened");
            self.transitioned(word, next);
        }
    }

    /// Moves to `kind` from whatever the state is (the handle's manual controls).
    pub(crate) fn force(&self, kind: u64) {
        let mut raw = self.state.load(Ordering::Acquire);
        loop {
            let word = Word::decode(raw);
            let next = word.next(kind, 0);
            match self.state.compare_exchange(
                raw,
                next.encode(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if kind == CLOSED {
                        self.window.reset();
                        self.consecutive.store(0, Ordering::Release);
                        self.break_ms
                            .store(break_millis(self.config.break_duration), Ordering::Release);
                    }
                    self.transitioned(word, next);
                    return;
                }
                Err(actual) => raw = actual,
            }
        }
    }

    fn public_state(&self, word: Word, now_ms: u64) -> BreakerState {
        match word.kind {
            CLOSED => BreakerState::Closed,
            OPEN => BreakerState::Open {
                retry_after: Duration::from_millis(word.until_ms.saturating_sub(now_ms)),
            },
            HALF_OPEN => BreakerState::HalfOpen,
            FORCED_OPEN => BreakerState::ForcedOpen,
            _ => BreakerState::Disabled,
        }
    }

    fn transitioned(&self, from: Word, to: Word) {
        let now = self.now_ms();
        let transition = Transition {
            from: self.public_state(from, now),
            to: self.public_state(to, now),
        };
        tracing::info!(
            target: "bulwark_breaker",
            from = transition.from.as_str(),
            to = transition.to.as_str(),
            "circuit state changed"
        );
        self.metrics.transitioned(transition.to);
        if let Some(f) = &self.on_transition {
            f(&transition);
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        let word = Word::decode(self.state.load(Ordering::Acquire));
        let now = self.now_ms();
        if word.kind == OPEN && now >= word.until_ms {
            // The break is over: the next call is a probe.
            return BreakerState::HalfOpen;
        }
        self.public_state(word, now)
    }

    pub(crate) fn metrics(&self) -> BreakerMetrics {
        let totals = self.window.cumulative();
        BreakerMetrics {
            state: self.state(),
            calls: totals.calls,
            failures: totals.failures,
            slow_calls: totals.slow,
            rejections: self.rejections.load(Ordering::Relaxed),
            opens: self.opens.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
        }
    }
}
