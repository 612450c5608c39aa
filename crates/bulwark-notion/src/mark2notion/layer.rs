//! [`Mark2NotionLayer`], its builder and the [`Mark2Notion`] service.

use std::{
    borrow::Cow,
    fmt,
    hash::Hasher,
    task::{Context, Poll},
    time::Duration,
};

use bulwark_breaker::{CircuitBreaker, CircuitBreakerBuilder, CircuitBreakerLayer, Window};
use bulwark_bucket::{KeyedBy, Rate, TokenBucket, TokenBucketLayer};
use bulwark_http::{BoxError, BufferedBody, Idempotency, InvalidConfig};
use bulwark_retry::{Backoff, Jitter, Retry, RetryLayer};
use http::{HeaderName, HeaderValue, Method, Request, Response, Uri};
use tower::timeout::{Timeout, TimeoutLayer};
use tower_layer::Layer;
use tower_service::Service;

use super::classify::Mark2NotionClassifier;

/// Mark2Notion's authentication header.
pub const API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Picks a request's bucket: a stable hash of its `x-api-key` (one bucket, and one quota
/// lock, per key; the key itself is never kept).
pub type ApiKeyHash = fn(&Request<BufferedBody>) -> Option<u64>;

/// A stable 64-bit hash of a request's `x-api-key` (SipHash, fixed key).
#[must_use]
pub fn api_key_hash(req: &Request<BufferedBody>) -> Option<u64> {
    let key = req.headers().get(API_KEY)?;
    let mut hasher =
        siphasher::sip::SipHasher13::new_with_keys(0x6d61_726b_326e_6f74, 0x6275_6c77_6172_6b21);
    hasher.write(key.as_bytes());
    Some(hasher.finish())
}

/// The preset's defaults.
pub mod defaults {
    use std::time::Duration;

    /// Retries per request.
    pub const MAX_RETRIES: u32 = 3;
    /// First backoff (doubling, full jitter): Mark2Notion's own retry loop waits `2^n` s.
    pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
    /// Backoff cap.
    pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
    /// Requests per second per API key (Mark2Notion itself calls Notion at 3/s).
    pub const RATE_PER_SECOND: u32 = 3;
    /// How long a request waits for a token.
    pub const MAX_WAIT: Duration = Duration::from_secs(30);
    /// Each attempt's timeout (an append of many blocks takes a while: 400 ms per 100 blocks).
    pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);
    /// Consecutive failures that open the circuit.
    pub const CONSECUTIVE_FAILURES: u32 = 5;
    /// First break of the circuit (growing to [`MAX_BREAK_DURATION`]).
    pub const BREAK_DURATION: Duration = Duration::from_secs(2);
    /// Longest break.
    pub const MAX_BREAK_DURATION: Duration = Duration::from_secs(30);
    /// The low-allowance warning threshold: 10 % of the quota left.
    pub const WARN_BELOW: f64 = 0.10;
    /// With the monthly quota used up and no reset announced, one call per this checks
    /// whether it came back.
    pub const QUOTA_RECHECK: Duration = Duration::from_secs(3600);
    /// The metrics `name` label.
    pub const NAME: &str = "mark2notion";
}

/// The retry layer as the preset configures it.
pub type Mark2NotionRetry = RetryLayer<Mark2NotionClassifier>;
/// The breaker builder as the preset configures it.
pub type Mark2NotionBreaker = CircuitBreakerBuilder<Mark2NotionClassifier>;
/// The bucket as the preset configures it (keyed by [`api_key_hash`]).
pub type Mark2NotionBucket = TokenBucketLayer<Mark2NotionClassifier, KeyedBy<ApiKeyHash>, u64>;

/// The composed stack inside [`Mark2Notion`], outermost first.
pub type Mark2NotionStack<S> = Retry<
    CircuitBreaker<
        TokenBucket<Timeout<S>, Mark2NotionClassifier, KeyedBy<ApiKeyHash>, u64>,
        Mark2NotionClassifier,
    >,
    Mark2NotionClassifier,
>;

/// `POST /api/convert` is a pure function of its body: safe to send twice. `POST
/// /api/append` adds blocks to a page: never repeated after an ambiguous failure.
fn is_idempotent(method: &Method, uri: &Uri) -> bool {
    method == Method::POST && uri.path().trim_end_matches('/') == "/api/convert"
}

