//! Where buckets live: one local bucket, or one per key in a bounded map.

use std::{
    hash::Hash,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::gcra::Gcra;

/// One bucket: its theoretical arrival time, in nanoseconds since the layer was created.
#[derive(Debug, Default)]
pub(crate) struct LocalBucket {
    tat: AtomicU64,
}

/// A successful acquisition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    /// Nanoseconds to wait before sending.
    pub(crate) wait: u64,
    /// The TAT this grant moved the bucket to (to give the slot back if the waiter leaves).
    pub(crate) tat: u64,
}

impl LocalBucket {
    /// Takes a token now, or reserves the next slot if it comes within `max_wait`; otherwise
    /// `Err(wait)` and nothing is reserved.
    #[inline]
    pub(crate) fn acquire(&self, gcra: &Gcra, now: u64, max_wait: u64) -> Result<Grant, u64> {
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let decision = gcra.decide(tat, now);
            if decision.wait > max_wait {
                return Err(decision.wait);
            }
            match self.tat.compare_exchange_weak(
                tat,
                decision.new_tat,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Grant {
                        wait: decision.wait,
                        tat: decision.new_tat,
                    })
                }
                Err(actual) => tat = actual,
            }
        }
    }

    /// Gives a reserved slot back, if nobody reserved after it (otherwise the slot simply
    /// passes unused: the TAT is a time, so nothing is lost for good).
    pub(crate) fn give_back(&self, gcra: &Gcra, grant: Grant) -> bool {
        self.tat
            .compare_exchange(
                grant.tat,
                grant.tat.saturating_sub(gcra.interval),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Counts an admission decided elsewhere (by Redis) at `now`, whatever the bucket holds,
    /// so that a fallback to this bucket starts from this process's recent use.
    #[cfg(feature = "redis")]
    pub(crate) fn charge(&self, gcra: &Gcra, now: u64) {
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(gcra.decide(tat, now).new_tat)
            });
    }

    /// Lets nothing through before `until` (nanoseconds since creation).
    pub(crate) fn pause(&self, gcra: &Gcra, until: u64) {
        self.tat
            .fetch_max(gcra.paused_until(until), Ordering::AcqRel);
    }

    pub(crate) fn tat(&self) -> u64 {
        self.tat.load(Ordering::Acquire)
    }
}

/// One bucket per key, at most `max_keys` of them; idle keys are evicted first.
pub(crate) struct KeyedBuckets<K> {
    cache: moka::sync::Cache<K, Arc<LocalBucket>>,
}

/// How long a key is kept after its last use: until its bucket is full again, never sooner.
///
/// A bucket's TAT may lie far ahead of the last use — waiters queued up to `max_wait`, a
/// `Retry-After` pause — so a fixed idle time would forget a busy key and let the next
/// request through at once (regression: 30 queued waiters, then a new request 2.5 s later
/// went straight through). Each use therefore keeps the key for `base` (longer than any
/// reservation made at that use can reach) plus however far the TAT already lies ahead.
struct UntilFull {
    base: Duration,
    start: tokio::time::Instant,
}

impl UntilFull {
    fn keep(&self, bucket: &LocalBucket) -> Option<Duration> {
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let ahead = Duration::from_nanos(bucket.tat().saturating_sub(now));
        Some(self.base.saturating_add(ahead))
    }
}

// moka hands its own clock's `std::time::Instant`s to these hooks; they are not used, the
// layer's tokio clock is (so paused-time tests see the same clock as the buckets).
#[allow(clippy::disallowed_types)]
impl<K> moka::Expiry<K, Arc<LocalBucket>> for UntilFull {
    fn expire_after_create(
        &self,
        _key: &K,
        value: &Arc<LocalBucket>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        self.keep(value)
    }

    fn expire_after_read(
        &self,
        _key: &K,
        value: &Arc<LocalBucket>,
        _read_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
        _last_modified_at: std::time::Instant,
    ) -> Option<Duration> {
        self.keep(value)
    }
}

impl<K> std::fmt::Debug for KeyedBuckets<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedBuckets")
            .field("keys", &self.cache.entry_count())
            .finish()
    }
}

impl<K> KeyedBuckets<K>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    /// `idle`: how long a key may go unused, beyond the time its bucket's TAT lies ahead,
    /// before it is dropped (its bucket is full again by then, so forgetting it changes
    /// nothing). `start` is the layer's clock origin (TATs count from it).
    pub(crate) fn new(max_keys: u64, idle: Duration, start: tokio::time::Instant) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_keys)
                .expire_after(UntilFull { base: idle, start })
                .build(),
        }
    }

    pub(crate) fn get(&self, key: K) -> Arc<LocalBucket> {
        self.cache
            .get_with(key, || Arc::new(LocalBucket::default()))
    }

    /// Keys held (after pending evictions run).
    pub(crate) fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a keyed bucket with 30 queued waiters was forgotten after 1 s without a new
    /// request, and the next request went straight through. A key is now kept while its TAT
    /// lies ahead, plus the base idle time.
    #[tokio::test(start_paused = true)]
    async fn a_busy_key_is_kept_until_its_bucket_is_full_again() {
        let start = tokio::time::Instant::now();
        let keep = UntilFull {
            base: Duration::from_secs(2),
            start,
        };
        let bucket = LocalBucket::default();
        assert_eq!(keep.keep(&bucket), Some(Duration::from_secs(2)));
        // Waiters reserved slots up to 10 s ahead (or a Retry-After paused it that long).
        bucket.tat.store(10_000_000_000, Ordering::Release);
        assert_eq!(keep.keep(&bucket), Some(Duration::from_secs(12)));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(keep.keep(&bucket), Some(Duration::from_secs(8)));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(keep.keep(&bucket), Some(Duration::from_secs(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_bounded_and_shared() {
        let keyed = KeyedBuckets::new(10, Duration::from_secs(1), tokio::time::Instant::now());
        let a = keyed.get("a");
        assert!(Arc::ptr_eq(&a, &keyed.get("a")));
        for i in 0..1000 {
            let _ = keyed.get(if i % 2 == 0 { "x" } else { "y" });
        }
        assert!(keyed.len() <= 10);
    }
}
