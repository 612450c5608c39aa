//! [`NotionLayer`]: the four bulwark layers composed with Notion's rules, and
//! [`NotionStats`], every layer's counters. Built by
//! [`NotionLayerBuilder`](crate::NotionLayerBuilder); makes [`Notion`] services.

use std::{fmt, sync::Arc};

use bulwark_breaker::{BreakerHandle, BreakerMetrics, CircuitBreakerBuilder, CircuitBreakerLayer};
use bulwark_bucket::{BucketStats, KeyedBy, TokenBucketLayer};
use bulwark_cache::{CacheStats, StaleCacheLayer};
use bulwark_http::BufferedBody;
use bulwark_retry::{RetryLayer, RetryStats};
use tower::timeout::TimeoutLayer;
use tower_layer::Layer;

use crate::{
    body::NotionBodyLayer,
    classify::{NotionBreakerClassifier, NotionClassifier},
    reconcile::{Reconcile, ReconcileConfig},
    service::{Notion, RequestHeaders},
    token::TokenKey,
};

/// The retry layer as the preset configures it.
pub type NotionRetry = RetryLayer<NotionClassifier>;
/// The circuit-breaker builder as the preset configures it.
pub type NotionBreaker = CircuitBreakerBuilder<NotionBreakerClassifier>;
/// The token-bucket layer as the preset configures it (keyed by [`TokenKey`]).
pub type NotionBucket = TokenBucketLayer<NotionClassifier, KeyedBy<TokenKey>, u64>;
/// The stale-cache layer as the preset configures it.
pub type NotionCache = StaleCacheLayer<NotionClassifier, BufferedBody>;

/// The Notion preset: stale cache → retry → circuit breaker → token bucket → per-attempt
/// timeout → [`NotionBodyLayer`], all classifying with [`NotionClassifier`].
///
/// A `Layer` for any `Service<Request<BufferedBody>>` whose response body yields `Bytes`
/// (hyper-util's legacy client, reqwest through a shim, a test double). Put
/// [`BufferBodyLayer`](bulwark_http::BufferBodyLayer) in front for streaming request bodies.
/// Responses come back as `Response<CacheBody<BufferedBody>>`; errors as `BoxError` whose
/// source chain holds `CircuitOpen`, `RateLimited`, a timeout or the client's error.
///
/// Every request gets `Authorization: Bearer <token>` (when [`token`](crate::NotionLayerBuilder::token)
/// is set and the request has none), `Notion-Version` and a `User-Agent` when missing, and a
/// read-only POST's JSON body is rewritten canonically (sorted keys, no whitespace) so equal
/// queries share a cache entry.
///
/// State (bucket, breaker, retry budget, cache) lives in the layer and is shared by every
/// service it makes and every clone: clone the layer or the service freely.
///
/// # Example
/// ```
/// use bulwark_http::BufferedBody;
/// use bulwark_notion::NotionLayer;
/// use http::{Request, Response};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bulwark_http::BoxError> {
/// let notion = NotionLayer::builder()
///     .token("secret_abc")
///     .retry(|r| r.max_retries(5))
///     .build()?;
/// let client = service_fn(|req: Request<BufferedBody>| async move {
///     assert_eq!(req.headers()["notion-version"], "2025-09-03");
///     Ok::<_, std::convert::Infallible>(Response::new(BufferedBody::from(r#"{"object":"user"}"#)))
/// });
/// let svc = ServiceBuilder::new().layer(notion.clone()).service(client);
/// let res = svc
///     .oneshot(Request::get("https://api.notion.com/v1/users/me").body(BufferedBody::default())?)
///     .await?;
/// assert_eq!(res.status(), 200);
/// assert_eq!(format!("{notion:?}").contains("secret_abc"), false);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct NotionLayer {
    // Set by `NotionLayerBuilder::build`.
    pub(crate) headers: Arc<RequestHeaders>,
    pub(crate) cache: NotionCache,
    pub(crate) cache_on: bool,
    pub(crate) reconcile: Arc<ReconcileConfig>,
    pub(crate) retry: NotionRetry,
    pub(crate) breaker: CircuitBreakerLayer<NotionBreakerClassifier>,
    pub(crate) bucket: NotionBucket,
    pub(crate) timeout: TimeoutLayer,
    pub(crate) body: NotionBodyLayer,
}

impl fmt::Debug for NotionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotionLayer")
            .field("headers", &self.headers)
            .field("cache", &self.cache_on.then_some(&self.cache))
            .field("reconcile", &self.reconcile)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("bucket", &self.bucket)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl NotionLayer {
    /// The circuit breaker's handle: state, metrics, `force_open`, `reset`.
    #[must_use]
    pub fn breaker(&self) -> BreakerHandle {
        self.breaker.handle()
    }

    /// A snapshot of every layer's counters.
    #[must_use]
    pub fn stats(&self) -> NotionStats {
        NotionStats {
            retry: self.retry.stats(),
            breaker: self.breaker.handle().metrics(),
            bucket: self.bucket.stats(),
            cache: self.cache.stats(),
        }
    }
}

/// Every layer's counters (see [`NotionLayer::stats`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NotionStats {
    /// Attempts, retries, give-ups, budget.
    pub retry: RetryStats,
    /// State, calls, failures, rejections, opens.
    pub breaker: BreakerMetrics,
    /// Admitted, waited, rejected, paused.
    pub bucket: BucketStats,
    /// Hits, stale answers, stores.
    pub cache: CacheStats,
}

impl<S> Layer<S> for NotionLayer {
    type Service = Notion<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = self.body.layer(inner);
        let inner = self.timeout.layer(inner);
        let inner = self.bucket.layer(inner);
        let inner = self.breaker.layer(inner);
        let inner = self.retry.layer(inner);
        let inner = Reconcile::new(inner, Arc::clone(&self.reconcile));
        let inner = self.cache.layer(inner);
        Notion::from_parts(Arc::clone(&self.headers), inner)
    }
}

#[cfg(test)]
mod tests {
    use bulwark_http::BoxError;
    use http::{header, Request, Response};

    use super::*;
    use crate::headers::{DEFAULT_NOTION_VERSION, NOTION_VERSION};

    #[tokio::test]
    async fn read_only_posts_are_sent_canonical_with_their_new_length() {
        use tower::{service_fn, ServiceExt};

        let layer = NotionLayer::builder()
            .token("Bearer secret_a")
            .build()
            .unwrap();
        let svc = layer.layer(service_fn(|req: Request<BufferedBody>| async move {
            assert_eq!(req.body().as_ref(), br#"{"a":2,"b":1}"#);
            assert_eq!(req.headers()[header::CONTENT_LENGTH], "13");
            // Not "Bearer Bearer secret_a".
            assert_eq!(req.headers()[header::AUTHORIZATION], "Bearer secret_a");
            assert!(req.headers().get(header::TRANSFER_ENCODING).is_none());
            assert!(req.headers()[header::AUTHORIZATION].is_sensitive());
            assert_eq!(req.headers()[NOTION_VERSION], DEFAULT_NOTION_VERSION);
            Ok::<_, BoxError>(Response::new(BufferedBody::from("{}")))
        }));
        let body = r#"{ "b": 1, "a": 2 }"#;
        let req = Request::post("http://notion.test/v1/search")
            .header(header::TRANSFER_ENCODING, "chunked")
            .body(BufferedBody::from(body))
            .unwrap();
        assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
    }
}
