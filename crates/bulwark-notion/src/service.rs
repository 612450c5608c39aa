//! [`Notion`], the service made by [`NotionLayer`](crate::NotionLayer): it completes each
//! request — `Authorization`, `Notion-Version`, `User-Agent` when missing, how long a write
//! waits for an open circuit, a read-only POST's body in canonical form — and hands it to the
//! composed stack ([`NotionStack`]).

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use bulwark_breaker::{CircuitBreaker, CircuitWait};
use bulwark_bucket::{KeyedBy, TokenBucket};
use bulwark_cache::{CacheBody, StaleCache};
use bulwark_http::{BoxError, BufferedBody};
use bulwark_retry::Retry;
use http::{header, HeaderValue, Method, Request, Response};
use tower::timeout::Timeout;
use tower_service::Service;

use crate::{
    body::NotionBody,
    canonical::canonical_json,
    classify::{NotionBreakerClassifier, NotionClassifier},
    headers::NOTION_VERSION,
    reconcile::Reconcile,
    routes,
    token::TokenKey,
    trace::{request_span, NotionFuture, Timing},
};

/// The composed stack inside [`Notion`], outermost first.
pub type NotionStack<S> = StaleCache<
    Reconcile<
        Retry<
            CircuitBreaker<
                TokenBucket<Timeout<NotionBody<S>>, NotionClassifier, KeyedBy<TokenKey>, u64>,
                NotionBreakerClassifier,
            >,
            NotionClassifier,
        >,
    >,
    NotionClassifier,
    BufferedBody,
>;

/// What [`Notion`] adds to each request, set once by the builder.
pub(crate) struct RequestHeaders {
    /// The preset's own metrics (`Some` with feature `metrics`).
    pub(crate) metrics: Option<Arc<crate::metrics::Metrics>>,
    pub(crate) authorization: Option<HeaderValue>,
    pub(crate) version: HeaderValue,
    pub(crate) user_agent: HeaderValue,
    /// Rewrite read-only POST bodies canonically (only worth it with the cache on).
    pub(crate) canonical_bodies: bool,
    /// Refuse requests that break Notion's size limits before sending them.
    pub(crate) check_limits: bool,
    /// How long a request without a stored copy waits for an open circuit.
    pub(crate) write_max_wait: CircuitWait,
    /// The stale cache is on (cacheable reads have a copy to fall back on).
    pub(crate) cache_on: bool,
}

impl fmt::Debug for RequestHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestHeaders")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "Bearer <redacted>"),
            )
            .field("version", &self.version)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// The service made by [`NotionLayer`](crate::NotionLayer).
pub struct Notion<S> {
    headers: Arc<RequestHeaders>,
    inner: NotionStack<S>,
}

impl<S: Clone> Clone for Notion<S> {
    fn clone(&self) -> Self {
        Self {
            headers: Arc::clone(&self.headers),
            inner: self.inner.clone(),
        }
    }
}

impl<S> fmt::Debug for Notion<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notion")
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl<S> Notion<S> {
    /// `inner` with `headers` added to each request (what [`NotionLayer`](crate::NotionLayer)
    /// makes).
    pub(crate) fn from_parts(headers: Arc<RequestHeaders>, inner: NotionStack<S>) -> Self {
        Self { headers, inner }
    }

    /// What the request's duration is recorded with, from now (`None` without metrics: no
    /// clock read).
    fn timing(&self) -> Option<Timing> {
        self.headers
            .metrics
            .as_ref()
            .map(|metrics| Timing::start(Arc::clone(metrics)))
    }

    /// The composed stack.
    pub const fn get_ref(&self) -> &NotionStack<S> {
        &self.inner
    }

    /// The composed stack, mutably.
    pub fn get_mut(&mut self) -> &mut NotionStack<S> {
        &mut self.inner
    }

    /// Consumes `self`, returning the composed stack.
    pub fn into_inner(self) -> NotionStack<S> {
        self.inner
    }
}

impl<S> Service<Request<BufferedBody>> for Notion<S>
where
    NotionStack<S>: Service<
        Request<BufferedBody>,
        Response = Response<CacheBody<BufferedBody>>,
        Error = BoxError,
    >,
{
    type Response = Response<CacheBody<BufferedBody>>;
    type Error = BoxError;
    type Future = NotionFuture<<NotionStack<S> as Service<Request<BufferedBody>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<BufferedBody>) -> Self::Future {
        let headers = req.headers_mut();
        match headers.get_mut(header::AUTHORIZATION) {
            // A caller's own token (a proxy's client) is kept, and kept out of logs too.
            Some(own) => own.set_sensitive(true),
            None => {
                if let Some(auth) = &self.headers.authorization {
                    headers.insert(header::AUTHORIZATION, auth.clone());
                }
            }
        }
        if !headers.contains_key(NOTION_VERSION) {
            headers.insert(NOTION_VERSION, self.headers.version.clone());
        }
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(header::USER_AGENT, self.headers.user_agent.clone());
        }
        // Reads the cache keeps fail fast on an open circuit (their stored copy answers);
        // anything else waits for it, unless the caller said otherwise.
        let fails_fast = self.headers.cache_on && routes::is_cacheable(req.method(), req.uri());
        if !fails_fast && req.extensions().get::<CircuitWait>().is_none() {
            req.extensions_mut().insert(self.headers.write_max_wait);
        }
        if self.headers.canonical_bodies
            && req.method() == Method::POST
            && routes::is_read_only_post(req.uri().path())
        {
            if let Some(canonical) = canonical_json(req.body().as_ref()) {
                // A forwarded request may carry the original framing.
                req.headers_mut().remove(header::TRANSFER_ENCODING);
                req.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(canonical.len()));
                *req.body_mut() = BufferedBody::from(canonical);
            }
        }
        // One span per request, opened before any layer decides anything (free when no
        // subscriber wants it); the stack's `call` runs inside it too.
        let span = request_span(&req);
        if self.headers.check_limits && !req.body().as_ref().is_empty() {
            if let Err(exceeded) = crate::limits::check(req.body().as_ref()) {
                return NotionFuture::refused(Box::new(exceeded), span, self.timing());
            }
        }
        let timing = self.timing();
        let future = span.in_scope(|| self.inner.call(req));
        NotionFuture::new(future, span, timing)
    }
}
