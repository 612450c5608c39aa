//! [`RejectionResponseLayer`], its service and its response future: every error of the inner
//! service rendered as a response (see the [module docs](crate::rejection)).

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;
use http_body_util::Either;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    error::BoxError,
    rejection::{DefaultRenderer, Rejection, RenderRejection},
    BufferedBody,
};

/// Turns every error of the inner service into a response (see the [module docs](crate::rejection)).
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
    if matches!(
        rejection,
        Rejection::Timeout | Rejection::Upstream | Rejection::Internal
    ) {
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
