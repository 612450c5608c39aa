//! [`StaleCacheLayer`] and its setters.

use std::{fmt, sync::Arc, time::Duration};

use bulwark_http::{Classify, HttpClassifier};
use http::{HeaderName, Method, Request};
use tower_layer::Layer;

use crate::{
    policy::Lifetimes,
    service::StaleCache,
    shared::{self, Remote},
    stats::CacheStats,
    store::Store,
};

pub(crate) type Predicate = Arc<dyn Fn(&Method, &http::Uri) -> bool + Send + Sync>;
pub(crate) type KeyText<B> = Arc<dyn Fn(&Request<B>) -> Option<String> + Send + Sync>;

/// Settings shared by the layer's services.
pub(crate) struct Config<B> {
    pub(crate) defaults: Lifetimes,
    pub(crate) max_body_bytes: usize,
    pub(crate) cacheable: Option<Predicate>,
    pub(crate) key: Option<KeyText<B>>,
    pub(crate) vary: Vec<HeaderName>,
    pub(crate) coalesce: bool,
    pub(crate) coalesce_wait: Option<Duration>,
}

/// Serves the last good response when the upstream fails (see the [crate docs](crate)).
///
/// `B` is the request body type (a custom [`key`](Self::key) function reads requests).
///
/// # Clone
/// The store lives in an `Arc` owned by the layer: every service the layer makes, and every
/// clone of those, shares it.
#[must_use]
pub struct StaleCacheLayer<C = HttpClassifier, B = bulwark_http::BufferedBody> {
    defaults: Lifetimes,
    max_entries: u64,
    max_bytes: u64,
    max_body_bytes: usize,
    cacheable: Option<Predicate>,
    key: Option<KeyText<B>>,
    vary: Vec<HeaderName>,
    coalesce: bool,
    coalesce_wait: Option<Duration>,
    classify: C,
    remote: Remote,
    store: Arc<Store>,
}

impl<B> StaleCacheLayer<HttpClassifier, B> {
    /// A cache with the defaults listed on each setter.
    pub fn new() -> Self {
        let defaults = Lifetimes {
            fresh: Duration::ZERO,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::from_secs(300),
        };
        let (max_entries, max_bytes) = (10_000, 64 * 1024 * 1024);
        Self {
            defaults,
            max_entries,
            max_bytes,
            max_body_bytes: 1024 * 1024,
            cacheable: None,
            key: None,
            vary: Vec::new(),
            coalesce: true,
            coalesce_wait: None,
            classify: HttpClassifier,
            remote: shared::no_remote(),
            store: Arc::new(Store::new(
                max_entries,
                max_bytes,
                ttl(defaults),
                shared::no_remote(),
            )),
        }
    }
}

impl<B> Default for StaleCacheLayer<HttpClassifier, B> {
    fn default() -> Self {
        Self::new()
    }
}

/// How long an entry can be of any use: the longest of its windows, and at least a day for
/// upstream `max-age`s the defaults don't know about (moka's own clock drops it then).
fn ttl(d: Lifetimes) -> Duration {
    (d.fresh + d.stale_while_revalidate.max(d.stale_if_error)).max(Duration::from_secs(86_400))
}

impl<C, B> StaleCacheLayer<C, B> {
    fn rebuild(mut self) -> Self {
        self.store = Arc::new(Store::new(
            self.max_entries,
            self.max_bytes,
            ttl(self.defaults),
            self.remote.clone(),
        ));
        self
    }

