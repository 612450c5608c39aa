//! The retry budget: retries may be at most a fraction of recent requests, plus a floor.
//!
//! This is Finagle's `RetryBudget` (and tower's `TpsBudget`): every original request deposits
//! `ratio` of a token, every retry withdraws one, and `min_per_sec · window` tokens are always
//! available so a quiet client can still retry. Deposits and withdrawals expire after
//! `window`. Under a storm — every request failing — retries are bounded by
//! `ratio · requests + min_per_sec · window` instead of `max_retries · requests`.
//!
//! ## Why it is cheap
//! A deposit is one relaxed `fetch_add` on a cumulative request counter (which is also the
//! layer's request count): no clock read, no lock, no allocation on the success path. The
//! time bookkeeping happens on the retry path, which already reads the clock: a small ledger
//! (behind a mutex) of *marks* — the cumulative count seen at some moment of a time slot —
//! and of withdrawals per slot. Deposits in the window are counted from the oldest mark
//! inside the window, so an old request is never counted; so that such marks exist, one
//! deposit in 64 also reads the clock and records one (with `try_lock`, never waiting). The
//! estimate errs on the stingy side only, by the deposits of the window that came before its
//! oldest mark (fewer than 64 plus part of one slot; slots are a power of two nanoseconds
//! wide, a tenth to a twentieth of the window). Time is a `tokio::time::Instant`, so
//! paused-time tests drive it.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

use bulwark_http::InvalidConfig;
use tokio::time::Instant;

/// A clock reading (and a mark) is taken on one deposit in this many.
const MARK_EVERY: u64 = 64;

/// How many retries the layer may spend (see the [module docs](self)).
///
/// The default is `RetryBudget::new(Duration::from_secs(10), 10, 0.2)`: 10 retries per second
/// always, plus 20 % of the requests of the last 10 s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    window: Duration,
    min_per_sec: u32,
    ratio: f64,
    unlimited: bool,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            min_per_sec: 10,
            ratio: 0.2,
            unlimited: false,
        }
    }
}

impl RetryBudget {
    /// A budget over `window`, allowing `min_per_sec` retries per second regardless of
    /// traffic, plus `ratio` retries per request sent.
    ///
    /// # Errors
    /// [`InvalidConfig`] naming the field when `window` is shorter than 1 s or longer than
    /// one day (the window's ten slots are then at least 100 ms wide, so the 32-bit slot
    /// counter lasts 13 years of uptime), or `ratio` is negative, not finite or above 1000.
    /// `min_per_sec` may be anything, `0` (no floor) to `u32::MAX` (as good as unlimited).
    ///
    /// # Panics
    /// Never: extreme values (`Duration::ZERO`, `Duration::MAX`, NaN, ±∞) are errors.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bulwark_retry::RetryBudget;
    ///
    /// let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2).unwrap();
    /// let _layer = bulwark_retry::RetryLayer::new().budget(budget);
    /// let err = RetryBudget::new(Duration::from_secs(10), 10, -1.0).unwrap_err();
    /// assert_eq!(err.field(), "ratio");
    /// ```
    pub fn new(window: Duration, min_per_sec: u32, ratio: f64) -> Result<Self, InvalidConfig> {
        if window < Duration::from_secs(1) || window > Duration::from_secs(86_400) {
            return Err(InvalidConfig::new(
                "window",
                format!("{window:?} is outside 1s..=1 day"),
            ));
        }
        if !ratio.is_finite() || !(0.0..=1000.0).contains(&ratio) {
            return Err(InvalidConfig::new(
                "ratio",
                format!("{ratio} is not a number in 0..=1000"),
            ));
        }
        Ok(Self {
            window,
            min_per_sec,
            ratio,
            unlimited: false,
        })
    }

    /// No budget: every retry the other settings allow is made.
    #[must_use]
    pub const fn unlimited() -> Self {
        Self {
            window: Duration::from_secs(10),
            min_per_sec: 0,
            ratio: 0.0,
            unlimited: true,
        }
    }

    /// `true` for [`RetryBudget::unlimited`].
    #[must_use]
    pub const fn is_unlimited(&self) -> bool {
        self.unlimited
    }
}

/// The shared state of one budget.
#[derive(Debug)]
pub(crate) struct BudgetState {
    config: RetryBudget,
    start: Instant,
    /// log₂ of the slot width in nanoseconds.
    shift: u32,
    /// Slots covering the window.
    window_slots: u64,
    reserve: f64,
    /// Original requests since the budget was created: the only thing a deposit touches.
    requests: AtomicU64,
    ledger: Mutex<Ledger>,
}

