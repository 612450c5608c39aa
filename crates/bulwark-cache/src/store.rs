//! The in-memory store (`quick_cache`, weighed by bytes) and the in-flight map for coalescing.
//!
//! Each entry expires on its own schedule ([`KeepUntilUseless`]), from its own lifetimes, so
//! the store does not depend on the layer's lifetime settings: changing them never needs a
//! new store.

use std::{
    collections::{hash_map::RandomState, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use tokio::{sync::watch, time::Instant};

use crate::{
    body::CacheBody,
    key::CacheKey,
    policy::Lifetimes,
    shared::Remote,
    stats::{CacheStats, Counters},
    status::{CacheStatus, CACHE_STATUS},
};

/// A stored response.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) stored_at: Instant,
    /// `Age` the upstream reported when it was stored.
    pub(crate) initial_age: Duration,
    pub(crate) lifetimes: Lifetimes,
    /// The headers of the last fresh hit, with its `Age` and `Cache-Status`, for its whole
    /// second of age: hits within that second clone them instead of rendering both again.
    pub(crate) hit_head: HitHead,
}

/// See [`Entry::hit_head`].
#[derive(Debug, Default)]
pub(crate) struct HitHead(Mutex<Option<(u64, i64, HeaderMap)>>);

impl Entry {
    pub(crate) fn age(&self, now: Instant) -> Duration {
        self.initial_age
            .saturating_add(now.saturating_duration_since(self.stored_at))
    }

    fn weight(&self) -> u64 {
        let headers = self.headers.iter().fold(0u64, |sum, (k, v)| {
            sum.saturating_add((k.as_str().len() + v.len() + 32) as u64)
        });
        (self.body.len() as u64)
            .saturating_add(headers)
            .saturating_add(ENTRY_OVERHEAD)
    }

    /// A fresh hit at `now`: [`respond`](Self::respond) with `Cache-Status: bulwark; hit;
    /// ttl=…`, the headers rendered once per second of age (and per ttl) and cloned after that.
    pub(crate) fn respond_fresh<B>(&self, age: Duration, now: Instant) -> Response<CacheBody<B>> {
        let ttl = crate::status::values::ttl(self.lifetimes.fresh, age);
        let age_secs = age.as_secs();
        // `try_lock`: threads racing for one entry render on their own rather than wait.
        if let Ok(mut head) = self.hit_head.0.try_lock() {
            let headers = match &*head {
                Some((a, t, headers)) if *a == age_secs && *t == ttl => headers.clone(),
                _ => {
                    let res: Response<CacheBody<B>> = self.respond(
                        CacheStatus::Fresh { age },
                        crate::status::values::hit(self.lifetimes.fresh, age, false),
                        now,
                    );
                    *head = Some((age_secs, ttl, res.headers().clone()));
                    return res;
                }
            };
            drop(head);
            let mut res = Response::new(CacheBody::buffered(self.body.clone()));
            *res.status_mut() = self.status;
            *res.headers_mut() = headers;
            res.extensions_mut().insert(CacheStatus::Fresh { age });
            return res;
        }
        self.respond(
            CacheStatus::Fresh { age },
            crate::status::values::hit(self.lifetimes.fresh, age, false),
            now,
        )
    }

    /// The stored response, with `Age`, `Cache-Status` and the [`CacheStatus`] extension.
    pub(crate) fn respond<B>(
        &self,
        status: CacheStatus,
        cache_status: HeaderValue,
        now: Instant,
    ) -> Response<CacheBody<B>> {
        let mut res = Response::new(CacheBody::buffered(self.body.clone()));
        *res.status_mut() = self.status;
        *res.headers_mut() = self.headers.clone();
        let age = self.age(now);
        res.headers_mut()
            .insert(http::header::AGE, HeaderValue::from(age.as_secs()));
        // Appended: an upstream's own member, stored with the copy, stays first.
        res.headers_mut().append(CACHE_STATUS, cache_status);
        res.extensions_mut().insert(status);
        res
    }
}

/// What an entry weighs besides its body and headers; no entry weighs less, so a
/// [`max_bytes`](crate::StaleCacheLayer::max_bytes) below it stores nothing.
pub(crate) const ENTRY_OVERHEAD: u64 = 128;

/// How a coalesced leader's request ended, for its followers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pending,
    /// A fresh copy was stored, with this `stored_at`.
    Stored(Instant),
    /// The upstream failed (or answered something not storable).
    NotStored,
}

