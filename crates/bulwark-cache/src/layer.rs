//! [`StaleCacheLayer`] and its setters.

use std::{borrow::Cow, fmt, sync::Arc, time::Duration};

use bulwark_http::{Classify, HttpClassifier, InvalidConfig};
use http::{HeaderName, Method, Request};
use tower_layer::Layer;

use crate::{
    config::{Config, KeyText, Predicate},
    policy::{Lifetimes, MAX_LIFETIME},
    service::StaleCache,
    shared::{self, Remote},
    stats::CacheStats,
    store::{Store, ENTRY_OVERHEAD},
};

/// Serves the last good response when the upstream fails (see the [crate docs](crate)).
///
/// `B` is the request body type (a custom [`key`](Self::key) function reads requests).
///
/// # Clone
/// The store — the cached copies, the in-flight map that coalesces identical requests, and
/// the [`stats`](Self::stats) counters — lives in an `Arc` created by [`new`](Self::new). Every
/// clone of the layer, every service it makes and every clone of those share it, and so do
/// clones tuned afterwards with any setter *except* the three that shape the store itself:
///
/// * [`max_entries`](Self::max_entries) and [`max_bytes`](Self::max_bytes) (the map's bounds are
///   fixed when it is built), and [`store`](Self::store) (feature `redis`), start a new, empty
///   store for the layer they are called on; the original and earlier clones keep theirs.
///   Call them before cloning the layer or making services from it.
/// * Every other setter (lifetimes, coalescing, sizes of bodies, keys, the classifier) keeps
///   the store: a clone with `fresh_for(60 s)` and the original read and write the same copies.
///
/// A setter changes the services made afterwards; services already made keep their settings.
///
/// ```
/// use std::time::Duration;
/// use bulwark_cache::StaleCacheLayer;
///
/// let shared = StaleCacheLayer::<_, bulwark_http::BufferedBody>::new().max_entries(1_000);
/// // The same store, served fresh for a minute by this one:
/// let tuned = shared.clone().fresh_for(Duration::from_secs(60));
/// # let _ = (shared, tuned);
/// ```
///
/// # Settings out of range
/// The setters never fail and never panic: a value out of range is clamped as its setter
/// documents (lifetimes to [`MAX_LIFETIME`], a zero size to 1), and [`validate`](Self::validate)
/// names any setting that was clamped or that makes no sense, for callers that want to refuse
/// them at start-up.
#[must_use]
pub struct StaleCacheLayer<C = HttpClassifier, B = bulwark_http::BufferedBody> {
    /// As set (clamped where used).
    defaults: Lifetimes,
    /// As set (clamped to at least 1 where used).
    max_entries: u64,
    /// As set (clamped to at least 1 where used).
    max_bytes: u64,
    max_body_bytes: usize,
    cacheable: Option<Predicate>,
    key: Option<KeyText<B>>,
    vary: Vec<HeaderName>,
    coalesce: bool,
    coalesce_max_wait: Option<Duration>,
    classify: C,
    remote: Remote,
    /// The instance name, given to each new [`Store`].
    name: Cow<'static, str>,
    store: Arc<Store>,
}

impl<B> StaleCacheLayer<HttpClassifier, B> {
    /// A cache with the defaults listed on each setter, and a new store (see
    /// [`# Clone`](Self#clone)).
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
            coalesce_max_wait: None,
            classify: HttpClassifier,
            remote: shared::no_remote(),
            name: Cow::Borrowed(bulwark_http::DEFAULT_NAME),
            store: Arc::new(Store::new(
                max_entries,
                max_bytes,
                shared::no_remote(),
                Cow::Borrowed(bulwark_http::DEFAULT_NAME),
            )),
        }
    }
}

impl<B> Default for StaleCacheLayer<HttpClassifier, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C, B> StaleCacheLayer<C, B> {
    /// A new, empty store with this layer's bounds and shared level.
    fn rebuild(mut self) -> Self {
        self.store = Arc::new(Store::new(
            self.max_entries,
            self.max_bytes,
            self.remote.clone(),
            self.name.clone(),
        ));
        self
    }

