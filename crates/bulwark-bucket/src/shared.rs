//! State shared by every clone of a layer: the buckets, the counters, the settings.

use std::{
    cell::Cell,
    fmt,
    hash::Hash,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    time::Duration,
};

use bulwark_http::{QuotaExhausted, QuotaPolicy, RateLimited, MAX_RETRY_AFTER};
use crossbeam_utils::CachePadded;
use tokio::time::Instant;

use crate::{
    gcra::Gcra,
    metrics::Metrics,
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

/// The buckets and what defines them, shared by every clone of a layer (and by clones on
/// which only a [`Policy`] setter was called).
pub(crate) struct Shared<K> {
    pub(crate) mode: Mode,
    pub(crate) rate: Rate,
    pub(crate) burst: u32,
    start: Instant,
    global: Arc<LocalBucket>,
    keyed: Option<Keys<K>>,
    /// Striped per thread (summed by `stats`), so threads do not write one cache line.
    counters: Box<[CachePadded<Counters>]>,
    /// The instance's metric handles (its `name` label).
    pub(crate) metrics: Metrics,
    /// Buckets in Redis, with the local ones as the fallback.
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<crate::redis_store::Binding<K>>,
}

/// A keyed layer's buckets, made when its first service is made (or its first keyed request
/// comes), with the longest `max_wait` of the layers sharing them by then: a longer one set on
/// a clone afterwards is capped at it. (The cap dates from an idle timer that could forget a
/// key with waiters; keys with waiters are never forgotten now, so it is conservative.)
struct Keys<K> {
    max_keys: u64,
    /// The longest `max_wait` set on a layer sharing these buckets, in nanoseconds.
    longest_wait: AtomicU64,
    /// The buckets, and the longest wait granted to the layers sharing them.
    map: OnceLock<(KeyedBuckets<K>, u64)>,
}

impl<K> fmt::Debug for Shared<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &self.metrics.name())
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("keyed", &self.keyed.is_some())
            .finish_non_exhaustive()
    }
}

/// What defines a bucket, collected by the layer's setters. Changing any of these gives the
/// layer new buckets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) rate: Rate,
    pub(crate) burst: Option<u32>,
    /// As set: 0 is kept here so `validate` can report it, and taken as 1.
    pub(crate) max_keys: u64,
}

/// How one layer's requests use the buckets. Changing these keeps the buckets shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Nanoseconds (`Duration::MAX` saturates to `u64::MAX`, about 584 years).
    pub(crate) max_wait: u64,
    pub(crate) pause_on_retry_after: bool,
    pub(crate) emit_headers: bool,
    /// With no reset announced, how often one request checks whether an exhausted quota
    /// came back (nanoseconds).
    pub(crate) quota_recheck: u64,
    /// Warn when the upstream's allowance falls under this share, in thousandths (`None`:
    /// do not read usage headers from answers).
    pub(crate) warn_below_permille: Option<u16>,
}

/// Stripes for per-thread state: the machine's parallelism as a power of two (at most 64).
fn stripes() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 64)
        .next_power_of_two()
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's stripe number (assigned round-robin on first use).
#[inline]
fn thread_stripe() -> usize {
    THREAD_STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed);
        s.set(v);
        v
    })
}

/// A reference to [`Shared`] with a reference count of its own, on its own cache lines.
pub(crate) type Lane<K> = Arc<CachePadded<Arc<Shared<K>>>>;

/// What the layer and its services hold: the shared state, and one [`Lane`] per stripe.
///
/// A response future keeps the state alive (to pause the bucket on an upstream 429, to add
/// headers), so it holds a reference. Cloning the state's own `Arc` on every call would make
/// every thread write one reference count, next to the settings every call reads; a call
/// takes its thread's lane instead, so threads on different stripes write different lines.
pub(crate) struct Hub<K> {
    shared: Arc<Shared<K>>,
    lanes: Box<[Lane<K>]>,
}

