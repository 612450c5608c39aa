//! [`BucketStats`].

/// Counters shared by every clone of a layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BucketStats {
    /// Requests sent to the inner service (at once or after a wait).
    pub admitted: u64,
    /// Of those, requests that waited for their slot.
    pub waited: u64,
    /// Requests refused with `RateLimited` (no slot within `max_wait`).
    pub rejected: u64,
    /// Times an upstream `Retry-After` paused a bucket.
    pub paused: u64,
    /// Requests decided by the local bucket because the layer's Redis store was unavailable
    /// (feature `redis`; always 0 without a store).
    pub fallbacks: u64,
    /// Keys held by a keyed layer.
    pub keys: u64,
}
