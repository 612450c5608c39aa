//! [`NotionLayerBuilder`]: Notion's defaults for every sub-layer, each overridable, checked
//! together in [`build`](NotionLayerBuilder::build).

use std::{borrow::Cow, fmt, sync::Arc, time::Duration};

use bulwark_breaker::{CircuitBreakerLayer, CircuitWait, Window};
use bulwark_bucket::{Rate, TokenBucketLayer};
use bulwark_cache::StaleCacheLayer;
use bulwark_http::{BufferedBody, HttpClassifier, InvalidConfig};
use bulwark_retry::{Backoff, RetryLayer};
use http::HeaderValue;
use tower::timeout::TimeoutLayer;

use crate::{
    body::NotionBodyLayer,
    classify::{NotionBreakerClassifier, NotionClassifier},
    defaults,
    headers::NOTION_VERSION,
    layer::{NotionBreaker, NotionBucket, NotionCache, NotionLayer, NotionRetry},
    metrics::Metrics,
    reconcile::ReconcileConfig,
    routes,
    service::RequestHeaders,
    token::{bare_token, token_key, TokenKey},
};

impl NotionLayer {
    /// A builder with Notion's defaults.
    pub fn builder() -> NotionLayerBuilder {
        NotionLayerBuilder::new()
    }
}

/// Builds a [`NotionLayer`]: Notion's defaults, each overridable. See [`NotionLayer`].
#[must_use]
pub struct NotionLayerBuilder {
    pub(crate) name: Cow<'static, str>,
    check_limits: bool,
    token: Option<String>,
    version: String,
    user_agent: String,
    attempt_timeout: Duration,
    max_response_bytes: usize,
    write_max_wait: Duration,
    reconcile: ReconcileConfig,
    retry: NotionRetry,
    breaker: NotionBreaker,
    bucket: NotionBucket,
    cache: Option<NotionCache>,
}

impl fmt::Debug for NotionLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotionLayerBuilder")
            .field("name", &self.name)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("version", &self.version)
            .field("user_agent", &self.user_agent)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("write_max_wait", &self.write_max_wait)
            .field("reconcile", &self.reconcile)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("bucket", &self.bucket)
            .field("cache", &self.cache)
            .field("check_limits", &self.check_limits)
            .finish()
    }
}

impl Default for NotionLayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl NotionLayerBuilder {
    /// Notion's defaults (see [`NotionLayer`]).
    pub fn new() -> Self {
        let retry = RetryLayer::new()
            .max_retries(defaults::MAX_RETRIES)
            .backoff(
                Backoff::exponential(defaults::BACKOFF_BASE)
                    .max_delay(defaults::BACKOFF_CAP)
                    .jitter(defaults::JITTER),
            )
            .max_retry_after(defaults::MAX_RETRY_AFTER)
            .idempotency(defaults::idempotency())
            .classify(NotionClassifier)
            .name(defaults::NAME);
        let breaker = CircuitBreakerLayer::builder()
            .name(defaults::NAME)
            .consecutive_failures(defaults::CONSECUTIVE_FAILURES)
            .failure_ratio(defaults::FAILURE_RATIO)
            .minimum_calls(defaults::MINIMUM_CALLS)
            .window(Window::time(defaults::WINDOW))
            .break_duration(defaults::BREAK_DURATION)
            .max_break_duration(defaults::MAX_BREAK_DURATION)
            .break_jitter(defaults::BREAK_JITTER)
            .slow_call_threshold(defaults::SLOW_CALL_THRESHOLD)
            .classify(NotionBreakerClassifier);
        let bucket = notion_bucket(
            Rate::per_second(defaults::RATE_PER_SECOND),
            Cow::Borrowed(defaults::NAME),
        );
        let cache = default_cache();
        Self {
            name: Cow::Borrowed(defaults::NAME),
            check_limits: defaults::CHECK_LIMITS,
            token: None,
            version: defaults::NOTION_VERSION.to_owned(),
            user_agent: defaults::USER_AGENT.to_owned(),
            attempt_timeout: defaults::ATTEMPT_TIMEOUT,
            max_response_bytes: defaults::MAX_RESPONSE_BYTES,
            write_max_wait: defaults::WRITE_MAX_WAIT,
            reconcile: ReconcileConfig {
                dedupe_by: None,
                page_updates: defaults::RECONCILE_PAGE_UPDATES,
            },
            retry,
            breaker,
            bucket,
            cache: Some(cache),
        }
    }

