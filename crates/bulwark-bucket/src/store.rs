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

impl<K> KeyedBuckets<K>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    /// `idle`: how long a key may go unused before it is dropped; see [`idle_time`] for why
    /// its bucket is full again by then, so forgetting it changes nothing.
    pub(crate) fn new(max_keys: u64, idle: Duration) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_keys)
                .time_to_idle(idle)
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

/// How long a key may go unused before it is forgotten: the time a drained bucket takes to
/// refill, plus the longest reservation one use can make (`max_wait`, one interval), at least
/// 1 s. Waiters queued behind a use reserve at most `max_wait` ahead, so by then the bucket is
/// full again.
///
/// Regression: the idle time used to be the refill time alone (1 s for 3/s): a key with 30
/// queued waiters was forgotten after 1 s without a new request, and the next request went
/// straight through. Not covered: a `Retry-After` pause longer than this with no request for
/// the key during it (the next request after that may go early and meet the upstream's 429,
/// which pauses the bucket again). A per-entry expiry that follows the TAT covers that too,
/// but costs about 120 ns per keyed call (moka's timer wheel; measured in `bucket_keyed`).
pub(crate) fn idle_time(gcra: &Gcra, max_wait: Duration) -> Duration {
    Duration::from_nanos(gcra.capacity)
        .max(Duration::from_secs(1))
        .saturating_add(max_wait)
        .saturating_add(Duration::from_nanos(gcra.interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a keyed bucket with 30 queued waiters was forgotten after 1 s without a new
    /// request, and the next request went straight through.
    #[test]
    fn keys_outlive_every_reservation() {
        let gcra = Gcra::new(3, Duration::from_secs(1), 3);
        let idle = idle_time(&gcra, Duration::from_secs(30));
        // A waiter may sit up to 30 s; its slot ends one interval later; then the bucket
        // refills in 1 s.
        assert!(idle >= Duration::from_secs(31) + Duration::from_nanos(gcra.interval));
        assert_eq!(idle_time(&gcra, Duration::MAX), Duration::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_bounded_and_shared() {
        let keyed = KeyedBuckets::new(10, Duration::from_secs(1));
        let a = keyed.get("a");
        assert!(Arc::ptr_eq(&a, &keyed.get("a")));
        for i in 0..1000 {
            let _ = keyed.get(if i % 2 == 0 { "x" } else { "y" });
        }
        assert!(keyed.len() <= 10);
    }
}