/// The retry path's bookkeeping.
#[derive(Debug, Default)]
struct Ledger {
    /// `(slot, requests seen in that slot)`, oldest first, at most one per slot.
    marks: VecDeque<(u64, u64)>,
    /// `(slot, withdrawals in that slot)`, oldest first.
    withdrawals: VecDeque<(u64, u64)>,
}

impl Ledger {
    fn mark(&mut self, slot: u64, requests: u64) {
        if self.marks.back().is_none_or(|&(s, _)| s < slot) {
            self.marks.push_back((slot, requests));
        }
    }

    /// Drops what no longer matters for a window starting at slot `first`.
    fn prune(&mut self, first: u64) {
        while self.marks.front().is_some_and(|&(s, _)| s < first) {
            self.marks.pop_front();
        }
        while self.withdrawals.front().is_some_and(|&(s, _)| s < first) {
            self.withdrawals.pop_front();
        }
    }
}

impl BudgetState {
    pub(crate) fn new(config: RetryBudget, now: Instant) -> Self {
        let window_nanos = u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX);
        // The widest power of two no wider than a tenth of the window.
        let shift = (window_nanos / 10).max(1).ilog2();
        let window_slots = window_nanos.div_ceil(1 << shift);
        let reserve = f64::from(config.min_per_sec) * config.window.as_secs_f64();
        Self {
            config,
            start: now,
            shift,
            window_slots,
            reserve,
            requests: AtomicU64::new(0),
            ledger: Mutex::default(),
        }
    }

    /// Slots start at 1 so that "before the first slot" is 0.
    fn slot(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start);
        let nanos = elapsed
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(elapsed.subsec_nanos()));
        (nanos >> self.shift) + 1
    }

    /// Records an original request (not a retry). Lock-free; reads the clock once in 64.
    pub(crate) fn deposit(&self) {
        self.deposit_with(Instant::now);
    }

    /// [`deposit`](Self::deposit) with the clock passed in (it is called once in 64).
    pub(crate) fn deposit_with(&self, clock: impl FnOnce() -> Instant) {
        let before = self.requests.fetch_add(1, Ordering::Relaxed);
        if before % MARK_EVERY == 0 && !self.config.unlimited {
            if let Ok(mut ledger) = self.ledger.try_lock() {
                // "At this moment the count was `before`": this request counts as after it.
                let slot = self.slot(clock());
                ledger.mark(slot, before);
                // Keep the ledger bounded while no retry prunes it.
                ledger.prune(slot.saturating_sub(self.window_slots - 1));
            }
        }
    }

    /// Original requests since the budget was created.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Spends one retry if the budget allows it: `Some(slot)` it was booked in (for
    /// [`refund`](Self::refund)), `Some(0)` for an unlimited budget.
    pub(crate) fn try_withdraw(&self, now: Instant) -> Option<u64> {
        if self.config.unlimited {
            return Some(0);
        }
        let slot = self.slot(now);
        let mut ledger = self
            .ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.available(&mut ledger, slot) < 1.0 {
            return None;
        }
        match ledger.withdrawals.back_mut() {
            Some((s, count)) if *s == slot => *count += 1,
            _ => ledger.withdrawals.push_back((slot, 1)),
        }
        Some(slot)
    }

    /// Gives back a retry booked in `slot` that was never sent (its future was dropped during
    /// the wait), if the slot is still in the window.
    pub(crate) fn refund(&self, slot: u64) {
        if slot == 0 {
            return;
        }
        let mut ledger = self
            .ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, count)) = ledger.withdrawals.iter_mut().find(|(s, _)| *s == slot) {
            *count = count.saturating_sub(1);
        }
    }

    /// Retries that may be spent at `slot`.
    fn available(&self, ledger: &mut Ledger, slot: u64) -> f64 {
        let requests = self.requests.load(Ordering::Relaxed);
        ledger.mark(slot, requests);
        let first = slot.saturating_sub(self.window_slots - 1);
        ledger.prune(first);
        // Count from the oldest mark inside the window (there is one: the mark just made).
        let base = ledger.marks.front().map_or(requests, |&(_, seen)| seen);
        let deposits = requests.saturating_sub(base) as f64;
        let withdrawals: u64 = ledger.withdrawals.iter().map(|&(_, c)| c).sum();
        self.reserve + deposits * self.config.ratio - withdrawals as f64
    }

    /// Retries that may still be spent at `now` (for stats).
    pub(crate) fn remaining(&self, now: Instant) -> f64 {
        if self.config.unlimited {
            return f64::INFINITY;
        }
        let mut ledger = self
            .ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.available(&mut ledger, self.slot(now)).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn budget(window_s: u64, min: u32, ratio: f64) -> (BudgetState, Instant) {
        let now = Instant::now();
        let config = RetryBudget::new(Duration::from_secs(window_s), min, ratio).unwrap();
        (BudgetState::new(config, now), now)
    }

    #[test]
    fn reserve_only() {
        let (b, now) = budget(10, 1, 0.0);
        let granted = (0..100).filter(|_| b.try_withdraw(now).is_some()).count();
        assert_eq!(granted, 10);
    }

    #[test]
    fn storm_of_failures_is_bounded() {
        let (b, now) = budget(10, 10, 0.2);
        for _ in 0..1000 {
            b.deposit_with(|| now);
        }
        let granted = (0..3000).filter(|_| b.try_withdraw(now).is_some()).count();
        assert_eq!(granted, 300, "20 % of 1000 plus 10/s over 10 s");
    }

    #[test]
    fn a_refund_gives_the_retry_back_until_its_slot_leaves_the_window() {
        let (b, now) = budget(10, 1, 0.0);
        let slots: Vec<u64> = (0..10).filter_map(|_| b.try_withdraw(now)).collect();
        assert_eq!(slots.len(), 10);
        assert!(b.try_withdraw(now).is_none(), "spent");
        for slot in slots {
            b.refund(slot);
        }
        assert_eq!(
            (0..100).filter(|_| b.try_withdraw(now).is_some()).count(),
            10
        );
        // A refund for a slot already out of the window changes nothing.
        let later = now + Duration::from_secs(30);
        let slot = b.try_withdraw(later).unwrap();
        b.refund(1);
        assert_eq!(
            (0..100).filter(|_| b.try_withdraw(later).is_some()).count(),
            9
        );
        b.refund(slot);
        assert!(b.try_withdraw(later).is_some());
    }

    #[test]
    fn deposits_expire_after_the_window() {
        let (b, now) = budget(10, 0, 1.0);
        for _ in 0..5 {
            b.deposit_with(|| now);
        }
        assert!(b.try_withdraw(now + Duration::from_secs(9)).is_some());
        assert!(b.try_withdraw(now + Duration::from_secs(11)).is_none());
        assert_eq!(b.remaining(now + Duration::from_secs(11)), 0.0);
    }

    #[test]
    fn the_ledger_stays_bounded_without_retries() {
        let (b, start) = budget(1, 0, 0.2);
        for i in 0..100_000u64 {
            b.deposit_with(|| start + Duration::from_millis(i));
        }
        let ledger = b.ledger.lock().unwrap();
        assert!(ledger.marks.len() <= 20, "{} marks", ledger.marks.len());
    }

    #[test]
    fn unlimited_always_grants() {
        let b = BudgetState::new(RetryBudget::unlimited(), Instant::now());
        assert!((0..10_000).all(|_| b.try_withdraw(Instant::now()).is_some()));
    }

    #[test]
    fn invalid_configs_name_the_field() {
        assert_eq!(
            RetryBudget::new(Duration::ZERO, 1, 0.1)
                .unwrap_err()
                .field(),
            "window"
        );
        assert_eq!(
            RetryBudget::new(Duration::from_secs(1), 1, f64::NAN)
                .unwrap_err()
                .field(),
            "ratio"
        );
    }

    proptest! {
        /// Whenever a retry is granted, the retries of the window never exceed what the
        /// budget allows for the requests deposited inside the window.
        #[test]
        fn withdrawals_are_bounded(
            events in proptest::collection::vec((any::<bool>(), 0u64..3_000), 1..400),
            min in 0u32..5,
            ratio in 0.0f64..2.0,
        ) {
            let (b, start) = budget(1, min, ratio);
            let mut now = start;
            let mut log: Vec<(Instant, bool)> = Vec::new();
            for (is_deposit, advance_ms) in events {
                now += Duration::from_millis(advance_ms);
                if is_deposit {
                    b.deposit_with(|| now);
                    log.push((now, true));
                } else if b.try_withdraw(now).is_some() {
                    log.push((now, false));
                } else {
                    continue;
                }
                if log.last().is_some_and(|(_, deposit)| *deposit) {
                    continue;
                }
                // A withdrawal was just granted: it and those before it in the window must
                // fit the budget the deposits of the window allow.
                // Slots are a tenth of the window wide: every withdrawal of the last 0.9 s is
                // still counted, and no deposit older than 1.1 s is.
                let count = |age_ms: u64, deposit: bool| {
                    let since = now.checked_sub(Duration::from_millis(age_ms)).unwrap_or(start);
                    log.iter().filter(|(t, d)| *d == deposit && *t >= since).count() as f64
                };
                let withdrawn = count(900, false);
                let deposited = count(1100, true);
                prop_assert!(withdrawn <= f64::from(min) + deposited * ratio + 1e-9,
                    "withdrew {} with {} deposits", withdrawn, deposited);
            }
        }
    }
}
