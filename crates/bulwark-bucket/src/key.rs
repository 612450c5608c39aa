//! Choosing a request's bucket.

use std::hash::Hash;

use http::Request;

/// Extracts a bucket key from a request (see
/// [`TokenBucketLayer::keyed`](crate::TokenBucketLayer::keyed)).
pub trait KeyExtractor<B>: Clone {
    /// The key type.
    type Key: Hash + Eq + Send + Sync + 'static;

    /// The request's key; `None` puts it in the layer's shared (unkeyed) bucket.
    fn extract(&self, req: &Request<B>) -> Option<Self::Key>;
}

/// No keys: one bucket for every request (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unkeyed;

impl<B> KeyExtractor<B> for Unkeyed {
    type Key = ();

    fn extract(&self, _req: &Request<B>) -> Option<()> {
        None
    }
}

/// Keys from a function (made by [`TokenBucketLayer::keyed`](crate::TokenBucketLayer::keyed)).
#[derive(Clone, Copy)]
pub struct KeyedBy<F>(pub(crate) F);

impl<F> std::fmt::Debug for KeyedBy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedBy(Fn)")
    }
}

impl<B, F, K> KeyExtractor<B> for KeyedBy<F>
where
    F: Fn(&Request<B>) -> Option<K> + Clone,
    K: Hash + Eq + Send + Sync + 'static,
{
    type Key = K;

    fn extract(&self, req: &Request<B>) -> Option<K> {
        (self.0)(req)
    }
}
