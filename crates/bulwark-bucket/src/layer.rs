//! [`TokenBucketLayer`] and its setters.

use std::{borrow::Cow, fmt, hash::Hash, sync::Arc, time::Duration};

use bulwark_http::{Classify, HttpClassifier, InvalidConfig};
use http::Request;
use tower_layer::Layer;

#[cfg(feature = "redis")]
use crate::redis_store::{Binding, RedisStore};
use crate::{
    key::{KeyedBy, Unkeyed},
    rate::Rate,
    service::TokenBucket,
    shared::{nanos, Hub, Policy, Settings, Shared},
    stats::BucketStats,
    validate,
};

/// The default [`TokenBucketLayer::quota_recheck`]: one hour.
pub const DEFAULT_QUOTA_RECHECK: Duration = Duration::from_secs(3600);

/// Token-bucket rate limiting (see the [crate docs](crate)).
///
/// # Clone
/// The buckets live in an `Arc` owned by the layer: every service the layer makes, every clone
/// of those, and every clone of the layer draws from the same bucket(s). (tower's `RateLimit`
/// keeps its state per service instance, so cloning it multiplies the limit — a known trap
/// this layer avoids.)
///
/// Setters split into two kinds, so a setter called on a clone never splits the state by
/// surprise:
///
/// * **How requests use the bucket** — [`max_wait`](Self::max_wait),
///   [`pause_on_retry_after`](Self::pause_on_retry_after), [`emit_headers`](Self::emit_headers),
///   [`classify`](Self::classify): the layer keeps sharing its buckets; the setting applies to
///   the services *this* layer makes. `l.clone().max_wait(Duration::ZERO)` rejects where `l`
///   waits, for the same tokens.
/// * **What the bucket is** — [`burst`](Self::burst), [`max_keys`](Self::max_keys),
///   [`keyed`](Self::keyed), `store` (feature `redis`), and the rate given to
///   [`new`](Self::new): a different bucket needs different state, so these give the layer
///   new, empty buckets of its own; clones made before keep the old ones. Set them first,
///   then clone.
///
/// A keyed layer forgets a key only when that changes nothing: its bucket is full again,
/// nobody waits in it or holds it, and no quota lock holds (at [`max_keys`](Self::max_keys)
/// with no such key, unused ones go). The keyed buckets are made when the first service is,
/// with the longest `max_wait` set by then on a layer sharing them (the 30 s default counts
/// when `keyed` comes before `max_wait`); a longer `max_wait` set on a clone afterwards is
/// capped at that, and [`validate`](Self::validate) reports it.
///
/// ```
/// use std::time::Duration;
/// use bulwark_bucket::{Rate, TokenBucketLayer};
///
/// let servers = TokenBucketLayer::new(Rate::per_second(10)).max_wait(Duration::ZERO);
/// // The same 10/s, with RateLimit headers on what it admits.
/// let with_headers = servers.clone().emit_headers(true);
/// // Another 10/s of its own.
/// let separate = servers.clone().burst(20);
/// # let _ = (with_headers, separate);
/// ```
#[must_use]
pub struct TokenBucketLayer<C = HttpClassifier, E = Unkeyed, K = ()> {
    settings: Settings,
    policy: Policy,
    keyed: bool,
    shared: Arc<Hub<K>>,
    classify: C,
    extractor: E,
    /// The instance name, given to each new [`Shared`].
    name: Cow<'static, str>,
    #[cfg(feature = "redis")]
    redis: Option<Binding<K>>,
}

