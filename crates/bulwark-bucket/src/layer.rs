//! [`TokenBucketLayer`] and its setters.

use std::{fmt, hash::Hash, sync::Arc, time::Duration};

use bulwark_http::{Classify, HttpClassifier};
use http::Request;
use tower_layer::Layer;

#[cfg(feature = "redis")]
use crate::redis_store::{Binding, RedisStore};
use crate::{
    key::{KeyedBy, Unkeyed},
    rate::Rate,
    service::TokenBucket,
    shared::{Hub, Settings, Shared},
    stats::BucketStats,
};

/// Token-bucket rate limiting (see the [crate docs](crate)).
///
/// # Clone
/// The buckets live in an `Arc` owned by the layer: every service the layer makes, and every
/// clone of those, draws from the same bucket(s). (tower's `RateLimit` keeps its state per
/// service instance, so cloning it multiplies the limit — a known trap this layer avoids.)
#[must_use]
pub struct TokenBucketLayer<C = HttpClassifier, E = Unkeyed, K = ()> {
    settings: Settings,
    keyed: bool,
    shared: Arc<Hub<K>>,
    classify: C,
    extractor: E,
    #[cfg(feature = "redis")]
    redis: Option<Binding<K>>,
}

impl TokenBucketLayer {
    /// A limit of `rate`, with the defaults listed on each setter.
    pub fn new(rate: Rate) -> Self {
        let settings = Settings {
            rate,
            burst: None,
            max_wait: Duration::from_secs(30),
            max_keys: 100_000,
            pause_on_retry_after: true,
            emit_headers: false,
        };
        Self {
            settings,
            keyed: false,
            shared: Arc::new(Hub::new(Shared::new(settings, false))),
            classify: HttpClassifier,
            extractor: Unkeyed,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl<C, E, K: Hash + Eq + Send + Sync + 'static> TokenBucketLayer<C, E, K> {
    fn rebuild(mut self) -> Self {
        let shared = Shared::new(self.settings, self.keyed);
        #[cfg(feature = "redis")]
        let shared = shared.with_redis(self.redis.clone());
        self.shared = Arc::new(Hub::new(shared));
        self
    }

    /// The bucket's capacity: how many requests may go at once after a quiet spell.
    /// Defaults to the rate's count (`Rate::per_second(3)` → 3). 0 is taken as 1.
    pub fn burst(mut self, burst: u32) -> Self {
        self.settings.burst = Some(burst);
        self.rebuild()
    }

    /// The longest a request waits for its token. Defaults to 30 s.
    ///
    /// A request that can have a token within this waits for it (client-side shaping); one
    /// that cannot is refused at once with [`RateLimited`](bulwark_http::RateLimited) — it
    /// does not wait first. `Duration::ZERO` is reject mode, for servers.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.settings.max_wait = max_wait;
        self.rebuild()
    }

    /// At most this many keys for a [`keyed`](Self::keyed) layer; idle keys go first.
    /// Defaults to 100 000.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.settings.max_keys = u64::try_from(max_keys).unwrap_or(u64::MAX);
        self.rebuild()
    }

    /// Whether a response classified `Throttled` with a `Retry-After` pauses its bucket for
    /// everyone until then, so no other request is sent into a known wall. Defaults to `true`.
    pub fn pause_on_retry_after(mut self, pause: bool) -> Self {
        self.settings.pause_on_retry_after = pause;
        self.rebuild()
    }

    /// Adds IETF `RateLimit` / `RateLimit-Policy` headers to admitted responses (server use).
    /// Defaults to `false`.
    pub fn emit_headers(mut self, emit: bool) -> Self {
        self.settings.emit_headers = emit;
        self.rebuild()
    }

    /// Classifies responses with `classify` (to find upstream 429s). Defaults to
    /// [`HttpClassifier`].
    pub fn classify<C2: Classify>(self, classify: C2) -> TokenBucketLayer<C2, E, K> {
        TokenBucketLayer {
            settings: self.settings,
            keyed: self.keyed,
            shared: self.shared,
            classify,
            extractor: self.extractor,
            #[cfg(feature = "redis")]
            redis: self.redis,
        }
    }

