//! GCRA — the generic cell rate algorithm — as pure functions of "now".
//!
//! The bucket's whole state is one number, the *theoretical arrival time* (TAT): when the
//! bucket would be empty again if nothing else arrived. With an emission interval `T = per /
//! count` and a capacity of `burst` requests, a request at time `t` is due at
//! `due = max(TAT, t) + T - burst·T`; it may go now if `due ≤ t`, otherwise it must wait
//! `due - t`. Admitting it (now or after the wait) moves the TAT to `max(TAT, t) + T`.
//!
//! This gives exactly: over any interval of length `d`, at most `burst + d / T` admissions.
//! Times are nanoseconds since the bucket's creation, so the state fits one `AtomicU64`.
//!
//! Overflow: `T` and `burst·T` are capped at [`HORIZON`] (2^62 ns, about 146 years), and "now"
//! stays below 2^63 ns for 292 years of uptime, so `max(TAT, now) + T` cannot saturate while the
//! TAT is one this algorithm set. An upstream pause may push the TAT to `u64::MAX`
//! (saturating); then `due` stays far beyond any "now" and nothing is admitted, which is what
//! an endless pause means. (Without the caps, `Rate::new(1, Duration::MAX)` saturated
//! `new_tat` and `burst·T` alike, `due` came out 0, and every request went through.)

use std::time::Duration;

/// A bucket's parameters in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// Emission interval `T`: one token every `interval` nanoseconds.
    pub(crate) interval: u64,
    /// `burst · T`: how far ahead of now the TAT may run.
    pub(crate) capacity: u64,
}

/// The outcome of asking for one token at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// The TAT after admitting this request.
    pub(crate) new_tat: u64,
    /// How long the request must wait for its slot (0 = go now).
    pub(crate) wait: u64,
}

/// The longest interval, capacity or wait the bucket's arithmetic uses: 2^62 ns, about 146
/// years. Longer ones are taken as this, which is "never" for a process.
pub(crate) const HORIZON: u64 = 1 << 62;

impl Gcra {
    /// `count` (at least 1) per `per`, `burst` (at least 1) at once. The interval is at least
    /// 1 ns (the clock's resolution) and at most [`HORIZON`]; so is the capacity, which is
    /// never less than one interval.
    pub(crate) fn new(count: u32, per: Duration, burst: u32) -> Self {
        let exact = per.as_nanos() / u128::from(count.max(1));
        let interval = u64::try_from(exact).unwrap_or(u64::MAX).clamp(1, HORIZON);
        Self {
            interval,
            capacity: interval
                .saturating_mul(u64::from(burst.max(1)))
                .min(HORIZON)
                .max(interval),
        }
    }

    /// How many requests the bucket holds when full (the burst after the caps).
    pub(crate) fn burst(&self) -> u64 {
        self.capacity / self.interval
    }

    /// What admitting one request at `now` would mean, given the current `tat`.
    #[inline]
    pub(crate) fn decide(&self, tat: u64, now: u64) -> Decision {
        let new_tat = tat.max(now).saturating_add(self.interval);
        let due = new_tat.saturating_sub(self.capacity);
        Decision {
            new_tat,
            wait: due.saturating_sub(now),
        }
    }

    /// Requests that could go at once at `now`.
    pub(crate) fn remaining(&self, tat: u64, now: u64) -> u64 {
        let used = tat.saturating_sub(now);
        self.capacity.saturating_sub(used) / self.interval
    }

    /// Time until the bucket is full again.
    pub(crate) fn reset_after(&self, tat: u64, now: u64) -> u64 {
        tat.saturating_sub(now)
    }

    /// The TAT that lets nothing through before `until` and one request at `until`.
    pub(crate) fn paused_until(&self, until: u64) -> u64 {
        until
            .saturating_add(self.capacity)
            .saturating_sub(self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn burst_then_steady_rate() {
        let g = Gcra::new(3, Duration::from_secs(1), 3);
        let mut tat = 0;
        // Three at once …
        for _ in 0..3 {
            let d = g.decide(tat, 0);
            assert_eq!(d.wait, 0);
            tat = d.new_tat;
        }
        // … then one every third of a second.
        let d = g.decide(tat, 0);
        assert_eq!(d.wait, SEC / 3);
        assert_eq!(g.remaining(tat, 0), 0);
        assert_eq!(g.remaining(tat, SEC), 3);
    }

    #[test]
    fn pause_blocks_until_then_admits_one() {
        let g = Gcra::new(3, Duration::from_secs(1), 3);
        let tat = g.paused_until(2 * SEC);
        assert_eq!(g.decide(tat, 0).wait, 2 * SEC);
        assert_eq!(g.decide(tat, 2 * SEC - 1).wait, 1);
        let d = g.decide(tat, 2 * SEC);
        assert_eq!(d.wait, 0);
        assert_eq!(g.decide(d.new_tat, 2 * SEC).wait, SEC / 3);
    }

    #[test]
    fn extreme_parameters_stay_exact() {
        // One per Duration::MAX: one request, then none (it used to saturate to "all").
        let g = Gcra::new(1, Duration::MAX, 1);
        assert_eq!((g.interval, g.capacity), (HORIZON, HORIZON));
        let first = g.decide(0, 0);
        assert_eq!(first.wait, 0);
        assert!(g.decide(first.new_tat, 0).wait >= HORIZON);
        assert!(g.decide(first.new_tat, SEC * 3600 * 24 * 365).wait > 0);
        // Faster than one per nanosecond: one per nanosecond.
        let g = Gcra::new(u32::MAX, Duration::from_nanos(1), u32::MAX);
        assert_eq!((g.interval, g.burst()), (1, u64::from(u32::MAX)));
        // A burst that would take longer than the horizon to refill is cut to fit it.
        let g = Gcra::new(1, Duration::from_secs(60), u32::MAX);
        assert_eq!(g.capacity, HORIZON);
        assert_eq!(g.burst(), HORIZON / (60 * SEC));
        // A pause to the end of time holds.
        let tat = g.paused_until(u64::MAX);
        assert!(g.decide(tat, 1 << 62).wait > 0);
    }

    proptest! {
        /// Over any window of length d, admissions ≤ burst + d / T (the bucket's invariant),
        /// and under saturation the bound is reached.
        #[test]
        fn never_more_than_burst_plus_rate(
            count in 1u32..20,
            burst in 1u32..10,
            arrivals in proptest::collection::vec(0u64..400_000_000, 1..300),
        ) {
            let g = Gcra::new(count, Duration::from_secs(1), burst);
            let mut now = 0u64;
            let mut tat = 0u64;
            let mut admitted: Vec<u64> = Vec::new();
            for gap in arrivals {
                now += gap;
                let d = g.decide(tat, now);
                if d.wait == 0 {
                    tat = d.new_tat;
                    admitted.push(now);
                }
            }
            for (i, &start) in admitted.iter().enumerate() {
                for (j, &end) in admitted.iter().enumerate().skip(i) {
                    let n = (j - i + 1) as u64;
                    let bound = u64::from(burst) + (end - start) / g.interval;
                    prop_assert!(n <= bound, "{} admissions in {} ns, bound {}", n, end - start, bound);
                }
            }
        }
    }
}