impl TokenBucketLayer {
    /// A limit of `rate`, with the defaults listed on each setter.
    ///
    /// # Panics
    /// Never: every [`Rate`] means something (a zero count refuses everything; see its docs
    /// for the clamping of extreme rates).
    pub fn new(rate: Rate) -> Self {
        let settings = Settings {
            rate,
            burst: None,
            max_keys: 100_000,
        };
        let policy = Policy {
            max_wait: nanos(Duration::from_secs(30)),
            pause_on_retry_after: true,
            emit_headers: false,
            quota_recheck: nanos(DEFAULT_QUOTA_RECHECK),
            warn_below_permille: Some(100),
        };
        Self {
            settings,
            policy,
            keyed: false,
            shared: Arc::new(Hub::new(Shared::new(
                settings,
                false,
                policy.max_wait,
                Cow::Borrowed(bulwark_http::DEFAULT_NAME),
            ))),
            classify: HttpClassifier,
            extractor: Unkeyed,
            name: Cow::Borrowed(bulwark_http::DEFAULT_NAME),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl<C, E, K: Hash + Eq + Send + Sync + 'static> TokenBucketLayer<C, E, K> {
    /// New buckets for new bucket settings (see `# Clone`).
    fn rebuild(mut self) -> Self {
        let shared = Shared::new(
            self.settings,
            self.keyed,
            self.policy.max_wait,
            self.name.clone(),
        );
        #[cfg(feature = "redis")]
        let shared = shared.with_redis(self.redis.clone());
        self.shared = Arc::new(Hub::new(shared));
        self
    }

    /// The instance name: the `name` label of this limiter's metrics (feature `metrics`, see
    /// `bulwark_http::metrics`), so that two limiters in one process keep separate series.
    /// Defaults to `"default"`.
    ///
    /// Gives the layer new buckets (see `# Clone` on the type): name it first.
    ///
    /// ```
    /// use bulwark_bucket::{Rate, TokenBucketLayer};
    ///
    /// let layer = TokenBucketLayer::new(Rate::per_second(3)).name("notion");
    /// assert!(format!("{layer:?}").contains("notion"));
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self.rebuild()
    }

    /// The bucket's capacity: how many requests may go at once after a quiet spell.
    /// Defaults to the rate's count (`Rate::per_second(3)` → 3).
    ///
    /// Gives the layer new buckets (see `# Clone` on the type).
    ///
    /// Clamped, and reported by [`validate`](Self::validate) (field `burst`): 0 is taken as 1
    /// (to refuse everything, use a zero [`Rate`]); a burst whose refill would take longer
    /// than 2^62 ns (about 146 years) is cut to what refills in that time.
    ///
    /// # Panics
    /// Never.
    pub fn burst(mut self, burst: u32) -> Self {
        self.settings.burst = Some(burst);
        self.rebuild()
    }

    /// The longest a request waits for its token. Defaults to 30 s.
    ///
    /// A request that can have a token within this waits for it (client-side shaping); one
    /// that cannot is refused at once with [`RateLimited`](bulwark_http::RateLimited) — it
    /// does not wait first. `Duration::ZERO` is reject mode, for servers: a service in reject
    /// mode is ready at once even while the inner service is not, so a refusal never waits
    /// for it (see the [crate docs](crate#readiness)). `Duration::MAX` waits as long as it
    /// takes (saturating at about 584 years).
    ///
    /// Keeps the layer's buckets shared with its clones; on a keyed layer whose buckets were
    /// already made it is capped at the longest wait they cover (see `# Clone` on the type;
    /// [`validate`](Self::validate) reports it, field `max_wait`).
    ///
    /// # Panics
    /// Never.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.policy.max_wait = nanos(max_wait);
        self.shared.note_max_wait(self.policy.max_wait);
        self
    }