impl<K> Hub<K> {
    pub(crate) fn new(shared: Shared<K>) -> Self {
        let shared = Arc::new(shared);
        let lanes = (0..stripes())
            .map(|_| Arc::new(CachePadded::new(Arc::clone(&shared))))
            .collect();
        Self { shared, lanes }
    }

    /// A reference to the state for a call on this thread.
    #[inline]
    pub(crate) fn lane(&self) -> Lane<K> {
        // `lanes.len()` is a power of two.
        Arc::clone(&self.lanes[thread_stripe() & (self.lanes.len() - 1)])
    }
}

impl<K> std::ops::Deref for Hub<K> {
    type Target = Shared<K>;

    fn deref(&self) -> &Shared<K> {
        &self.shared
    }
}

impl<K> fmt::Debug for Hub<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

/// A request's bucket. The layer's shared one is reached through [`Shared`], so taking it
/// writes no reference count (one more atomic write per call, on the bucket's own line).
#[derive(Debug)]
pub(crate) enum BucketRef {
    Global,
    Own(Arc<LocalBucket>),
}

impl BucketRef {
    #[inline]
    pub(crate) fn get<'a, K>(&'a self, shared: &'a Shared<K>) -> &'a LocalBucket {
        match self {
            Self::Global => &shared.global,
            Self::Own(bucket) => bucket,
        }
    }

    /// An owned handle (for a reservation, which outlives the borrow).
    pub(crate) fn to_arc<K>(&self, shared: &Shared<K>) -> Arc<LocalBucket> {
        match self {
            Self::Global => Arc::clone(&shared.global),
            Self::Own(bucket) => Arc::clone(bucket),
        }
    }
}

