//! The in-memory store (`moka`, weighed by bytes) and the in-flight map for coalescing.
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

    /// How long the store keeps it: while it is of any use, and at least a day (so a request
    /// for a copy too old to serve still says `fwd=stale`), at most [`KEEP_AT_MOST`].
    fn keep_for(&self) -> Duration {
        self.lifetimes
            .useful()
            .saturating_sub(self.initial_age)
            .clamp(KEEP_AT_LEAST, KEEP_AT_MOST)
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

/// Entries are kept at least this long, whatever their lifetimes.
const KEEP_AT_LEAST: Duration = Duration::from_secs(86_400);

/// Entries are kept at most this long: 2^32 s (about 136 years), fresh + the longer stale
/// window when each is at [`MAX_LIFETIME`](crate::MAX_LIFETIME); well within the 1000 years
/// moka accepts for a time to live.
const KEEP_AT_MOST: Duration = Duration::from_secs(2 * crate::policy::MAX_DELTA_SECONDS);

/// moka's per-entry expiry: each entry is kept for [`Entry::keep_for`], counted again when it
/// is replaced.
struct KeepUntilUseless;

// moka's trait hands us its own clock's instants; they are not used.
#[allow(clippy::disallowed_types)]
impl moka::Expiry<CacheKey, Arc<Entry>> for KeepUntilUseless {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        entry: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.keep_for())
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        entry: &Arc<Entry>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.keep_for())
    }
}

/// How a coalesced leader's request ended, for its followers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pending,
    /// A fresh copy was stored.
    Stored,
    /// The upstream failed (or answered something not storable).
    NotStored,
}

pub(crate) struct Store {
    pub(crate) cache: moka::sync::Cache<CacheKey, Arc<Entry>>,
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
            .field("entries", &self.cache.entry_count())
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
        let evictions = Arc::clone(&counters);
        let (capacity, floor) = capacity(max_entries, max_bytes);
        let cache = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .weigher(move |_k: &CacheKey, e: &Arc<Entry>| {
                u32::try_from(e.weight().max(floor)).unwrap_or(u32::MAX)
            })
            .expire_after(KeepUntilUseless)
            .support_invalidation_closures()
            .eviction_listener(move |_k, _v, cause| {
                if cause != moka::notification::RemovalCause::Replaced {
                    evictions.evictions.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
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

    pub(crate) fn bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
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
            entries: self.cache.entry_count(),
            shared_loads: c.shared_loads.load(Ordering::Relaxed),
            shared_unavailable: c.shared_unavailable.load(Ordering::Relaxed),
        }
    }
}

/// moka's capacity and the least weight of an entry, so that both `max_entries` and
/// `max_bytes` hold with one weigher: each entry weighs at least `max_bytes / max_entries`
/// (rounded up). moka's weights are `u32`: past that, the capacity is counted in entries of
/// `u32::MAX`.
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

    /// Fresh hits within one second of age share one rendered head; the next second (or a
    /// different ttl) renders `Age` and `Cache-Status` again.
    #[tokio::test(start_paused = true)]
    async fn fresh_hits_reuse_the_head_of_their_second_only() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let entry = Entry {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"{}"),
            stored_at: Instant::now(),
            initial_age: Duration::ZERO,
            lifetimes: crate::policy::Lifetimes {
                fresh: Duration::from_secs(60),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
            },
            hit_head: HitHead::default(),
        };
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
        assert_eq!(entry.keep_for(), KEEP_AT_LEAST);
        let res: Response<CacheBody<()>> = entry.respond(
            CacheStatus::Stale { age: Duration::MAX },
            HeaderValue::from_static("x"),
            now,
        );
        assert_eq!(
            res.headers()[http::header::AGE],
            u64::MAX.to_string().as_str()
        );
        let young = Entry {
            initial_age: Duration::ZERO,
            ..entry
        };
        assert_eq!(young.keep_for(), KEEP_AT_MOST);
    }
}