    /// At most this many keys for a [`keyed`](Self::keyed) layer (give or take the few made
    /// while a sweep runs); idle keys (full buckets nobody uses) go first, then unused ones.
    /// Defaults to 100 000.
    ///
    /// Gives the layer new buckets (see `# Clone` on the type). 0 would keep no key, so keyed
    /// requests would never be limited: it is taken as 1, and [`validate`](Self::validate)
    /// reports it (field `max_keys`).
    ///
    /// # Panics
    /// Never.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.settings.max_keys = u64::try_from(max_keys).unwrap_or(u64::MAX);
        self.rebuild()
    }

    /// Whether a response classified `Throttled` with a `Retry-After` pauses its bucket for
    /// everyone until then, so no other request is sent into a known wall. Defaults to `true`.
    ///
    /// However long the upstream's wait (a custom classifier may report `Duration::MAX`), the
    /// bucket pauses for it, and the requests it refuses meanwhile say to retry after at most
    /// [`MAX_RETRY_AFTER`](bulwark_http::MAX_RETRY_AFTER) (one year).
    ///
    /// Keeps the layer's buckets shared with its clones; the setting applies to responses to
    /// this layer's services.
    ///
    /// # Panics
    /// Never.
    pub fn pause_on_retry_after(mut self, pause: bool) -> Self {
        self.policy.pause_on_retry_after = pause;
        self
    }

    /// With no reset announced for an exhausted upstream quota (a billing-period quota, a
    /// [`Class::QuotaExhausted`](bulwark_http::Class::QuotaExhausted) with `resets_in: None`),
    /// how often one request is let through to see whether it came back; every other request
    /// meanwhile fails at once with [`QuotaExhausted`](bulwark_http::QuotaExhausted).
    /// Defaults to one hour. A response that shows allowance again (usage headers with
    /// `remaining > 0`) ends the lock at once.
    ///
    /// Exhaustion is learnt when `pause_on_retry_after` is on (the default), from responses to
    /// this layer's services, per bucket (per key when keyed); a quota with an announced reset
    /// is locked until that reset. The lock is this process's: a Redis store does not share it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bulwark_bucket::{Rate, TokenBucketLayer};
    ///
    /// let layer = TokenBucketLayer::new(Rate::per_second(10)).quota_recheck(Duration::from_secs(600));
    /// # let _ = layer;
    /// ```
    ///
    /// # Panics
    /// Never; zero is taken as one millisecond.
    pub fn quota_recheck(mut self, every: Duration) -> Self {
        self.policy.quota_recheck = nanos(every).max(1_000_000);
        self
    }

    /// Emits one `warn` event each time the upstream's advertised allowance (IETF
    /// `RateLimit`, `X-RateLimit-*`, `X-Usage-*` on its answers) falls under `share` of its
    /// limit — once per crossing, again only after it rose above — and sets the
    /// `bulwark_quota_remaining_ratio{name}` gauge (feature `metrics`) from every answer that
    /// carries them. Defaults to `Some(0.10)`; `None` stops reading usage headers from
    /// successful answers (a 429 is always read).
    ///
    /// `share` is clamped to `0.0..=1.0` (NaN is `None`).
    pub fn warn_below(mut self, share: Option<f64>) -> Self {
        self.policy.warn_below_permille = share.filter(|s| !s.is_nan()).map(|s| {
            // Thousandths: 0..=1000 fits a u16.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let permille = (s.clamp(0.0, 1.0) * 1000.0).round() as u16;
            permille
        });
        self
    }

    /// Ends every quota lock of this layer's buckets now (after upgrading the upstream plan,
    /// say): the next request goes upstream.
    pub fn clear_quota_lock(&self) {
        self.shared.clear_quota_locks();
    }

    /// Adds IETF `RateLimit` / `RateLimit-Policy` headers to admitted responses (server use).
    /// Defaults to `false`.
    ///
    /// Keeps the layer's buckets shared with its clones.
    ///
    /// # Panics
    /// Never.
    pub fn emit_headers(mut self, emit: bool) -> Self {
        self.policy.emit_headers = emit;
        self
    }

    /// Classifies responses with `classify` (to find upstream 429s). Defaults to
    /// [`HttpClassifier`].
    ///
    /// Keeps the layer's buckets shared with its clones.
    ///
    /// # Panics
    /// Never.
    pub fn classify<C2: Classify>(self, classify: C2) -> TokenBucketLayer<C2, E, K> {
        TokenBucketLayer {
            settings: self.settings,
            policy: self.policy,
            keyed: self.keyed,
            shared: self.shared,
            classify,
            extractor: self.extractor,
            name: self.name,
            #[cfg(feature = "redis")]
            redis: self.redis,
        }
    }

    /// One bucket per key: `key(&request)` picks it (a token hash, a client IP); `None`
    /// uses the layer's shared bucket. Keys are bounded by [`max_keys`](Self::max_keys).
    ///
    /// Gives the layer new buckets (see `# Clone` on the type). The keyed layer starts
    /// without a store (feature `redis`): set `store` after `keyed`.
    ///
    /// # Panics
    /// Never.
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
            policy: self.policy,
            keyed: true,
            shared: Arc::new(Hub::new(Shared::new(
                self.settings,
                true,
                self.policy.max_wait,
                self.name.clone(),
            ))),
            classify: self.classify,
            extractor: KeyedBy(key),
            name: self.name,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    /// Checks the settings: every setter is infallible and clamps what it cannot use (each
    /// documents how); this reports, with the setter's name, the first setting that the layer
    /// would clamp or that makes no sense. Call it where the layer is built.
    ///
    /// A zero rate (refuses everything), a zero period (no limit) and `Duration::MAX` waits or
    /// periods (for the life of the process) are valid.
    ///
    /// ```
    /// use bulwark_bucket::{Rate, TokenBucketLayer};
    ///
    /// assert!(TokenBucketLayer::new(Rate::per_second(3)).validate().is_ok());
    /// let err = TokenBucketLayer::new(Rate::per_second(3)).burst(0).validate().unwrap_err();
    /// assert_eq!(err.field(), "burst");
    /// ```
    ///
    /// # Errors
    /// [`InvalidConfig`] naming the field:
    /// * `rate`: faster than one request per nanosecond (taken as one per nanosecond);
    /// * `burst`: 0 (taken as 1), or more than refills in about 146 years (cut to that);
    /// * `max_keys`: 0 (taken as 1);
    /// * `max_wait`: on a keyed layer, longer than the buckets it shares cover (capped).
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        validate::check(&self.settings, &self.policy, self.shared.covered_wait())
    }

    /// Counters shared by every service this layer made.
    #[must_use]
    pub fn stats(&self) -> BucketStats {
        self.shared.stats(self.shared.keys_held())
    }
}