pub(crate) struct Store {
    pub(crate) cache: Map,
    /// Misses in flight, by their key's hash (see [`Inflight`]).
    pub(crate) inflight: Mutex<HashMap<u64, Inflight, foldhash::fast::FixedState>>,
    /// Identifies each [`Leader`]'s entry in `inflight`.
    next_leader: AtomicU64,
    pub(crate) hasher: RandomState,
    pub(crate) counters: Arc<Counters>,
    /// The shared second level, if any.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) remote: Remote,
    /// The instance's metric handles (its `name` label).
    pub(crate) metrics: crate::metrics::Metrics,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.metrics.name())
            .field("entries", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store of at most `max_entries` entries and `max_bytes` bytes (each at least 1).
    pub(crate) fn new(
        max_entries: u64,
        max_bytes: u64,
        remote: Remote,
        name: std::borrow::Cow<'static, str>,
    ) -> Self {
        let counters = Arc::new(Counters::default());
        let (capacity, floor) = capacity(max_entries, max_bytes);
        let mut options = quick_cache::OptionsBuilder::new();
        options
            .estimated_items_capacity(
                usize::try_from(max_entries.clamp(1, ESTIMATED_ITEMS_AT_MOST)).unwrap_or(1),
            )
            .weight_capacity(capacity)
            // One shard, its "hot" share the whole of it: `quick_cache` refuses an entry heavier
            // than a shard's hot share, and any entry up to `max_bytes` must be stored, as one
            // heavier than a smaller shard's would silently not be (and take its key's stale
            // copy with it).
            .shards(1)
            .hot_allocation(1.0);
        #[allow(clippy::expect_used)] // both settings it requires are given above
        let options = options
            .build()
            .expect("estimated items and weight capacity are set");
        let cache = quick_cache::sync::Cache::with_options(
            options,
            Weigh { floor },
            foldhash::fast::FixedState::default(),
            Evictions,
        );
        Self {
            cache,
            inflight: Mutex::default(),
            next_leader: AtomicU64::new(0),
            hasher: RandomState::new(),
            counters,
            remote,
            metrics: crate::metrics::Metrics::new(name),
        }
    }

    /// Stores `entry` under `key`, counting the entries evicted for room (a replaced copy of
    /// the same key is not an eviction).
    pub(crate) fn insert(&self, key: CacheKey, entry: Arc<Entry>) {
        let hash = key.hash_value();
        let out = self.cache.insert_with_lifecycle(key, entry);
        let replaced = out.hashes[..out.count.min(4)].contains(&hash);
        let evicted = out.count - usize::from(replaced);
        if evicted > 0 {
            self.counters
                .evictions
                .fetch_add(evicted as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.cache.iter().map(|(_, e)| e.body.len() as u64).sum()
    }

    /// A snapshot of the counters, the bytes and the entries held.
    pub(crate) fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let bytes = self.bytes();
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            stale_served: c.stale_served.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            stores: c.stores.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            bytes,
            entries: self.cache.len() as u64,
            shared_loads: c.shared_loads.load(Ordering::Relaxed),
            shared_unavailable: c.shared_unavailable.load(Ordering::Relaxed),
        }
    }
}

/// The in-memory map: `quick_cache` (S3-FIFO, weighed), keyed by [`CacheKey`], whose own
/// hash is already a keyed SipHash of the whole key (hashed again by `foldhash` only to spread
/// it). Entries are not timed out: one too old to serve is still found (a read then says
/// `fwd=stale`) until it is replaced or evicted; the bounds keep the memory.
pub(crate) type Map =
    quick_cache::sync::Cache<CacheKey, Arc<Entry>, Weigh, foldhash::fast::FixedState, Evictions>;

/// An entry's weight: its bytes, at least `floor` (see [`capacity`]).
#[derive(Debug, Clone)]
pub(crate) struct Weigh {
    floor: u64,
}

impl quick_cache::Weighter<CacheKey, Arc<Entry>> for Weigh {
    fn weight(&self, _key: &CacheKey, entry: &Arc<Entry>) -> u64 {
        entry.weight().clamp(self.floor, u64::from(u32::MAX))
    }
}

/// Notes the keys an insertion put out (evicted for room, or the inserted key's own old entry,
/// which `quick_cache` reports alike): [`Store::insert`] counts the evictions among them.
#[derive(Debug, Clone)]
pub(crate) struct Evictions;

impl quick_cache::Lifecycle<CacheKey, Arc<Entry>> for Evictions {
    type RequestState = PutOut;

    fn begin_request(&self) -> Self::RequestState {
        PutOut::default()
    }

    fn on_evict(&self, state: &mut PutOut, key: CacheKey, _entry: Arc<Entry>) {
        if let Some(slot) = state.hashes.get_mut(state.count) {
            *slot = key.hash_value();
        }
        state.count += 1;
    }
}

/// The keys one insertion put out: how many, and the hashes of the first few (no allocation;
/// past four, a replaced copy among the rest would be counted as an eviction).
#[derive(Debug, Default)]
pub(crate) struct PutOut {
    hashes: [u64; 4],
    count: usize,
}

