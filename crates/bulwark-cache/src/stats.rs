//! [`CacheStats`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by every clone of a layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Answered from a fresh copy.
    pub hits: u64,
    /// Answered from a stale copy (upstream failure or stale-while-revalidate).
    pub stale_served: u64,
    /// Cacheable requests that went to the upstream.
    pub misses: u64,
    /// Responses stored.
    pub stores: u64,
    /// Entries removed: evicted for room, or invalidated (401/403/404/410, writes). An entry
    /// too old to serve is not removed for its age: it stays until replaced or evicted.
    pub evictions: u64,
    /// Bytes held now.
    pub bytes: u64,
    /// Entries held now.
    pub entries: u64,
    /// Copies found in the shared store (Redis, feature `redis`) by requests that memory could
    /// not answer.
    pub shared_loads: u64,
    /// Shared-store calls that failed, timed out, or were skipped while it was down.
    pub shared_unavailable: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) stores: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) shared_loads: AtomicU64,
    pub(crate) shared_unavailable: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}