#[cfg(feature = "redis")]
impl<C> TokenBucketLayer<C, Unkeyed, ()> {
    /// Keeps the bucket in Redis, shared by every layer — in any process — with the same
    /// store prefix (see [`RedisStore`] for the key, the script and what happens when Redis
    /// is down). Defaults to a local bucket only.
    ///
    /// All processes should use the same rate and burst. A [`keyed`](Self::keyed) layer's
    /// keys must implement `Display`, and `store` comes after `keyed`. Gives the layer new
    /// buckets (see `# Clone` on the type).
    ///
    /// # Panics
    /// Never; the store connects on first use.
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
    /// Defaults to local buckets only. Gives the layer new buckets (see `# Clone` on the type).
    ///
    /// # Panics
    /// Never; the store connects on first use.
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
            policy: self.policy,
            keyed: self.keyed,
            shared: Arc::clone(&self.shared),
            classify: self.classify.clone(),
            extractor: self.extractor.clone(),
            name: self.name.clone(),
            #[cfg(feature = "redis")]
            redis: self.redis.clone(),
        }
    }
}

impl<C: fmt::Debug, E: fmt::Debug, K> fmt::Debug for TokenBucketLayer<C, E, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TokenBucketLayer");
        d.field("name", &self.name)
            .field("settings", &self.settings)
            .field("policy", &self.policy)
            .field("classify", &self.classify)
            .field("key", &self.extractor);
        #[cfg(feature = "redis")]
        d.field("store", &self.redis);
        d.finish_non_exhaustive()
    }
}

impl<S, C, E, K> Layer<S> for TokenBucketLayer<C, E, K>
where
    C: Clone,
    E: Clone,
    K: Hash + Eq + Send + Sync + 'static,
{
    type Service = TokenBucket<S, C, E, K>;

    fn layer(&self, inner: S) -> Self::Service {
        let policy = Policy {
            max_wait: self.shared.wait_limit(self.policy.max_wait),
            ..self.policy
        };
        TokenBucket::from_parts(
            inner,
            Arc::clone(&self.shared),
            self.classify.clone(),
            self.extractor.clone(),
            policy,
        )
    }
}