/// The map's estimate of its entry count (for its ghost list and tables), at most this.
const ESTIMATED_ITEMS_AT_MOST: u64 = 1 << 20;

/// The map's capacity and the least weight of an entry, so that both `max_entries` and
/// `max_bytes` hold with one weigher: each entry weighs at least `max_bytes / max_entries`
/// (rounded up). Weights are kept within `u32` (so sums never overflow): past that, the
/// capacity is counted in entries of `u32::MAX`.
fn capacity(max_entries: u64, max_bytes: u64) -> (u64, u64) {
    let (entries, bytes) = (max_entries.max(1), max_bytes.max(1));
    let floor = bytes.div_ceil(entries).min(u64::from(u32::MAX));
    (bytes.min(entries.saturating_mul(floor)), floor)
}

/// A miss in flight: its leader, and the channel its followers wait on.
///
/// Keyed by the key's hash alone (no copy of the key): two keys of one hash would only make
/// one wait for the other's outcome, then find no copy of its own and go on (lead, or go to
/// the upstream alone), never take the other's answer. The channel is made by the first
/// follower: a miss nobody waits for (most of them) costs no channel.
#[derive(Debug)]
pub(crate) struct Inflight {
    leader: u64,
    tx: Option<watch::Sender<Outcome>>,
}

impl Store {
    /// Leads the miss of `key`, or follows the one in flight (`Err` with its outcome's
    /// receiver).
    pub(crate) fn lead_or_follow(
        self: &Arc<Self>,
        key: &CacheKey,
    ) -> Result<Leader, watch::Receiver<Outcome>> {
        let hash = key.hash_value();
        let mut inflight = self
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match inflight.entry(hash) {
            std::collections::hash_map::Entry::Occupied(mut slot) => {
                let slot = slot.get_mut();
                Err(match &slot.tx {
                    Some(tx) => tx.subscribe(),
                    None => {
                        let (tx, rx) = watch::channel(Outcome::Pending);
                        slot.tx = Some(tx);
                        rx
                    }
                })
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                let id = self.next_leader.fetch_add(1, Ordering::Relaxed);
                slot.insert(Inflight {
                    leader: id,
                    tx: None,
                });
                Ok(Leader {
                    store: Arc::clone(self),
                    hash,
                    id,
                })
            }
        }
    }

    /// Whether a miss of `key` is in flight.
    pub(crate) fn in_flight(&self, key: &CacheKey) -> bool {
        self.inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(&key.hash_value())
    }
}

/// The leader of a coalesced miss: tells followers how it ended, even when dropped.
pub(crate) struct Leader {
    store: Arc<Store>,
    hash: u64,
    id: u64,
}

impl Leader {
    pub(crate) fn finish(self, outcome: Outcome) {
        if let Some(tx) = self.leave() {
            let _ = tx.send(outcome);
        }
    }