    /// The instance name: the `name` label of this cache's metrics (feature `metrics`, see
    /// `bulwark_http::metrics`), so that two caches in one process keep separate series.
    /// Defaults to `"default"`.
    ///
    /// Like [`max_entries`](Self::max_entries), it starts a new, empty store for this layer
    /// (see [`# Clone`](Self#clone)): name it first.
    ///
    /// ```
    /// let cache: bulwark_cache::StaleCacheLayer = bulwark_cache::StaleCacheLayer::new().name("notion");
    /// assert!(format!("{cache:?}").contains("notion"));
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self.rebuild()
    }

    /// Adds a second level shared by every process on one Redis: see [`RedisStore`] for what
    /// is read and written when, and what happens while Redis is down.
    ///
    /// Like [`max_entries`](Self::max_entries) and [`max_bytes`](Self::max_bytes), it starts
    /// a new, empty in-memory store for this layer (see [`# Clone`](Self#clone)).
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
    /// # Panics
    /// Never.
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
    ///
    /// Values above [`MAX_LIFETIME`] (2^31 s, about 68 years) are clamped to it, and named by
    /// [`validate`](Self::validate). Keeps the shared store.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bulwark_cache::StaleCacheLayer;
    ///
    /// let layer = StaleCacheLayer::<_, bulwark_http::BufferedBody>::new()
    ///     .stale_if_error(Duration::from_secs(3_600));
    /// assert!(layer.validate().is_ok());
    /// ```
    ///
    /// # Panics
    /// Never, whatever the value (`Duration::MAX` included).
    pub fn stale_if_error(mut self, d: Duration) -> Self {
        self.defaults.stale_if_error = d;
        self
    }

    /// Within this a copy is served without calling the upstream. Defaults to 0 (always go
    /// live). An upstream `max-age` takes precedence.
    ///
    /// Values above [`MAX_LIFETIME`] (2^31 s, about 68 years) are clamped to it, and named by
    /// [`validate`](Self::validate). Keeps the shared store.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bulwark_cache::StaleCacheLayer;
    ///
    /// let layer = StaleCacheLayer::<_, bulwark_http::BufferedBody>::new()
    ///     .fresh_for(Duration::from_secs(30));
    /// # let _ = layer;
    /// ```
    ///
    /// # Panics
    /// Never, whatever the value (`Duration::MAX` included).
    pub fn fresh_for(mut self, d: Duration) -> Self {
        self.defaults.fresh = d;
        self
    }

    /// Within this (after freshness) a copy is served at once and refreshed in the
    /// background, once per key. Defaults to 0 (off). An upstream `stale-while-revalidate=N`
    /// takes precedence.
    ///
    /// Values above [`MAX_LIFETIME`] (2^31 s, about 68 years) are clamped to it, and named by
    /// [`validate`](Self::validate). Keeps the shared store.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bulwark_cache::StaleCacheLayer;
    ///
    /// let layer = StaleCacheLayer::<_, bulwark_http::BufferedBody>::new()
    ///     .fresh_for(Duration::from_secs(30))
    ///     .stale_while_revalidate(Duration::from_secs(30));
    /// # let _ = layer;
    /// ```
    ///
    /// # Panics
    /// Never, whatever the value (`Duration::MAX` included).
    pub fn stale_while_revalidate(mut self, d: Duration) -> Self {
        self.defaults.stale_while_revalidate = d;
        self
    }

    /// At most this many entries. Defaults to 10 000.
    ///
    /// 0 is clamped to 1 (and named by [`validate`](Self::validate)); `u64::MAX` leaves only
    /// [`max_bytes`](Self::max_bytes) as the bound. Starts a new, empty store for this layer
    /// (see [`# Clone`](Self#clone)).
    ///
    /// ```
    /// use bulwark_cache::StaleCacheLayer;
    ///
    /// let layer = StaleCacheLayer::<_, bulwark_http::BufferedBody>::new().max_entries(1_000);
    /// # let _ = layer;
    /// ```
    ///
    /// # Panics
    /// Never.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self.rebuild()
    }

    /// At most this many bytes of stored responses (each weighed as its body, its headers
    /// and 128 bytes of bookkeeping). Defaults to 64 MiB.
    ///
    /// 0 is clamped to 1; anything under 128 stores nothing, and [`validate`](Self::validate)
    /// names it. Starts a new, empty store for this layer (see [`# Clone`](Self#clone)).
    ///
    /// ```
    /// use bulwark_cache::StaleCacheLayer;
    ///
    /// let layer = StaleCacheLayer::<_, bulwark_http::BufferedBody>::new().max_bytes(8 << 20);
    /// # let _ = layer;
    /// ```
    ///
    /// # Panics
    /// Never.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self.rebuild()
    }

    /// Larger responses stream through uncached. Defaults to 1 MiB.
    ///
    /// Any value is accepted: 0 stores only empty bodies; `usize::MAX` stores any body that
    /// fits [`max_bytes`](Self::max_bytes) (a body is read into memory before it is stored, so
    /// keep this to what you are willing to buffer per request). Keeps the shared store.
    ///
    /// ```
    /// use bulwark_cache::StaleCacheLayer;
    ///
    /// let layer = StaleCacheLayer::<_, bulwark_http::BufferedBody>::new().max_body_bytes(256 << 10);
    /// # let _ = layer;
    /// ```
    ///
    /// # Panics
    /// Never.
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

    /// Whether concurrent identical misses make one upstream call. Defaults to `true`. Keeps
    /// the shared store.
    pub fn coalesce(mut self, coalesce: bool) -> Self {
        self.coalesce = coalesce;
        self
    }

    /// How long a request waits for an identical one already in flight before it goes to the
    /// upstream on its own (when [`coalesce`](Self::coalesce) is on). Defaults to no limit:
    /// followers wait for the leader however long it takes. A limit keeps one slow call from
    /// holding up every identical request behind it, at the price of a second upstream call
    /// when the first is slow. `Duration::ZERO` is the same as `coalesce(false)`; a wait of
    /// [`MAX_LIFETIME`] or more (`Duration::MAX`) is the same as no limit. A waiting request
    /// holds none of the inner service's readiness (see [`StaleCache`]). Keeps the shared
    /// store.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bulwark_cache::StaleCacheLayer;
    ///
    /// let layer = StaleCacheLayer::<_, bulwark_http::BufferedBody>::new()
    ///     .coalesce_max_wait(Duration::from_secs(2));
    /// # let _ = layer;
    /// ```
    ///
    /// # Panics
    /// Never, whatever the value.
    pub fn coalesce_max_wait(mut self, wait: Duration) -> Self {
        self.coalesce_max_wait = (wait < MAX_LIFETIME).then_some(wait);
        self
    }

    /// Reports the first setting that the layer clamps or that makes no sense, naming the
    /// setter in [`InvalidConfig::field`]. The layer works either way (with the clamped
    /// values); call this where a misconfiguration should stop start-up.
    ///
    /// # Errors
    /// * `fresh_for`, `stale_while_revalidate`, `stale_if_error`: above [`MAX_LIFETIME`]
    ///   (clamped to it).
    /// * `max_entries`: 0 (clamped to 1).
    /// * `max_bytes`: under 128, the least an entry weighs, so nothing would be stored (0 is
    ///   clamped to 1).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bulwark_cache::StaleCacheLayer;
    ///
    /// let layer = StaleCacheLayer::<_, bulwark_http::BufferedBody>::new()
    ///     .stale_if_error(Duration::MAX);
    /// let err = layer.validate().unwrap_err();
    /// assert_eq!(err.field(), "stale_if_error");
    /// assert!(StaleCacheLayer::<_, bulwark_http::BufferedBody>::new().validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let l = self.defaults;
        for (field, d) in [
            ("fresh_for", l.fresh),
            ("stale_while_revalidate", l.stale_while_revalidate),
            ("stale_if_error", l.stale_if_error),
        ] {
            if d > MAX_LIFETIME {
                return Err(InvalidConfig::new(
                    field,
                    format!(
                        "{d:?} is above the {} s (2^31 s, about 68 years) maximum lifetime; clamped to it",
                        MAX_LIFETIME.as_secs()
                    ),
                ));
            }
        }
        if self.max_entries == 0 {
            return Err(InvalidConfig::new(
                "max_entries",
                "0 entries would store nothing; clamped to 1",
            ));
        }
        if self.max_bytes < ENTRY_OVERHEAD {
            let clamped = if self.max_bytes == 0 {
                " (0 is clamped to 1)"
            } else {
                ""
            };
            return Err(InvalidConfig::new(
                "max_bytes",
                format!(
                    "{} bytes hold no entry: each weighs at least {ENTRY_OVERHEAD}{clamped}",
                    self.max_bytes
                ),
            ));
        }
        Ok(())
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
            coalesce_max_wait: self.coalesce_max_wait,
            classify,
            remote: self.remote,
            name: self.name,
            store: self.store,
        }
    }

    /// Counters shared by every service this layer made.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.store.stats()
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
            coalesce_max_wait: self.coalesce_max_wait,
            classify: self.classify.clone(),
            remote: self.remote.clone(),
            name: self.name.clone(),
            store: Arc::clone(&self.store),
        }
    }
}

impl<C: fmt::Debug, B> fmt::Debug for StaleCacheLayer<C, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaleCacheLayer")
            .field("name", &self.name)
            .field("defaults", &self.defaults)
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("coalesce", &self.coalesce)
            .field("coalesce_max_wait", &self.coalesce_max_wait)
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
                defaults: self.defaults.capped(),
                max_body_bytes: self.max_body_bytes,
                cacheable: self.cacheable.clone(),
                key: self.key.clone(),
                vary: self.vary.clone(),
                coalesce: self.coalesce,
                coalesce_max_wait: self.coalesce_max_wait,
            }),
            Arc::clone(&self.store),
            self.classify.clone(),
        )
    }
}