/// The Mark2Notion preset: retry → circuit breaker → token bucket (per API key) → per-attempt
/// timeout, all classifying with [`Mark2NotionClassifier`], and `x-api-key` on every request
/// that has none.
///
/// Its point is the quota: Mark2Notion answers a used-up monthly quota with a 429 and
/// `X-Usage-Remaining: 0`, and no reset before next month. That 429 is never retried (its own
/// documentation's retry loop retries it three times with `2^n` s waits), never opens the
/// circuit (the service is healthy), and every later request with that key fails at once,
/// locally, with [`QuotaExhausted`](bulwark_http::QuotaExhausted) — one upstream call a
/// [`QUOTA_RECHECK`](defaults::QUOTA_RECHECK) checks whether the quota came back, and any
/// answer showing allowance ends the lock. A warning is logged once when the allowance falls
/// under 10 % (`X-Usage-*` on every answer).
///
/// No stale cache: Mark2Notion's answers are conversions and appends, not reads worth serving
/// old.
///
/// ```
/// use bulwark_http::BufferedBody;
/// use bulwark_notion::mark2notion::Mark2NotionLayer;
/// use http::{Request, Response};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bulwark_http::BoxError> {
/// let layer = Mark2NotionLayer::builder().api_key("mk_live_abc").build()?;
/// let upstream = service_fn(|req: Request<BufferedBody>| async move {
///     assert_eq!(req.headers()["x-api-key"], "mk_live_abc");
///     Ok::<_, bulwark_http::BoxError>(Response::new(BufferedBody::from(r#"{"status":"success"}"#)))
/// });
/// let res = layer
///     .layer(upstream)
///     .oneshot(Request::post("https://api.mark2notion.com/api/convert").body(BufferedBody::from(r##"{"markdown":"# Hi"}"##))?)
///     .await?;
/// assert_eq!(res.status(), 200);
/// assert!(!format!("{layer:?}").contains("mk_live_abc"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct Mark2NotionLayer {
    api_key: Option<HeaderValue>,
    retry: Mark2NotionRetry,
    breaker: CircuitBreakerLayer<Mark2NotionClassifier>,
    bucket: Mark2NotionBucket,
    timeout: TimeoutLayer,
}

impl fmt::Debug for Mark2NotionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mark2NotionLayer")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl Mark2NotionLayer {
    /// A builder with the preset's [`defaults`].
    pub fn builder() -> Mark2NotionLayerBuilder {
        Mark2NotionLayerBuilder::new()
    }

    /// The bucket (its `stats()`, `clear_quota_lock()`).
    pub const fn bucket(&self) -> &Mark2NotionBucket {
        &self.bucket
    }

    /// The circuit breaker's handle (its state and metrics).
    pub fn breaker(&self) -> bulwark_breaker::BreakerHandle {
        self.breaker.handle()
    }
}

impl<S> Layer<S> for Mark2NotionLayer {
    type Service = Mark2Notion<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let stack = self.retry.layer(
            self.breaker
                .layer(self.bucket.layer(self.timeout.layer(inner))),
        );
        Mark2Notion {
            api_key: self.api_key.clone(),
            inner: stack,
        }
    }
}

/// Builds a [`Mark2NotionLayer`].
#[must_use]
pub struct Mark2NotionLayerBuilder {
    api_key: Option<String>,
    name: Cow<'static, str>,
    attempt_timeout: Duration,
    retry: Mark2NotionRetry,
    breaker: Mark2NotionBreaker,
    bucket: Mark2NotionBucket,
}

impl fmt::Debug for Mark2NotionLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mark2NotionLayerBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("name", &self.name)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("bucket", &self.bucket)
            .finish()
    }
}

impl Default for Mark2NotionLayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket(rate: Rate, name: Cow<'static, str>) -> Mark2NotionBucket {
    TokenBucketLayer::new(rate)
        .name(name)
        .max_wait(defaults::MAX_WAIT)
        .pause_on_retry_after(true)
        .quota_recheck(defaults::QUOTA_RECHECK)
        .warn_below(Some(defaults::WARN_BELOW))
        .classify(Mark2NotionClassifier)
        .keyed(api_key_hash as ApiKeyHash)
}

