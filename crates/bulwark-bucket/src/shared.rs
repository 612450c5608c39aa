//! State shared by every clone of a layer: the buckets, the counters, the settings.

use std::{
    fmt,
    hash::Hash,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use bulwark_http::{QuotaPolicy, RateLimited};
use tokio::time::Instant;

use crate::{
    gcra::Gcra,
    rate::Rate,
    stats::BucketStats,
    store::{KeyedBuckets, LocalBucket},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A zero period: no limit.
    Unlimited,
    /// A zero count: nothing passes.
    Closed,
    Limited(Gcra),
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) admitted: AtomicU64,
    pub(crate) waited: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) paused: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
}

pub(crate) struct Shared<K> {
    pub(crate) mode: Mode,
    pub(crate) rate: Rate,
    pub(crate) burst: u32,
    pub(crate) max_wait: u64,
    pub(crate) pause_on_retry_after: bool,
    pub(crate) emit_headers: bool,
    start: Instant,
    global: Arc<LocalBucket>,
    keyed: Option<KeyedBuckets<K>>,
    pub(crate) counters: Counters,
    /// Buckets in Redis, with the local ones as the fallback.
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<crate::redis_store::Binding<K>>,
}

impl<K> fmt::Debug for Shared<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("max_wait_ns", &self.max_wait)
            .finish_non_exhaustive()
    }
}

/// Settings collected by the layer's setters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) rate: Rate,
    pub(crate) burst: Option<u32>,
    pub(crate) max_wait: Duration,
    pub(crate) max_keys: u64,
    pub(crate) pause_on_retry_after: bool,
    pub(crate) emit_headers: bool,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<K: Hash + Eq + Send + Sync + 'static> Shared<K> {
    pub(crate) fn new(settings: Settings, keyed: bool) -> Self {
        let rate = settings.rate;
        let burst = settings.burst.unwrap_or(rate.count()).max(1);
        let mode = if rate.count() == 0 {
            Mode::Closed
        } else if rate.per().is_zero() {
            Mode::Unlimited
        } else {
            Mode::Limited(Gcra::new(rate.count(), rate.per(), burst))
        };
        let idle = match mode {
            Mode::Limited(g) => Duration::from_nanos(g.capacity).max(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        };
        Self {
            mode,
            rate,
            burst,
            max_wait: nanos(settings.max_wait),
            pause_on_retry_after: settings.pause_on_retry_after,
            emit_headers: settings.emit_headers,
            start: Instant::now(),
            global: Arc::default(),
            keyed: keyed.then(|| KeyedBuckets::new(settings.max_keys, idle)),
            counters: Counters::default(),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    /// Keeps the buckets in Redis (`None`: local only).
    #[cfg(feature = "redis")]
    pub(crate) fn with_redis(mut self, redis: Option<crate::redis_store::Binding<K>>) -> Self {
        self.redis = redis;
        self
    }

    /// The bucket for `key` (the shared one for `None`).
    pub(crate) fn bucket(&self, key: Option<K>) -> Arc<LocalBucket> {
        match (key, &self.keyed) {
            (Some(key), Some(keyed)) => keyed.get(key),
            _ => Arc::clone(&self.global),
        }
    }

    /// Keys currently held.
    pub(crate) fn keys(&self) -> u64 {
        self.keyed.as_ref().map_or(0, KeyedBuckets::len)
    }
}

impl<K> Shared<K> {
    pub(crate) fn now(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.start))
    }

    pub(crate) fn instant_at(&self, nanos: u64) -> Instant {
        self.start + Duration::from_nanos(nanos)
    }

    /// Counts a refusal and makes its error.
    #[inline]
    pub(crate) fn reject(&self, retry_after: Duration) -> RateLimited {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "bulwark_bucket", retry_after_ms = retry_after.as_millis() as u64, "rate limited");
        #[cfg(feature = "metrics")]
        metrics::counter!("bulwark_bucket_rejected_total").increment(1);
        RateLimited::new(retry_after).with_policy(self.policy())
    }

    /// Counts a request that waits `wait` nanoseconds for its slot.
    #[inline]
    pub(crate) fn note_wait(&self, wait: u64) {
        self.counters.waited.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "bulwark_bucket", wait_ms = wait / 1_000_000, "waiting for a token");
        #[cfg(feature = "metrics")]
        metrics::counter!("bulwark_bucket_waited_total").increment(1);
    }

    /// The policy that goes with `RateLimited` and the RateLimit headers.
    pub(crate) fn policy(&self) -> QuotaPolicy {
        QuotaPolicy {
            quota: u64::from(self.burst),
            window: self.rate.per(),
        }
    }

    pub(crate) fn stats(&self, keys: u64) -> BucketStats {
        BucketStats {
            admitted: self.counters.admitted.load(Ordering::Relaxed),
            waited: self.counters.waited.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
            paused: self.counters.paused.load(Ordering::Relaxed),
            fallbacks: self.counters.fallbacks.load(Ordering::Relaxed),
            keys,
        }
    }
}
