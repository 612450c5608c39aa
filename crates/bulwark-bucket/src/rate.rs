//! [`Rate`]: how many requests per how long.

use std::time::Duration;

/// `count` requests per `per`.
///
/// Every value means something, so none is invalid and none panics:
///
/// * `Rate::new(0, _)` (and `Rate::per_second(0)`) admits nothing: every request is refused
///   with a [`RateLimited`](bulwark_http::RateLimited) whose `retry_after` is
///   [`MAX_RETRY_AFTER`](bulwark_http::MAX_RETRY_AFTER) (one year, the longest wait a
///   bulwark client accepts), and a quota of 0 in its policy.
/// * A zero `per` (with a non-zero count) admits everything: no limit.
/// * The bucket counts in nanoseconds: a rate faster than one request per nanosecond
///   (`Rate::per_second(u32::MAX)`) is taken as one per nanosecond, and
///   [`TokenBucketLayer::validate`](crate::TokenBucketLayer::validate) reports it (field
///   `rate`).
/// * An interval (`per / count`) longer than 2^62 ns (about 146 years) is taken as 146 years:
///   `Rate::new(1, Duration::MAX)` admits one request, then refuses for the life of the
///   process. `validate` accepts it.
///
/// ```
/// use std::time::Duration;
/// use bulwark_bucket::Rate;
///
/// assert_eq!(Rate::per_second(3), Rate::new(3, Duration::from_secs(1)));
/// assert_eq!(Rate::per_minute(90).interval(), Duration::from_nanos(666_666_666));
/// assert_eq!(Rate::new(1, Duration::MAX).interval(), Duration::MAX);
/// assert_eq!(Rate::per_second(0).interval(), Duration::MAX);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u32,
    per: Duration,
}

impl Rate {
    /// `count` requests per `per`.
    ///
    /// # Panics
    /// Never: see the type's docs for what `0` and extreme durations mean.
    #[must_use]
    pub const fn new(count: u32, per: Duration) -> Self {
        Self { count, per }
    }

    /// `count` requests per second.
    ///
    /// # Panics
    /// Never (`per_second(0)` refuses everything).
    #[must_use]
    pub const fn per_second(count: u32) -> Self {
        Self::new(count, Duration::from_secs(1))
    }

    /// `count` requests per minute.
    ///
    /// # Panics
    /// Never (`per_minute(0)` refuses everything).
    #[must_use]
    pub const fn per_minute(count: u32) -> Self {
        Self::new(count, Duration::from_secs(60))
    }

    /// The request count.
    #[must_use]
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The period.
    #[must_use]
    pub const fn per(&self) -> Duration {
        self.per
    }

    /// The steady-state spacing between two requests (`per / count`, rounded down to the
    /// nanosecond); `Duration::MAX` for a zero count.
    ///
    /// # Panics
    /// Never.
    #[must_use]
    pub const fn interval(&self) -> Duration {
        if self.count == 0 {
            return Duration::MAX;
        }
        // Exact for every `per`, `Duration::MAX` included: whole seconds first, then the
        // remainder (less than `count` seconds, so below 2^32 · 10^9 < 2^64 nanoseconds).
        let count = self.count as u64;
        let secs = self.per.as_secs();
        let rest = (secs % count) * 1_000_000_000 + self.per.subsec_nanos() as u64;
        Duration::new(secs / count, (rest / count) as u32)
    }
}
