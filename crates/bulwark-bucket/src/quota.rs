//! [`QuotaLock`]: a bucket's memory of an upstream quota that is used up (a response
//! classified [`Class::QuotaExhausted`](bulwark_http::Class::QuotaExhausted)), and of the
//! low-allowance warning already given.
//!
//! While locked, the bucket refuses at once with [`QuotaExhausted`] — no token, no wait, no
//! upstream call: every call before the reset would be refused upstream anyway. The lock ends
//! at the announced reset; with none announced (a billing-period quota), one request is let
//! through every `quota_recheck` to see whether the quota came back, and any response that
//! shows allowance again ends the lock at once.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use bulwark_http::QuotaExhausted;

/// The lock state of one bucket. Times are nanoseconds on the bucket's clock; `until == 0`
/// means unlocked.
#[derive(Debug, Default)]
pub(crate) struct QuotaLock {
    until: AtomicU64,
    /// The upstream announced `until` (else it is the next recheck).
    known: AtomicBool,
    /// The low-allowance warning was given and the allowance has not recovered since.
    low: AtomicBool,
}

/// What a response said about the quota, for [`QuotaLock::observe`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Signal {
    /// Exhausted: locked until the reset (`None`: not announced).
    Exhausted(Option<Duration>),
    /// Allowance left: this share of the limit (when known).
    Allowance(Option<f64>),
}

/// A low-allowance crossing: warn once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crossing {
    /// The share fell under the threshold (first time since it was above).
    FellBelow,
    /// Nothing to say.
    None,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl QuotaLock {
    /// The refusal for a request at `now`, if the quota is locked. An unannounced reset's
    /// recheck is due: the first caller to see it moves it `recheck` on and goes through (the
    /// probe); the others are refused.
    #[inline]
    pub(crate) fn refusal(&self, now: u64, recheck: u64) -> Option<QuotaExhausted> {
        let until = self.until.load(Ordering::Acquire);
        if until == 0 {
            return None;
        }
        let known = self.known.load(Ordering::Acquire);
        if now < until {
            let left = Duration::from_nanos(until - now);
            return Some(QuotaExhausted::new(known.then_some(left), left));
        }
        if known {
            // The announced reset has come: the quota is back.
            let _ = self
                .until
                .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Acquire);
            return None;
        }
        let next = now.saturating_add(recheck).max(1);
        match self
            .until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
        {
            // This request is the probe.
            Ok(_) => None,
            Err(_) => Some(QuotaExhausted::new(
                None,
                Duration::from_nanos(next.saturating_sub(now)),
            )),
        }
    }

    /// Learns from a response at `now`: locks on exhaustion (until the reset, or the next
    /// recheck), unlocks when allowance shows again, and says whether the share left fell
    /// under `warn_below`.
    pub(crate) fn observe(
        &self,
        signal: Signal,
        now: u64,
        recheck: u64,
        warn_below: Option<f64>,
    ) -> Crossing {
        match signal {
            Signal::Exhausted(resets_in) => {
                let (until, known) = match resets_in {
                    Some(d) => (now.saturating_add(nanos(d)), true),
                    None => (now.saturating_add(recheck), false),
                };
                self.known.store(known, Ordering::Release);
                self.until.store(until.max(1), Ordering::Release);
                if self.low.swap(true, Ordering::AcqRel) {
                    Crossing::None
                } else {
                    Crossing::FellBelow
                }
            }
            Signal::Allowance(share) => {
                if self.until.load(Ordering::Acquire) != 0 {
                    self.until.store(0, Ordering::Release);
                }
                match (share, warn_below) {
                    (Some(share), Some(threshold)) if share < threshold => {
                        if self.low.swap(true, Ordering::AcqRel) {
                            Crossing::None
                        } else {
                            Crossing::FellBelow
                        }
                    }
                    (Some(_), _) => {
                        self.low.store(false, Ordering::Release);
                        Crossing::None
                    }
                    (None, _) => Crossing::None,
                }
            }
        }
    }

    /// Ends the lock now (an operator who upgraded the plan, say).
    pub(crate) fn clear(&self) {
        self.until.store(0, Ordering::Release);
        self.low.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn an_announced_reset_locks_until_it_then_unlocks() {
        let lock = QuotaLock::default();
        assert!(lock.refusal(0, 3600 * S).is_none());
        let crossing = lock.observe(
            Signal::Exhausted(Some(Duration::from_secs(10))),
            5 * S,
            3600 * S,
            Some(0.1),
        );
        assert_eq!(crossing, Crossing::FellBelow);
        let refusal = lock.refusal(6 * S, 3600 * S).unwrap();
        assert_eq!(refusal.resets_in, Some(Duration::from_secs(9)));
        assert_eq!(refusal.retry_after, Duration::from_secs(9));
        assert!(lock.refusal(15 * S, 3600 * S).is_none());
        assert!(lock.refusal(16 * S, 3600 * S).is_none());
    }

    #[test]
    fn an_unannounced_reset_lets_one_probe_through_per_recheck() {
        let lock = QuotaLock::default();
        lock.observe(Signal::Exhausted(None), 0, 60 * S, None);
        let refusal = lock.refusal(S, 60 * S).unwrap();
        assert_eq!(refusal.resets_in, None);
        assert_eq!(refusal.retry_after, Duration::from_secs(59));
        // The recheck: one probe, then refusals until the next one.
        assert!(lock.refusal(60 * S, 60 * S).is_none());
        assert!(lock.refusal(60 * S, 60 * S).is_some());
        assert!(lock.refusal(61 * S, 60 * S).is_some());
        // The probe found allowance: unlocked.
        lock.observe(Signal::Allowance(Some(0.5)), 61 * S, 60 * S, Some(0.1));
        assert!(lock.refusal(61 * S, 60 * S).is_none());
    }

    #[test]
    fn the_low_allowance_warning_fires_once_per_crossing() {
        let lock = QuotaLock::default();
        let see = |share| lock.observe(Signal::Allowance(Some(share)), 0, S, Some(0.1));
        assert_eq!(see(0.5), Crossing::None);
        assert_eq!(see(0.09), Crossing::FellBelow);
        assert_eq!(see(0.05), Crossing::None);
        assert_eq!(see(0.5), Crossing::None);
        assert_eq!(see(0.08), Crossing::FellBelow);
        // Off without a threshold.
        let quiet = QuotaLock::default();
        assert_eq!(
            quiet.observe(Signal::Allowance(Some(0.0)), 0, S, None),
            Crossing::None
        );
    }
}