/// `d` in nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<K: Hash + Eq + Send + Sync + 'static> Shared<K> {
    /// New buckets; a keyed layer's grant waits of `max_wait` nanoseconds (or the longest any
    /// sharing layer sets before the first service is made).
    pub(crate) fn new(
        settings: Settings,
        keyed: bool,
        max_wait: u64,
        name: std::borrow::Cow<'static, str>,
    ) -> Self {
        let rate = settings.rate;
        let burst = settings.burst.unwrap_or(rate.count()).max(1);
        let mode = if rate.count() == 0 {
            Mode::Closed
        } else if rate.per().is_zero() {
            Mode::Unlimited
        } else {
            Mode::Limited(Gcra::new(rate.count(), rate.per(), burst))
        };
        let start = Instant::now();
        Self {
            mode,
            rate,
            burst,
            start,
            global: Arc::default(),
            keyed: keyed.then(|| Keys {
                max_keys: settings.max_keys.max(1),
                longest_wait: AtomicU64::new(max_wait),
                map: OnceLock::new(),
            }),
            counters: (0..stripes()).map(|_| CachePadded::default()).collect(),
            metrics: Metrics::new(name),
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

    /// The keyed buckets (made on first use), and the longest wait granted on them.
    fn keyed_map<'a>(&'a self, keys: &'a Keys<K>) -> &'a (KeyedBuckets<K>, u64) {
        keys.map.get_or_init(|| {
            let wait = keys.longest_wait.load(Ordering::SeqCst);
            (KeyedBuckets::new(keys.max_keys), wait)
        })
    }

    /// The bucket for `key` (the shared one for `None`).
    pub(crate) fn bucket(&self, key: Option<K>) -> BucketRef {
        match (key, &self.keyed) {
            (Some(key), Some(keys)) => {
                BucketRef::Own(self.keyed_map(keys).0.get(key, || self.now()))
            }
            _ => BucketRef::Global,
        }
    }

    /// The `max_wait` a new service of a layer that asks for `max_wait` gets: that, except
    /// that a keyed layer's waits are capped at the longest granted when its buckets were made
    /// (see `TokenBucketLayer`'s `# Clone`). Makes the keyed buckets if they are not made yet.
    pub(crate) fn wait_limit(&self, max_wait: u64) -> u64 {
        match &self.keyed {
            Some(keys) => max_wait.min(self.keyed_map(keys).1),
            None => max_wait,
        }
    }

    /// Ends the quota lock of every bucket (the global one and each key's).
    pub(crate) fn clear_quota_locks(&self) {
        self.global.quota.clear();
        if let Some((map, _)) = self.keyed.as_ref().and_then(|keys| keys.map.get()) {
            map.for_each(|bucket| bucket.quota.clear());
        }
    }

    /// Keys currently held.
    pub(crate) fn keys_held(&self) -> u64 {
        self.keyed
            .as_ref()
            .and_then(|keys| keys.map.get())
            .map_or(0, |(map, _)| map.len())
    }
}

impl<K> Shared<K> {
    /// A layer sharing these buckets asks for waits of up to `max_wait` nanoseconds.
    pub(crate) fn note_max_wait(&self, max_wait: u64) {
        if let Some(keys) = &self.keyed {
            keys.longest_wait.fetch_max(max_wait, Ordering::SeqCst);
        }
    }

    /// The longest wait the keyed buckets already made cover (`None`: unkeyed, or not made
    /// yet, so any wait will be covered).
    pub(crate) fn covered_wait(&self) -> Option<u64> {
        self.keyed
            .as_ref()
            .and_then(|keys| keys.map.get())
            .map(|(_, wait)| *wait)
    }
}

impl<K> Shared<K> {
    /// This thread's counters.
    #[inline]
    pub(crate) fn counters(&self) -> &Counters {
        // `counters.len()` is a power of two.
        &self.counters[thread_stripe() & (self.counters.len() - 1)]
    }

    fn sum(&self, field: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        self.counters
            .iter()
            .map(|c| field(c).load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    pub(crate) fn now(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.start))
    }

    pub(crate) fn instant_at(&self, nanos: u64) -> Instant {
        let at = Duration::from_nanos(nanos);
        self.start
            .checked_add(at)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365 * 30))
    }

    /// Counts a refusal and makes its error; `retry_after` is capped at [`MAX_RETRY_AFTER`]
    /// (one year: the longest wait a bulwark client accepts, and what an endless pause or a
    /// zero rate reports).
    #[inline]
    pub(crate) fn reject(&self, retry_after: Duration) -> RateLimited {
        let retry_after = retry_after.min(MAX_RETRY_AFTER);
        self.counters().rejected.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "bulwark_bucket", retry_after_ms = retry_after.as_millis() as u64, "rate limited");
        self.metrics.rejected();
        RateLimited::new(retry_after).with_policy(self.policy())
    }

    /// Counts a refusal for an exhausted upstream quota and passes it on.
    pub(crate) fn exhausted(&self, refusal: QuotaExhausted) -> QuotaExhausted {
        self.counters().rejected.fetch_add(1, Ordering::Relaxed);
        self.metrics.exhausted();
        tracing::debug!(target: "bulwark_bucket", retry_after_s = refusal.retry_after.as_secs(), "refused: upstream quota exhausted");
        refusal
    }

    /// Counts a request that waits `wait` nanoseconds for its slot.
    #[inline]
    pub(crate) fn note_wait(&self, wait: u64) {
        self.counters().waited.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "bulwark_bucket", wait_ms = wait / 1_000_000, "waiting for a token");
        self.metrics.queued(wait);
    }

    /// The policy that goes with `RateLimited` and the RateLimit headers.
    /// A zero rate's quota is 0.
    pub(crate) fn policy(&self) -> QuotaPolicy {
        QuotaPolicy {
            quota: match self.mode {
                Mode::Closed => 0,
                Mode::Limited(_) | Mode::Unlimited => u64::from(self.burst),
            },
            window: self.rate.per(),
        }
    }

    pub(crate) fn stats(&self, keys: u64) -> BucketStats {
        BucketStats {
            admitted: self.sum(|c| &c.admitted),
            waited: self.sum(|c| &c.waited),
            rejected: self.sum(|c| &c.rejected),
            paused: self.sum(|c| &c.paused),
            fallbacks: self.sum(|c| &c.fallbacks),
            keys,
        }
    }
}
