//! The in-memory store (`moka`, weighed by bytes) and the in-flight map for coalescing.

use std::{
    collections::{hash_map::RandomState, HashMap},
    sync::{atomic::Ordering, Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use tokio::{sync::watch, time::Instant};

use crate::{
    key::CacheKey,
    policy::Lifetimes,
    shared::Remote,
    stats::Counters,
    status::{CacheStatus, CACHE_STATUS},
    CacheBody,
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
}

impl Entry {
    pub(crate) fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.stored_at)
    }

    fn weight(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        (self.body.len() + headers + 128) as u64
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
    pub(crate) inflight: Mutex<HashMap<CacheKey, watch::Receiver<Outcome>>>,
    pub(crate) hasher: RandomState,
    pub(crate) counters: Arc<Counters>,
    /// The shared second level, if any.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) remote: Remote,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl Store {
    pub(crate) fn new(
        max_entries: u64,
        max_bytes: u64,
        time_to_live: Duration,
        remote: Remote,
    ) -> Self {
        let counters = Arc::new(Counters::default());
        let evictions = Arc::clone(&counters);
        // Each entry weighs at least max_bytes / max_entries, so both bounds hold at once.
        let floor = (max_bytes / max_entries.max(1)).max(1);
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |_k: &CacheKey, e: &Arc<Entry>| {
                u32::try_from(e.weight().max(floor)).unwrap_or(u32::MAX)
            })
            .time_to_live(time_to_live.max(Duration::from_secs(1)))
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
            hasher: RandomState::new(),
            counters,
            remote,
        }
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.iter().map(|(_, e)| e.body.len() as u64).sum()
    }
}

/// The leader of a coalesced miss: tells followers how it ended, even when dropped.
pub(crate) struct Leader {
    pub(crate) store: Arc<Store>,
    pub(crate) key: CacheKey,
    pub(crate) tx: watch::Sender<Outcome>,
    /// Our own channel's receiver, to recognise our in-flight entry without subscribing.
    pub(crate) rx: watch::Receiver<Outcome>,
}

impl Leader {
    pub(crate) fn finish(self, outcome: Outcome) {
        let _ = self.tx.send(outcome);
        // Drop removes the in-flight entry.
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut inflight = self
            .store
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if inflight
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.rx))
        {
            inflight.remove(&self.key);
        }
        // Dropping the sender wakes followers still waiting for an outcome.
    }
}