    /// The instance name: the `name` label of the metrics (feature `metrics`) of the preset
    /// and of each of its layers, so that two presets in one process — two integrations, say —
    /// keep separate series. Defaults to [`defaults::NAME`] (`"notion"`).
    ///
    /// It renames the retry, breaker, bucket and cache layers the builder holds when it is
    /// called (the bucket and the cache start empty again, as their own `name` setters do):
    /// call it first. A sub-layer a closure replaces outright keeps the name it was given.
    ///
    /// ```
    /// let layer = bulwark_notion::NotionLayer::builder().name("notion-billing").build()?;
    /// assert!(format!("{layer:?}").contains("notion-billing"));
    /// # Ok::<(), bulwark_http::InvalidConfig>(())
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        let name = name.into();
        self.retry = self.retry.name(name.clone());
        self.breaker = self.breaker.name(name.clone());
        self.bucket = self.bucket.name(name.clone());
        self.cache = self.cache.map(|cache| cache.name(name.clone()));
        self.name = name;
        self
    }

    /// Sends `Authorization: Bearer <token>` on requests that carry no `Authorization` of their
    /// own. Defaults to none (a proxy passes its callers' tokens through). The token is
    /// redacted in `Debug` output and never logged.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The `Notion-Version` sent on requests that carry none. Defaults to
    /// [`defaults::NOTION_VERSION`] (`2025-09-03`).
    ///
    /// ```
    /// assert_eq!(bulwark_notion::defaults::NOTION_VERSION, "2025-09-03");
    /// ```
    pub fn notion_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The `User-Agent` sent on requests that carry none. Defaults to
    /// [`defaults::USER_AGENT`] (`bulwark-notion/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// How long a request with no stored copy to fall back on — a write, or a read the cache
    /// does not keep — waits for an open circuit to let it through (the circuit breaker's
    /// [`max_wait`](bulwark_breaker::CircuitBreakerBuilder::max_wait), given per request as
    /// [`CircuitWait`](bulwark_breaker::CircuitWait), which a caller's own extension overrides).
    /// Cacheable reads fail fast instead: the cache answers them with the last good copy.
    /// `Duration::ZERO` makes every request fail fast. Defaults to
    /// [`defaults::WRITE_MAX_WAIT`], 30 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(bulwark_notion::defaults::WRITE_MAX_WAIT, Duration::from_secs(30));
    /// ```
    pub fn write_max_wait(mut self, wait: Duration) -> Self {
        self.write_max_wait = wait;
        self
    }

    /// The former name of [`write_max_wait`](Self::write_max_wait): every bound on a wait is
    /// called `max_wait` (see the README's "Composing with tower").
    #[deprecated(note = "renamed `write_max_wait`")]
    pub fn write_wait(self, wait: Duration) -> Self {
        self.write_max_wait(wait)
    }

    /// Makes creates that fail ambiguously safe to settle: `property` holds a value unique to
    /// each page your integration creates (an external id, a sync key). When a
    /// `POST /v1/pages` into a data source (or a database with one data source) sets it and
    /// then fails ambiguously — a 5xx, a timeout, a reset, after which Notion may or may not
    /// have made the page — the preset queries the parent for a page whose `property` equals
    /// the body's value: found, that page is the answer (`200`, [`Reconciled::Found`]);
    /// certainly absent, the create is sent again (at most twice); the lookup failing, the
    /// failure comes back marked [`Reconciled::MayHaveBeenApplied`] (or as a
    /// [`MaybeApplied`](crate::MaybeApplied) error). The property may be a `title`,
    /// `rich_text`, `number`, `select`, `url`, `email` or `phone_number`; a create without a
    /// value for it is only marked. See [`reconcile`](crate::reconcile) for the whole table.
    ///
    /// Without this, an ambiguous create is never sent again and comes back marked
    /// `may-have-been-applied`.
    ///
    /// ```
    /// use bulwark_notion::NotionLayer;
    ///
    /// let layer = NotionLayer::builder().dedupe_creates_by("External ID").build()?;
    /// # let _ = layer;
    /// # Ok::<_, bulwark_http::InvalidConfig>(())
    /// ```
    ///
    /// [`Reconciled::Found`]: crate::Reconciled::Found
    /// [`Reconciled::MayHaveBeenApplied`]: crate::Reconciled::MayHaveBeenApplied
    pub fn dedupe_creates_by(mut self, property: impl Into<String>) -> Self {
        self.reconcile.dedupe_by = Some(Arc::from(property.into()));
        self
    }

    /// Whether a `PATCH /v1/pages/{id}` that fails ambiguously is read back: when the page
    /// already holds what the update set, the page is the answer (`200`,
    /// [`Reconciled::Verified`](crate::Reconciled::Verified)); when it does not, the update is
    /// sent again — a page update replaces values, so a second one cannot apply anything
    /// twice; when the read fails or the update sets something that cannot be compared (an
    /// icon, a file), the failure comes back marked `may-have-been-applied`. Defaults to
    /// [`defaults::RECONCILE_PAGE_UPDATES`], on.
    ///
    /// ```
    /// assert!(bulwark_notion::defaults::RECONCILE_PAGE_UPDATES);
    /// ```
    pub fn reconcile_page_updates(mut self, on: bool) -> Self {
        self.reconcile.page_updates = on;
        self
    }

    /// Whether a request that breaks one of Notion's documented size limits (500 KB body,
    /// 1 000 blocks, 100 children, 2 levels of nesting, 2 000 characters of rich text, 100
    /// elements per array, `page_size` ≤ 100 — see [`limits`](crate::limits)) is refused
    /// before it is sent, with a [`LimitExceeded`](crate::limits::LimitExceeded) error naming
    /// the limit and where it was broken, instead of a round trip (after a token) and Notion's
    /// `400 validation_error`. Defaults to [`defaults::CHECK_LIMITS`], off: a request is
    /// then sent as it is and Notion judges it.
    ///
    /// ```
    /// use bulwark_http::BufferedBody;
    /// use bulwark_notion::{limits::LimitExceeded, NotionLayer};
    /// use http::Request;
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let layer = NotionLayer::builder().check_limits(true).build().unwrap();
    /// let never_called = service_fn(|_req: Request<BufferedBody>| async {
    ///     Err::<http::Response<BufferedBody>, bulwark_http::BoxError>("sent".into())
    /// });
    /// let body = r#"{"page_size": 500}"#;
    /// let req = Request::post("https://api.notion.com/v1/search").body(BufferedBody::from(body)).unwrap();
    /// let err = layer.layer(never_called).oneshot(req).await.unwrap_err();
    /// assert!(err.downcast_ref::<LimitExceeded>().is_some(), "{err}");
    /// # }
    /// ```
    pub fn check_limits(mut self, on: bool) -> Self {
        self.check_limits = on;
        self
    }

    /// How long one attempt (request and response body) may take. Defaults to
    /// [`defaults::ATTEMPT_TIMEOUT`], 60 s, Notion's own maximum.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(bulwark_notion::defaults::ATTEMPT_TIMEOUT, Duration::from_secs(60));
    /// ```
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// The largest response body read. Defaults to [`defaults::MAX_RESPONSE_BYTES`], 32 MiB.
    ///
    /// ```
    /// assert_eq!(bulwark_notion::defaults::MAX_RESPONSE_BYTES, 32 << 20);
    /// ```
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Adjusts the retry layer. Defaults ([`defaults`]): 3 retries, exponential backoff from
    /// 1 s capped at 30 s with full jitter, `Retry-After` honoured up to 60 s, the default retry
    /// budget, idempotent = RFC 9110 methods plus the read-only POSTs
    /// ([`defaults::idempotency`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bulwark_notion::{defaults::*, NotionLayer};
    ///
    /// let s = Duration::from_secs;
    /// assert_eq!((MAX_RETRIES, BACKOFF_BASE, BACKOFF_CAP, MAX_RETRY_AFTER), (3, s(1), s(30), s(60)));
    /// assert_eq!(JITTER, bulwark_retry::Jitter::Full);
    ///
    /// let layer = NotionLayer::builder().retry(|r| r.max_retries(5)).build()?;
    /// # let _ = layer;
    /// # Ok::<_, bulwark_http::InvalidConfig>(())
    /// ```
    pub fn retry(mut self, f: impl FnOnce(NotionRetry) -> NotionRetry) -> Self {
        self.retry = f(self.retry);
        self
    }

    /// Adjusts the circuit breaker. Defaults ([`defaults`]): opens after 5 consecutive failures
    /// or 50 % of at least 10 calls in a 30 s window; a 1 s break that doubles after each failed
    /// probe up to 4 s, each lengthened by up to 25 % at random (so recovery is seen within 5 s
    /// of Notion's). Classifies with
    /// [`NotionBreakerClassifier`]: a 409 is the caller's data collision, not Notion failing.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use bulwark_notion::defaults::*;
    ///
    /// let s = Duration::from_secs;
    /// assert_eq!((CONSECUTIVE_FAILURES, FAILURE_RATIO, MINIMUM_CALLS, WINDOW), (5, 0.5, 10, s(30)));
    /// assert_eq!((BREAK_DURATION, MAX_BREAK_DURATION, BREAK_JITTER), (s(1), s(4), 0.25));
    /// ```
    pub fn breaker(mut self, f: impl FnOnce(NotionBreaker) -> NotionBreaker) -> Self {
        self.breaker = f(self.breaker);
        self
    }

    /// Adjusts the token bucket. Defaults ([`defaults`]): 3 requests/s, burst 3, one bucket per
    /// token ([`token_key`]), paused by `Retry-After`, callers wait up to 30 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use bulwark_notion::defaults::*;
    ///
    /// assert_eq!((RATE_PER_SECOND, BURST, PAUSE_ON_RETRY_AFTER), (3, 3, true));
    /// assert_eq!(MAX_WAIT, Duration::from_secs(30));
    /// ```
    pub fn bucket(mut self, f: impl FnOnce(NotionBucket) -> NotionBucket) -> Self {
        self.bucket = f(self.bucket);
        self
    }

    /// Adjusts the stale cache (and switches it back on after
    /// [`without_cache`](Self::without_cache)). Defaults: GET reads and read-only POSTs
    /// ([`routes::is_cacheable`]), always live, stale-if-error 5 min
    /// ([`defaults::STALE_IF_ERROR`]), keyed with `Notion-Version`, the token's hash and the
    /// canonical JSON body.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(bulwark_notion::defaults::STALE_IF_ERROR, Duration::from_secs(5 * 60));
    /// ```
    pub fn cache(mut self, f: impl FnOnce(NotionCache) -> NotionCache) -> Self {
        let cache = self.cache.take().unwrap_or_else(default_cache);
        self.cache = Some(f(cache));
        self
    }

    /// Switches the stale cache off: failures reach the caller as they are.
    pub fn without_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    /// [`InvalidConfig`] naming the field: `token`, `notion_version` or `user_agent` not valid
    /// in an HTTP header; `attempt_timeout` zero; `dedupe_creates_by` empty; or what a
    /// sub-layer's own check reports ([`RetryLayer::validate`](bulwark_retry::RetryLayer::validate),
    /// [`TokenBucketLayer::validate`](bulwark_bucket::TokenBucketLayer::validate),
    /// [`StaleCacheLayer::validate`](bulwark_cache::StaleCacheLayer::validate),
    /// [`CircuitBreakerBuilder::build`](bulwark_breaker::CircuitBreakerBuilder::build)).
    pub fn build(self) -> Result<NotionLayer, InvalidConfig> {
        let authorization = match self.token.as_deref().map(bare_token) {
            None => None,
            Some("") => {
                return Err(InvalidConfig::new("token", "the token is empty"));
            }
            Some(token) => {
                let mut value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
                    InvalidConfig::new(
                        "token",
                        "the token holds characters not allowed in a header",
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        if self.version.trim().is_empty() {
            return Err(InvalidConfig::new("notion_version", "must not be empty"));
        }
        if self.max_response_bytes == 0 {
            return Err(InvalidConfig::new(
                "max_response_bytes",
                "must be above zero",
            ));
        }
        let version = HeaderValue::try_from(self.version.as_str())
            .map_err(|_| InvalidConfig::new("notion_version", "not a valid header value"))?;
        let user_agent = HeaderValue::try_from(self.user_agent.as_str())
            .map_err(|_| InvalidConfig::new("user_agent", "not a valid header value"))?;
        if self.attempt_timeout.is_zero() {
            return Err(InvalidConfig::new("attempt_timeout", "must be above zero"));
        }
        if self
            .reconcile
            .dedupe_by
            .as_deref()
            .is_some_and(|p| p.trim().is_empty())
        {
            return Err(InvalidConfig::new(
                "dedupe_creates_by",
                "the property name is empty",
            ));
        }
        self.retry.validate()?;
        self.bucket.validate()?;
        if let Some(cache) = &self.cache {
            cache.validate()?;
        }
        let cache_on = self.cache.is_some();
        let cache = match self.cache {
            // Notion-Version stays in the key whatever vary headers a closure set.
            Some(cache) => cache.vary_header(NOTION_VERSION),
            None => default_cache().cacheable(|_, _| false),
        };
        let metrics = cfg!(feature = "metrics").then(|| Arc::new(Metrics::new(self.name)));
        Ok(NotionLayer {
            headers: Arc::new(RequestHeaders {
                metrics: metrics.clone(),
                authorization,
                version,
                user_agent,
                canonical_bodies: cache_on,
                check_limits: self.check_limits,
                write_max_wait: CircuitWait(self.write_max_wait),
                cache_on,
            }),
            cache,
            cache_on,
            reconcile: Arc::new(self.reconcile),
            retry: self.retry,
            breaker: self.breaker.build()?,
            bucket: self.bucket,
            timeout: TimeoutLayer::new(self.attempt_timeout),
            body: NotionBodyLayer::new(self.max_response_bytes).counted(metrics),
        })
    }
}

/// Notion's bucket (see [`NotionLayerBuilder::new`]) at `rate`, named `name`.
pub(crate) fn notion_bucket(rate: Rate, name: Cow<'static, str>) -> NotionBucket {
    TokenBucketLayer::new(rate)
        .name(name)
        .burst(defaults::BURST)
        .max_wait(defaults::MAX_WAIT)
        .pause_on_retry_after(defaults::PAUSE_ON_RETRY_AFTER)
        .classify(NotionClassifier)
        .keyed(token_key as TokenKey)
}

/// The preset's cache: GET reads and read-only POSTs, stale-if-error 5 min, varying on
/// `Notion-Version` (the token's hash and the body are always part of the key).
fn default_cache() -> NotionCache {
    StaleCacheLayer::<HttpClassifier, BufferedBody>::new()
        .name(defaults::NAME)
        .stale_if_error(defaults::STALE_IF_ERROR)
        .coalesce_max_wait(defaults::COALESCE_MAX_WAIT)
        .cacheable(routes::is_cacheable)
        .vary_headers([NOTION_VERSION])
        .classify(NotionClassifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_settings_are_named() {
        let err = NotionLayer::builder()
            .token("bad\ntoken")
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "token");
        let err = NotionLayer::builder().token("  ").build().unwrap_err();
        assert_eq!(err.field(), "token");
        let err = NotionLayer::builder()
            .notion_version("2025\r\n")
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "notion_version");
        let err = NotionLayer::builder()
            .notion_version("")
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "notion_version");
        let err = NotionLayer::builder()
            .max_response_bytes(0)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "max_response_bytes");
        let err = NotionLayer::builder()
            .token("Bearer  ")
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "token");
        let err = NotionLayer::builder()
            .attempt_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "attempt_timeout");
        let err = NotionLayer::builder()
            .breaker(|b| b.failure_ratio(2.0))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "failure_ratio");
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let builder = NotionLayer::builder().token("secret_xyz");
        assert!(!format!("{builder:?}").contains("secret_xyz"));
        let layer = builder.build().unwrap();
        assert!(!format!("{layer:?}").contains("secret_xyz"));
    }
}
