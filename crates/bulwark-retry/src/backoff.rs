//! Backoff maths: pure functions of the retry number, the previous wait and a random draw.
//!
//! Nothing here knows about Tower or clocks; [`Backoff::delay`] takes its randomness as an
//! argument, so the property tests can drive it.

use std::time::Duration;

/// How a computed delay is randomised, so clients that failed together do not all come back
/// together (see "Exponential Backoff And Jitter", AWS Architecture Blog, 2015).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// `U(0, d)`: the widest spread; the default.
    #[default]
    Full,
    /// `d/2 + U(0, d/2)`: never shorter than half the delay.
    Equal,
    /// `min(cap, U(base, 3·previous))`: grows from the previous wait rather than the attempt
    /// number.
    Decorrelated,
    /// Exactly `d`.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exponential,
    Constant,
}

/// The wait between attempts when the server gave no `Retry-After`.
///
/// ```
/// use std::time::Duration;
/// use bulwark_retry::{Backoff, Jitter};
///
/// let backoff = Backoff::exponential(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(5))
///     .jitter(Jitter::None);
/// assert_eq!(backoff.delay(0, Duration::ZERO, 0.5), Duration::from_millis(200));
/// assert_eq!(backoff.delay(2, Duration::ZERO, 0.5), Duration::from_millis(800));
/// assert_eq!(backoff.delay(10, Duration::ZERO, 0.5), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    kind: Kind,
    base: Duration,
    max_delay: Duration,
    jitter: Jitter,
}

impl Default for Backoff {
    /// Exponential from 200 ms, capped at 20 s, full jitter.
    fn default() -> Self {
        Self::exponential(Duration::from_millis(200))
    }
}

impl Backoff {
    /// `base · 2ⁿ` before the `n`-th retry (counting from 0), capped by
    /// [`max_delay`](Self::max_delay) (defaults to 20 s), with [`Jitter::Full`].
    ///
    /// Any `base` is valid, `Duration::ZERO` (no wait) to `Duration::MAX` (saturates: every
    /// wait is the cap). Never panics.
    #[must_use]
    pub const fn exponential(base: Duration) -> Self {
        Self {
            kind: Kind::Exponential,
            base,
            max_delay: Duration::from_secs(20),
            jitter: Jitter::Full,
        }
    }

    /// The same `delay` before every retry, with [`Jitter::None`].
    ///
    /// Any `delay` is valid, `Duration::ZERO` to `Duration::MAX`. Never panics.
    #[must_use]
    pub const fn constant(delay: Duration) -> Self {
        Self {
            kind: Kind::Constant,
            base: delay,
            max_delay: delay,
            jitter: Jitter::None,
        }
    }

    /// Caps every delay. Defaults to 20 s for [`exponential`](Self::exponential) and to the
    /// delay itself for [`constant`](Self::constant).
    ///
    /// Any value is valid: `Duration::ZERO` means no wait at all, `Duration::MAX` no cap.
    /// Never panics.
    #[must_use]
    pub const fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Sets the jitter. Defaults to [`Jitter::Full`] for exponential, [`Jitter::None`] for
    /// constant.
    #[must_use]
    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The first delay.
    #[must_use]
    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The cap.
    #[must_use]
    pub const fn cap(&self) -> Duration {
        self.max_delay
    }

    /// The delay before retry number `retry` (0 for the first retry).
    ///
    /// `previous` is the wait chosen before the previous retry (used by
    /// [`Jitter::Decorrelated`]; `Duration::ZERO` before the first), `random` a draw from
    /// `[0, 1)`. The result never exceeds [`cap`](Self::cap).
    ///
    /// # Panics
    /// Never: every product saturates at `Duration::MAX`, and a `random` outside `[0, 1]`
    /// (NaN, infinities, negatives) is clamped.
    #[must_use]
    pub fn delay(&self, retry: u32, previous: Duration, random: f64) -> Duration {
        let random = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let cap = self.max_delay;
        let ceiling = match self.kind {
            Kind::Constant => self.base.min(cap),
            Kind::Exponential => {
                let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
                self.base
                    .checked_mul(factor)
                    .unwrap_or(Duration::MAX)
                    .min(cap)
            }
        };
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => scale(ceiling, random),
            Jitter::Equal => {
                let half = ceiling / 2;
                half + scale(ceiling - half, random)
            }
            Jitter::Decorrelated => {
                let low = self.base.min(cap);
                let high = previous.saturating_mul(3).max(low).min(cap);
                (low + scale(high - low, random)).min(cap)
            }
        }
    }
}