impl Mark2NotionLayerBuilder {
    /// The preset's [`defaults`].
    pub fn new() -> Self {
        let name = Cow::Borrowed(defaults::NAME);
        Self {
            api_key: None,
            attempt_timeout: defaults::ATTEMPT_TIMEOUT,
            retry: RetryLayer::new()
                .name(name.clone())
                .max_retries(defaults::MAX_RETRIES)
                .backoff(
                    Backoff::exponential(defaults::BACKOFF_BASE)
                        .max_delay(defaults::BACKOFF_CAP)
                        .jitter(Jitter::Full),
                )
                .idempotency(Idempotency::methods_only().allow(is_idempotent))
                .classify(Mark2NotionClassifier),
            breaker: CircuitBreakerLayer::builder()
                .name(name.clone())
                .consecutive_failures(defaults::CONSECUTIVE_FAILURES)
                .window(Window::time(Duration::from_secs(30)))
                .break_duration(defaults::BREAK_DURATION)
                .max_break_duration(defaults::MAX_BREAK_DURATION)
                .break_jitter(0.25)
                .classify(Mark2NotionClassifier),
            bucket: bucket(Rate::per_second(defaults::RATE_PER_SECOND), name.clone()),
            name,
        }
    }

    /// Sends `x-api-key: key` on requests that carry none. Redacted in `Debug`, never logged.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The `name` label of the layers' metrics (default `mark2notion`). Call it first: it
    /// renames the layers held now (the bucket starts empty).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        let name = name.into();
        self.retry = self.retry.name(name.clone());
        self.breaker = self.breaker.name(name.clone());
        self.bucket = self.bucket.name(name.clone());
        self.name = name;
        self
    }

    /// Each attempt's timeout. Defaults to [`defaults::ATTEMPT_TIMEOUT`].
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Adjusts the retry layer.
    pub fn retry(mut self, f: impl FnOnce(Mark2NotionRetry) -> Mark2NotionRetry) -> Self {
        self.retry = f(self.retry);
        self
    }

    /// Adjusts the circuit breaker.
    pub fn breaker(mut self, f: impl FnOnce(Mark2NotionBreaker) -> Mark2NotionBreaker) -> Self {
        self.breaker = f(self.breaker);
        self
    }

    /// Adjusts the bucket (`quota_recheck`, `warn_below`, `max_wait`, …). A new rate:
    /// `|_| …` is not enough to keep the preset's settings; change them on the given layer.
    pub fn bucket(mut self, f: impl FnOnce(Mark2NotionBucket) -> Mark2NotionBucket) -> Self {
        self.bucket = f(self.bucket);
        self
    }

    /// A rate other than [`defaults::RATE_PER_SECOND`], keeping the preset's other bucket
    /// settings (new, empty buckets).
    pub fn rate(mut self, rate: Rate) -> Self {
        self.bucket = bucket(rate, self.name.clone());
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    /// [`InvalidConfig`] naming the field: `api_key` empty or not valid in a header,
    /// `attempt_timeout` zero, or what a sub-layer's own check reports.
    pub fn build(self) -> Result<Mark2NotionLayer, InvalidConfig> {
        let api_key = match self.api_key.as_deref().map(str::trim) {
            None => None,
            Some("") => return Err(InvalidConfig::new("api_key", "the API key is empty")),
            Some(key) => {
                let mut value = HeaderValue::try_from(key).map_err(|_| {
                    InvalidConfig::new(
                        "api_key",
                        "the API key holds characters not allowed in a header",
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        if self.attempt_timeout.is_zero() {
            return Err(InvalidConfig::new("attempt_timeout", "must be above zero"));
        }
        self.retry.validate()?;
        self.bucket.validate()?;
        Ok(Mark2NotionLayer {
            api_key,
            retry: self.retry,
            breaker: self.breaker.build()?,
            bucket: self.bucket,
            timeout: TimeoutLayer::new(self.attempt_timeout),
        })
    }
}

/// The service made by [`Mark2NotionLayer`].
#[derive(Clone)]
pub struct Mark2Notion<S> {
    api_key: Option<HeaderValue>,
    inner: Mark2NotionStack<S>,
}

impl<S> fmt::Debug for Mark2Notion<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mark2Notion")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl<S, ResB> Service<Request<BufferedBody>> for Mark2Notion<S>
where
    Mark2NotionStack<S>:
        Service<Request<BufferedBody>, Response = Response<ResB>, Error = BoxError>,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = <Mark2NotionStack<S> as Service<Request<BufferedBody>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<BufferedBody>) -> Self::Future {
        match req.headers_mut().get_mut(API_KEY) {
            Some(own) => own.set_sensitive(true),
            None => {
                if let Some(key) = &self.api_key {
                    req.headers_mut().insert(API_KEY, key.clone());
                }
            }
        }
        self.inner.call(req)
    }
}