    /// One bucket per key: `key(&request)` picks it (a token hash, a client IP); `None`
    /// uses the layer's shared bucket. Keys are bounded by [`max_keys`](Self::max_keys).
    ///
    /// The keyed layer starts without a store (feature `redis`): set `store` after `keyed`.
    pub fn keyed<B, K2, F>(self, key: F) -> TokenBucketLayer<C, KeyedBy<F>, K2>
    where
        F: Fn(&Request<B>) -> Option<K2> + Clone,
        K2: Hash + Eq + Send + Sync + 'static,
    {
        #[cfg(feature = "redis")]
        if self.redis.is_some() {
            tracing::warn!(target: "bulwark_bucket", "TokenBucketLayer::keyed drops the Redis store set before it: call store() after keyed()");
        }
        TokenBucketLayer {
            settings: self.settings,
            keyed: true,
            shared: Arc::new(Hub::new(Shared::new(self.settings, true))),
            classify: self.classify,
            extractor: KeyedBy(key),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    /// Counters shared by every service this layer made.
    #[must_use]
    pub fn stats(&self) -> BucketStats {
        self.shared.stats(self.shared.keys())
    }
}

#[cfg(feature = "redis")]
impl<C> TokenBucketLayer<C, Unkeyed, ()> {
    /// Keeps the bucket in Redis, shared by every layer — in any process — with the same
    /// store prefix (see [`RedisStore`] for the key, the script and what happens when Redis
    /// is down). Defaults to a local bucket only.
    ///
    /// All processes should use the same rate and burst. A [`keyed`](Self::keyed) layer's
    /// keys must implement `Display`, and `store` comes after `keyed`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use bulwark_bucket::{KeySecret, Rate, RedisStore, TokenBucketLayer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// let secret = KeySecret::new(std::env::var("BULWARK_REDIS_SECRET")?)?;
    /// // Unkeyed: one bucket in Redis, `bulwark:notion`.
    /// let shared = TokenBucketLayer::new(Rate::per_second(3))
    ///     .store(RedisStore::new(client.clone(), "bulwark:notion", secret.clone()));
    /// // Keyed: `bulwark:api:{MAC of the client IP under the secret}`.
    /// let per_ip = TokenBucketLayer::new(Rate::per_minute(600))
    ///     .max_wait(Duration::ZERO)
    ///     .keyed(|req: &http::Request<()>| {
    ///         req.extensions().get::<std::net::IpAddr>().copied()
    ///     })
    ///     .store(RedisStore::new(client, "bulwark:api", secret));
    /// # let _ = (shared, per_ip);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn store(mut self, store: RedisStore) -> Self {
        self.redis = Some(Binding::new(store, |()| String::new()));
        self.rebuild()
    }
}

#[cfg(feature = "redis")]
impl<C, F, K> TokenBucketLayer<C, KeyedBy<F>, K>
where
    K: fmt::Display + Hash + Eq + Send + Sync + 'static,
{
    /// Keeps the buckets in Redis under `{prefix}:{key}` (the key written with `Display`),
    /// shared by every layer — in any process — with the same store prefix; requests without
    /// a key share `{prefix}`. See [`RedisStore`], and the unkeyed layer's `store`.
    /// Defaults to local buckets only.
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn store(mut self, store: RedisStore) -> Self {
        self.redis = Some(Binding::new(store, K::to_string));
        self.rebuild()
    }
}

impl<C: Clone, E: Clone, K> Clone for TokenBucketLayer<C, E, K> {
    fn clone(&self) -> Self {
        Self {
            settings: self.settings,
            keyed: self.keyed,
            shared: Arc::clone(&self.shared),
            classify: self.classify.clone(),
            extractor: self.extractor.clone(),
            #[cfg(feature = "redis")]
            redis: self.redis.clone(),
        }
    }
}

impl<C: fmt::Debug, E: fmt::Debug, K> fmt::Debug for TokenBucketLayer<C, E, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TokenBucketLayer");
        d.field("settings", &self.settings)
            .field("classify", &self.classify)
            .field("key", &self.extractor);
        #[cfg(feature = "redis")]
        d.field("store", &self.redis);
        d.finish_non_exhaustive()
    }
}

impl<S, C: Clone, E: Clone, K> Layer<S> for TokenBucketLayer<C, E, K> {
    type Service = TokenBucket<S, C, E, K>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenBucket::from_parts(
            inner,
            Arc::clone(&self.shared),
            self.classify.clone(),
            self.extractor.clone(),
        )
    }
}
