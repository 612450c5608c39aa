//! The per-token token bucket behind FakeNotion's `429 rate_limited`.
//!
//! Hand-written rather than borrowed from a crate because it must run on
//! `tokio::time::Instant` (so paused-time tests control it) and be tiny.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::lock;

/// A rate: `per_second` tokens refill each second, at most `burst` saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimit {
    per_second: u32,
    burst: u32,
}

impl RateLimit {
    /// Both values are clamped to at least 1.
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: per_second.max(1),
            burst: burst.max(1),
        }
    }
}

/// One token's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(limit: RateLimit, now: Instant) -> Self {
        Self {
            tokens: f64::from(limit.burst),
            last: now,
        }
    }

    /// Takes one token, or says how long until one is there. A refused
    /// request takes nothing.
    fn try_take(&mut self, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let rate = f64::from(limit.per_second);
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(limit.burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// Buckets keyed by bearer token; `None` limit admits everything.
#[derive(Debug)]
pub(crate) struct Buckets {
    limit: Option<RateLimit>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Buckets {
    pub(crate) fn new(limit: Option<RateLimit>) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` when `token` may make a request now; otherwise the whole number
    /// of seconds (at least 1) to put in `Retry-After`.
    pub(crate) fn try_acquire(&self, token: &str, now: Instant) -> Result<(), u64> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let mut buckets = lock(&self.buckets);
        let bucket = buckets
            .entry(token.to_owned())
            .or_insert_with(|| Bucket::full(limit, now));
        bucket.try_take(limit, now).map_err(retry_after_secs)
    }
}

/// `ceil(wait)` in whole seconds, never less than 1.
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let buckets = Buckets::new(Some(RateLimit::new(3, 3)));
        for _ in 0..3 {
            assert_eq!(buckets.try_acquire("a", t0), Ok(()));
        }
        assert_eq!(buckets.try_acquire("a", t0), Err(1));
        // Refused requests consumed nothing: a third of a second later there
        // is exactly one token again.
        assert_eq!(buckets.try_acquire("a", t0), Err(1));
        let later = t0 + Duration::from_millis(334);
        assert_eq!(buckets.try_acquire("a", later), Ok(()));
        assert_eq!(buckets.try_acquire("a", later), Err(1));
        // Another token has its own bucket.
        assert_eq!(buckets.try_acquire("b", later), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn no_limit_admits_everything() {
        let t0 = Instant::now();
        let buckets = Buckets::new(Some(RateLimit::new(1, 1)));
        assert_eq!(buckets.try_acquire("a", t0), Ok(()));
        assert_eq!(buckets.try_acquire("a", t0), Err(1));
        let unlimited = Buckets::new(None);
        for _ in 0..100 {
            assert_eq!(unlimited.try_acquire("a", t0), Ok(()));
        }
    }
}
