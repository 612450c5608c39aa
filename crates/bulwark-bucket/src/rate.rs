//! [`Rate`]: how many requests per how long.

use std::time::Duration;

/// `count` requests per `per`.
///
/// Every value means something, so none is invalid: `Rate::new(0, _)` admits nothing (every
/// request is refused), and a zero `per` admits everything.
///
/// ```
/// use std::time::Duration;
/// use bulwark_bucket::Rate;
///
/// assert_eq!(Rate::per_second(3), Rate::new(3, Duration::from_secs(1)));
/// assert_eq!(Rate::per_minute(90).interval(), Duration::from_nanos(666_666_666));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u32,
    per: Duration,
}

impl Rate {
    /// `count` requests per `per`.
    #[must_use]
    pub const fn new(count: u32, per: Duration) -> Self {
        Self { count, per }
    }

    /// `count` requests per second.
    #[must_use]
    pub const fn per_second(count: u32) -> Self {
        Self::new(count, Duration::from_secs(1))
    }

    /// `count` requests per minute.
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

    /// The steady-state spacing between two requests (`per / count`); `Duration::MAX` for a
    /// zero count.
    #[must_use]
    pub const fn interval(&self) -> Duration {
        if self.count == 0 {
            return Duration::MAX;
        }
        Duration::from_nanos((self.per.as_nanos() / self.count as u128) as u64)
    }
}