    /// Removes our in-flight entry; its channel, if a follower made one.
    fn leave(&self) -> Option<watch::Sender<Outcome>> {
        let mut inflight = self
            .store
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match inflight.get(&self.hash) {
            Some(slot) if slot.leader == self.id => inflight.remove(&self.hash)?.tx,
            _ => None,
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Unless `finish` already left: dropping the sender wakes followers still waiting,
        // with no outcome (they try to lead).
        drop(self.leave());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_bounds_hold_at_any_size() {
        for (entries, bytes) in [
            (1, 1),
            (3, 10),
            (4, 11),
            (10_000, 64 << 20),
            (1, u64::MAX),
            (2, u64::MAX),
            (u64::MAX, 1),
            (u64::MAX, u64::MAX),
            (0, 0),
        ] {
            let (capacity, floor) = capacity(entries, bytes);
            assert!(floor >= 1 && floor <= u64::from(u32::MAX));
            assert!(capacity <= bytes.max(1), "{entries} {bytes}");
            assert!(capacity / floor <= entries.max(1), "{entries} {bytes}");
        }
    }

    /// A `200` stored now, fresh for 60 s, with these headers and body.
    fn entry(headers: HeaderMap, body: Bytes) -> Entry {
        Entry {
            status: StatusCode::OK,
            headers,
            body,
            stored_at: Instant::now(),
            initial_age: Duration::ZERO,
            lifetimes: crate::policy::Lifetimes {
                fresh: Duration::from_secs(60),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
            },
            hit_head: HitHead::default(),
        }
    }

    fn entry_of(body: usize) -> Arc<Entry> {
        Arc::new(entry(HeaderMap::new(), Bytes::from(vec![b'x'; body])))
    }

    fn key(path: &str) -> CacheKey {
        static HASHER: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
        let req = http::Request::get(format!("https://api.test{path}"))
            .body(())
            .unwrap();
        let hasher = HASHER.get_or_init(RandomState::new);
        crate::key::build(&req, crate::key::target(&req), &[], hasher)
    }

    /// The map holds what the bounds allow, and no more: one entry when `max_entries` is 1
    /// (it weighs the whole capacity), `max_entries` small entries, and a body of most of
    /// `max_bytes`.
    #[test]
    fn the_map_holds_what_its_bounds_allow() {
        let store = |entries, bytes| {
            Store::new(
                entries,
                bytes,
                crate::shared::no_remote(),
                std::borrow::Cow::Borrowed("t"),
            )
        };
        let one = store(1, 1 << 20);
        one.insert(key("/a"), entry_of(10));
        assert!(one.cache.get(&key("/a")).is_some(), "a lone entry is kept");
        one.insert(key("/b"), entry_of(10));
        assert_eq!(one.cache.len(), 1);
        assert!(
            one.cache.get(&key("/b")).is_some(),
            "the newer one replaces it"
        );

        let ten = store(10, 64 << 20);
        for i in 0..100 {
            ten.insert(key(&format!("/{i}")), entry_of(100));
        }
        assert!(ten.cache.len() <= 10, "{}", ten.cache.len());
        assert!(ten.counters.evictions.load(Ordering::Relaxed) >= 90);

        let big = store(10_000, 64 << 20);
        big.insert(key("/big"), entry_of(48 << 20));
        assert!(
            big.cache.get(&key("/big")).is_some(),
            "48 MiB of a 64 MiB store"
        );
        assert!(big.bytes() <= 64 << 20);
        // Any entry up to `max_bytes` is stored, whatever the size of the store.
        let huge = store(10_000, 256 << 20);
        huge.insert(key("/huge"), entry_of(200 << 20));
        assert!(
            huge.cache.get(&key("/huge")).is_some(),
            "200 MiB of a 256 MiB store"
        );
        // Replacing a key's copy is not an eviction.
        let before = huge.counters.evictions.load(Ordering::Relaxed);
        huge.insert(key("/huge"), entry_of(10));
        huge.insert(key("/huge"), entry_of(10));
        assert_eq!(huge.counters.evictions.load(Ordering::Relaxed), before);
    }

    /// Fresh hits within one second of age share one rendered head; the next second (or a
    /// different ttl) renders `Age` and `Cache-Status` again.
    #[tokio::test(start_paused = true)]
    async fn fresh_hits_reuse_the_head_of_their_second_only() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let entry = entry(headers, Bytes::from_static(b"{}"));
        let hit = |entry: &Entry| {
            let now = Instant::now();
            let res: Response<CacheBody<()>> = entry.respond_fresh(entry.age(now), now);
            assert!(matches!(
                res.extensions().get::<CacheStatus>(),
                Some(CacheStatus::Fresh { .. })
            ));
            (
                res.headers()[http::header::AGE]
                    .to_str()
                    .unwrap()
                    .to_owned(),
                res.headers()[CACHE_STATUS].to_str().unwrap().to_owned(),
                res.headers()["content-type"].to_str().unwrap().to_owned(),
            )
        };
        tokio::time::advance(Duration::from_millis(200)).await;
        let first = hit(&entry);
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(hit(&entry), first);
        assert_eq!(first.0, "0");
        assert_eq!(first.1, "bulwark; hit; ttl=59");
        assert_eq!(first.2, "application/json");
        tokio::time::advance(Duration::from_secs(2)).await;
        let later = hit(&entry);
        assert_eq!(later.0, "2");
        assert_eq!(later.1, "bulwark; hit; ttl=57");
    }

    /// An entry with lifetimes and an age at `Duration::MAX` (as a foreign Redis writer could
    /// store): its age, its time in the store and its headers saturate.
    #[tokio::test(start_paused = true)]
    async fn an_entry_at_duration_max_saturates() {
        let entry = Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            stored_at: Instant::now(),
            initial_age: Duration::MAX,
            lifetimes: crate::policy::Lifetimes {
                fresh: Duration::MAX,
                stale_while_revalidate: Duration::MAX,
                stale_if_error: Duration::MAX,
            },
            hit_head: HitHead::default(),
        };
        tokio::time::advance(Duration::from_secs(5)).await;
        let now = Instant::now();
        assert_eq!(entry.age(now), Duration::MAX);
        let res: Response<CacheBody<()>> = entry.respond(
            CacheStatus::Stale { age: Duration::MAX },
            HeaderValue::from_static("x"),
            now,
        );
        assert_eq!(
            res.headers()[http::header::AGE],
            u64::MAX.to_string().as_str()
        );
    }
}
