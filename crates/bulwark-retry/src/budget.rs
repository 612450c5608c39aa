//! The retry budget: retries may be at most a fraction of recent requests, plus a floor.
//!
//! This is Finagle's `RetryBudget` (and tower's `TpsBudget`): every original request deposits
//! `ratio` of a token, every retry withdraws one, and `min_per_sec · window` tokens are always
//! available so a quiet client can still retry. Deposits and withdrawals expire after
//! `window`. Under a storm — every request failing — retries are bounded by
//! `ratio · requests + min_per_sec · window` instead of `max_retries · requests`.
//!
//! The state is ten time slots of packed `AtomicU64`s (epoch in the high half, count in the
//! low half): a deposit is one compare-and-swap, no lock and no allocation. Time is a
//! `tokio::time::Instant` passed in by the caller, so paused-time tests drive it.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use bulwark_http::InvalidConfig;
use tokio::time::Instant;

const SLOTS: usize = 10;

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

/// The shared, lock-free state of one budget.
#[derive(Debug)]
pub(crate) struct BudgetState {
    config: RetryBudget,
    start: Instant,
    slot_nanos: u64,
    /// Withdrawals are scaled so that `ratio` deposits are integers: one deposit adds
    /// `SCALE` units, one withdrawal costs `SCALE / ratio` units.
    reserve: u128,
    deposits: [AtomicU64; SLOTS],
    withdrawals: [AtomicU64; SLOTS],
}

fn pack(epoch: u32, count: u32) -> u64 {
    (u64::from(epoch) << 32) | u64::from(count)
}

fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

impl BudgetState {
    pub(crate) fn new(config: RetryBudget, now: Instant) -> Self {
        let slot_nanos = u64::try_from(config.window.as_nanos() / SLOTS as u128)
            .unwrap_or(u64::MAX)
            .max(1);
        let reserve = u128::from(config.min_per_sec) * config.window.as_millis() / 1000;
        Self {
            config,
            start: now,
            slot_nanos,
            reserve,
            deposits: Default::default(),
            withdrawals: Default::default(),
        }
    }

    /// Epochs start at 1 so that a zeroed slot is always stale.
    fn epoch(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        let epoch = elapsed / u128::from(self.slot_nanos) + 1;
        u32::try_from(epoch).unwrap_or(u32::MAX)
    }

    fn add(slots: &[AtomicU64; SLOTS], epoch: u32) {
        let slot = &slots[epoch as usize % SLOTS];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let (e, count) = unpack(current);
            let next = if e >= epoch {
                // Same slot, or a newer one a faster clock already opened: count it there.
                pack(e, count.saturating_add(1))
            } else {
                pack(epoch, 1)
            };
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    fn sum(slots: &[AtomicU64; SLOTS], epoch: u32) -> u64 {
        let oldest = epoch.saturating_sub(SLOTS as u32 - 1);
        slots
            .iter()
            .map(|s| unpack(s.load(Ordering::Acquire)))
            .filter(|&(e, _)| e >= oldest && e != 0)
            .map(|(_, c)| u64::from(c))
            .sum()
    }

    /// Records an original request (not a retry).
    pub(crate) fn deposit(&self, now: Instant) {
        if !self.config.unlimited {
            Self::add(&self.deposits, self.epoch(now));
        }
    }

    /// Spends one retry if the budget allows it.
    pub(crate) fn try_withdraw(&self, now: Instant) -> bool {
        if self.config.unlimited {
            return true;
        }
        let epoch = self.epoch(now);
        if self.available(epoch) < 1.0 {
            return false;
        }
        Self::add(&self.withdrawals, epoch);
        true
    }

    /// Retries that may still be spent now.
    fn available(&self, epoch: u32) -> f64 {
        let deposits = Self::sum(&self.deposits, epoch) as f64;
        let withdrawals = Self::sum(&self.withdrawals, epoch) as f64;
        self.reserve as f64 + deposits * self.config.ratio - withdrawals
    }

    /// Retries that may still be spent at `now` (for stats).
    pub(crate) fn remaining(&self, now: Instant) -> f64 {
        if self.config.unlimited {
            return f64::INFINITY;
        }
        self.available(self.epoch(now)).max(0.0)
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
        let granted = (0..100).filter(|_| b.try_withdraw(now)).count();
        assert_eq!(granted, 10);
    }

    #[test]
    fn storm_of_failures_is_bounded() {
        let (b, now) = budget(10, 10, 0.2);
        for _ in 0..1000 {
            b.deposit(now);
        }
        let granted = (0..3000).filter(|_| b.try_withdraw(now)).count();
        assert_eq!(granted, 300, "20 % of 1000 plus 10/s over 10 s");
    }

    #[test]
    fn deposits_expire_after_the_window() {
        let (b, now) = budget(10, 0, 1.0);
        for _ in 0..5 {
            b.deposit(now);
        }
        assert!(b.try_withdraw(now + Duration::from_secs(9)));
        assert!(!b.try_withdraw(now + Duration::from_secs(11)));
        assert_eq!(b.remaining(now + Duration::from_secs(11)), 0.0);
    }

    #[test]
    fn unlimited_always_grants() {
        let b = BudgetState::new(RetryBudget::unlimited(), Instant::now());
        assert!((0..10_000).all(|_| b.try_withdraw(Instant::now())));
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
                    b.deposit(now);
                    log.push((now, true));
                } else if b.try_withdraw(now) {
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
