//! Rejections as HTTP responses, for servers.
//!
//! Behind bulwark's layers a service's error is a `BoxError`; axum's `Router::layer` wants an
//! infallible service. [`RejectionResponseLayer`] sits outermost and turns every error into a
//! response, so no `HandleErrorLayer` is needed:
//!
//! | error | response |
//! |---|---|
//! | [`CircuitOpen`] | 503, `Retry-After` |
//! | [`RateLimited`] | 429, `Retry-After`, IETF `RateLimit` / `RateLimit-Policy` |
//! | [`BodyTooLarge`] | 413 |
//! | an upstream failure (unreachable, timeout, reset) | 502 |
//! | anything else | 500 |
//!
//! `Retry-After` is whole seconds, rounded up. Bodies are a small JSON document that never
//! carries the error's text (internals stay in the logs, at `warn`); a preset can render its
//! API's own error format with [`RejectionResponseLayer::render_with`].

use std::{
    convert::Infallible,
    error::Error as StdError,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Either;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    classify::{classify_error_chain, Class},
    error::{BodyTooLarge, BoxError, CircuitOpen, RateLimited},
    ratelimit, retry_after_value, BufferedBody,
};

/// Why a request was answered by [`RejectionResponseLayer`] instead of the inner service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// A circuit breaker is open → 503.
    CircuitOpen(CircuitOpen),
    /// A rate limiter refused → 429.
    RateLimited(RateLimited),
    /// The request body was too large → 413.
    BodyTooLarge(BodyTooLarge),
    /// The upstream failed (unreachable, timed out, reset) → 502.
    Upstream,
    /// Any other error → 500.
    Internal,
}

impl Rejection {
    /// Finds the rejection in `err`'s source chain.
    #[must_use]
    pub fn from_error(err: &(dyn StdError + 'static)) -> Self {
        let mut next = Some(err);
        while let Some(e) = next {
            if let Some(open) = e.downcast_ref::<CircuitOpen>() {
                return Self::CircuitOpen(*open);
            }
            if let Some(limited) = e.downcast_ref::<RateLimited>() {
                return Self::RateLimited(*limited);
            }
            if let Some(large) = e.downcast_ref::<BodyTooLarge>() {
                return Self::BodyTooLarge(*large);
            }
            next = e.source();
        }
        match classify_error_chain(err) {
            Class::Unreachable | Class::Transient { .. } | Class::Throttled { .. } => {
                Self::Upstream
            }
            _ => Self::Internal,
        }
    }

    /// The status this rejection is answered with.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        match self {
            Self::CircuitOpen(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Upstream => StatusCode::BAD_GATEWAY,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// When the client may try again, if known.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::CircuitOpen(open) => Some(open.retry_after),
            Self::RateLimited(limited) => Some(limited.retry_after),
            _ => None,
        }
    }

    /// A short machine-readable code: `circuit_open`, `rate_limited`, `body_too_large`,
    /// `bad_gateway`, `internal_error`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::CircuitOpen(_) => "circuit_open",
            Self::RateLimited(_) => "rate_limited",
            Self::BodyTooLarge(_) => "body_too_large",
            Self::Upstream => "bad_gateway",
            Self::Internal => "internal_error",
        }
    }

    /// A human-readable message that reveals nothing internal.
    #[must_use]
    pub const fn message(&self) -> &'static str {
        match self {
            Self::CircuitOpen(_) => "The upstream service is failing; requests are paused.",
            Self::RateLimited(_) => "Too many requests; slow down.",
            Self::BodyTooLarge(_) => "The request body is too large.",
            Self::Upstream => "The upstream service failed to answer.",
            Self::Internal => "Internal error.",
        }
    }

    /// Inserts `Retry-After` and, for [`Rejection::RateLimited`] with a known policy, the IETF
    /// `RateLimit` / `RateLimit-Policy` headers. Custom renderers call this to keep them.
    pub fn insert_headers(&self, headers: &mut HeaderMap) {
        if let Some(wait) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, retry_after_value(wait));
        }
        if let Self::RateLimited(RateLimited {
            retry_after,
            policy: Some(policy),
            ..
        }) = self
        {
            ratelimit::insert_headers(headers, policy.quota, policy.window, 0, *retry_after);
        }
    }

    /// The default rendering: status, headers and `{"error":code,"message":message}`.
    #[must_use]
    pub fn to_response(&self) -> Response<BufferedBody> {
        let body = format!(
            "{{\"error\":\"{}\",\"message\":\"{}\"}}",
            self.code(),
            self.message()
        );
        let mut res = Response::new(BufferedBody::from(body));
        *res.status_mut() = self.status();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.insert_headers(res.headers_mut());
        res
    }
}

/// Renders a [`Rejection`] as a response; implemented for `Fn(&Rejection) -> Response<BufferedBody>`.
pub trait RenderRejection {
    /// The response for `rejection`.
    fn render(&self, rejection: &Rejection) -> Response<BufferedBody>;
}