/// The wait for a server's `Retry-After`: never less than it, plus up to 10 % (at most 1 s)
/// so clients told the same time do not all return at once.
#[must_use]
pub(crate) fn retry_after_wait(retry_after: Duration, random: f64) -> Duration {
    let random = if random.is_finite() {
        random.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let spread = (retry_after / 10).min(Duration::from_secs(1));
    retry_after.saturating_add(scale(spread, random))
}

/// `d · r` for `r` in `[0, 1]`, never more than `d` and never panicking (unlike
/// `Duration::mul_f64` near `Duration::MAX`).
fn scale(d: Duration, r: f64) -> Duration {
    let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    // `as` saturates; rounding may overshoot by a few nanoseconds, so clamp.
    Duration::from_nanos((nanos as f64 * r) as u64).min(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn no_jitter_doubles_then_caps() {
        let b = Backoff::exponential(200 * MS).jitter(Jitter::None);
        let waits: Vec<_> = (0..9).map(|n| b.delay(n, Duration::ZERO, 0.3)).collect();
        assert_eq!(
            waits,
            [200, 400, 800, 1600, 3200, 6400, 12800, 20000, 20000].map(|m| m * MS)
        );
        assert_eq!(
            b.delay(u32::MAX, Duration::ZERO, 0.3),
            Duration::from_secs(20)
        );
    }

    #[test]
    fn jitters_stay_in_range() {
        let full = Backoff::exponential(200 * MS);
        assert_eq!(full.delay(1, Duration::ZERO, 0.0), Duration::ZERO);
        assert_eq!(full.delay(1, Duration::ZERO, 0.5), 200 * MS);
        let equal = full.jitter(Jitter::Equal);
        assert_eq!(equal.delay(1, Duration::ZERO, 0.0), 200 * MS);
        assert_eq!(equal.delay(1, Duration::ZERO, 1.0), 400 * MS);
        let decorrelated = full.jitter(Jitter::Decorrelated);
        assert_eq!(decorrelated.delay(0, Duration::ZERO, 0.7), 200 * MS);
        assert_eq!(decorrelated.delay(3, 1000 * MS, 1.0), 3000 * MS);
    }

    #[test]
    fn constant() {
        let c = Backoff::constant(Duration::from_secs(1));
        assert_eq!(c.delay(0, Duration::ZERO, 0.9), Duration::from_secs(1));
        assert_eq!(c.delay(7, Duration::ZERO, 0.1), Duration::from_secs(1));
    }

    #[test]
    fn retry_after_adds_at_most_ten_percent_capped_at_one_second() {
        let s = Duration::from_secs;
        assert_eq!(retry_after_wait(s(7), 0.0), s(7));
        assert_eq!(retry_after_wait(s(7), 1.0), 7700 * MS);
        assert_eq!(retry_after_wait(s(60), 1.0), s(61));
        assert_eq!(retry_after_wait(Duration::ZERO, 0.7), Duration::ZERO);
    }

    fn jitter() -> impl Strategy<Value = Jitter> {
        prop_oneof![
            Just(Jitter::Full),
            Just(Jitter::Equal),
            Just(Jitter::Decorrelated),
            Just(Jitter::None)
        ]
    }

    proptest! {
        #[test]
        fn never_exceeds_the_cap(
            base_ms in 0u64..100_000,
            cap_ms in 0u64..1_000_000,
            retry in any::<u32>(),
            prev_ms in 0u64..10_000_000,
            random in any::<f64>(),
            jitter in jitter(),
            constant in any::<bool>(),
        ) {
            let b = if constant { Backoff::constant(Duration::from_millis(base_ms)) } else { Backoff::exponential(Duration::from_millis(base_ms)) }
                .max_delay(Duration::from_millis(cap_ms))
                .jitter(jitter);
            let d = b.delay(retry, Duration::from_millis(prev_ms), random);
            prop_assert!(d <= Duration::from_millis(cap_ms), "{d:?} > cap {cap_ms}ms");
        }

        #[test]
        fn huge_durations_never_panic(retry in any::<u32>(), random in any::<f64>(), jitter in jitter()) {
            let b = Backoff::exponential(Duration::MAX).max_delay(Duration::MAX).jitter(jitter);
            let _ = b.delay(retry, Duration::MAX, random);
            let _ = retry_after_wait(Duration::MAX, random);
        }

        #[test]
        fn retry_after_is_honoured_never_less(ra_ms in 0u64..100_000_000, random in any::<f64>()) {
            let ra = Duration::from_millis(ra_ms);
            let w = retry_after_wait(ra, random);
            prop_assert!(w >= ra);
            prop_assert!(w <= ra + (ra / 10).min(Duration::from_secs(1)));
        }
    }
}