    /// Adds a second level shared by every process on one Redis: see [`RedisStore`] for what
    /// is read and written when, and what happens while Redis is down.
    ///
    /// Like the other setters that shape the store, it starts this layer's store afresh.
    ///
    /// ```no_run
    /// use bulwark_cache::{KeySecret, RedisStore, StaleCacheLayer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// let secret = KeySecret::new(std::env::var("BULWARK_REDIS_SECRET")?)?;
    /// let cache: StaleCacheLayer =
    ///     StaleCacheLayer::new().store(RedisStore::new(client, "myapp:cache", secret));
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`RedisStore`]: crate::RedisStore
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn store(mut self, store: crate::RedisStore) -> Self {
        self.remote = Some(store);
        self.rebuild()
    }

    /// How old a copy may be and still be served when the upstream fails. Defaults to 5 min.
    /// An upstream `stale-if-error=N` takes precedence.
    pub fn stale_if_error(mut self, d: Duration) -> Self {
        self.defaults.stale_if_error = d;
        self.rebuild()
    }

    /// Within this a copy is served without calling the upstream. Defaults to 0 (always go
    /// live). An upstream `max-age` takes precedence.
    pub fn fresh_for(mut self, d: Duration) -> Self {
        self.defaults.fresh = d;
        self.rebuild()
    }

    /// Within this (after freshness) a copy is served at once and refreshed in the
    /// background, once per key. Defaults to 0 (off). An upstream `stale-while-revalidate=N`
    /// takes precedence.
    pub fn stale_while_revalidate(mut self, d: Duration) -> Self {
        self.defaults.stale_while_revalidate = d;
        self.rebuild()
    }

    /// At most this many entries. Defaults to 10 000.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n.max(1);
        self.rebuild()
    }

    /// At most this many bytes of stored responses. Defaults to 64 MiB.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n.max(1);
        self.rebuild()
    }

    /// Larger responses stream through uncached. Defaults to 1 MiB.
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Which requests are cached. Defaults to GET and HEAD. A predicate that admits a POST
    /// (a read-only query) keys it by its body too.
    pub fn cacheable<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&Method, &http::Uri) -> bool + Send + Sync + 'static,
    {
        self.cacheable = Some(Arc::new(predicate));
        self
    }

    /// Replaces the default key text (method, scheme, authority, path, sorted query) with
    /// `key(&request)`; `None` leaves the request uncached. The `Authorization` hash,
    /// `Accept`, the vary headers and the body hash are always added, so one caller's copy
    /// is never served to another.
    pub fn key<F>(mut self, key: F) -> Self
    where
        F: Fn(&Request<B>) -> Option<String> + Send + Sync + 'static,
    {
        self.key = Some(Arc::new(key));
        self
    }

    /// Request headers that select different copies (besides `Authorization` and `Accept`).
    /// Defaults to none.
    pub fn vary_headers<I>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = HeaderName>,
    {
        self.vary = names.into_iter().collect();
        self
    }

    /// Adds one request header to the vary headers (keeping those already set).
    pub fn vary_header(mut self, name: HeaderName) -> Self {
        if !self.vary.contains(&name) {
            self.vary.push(name);
        }
        self
    }

    /// Whether concurrent identical misses make one upstream call. Defaults to `true`.
    pub fn coalesce(mut self, coalesce: bool) -> Self {
        self.coalesce = coalesce;
        self
    }

    /// How long a request waits for an identical one already in flight before it goes to the
    /// upstream on its own (when [`coalesce`](Self::coalesce) is on). Defaults to no limit:
    /// followers wait for the leader however long it takes. A limit keeps one slow call from
    /// holding up every identical request behind it, at the price of a second upstream call
    /// when the first is slow. `Duration::ZERO` is the same as `coalesce(false)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bulwark_cache::StaleCacheLayer;
    ///
    /// let layer = StaleCacheLayer::<_, bulwark_http::BufferedBody>::new()
    ///     .coalesce_wait(Duration::from_secs(2));
    /// # let _ = layer;
    /// ```
    pub fn coalesce_wait(mut self, wait: Duration) -> Self {
        self.coalesce_wait = Some(wait);
        self
    }

    /// Classifies upstream outcomes with `classify`. Defaults to [`HttpClassifier`].
    pub fn classify<C2: Classify>(self, classify: C2) -> StaleCacheLayer<C2, B> {
        StaleCacheLayer {
            defaults: self.defaults,
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
            max_body_bytes: self.max_body_bytes,
            cacheable: self.cacheable,
            key: self.key,
            vary: self.vary,
            coalesce: self.coalesce,
            coalesce_wait: self.coalesce_wait,
            classify,
            remote: self.remote,
            store: self.store,
        }
    }

    /// Counters shared by every service this layer made.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        crate::service::stats(&self.store)
    }
}

impl<C: Clone, B> Clone for StaleCacheLayer<C, B> {
    fn clone(&self) -> Self {
        Self {
            defaults: self.defaults,
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
            max_body_bytes: self.max_body_bytes,
            cacheable: self.cacheable.clone(),
            key: self.key.clone(),
            vary: self.vary.clone(),
            coalesce: self.coalesce,
            coalesce_wait: self.coalesce_wait,
            classify: self.classify.clone(),
            remote: self.remote.clone(),
            store: Arc::clone(&self.store),
        }
    }
}

impl<C: fmt::Debug, B> fmt::Debug for StaleCacheLayer<C, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaleCacheLayer")
            .field("defaults", &self.defaults)
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("coalesce", &self.coalesce)
            .field("coalesce_wait", &self.coalesce_wait)
            .field("classify", &self.classify)
            .finish_non_exhaustive()
    }
}

impl<S, C: Clone, B> Layer<S> for StaleCacheLayer<C, B> {
    type Service = StaleCache<S, C, B>;

    fn layer(&self, inner: S) -> Self::Service {
        StaleCache::from_parts(
            inner,
            Arc::new(Config {
                defaults: self.defaults,
                max_body_bytes: self.max_body_bytes,
                cacheable: self.cacheable.clone(),
                key: self.key.clone(),
                vary: self.vary.clone(),
                coalesce: self.coalesce,
                coalesce_wait: self.coalesce_wait,
            }),
            Arc::clone(&self.store),
            self.classify.clone(),
        )
    }
}
