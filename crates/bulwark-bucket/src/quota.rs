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

/// The lock state of one bucket. Times are nanoseconds on the bucket's clock.
///
/// `state` packs the lock's end and whether the upstream announced it into one word, so a
/// reader never pairs one lock's end with another's kind: `end << 1 | known`, `0` unlocked.
/// `locked_at` is when the current lock was set: only an answer to a request admitted since
/// may end it (an older request's answer says nothing about the quota now).
#[derive(Debug, Default)]
pub(crate) struct QuotaLock {
    state: AtomicU64,
    locked_at: AtomicU64,
    /// The low-allowance warning was given and the allowance has not recovered since.
    low: AtomicBool,
}

/// A low-allowance crossing: worth one event.
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

/// `end` (at most 2^63 − 1 ns, about 292 years) and `known`, packed.
fn pack(end: u64, known: bool) -> u64 {
    (end.clamp(1, u64::MAX >> 1) << 1) | u64::from(known)
}

fn unpack(word: u64) -> (u64, bool) {
    (word >> 1, word & 1 == 1)
}

impl QuotaLock {
    /// Whether a lock is set (expired or not).
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.state.load(Ordering::Acquire) != 0
    }

    /// Whether the lock still means something at `now`: an announced reset not yet come, or
    /// an unannounced one (only a success ends it).
    pub(crate) fn holds_at(&self, now: u64) -> bool {
        let word = self.state.load(Ordering::Acquire);
        let (until, known) = unpack(word);
        word != 0 && (!known || now < until)
    }

    /// The refusal for a request at `now`, if the quota is locked. An unannounced reset's
    /// recheck is due: the first caller to see it moves it `recheck` on and goes through (the
    /// probe); the others are refused.
    #[inline]
    pub(crate) fn refusal(&self, now: u64, recheck: u64) -> Option<QuotaExhausted> {
        let word = self.state.load(Ordering::Acquire);
        if word == 0 {
            return None;
        }
        let (until, known) = unpack(word);
        if now < until {
            let left = Duration::from_nanos(until - now);
            return Some(QuotaExhausted::new(known.then_some(left), left));
        }
        if known {
            // The announced reset has come: the quota is back.
            let _ = self
                .state
                .compare_exchange(word, 0, Ordering::AcqRel, Ordering::Acquire);
            return None;
        }
        let next = pack(now.saturating_add(recheck), false);
        match self
            .state
            .compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire)
        {
            // This request is the probe.
            Ok(_) => None,
            Err(_) => {
                let (until, _) = unpack(next);
                Some(QuotaExhausted::new(
                    None,
                    Duration::from_nanos(until.saturating_sub(now)),
                ))
            }
        }
    }

    /// The quota was found exhausted at `now`: locks until the reset (`None`: the next
    /// recheck, `recheck` from now). `true` when it was not locked before.
    pub(crate) fn lock(&self, resets_in: Option<Duration>, now: u64, recheck: u64) -> bool {
        let word = match resets_in {
            Some(d) => pack(now.saturating_add(nanos(d)), true),
            None => pack(now.saturating_add(recheck), false),
        };
        self.locked_at.store(now, Ordering::Release);
        let was = self.state.swap(word, Ordering::AcqRel);
        self.low.store(true, Ordering::Release);
        was == 0
    }

    /// An answer that is not an exhausted quota, to a request admitted at `admitted_at`, with
    /// `share` of the allowance left (when its usage headers say): ends a lock set before that
    /// request was admitted, and says whether the share fell under `warn_below`.
    pub(crate) fn allowance(
        &self,
        share: Option<f64>,
        admitted_at: u64,
        warn_below: Option<f64>,
    ) -> Crossing {
        let word = self.state.load(Ordering::Acquire);
        if word != 0 && admitted_at >= self.locked_at.load(Ordering::Acquire) {
            let _ = self
                .state
                .compare_exchange(word, 0, Ordering::AcqRel, Ordering::Acquire);
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

    /// Ends the lock now (an operator who upgraded the plan, say).
    pub(crate) fn clear(&self) {
        self.state.store(0, Ordering::Release);
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
        assert!(lock.lock(Some(Duration::from_secs(10)), 5 * S, 3600 * S));
        assert!(!lock.lock(Some(Duration::from_secs(10)), 5 * S, 3600 * S));
        let refusal = lock.refusal(6 * S, 3600 * S).unwrap();
        assert_eq!(refusal.resets_in, Some(Duration::from_secs(9)));
        assert_eq!(refusal.retry_after, Duration::from_secs(9));
        assert!(lock.refusal(15 * S, 3600 * S).is_none());
        assert!(lock.refusal(16 * S, 3600 * S).is_none());
    }

    #[test]
    fn an_unannounced_reset_lets_one_probe_through_per_recheck() {
        let lock = QuotaLock::default();
        lock.lock(None, 10 * S, 60 * S);
        let refusal = lock.refusal(11 * S, 60 * S).unwrap();
        assert_eq!(refusal.resets_in, None);
        assert_eq!(refusal.retry_after, Duration::from_secs(59));
        // The recheck: one probe, then refusals until the next one.
        assert!(lock.refusal(70 * S, 60 * S).is_none());
        assert!(lock.refusal(70 * S, 60 * S).is_some());
        assert!(lock.refusal(71 * S, 60 * S).is_some());
        // An answer to a request admitted before the lock says nothing: still locked.
        lock.allowance(None, 5 * S, None);
        assert!(lock.refusal(71 * S, 60 * S).is_some());
        // The probe (admitted at 70 s) succeeded, without usage headers: unlocked.
        lock.allowance(None, 70 * S, None);
        assert!(lock.refusal(71 * S, 60 * S).is_none());
    }

    #[test]
    fn the_low_allowance_warning_fires_once_per_crossing() {
        let lock = QuotaLock::default();
        let see = |share| lock.allowance(Some(share), 0, Some(0.1));
        assert_eq!(see(0.5), Crossing::None);
        assert_eq!(see(0.09), Crossing::FellBelow);
        assert_eq!(see(0.05), Crossing::None);
        assert_eq!(see(0.5), Crossing::None);
        assert_eq!(see(0.08), Crossing::FellBelow);
        // Off without a threshold.
        let quiet = QuotaLock::default();
        assert_eq!(quiet.allowance(Some(0.0), 0, None), Crossing::None);
        // An announced and an unannounced lock never mix their kinds: one word.
        let lock = QuotaLock::default();
        lock.lock(Some(Duration::from_secs(5)), 0, S);
        assert_eq!(
            lock.refusal(S, S).unwrap().resets_in,
            Some(Duration::from_secs(4))
        );
        lock.lock(None, S, 10 * S);
        assert_eq!(lock.refusal(2 * S, 10 * S).unwrap().resets_in, None);
    }
}