/// The default renderer: [`Rejection::to_response`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRenderer;

impl RenderRejection for DefaultRenderer {
    fn render(&self, rejection: &Rejection) -> Response<BufferedBody> {
        rejection.to_response()
    }
}

impl<F> RenderRejection for F
where
    F: Fn(&Rejection) -> Response<BufferedBody>,
{
    fn render(&self, rejection: &Rejection) -> Response<BufferedBody> {
        self(rejection)
    }
}

/// Turns every error of the inner service into a response (see the [module docs](self)).
///
/// # Example: an axum router protected by a layer that may reject
/// ```
/// use axum::{routing::get, Router};
/// use bulwark_http::RejectionResponseLayer;
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     // .layer(SomeBulwarkLayer)  // errors become 429 / 503 responses
///     .layer(RejectionResponseLayer::new());
/// # let _ = app;
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct RejectionResponseLayer<R = DefaultRenderer> {
    renderer: R,
}

impl RejectionResponseLayer {
    /// Renders rejections with [`Rejection::to_response`].
    pub const fn new() -> Self {
        Self {
            renderer: DefaultRenderer,
        }
    }
}

impl<R> RejectionResponseLayer<R> {
    /// Renders rejections with `renderer` instead (e.g. in an API's own error format).
    pub fn render_with<R2>(self, renderer: R2) -> RejectionResponseLayer<R2>
    where
        R2: RenderRejection + Clone,
    {
        RejectionResponseLayer { renderer }
    }
}

impl<S, R: Clone> Layer<S> for RejectionResponseLayer<R> {
    type Service = RejectionResponse<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RejectionResponse {
            inner,
            renderer: self.renderer.clone(),
            ready_error: None,
        }
    }
}

/// The service made by [`RejectionResponseLayer`].
pub struct RejectionResponse<S, R = DefaultRenderer> {
    inner: S,
    renderer: R,
    /// An error from the inner `poll_ready`, answered by the next `call`.
    ready_error: Option<BoxError>,
}

impl<S: fmt::Debug, R: fmt::Debug> fmt::Debug for RejectionResponse<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectionResponse")
            .field("inner", &self.inner)
            .field("renderer", &self.renderer)
            .finish_non_exhaustive()
    }
}

impl<S: Clone, R: Clone> Clone for RejectionResponse<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            renderer: self.renderer.clone(),
            ready_error: None,
        }
    }
}

impl<S> RejectionResponse<S> {
    /// Wraps `inner` with the default renderer.
    pub const fn new(inner: S) -> Self {
        Self {
            inner,
            renderer: DefaultRenderer,
            ready_error: None,
        }
    }
}

impl<S, R> RejectionResponse<S, R> {
    /// The inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn render_error<R: RenderRejection>(renderer: &R, err: &BoxError) -> Response<BufferedBody> {
    let rejection = Rejection::from_error(&**err);
    if matches!(rejection, Rejection::Upstream | Rejection::Internal) {
        tracing::warn!(target: "bulwark_http", error = %err, status = rejection.status().as_u16(), "request failed");
    } else {
        tracing::debug!(target: "bulwark_http", code = rejection.code(), status = rejection.status().as_u16(), "request rejected");
    }
    renderer.render(&rejection)
}

impl<S, Req, ResB, R> Service<Req> for RejectionResponse<S, R>
where
    S: Service<Req, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    R: RenderRejection + Clone,
{
    type Response = Response<Either<ResB, BufferedBody>>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.ready_error.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(err)) => {
                self.ready_error = Some(err.into());
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if let Some(err) = self.ready_error.take() {
            let res = render_error(&self.renderer, &err);
            return ResponseFuture {
                state: State::Done { res: Some(res) },
            };
        }
        ResponseFuture {
            state: State::Inner {
                future: self.inner.call(req),
                renderer: self.renderer.clone(),
            },
        }
    }
}

pin_project! {
    /// Response future of [`RejectionResponse`].
    pub struct ResponseFuture<F, R> {
        #[pin]
        state: State<F, R>,
    }
}

impl<F, R> fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Inner { #[pin] future: F, renderer: R },
        Done { res: Option<Response<BufferedBody>> },
    }
}

impl<F, R, ResB, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: Into<BoxError>,
    R: RenderRejection,
{
    type Output = Result<Response<Either<ResB, BufferedBody>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future, renderer } => match std::task::ready!(future.poll(cx)) {
                Ok(res) => Poll::Ready(Ok(res.map(Either::Left))),
                Err(err) => {
                    let err: BoxError = err.into();
                    Poll::Ready(Ok(render_error(&*renderer, &err).map(Either::Right)))
                }
            },
            StateProj::Done { res } => match res.take() {
                Some(res) => Poll::Ready(Ok(res.map(Either::Right))),
                None => Poll::Pending,
            },
        }
    }
}
