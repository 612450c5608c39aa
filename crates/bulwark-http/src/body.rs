//! Replayable request bodies.
//!
//! A retry must send the body again and a cache may key on it, so bulwark works with
//! [`BufferedBody`]: a cheap-to-clone body over [`Bytes`]. [`BufferBodyLayer`] turns any
//! streaming body (axum's `Body`, hyper's `Incoming`) into one, refusing bodies longer than
//! its limit with [`BodyTooLarge`] — without reading past the limit.
//!
//! ## How it differs from `tower_http::limit` and `axum::body::to_bytes`
//! Those limit or collect a body inside the handler, after the service below was readied.
//! [`BufferBody`] reads the body *before* it asks the service below for readiness: a client
//! trickling its upload holds no `ConcurrencyLimit` permit and no `Buffer` slot of the stack
//! below while it does (see [`BufferBody`]'s "Readiness").

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{request::Parts, Request};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::Collect, BodyExt, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{BodyTooLarge, BoxError};

/// A complete body held in memory; cloning it is cheap (a reference count).
///
/// Implements [`http_body::Body`] with `Data = Bytes` and `Error = Infallible`: it yields its
/// bytes as one frame. [`AsRef<[u8]>`](AsRef) gives the bytes for keys and hashes.
///
/// ```
/// use bulwark_http::BufferedBody;
///
/// let body = BufferedBody::from("{\"query\":\"x\"}");
/// let again = body.clone();
/// assert_eq!(again.as_ref(), br#"{"query":"x"}"#);
/// assert!(BufferedBody::empty().as_ref().is_empty());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BufferedBody {
    data: Bytes,
}

impl BufferedBody {
    /// An empty body.
    #[must_use]
    pub const fn empty() -> Self {
        Self { data: Bytes::new() }
    }

    /// The bytes (cheap clone).
    #[must_use]
    pub fn bytes(&self) -> Bytes {
        self.data.clone()
    }

    /// Consumes the body, returning its bytes.
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        self.data
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// `true` when the body has no bytes left to yield.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl fmt::Debug for BufferedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferedBody")
            .field("len", &self.data.len())
            .finish()
    }
}

impl AsRef<[u8]> for BufferedBody {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl From<Bytes> for BufferedBody {
    fn from(data: Bytes) -> Self {
        Self { data }
    }
}

impl From<String> for BufferedBody {
    fn from(s: String) -> Self {
        Bytes::from(s).into()
    }
}

impl From<&'static str> for BufferedBody {
    fn from(s: &'static str) -> Self {
        Bytes::from_static(s.as_bytes()).into()
    }
}

impl From<Vec<u8>> for BufferedBody {
    fn from(v: Vec<u8>) -> Self {
        Bytes::from(v).into()
    }
}

impl From<&'static [u8]> for BufferedBody {
    fn from(s: &'static [u8]) -> Self {
        Bytes::from_static(s).into()
    }
}

impl Body for BufferedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let data = std::mem::take(&mut self.get_mut().data);
        if data.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Ready(Some(Ok(Frame::data(data))))
        }
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

/// Buffers request bodies into [`BufferedBody`] so inner layers can replay them.
///
/// A body longer than `limit` bytes fails the request with [`BodyTooLarge`] (a `BoxError`
/// from the service): when `Content-Length` or the body's size hint already says so, nothing
/// is read; otherwise reading stops as soon as the limit is crossed.
///
/// The service it makes is always ready and takes the inner service's readiness only once a
/// body has arrived (see [`BufferBody`]).
///
/// # Example
/// ```
/// use bulwark_http::{BufferBodyLayer, BufferedBody};
/// use http::{Request, Response};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bulwark_http::BoxError> {
/// let svc = ServiceBuilder::new()
///     .layer(BufferBodyLayer::new(1024))
///     .service(service_fn(|req: Request<BufferedBody>| async move {
///         Ok::<_, std::convert::Infallible>(Response::new(req.into_body()))
///     }));
/// let res = svc.oneshot(Request::new(http_body_util::Full::<bytes::Bytes>::from("hello"))).await?;
/// assert_eq!(res.body().as_ref(), b"hello");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct BufferBodyLayer {
    limit: usize,
}

impl BufferBodyLayer {
    /// Buffers bodies of at most `limit` bytes.
    ///
    /// Any `limit` is valid: `0` accepts only empty bodies, `usize::MAX` any body that fits in
    /// memory.
    ///
    /// # Panics
    /// Never, whatever `limit` and whatever `Content-Length` a request declares.
    pub const fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for BufferBodyLayer {
    type Service = BufferBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BufferBody::new(inner, self.limit)
    }
}

/// The service made by [`BufferBodyLayer`].
///
/// # Readiness
/// `BufferBody` is always ready. Each call reads its body first; only then does its response
/// future drive a clone of the inner service to readiness and call it — the idiom tower's own
/// `Retry` uses between attempts. So a client that trickles its body (or stalls) holds
/// nothing of the stack below while it does: a `ConcurrencyLimitLayer` below lends its permit
/// only to a request whose body is complete, and other requests go by. The inner service's
/// backpressure applies once a body has arrived; how many bodies are read at once is bounded
/// by the server's connections, each to `limit` bytes. An error from the inner service's
/// `poll_ready` is that request's error.
///
/// # Clone
/// The inner service is cloned for each call (hence `S: Clone`), as tower's `Buffer`,
/// `Retry` and axum's routers are built to be.
#[derive(Debug, Clone)]
pub struct BufferBody<S> {
    inner: S,
    limit: usize,
}

impl<S> BufferBody<S> {
    /// Wraps `inner`, buffering bodies of at most `limit` bytes.
    pub const fn new(inner: S, limit: usize) -> Self {
        Self { inner, limit }
    }

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

impl<S, B> Service<Request<B>> for BufferBody<S>
where
    S: Service<Request<BufferedBody>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BufferBodyFuture<S, B>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Always ready: the future readies a clone of the inner service once the body is in,
        // so nothing below is held while a client sends it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Never readied here: the future drives this clone to readiness after the body.
        let inner = self.inner.clone();
        let limit = self.limit;
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let (parts, body) = req.into_parts();
        let too_large = declared.is_some_and(|len| len > limit as u64)
            || body.size_hint().lower() > limit as u64;
        let state = if too_large {
            State::TooLarge
        } else {
            State::Collecting {
                collect: Limited::new(body, limit).collect(),
                parts: Some(parts),
                inner: Some(inner),
            }
        };
        BufferBodyFuture { state, limit }
    }
}

pin_project! {
    /// Response future of [`BufferBody`].
    pub struct BufferBodyFuture<S, B>
    where
        S: Service<Request<BufferedBody>>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        state: State<S, B>,
        limit: usize,
    }
}

impl<S, B> fmt::Debug for BufferBodyFuture<S, B>
where
    S: Service<Request<BufferedBody>>,
    B: Body,
    B::Error: Into<BoxError>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferBodyFuture")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<BufferedBody>>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        TooLarge,
        Collecting {
            #[pin]
            collect: Collect<Limited<B>>,
            parts: Option<Parts>,
            inner: Option<S>,
        },
        // The body is in: waiting for the inner service to be ready.
        Readying {
            request: Option<Request<BufferedBody>>,
            inner: S,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
    }
}

impl<S, B> Future for BufferBodyFuture<S, B>
where
    S: Service<Request<BufferedBody>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::TooLarge => {
                    return Poll::Ready(Err(BodyTooLarge::new(*this.limit).into()))
                }
                StateProj::Collecting {
                    collect,
                    parts,
                    inner,
                } => {
                    let collected = match std::task::ready!(collect.poll(cx)) {
                        Ok(collected) => collected,
                        Err(err) if err.is::<LengthLimitError>() => {
                            return Poll::Ready(Err(BodyTooLarge::new(*this.limit).into()));
                        }
                        Err(err) => return Poll::Ready(Err(err)),
                    };
                    let (Some(parts), Some(inner)) = (parts.take(), inner.take()) else {
                        unreachable!("the collecting state is left right after it completes")
                    };
                    let request =
                        Request::from_parts(parts, BufferedBody::from(collected.to_bytes()));
                    this.state.set(State::Readying {
                        request: Some(request),
                        inner,
                    });
                }
                StateProj::Readying { request, inner } => {
                    if let Err(err) = std::task::ready!(inner.poll_ready(cx)) {
                        return Poll::Ready(Err(err.into()));
                    }
                    let Some(request) = request.take() else {
                        unreachable!("the readying state is left right after it calls")
                    };
                    let future = inner.call(request);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    return future.poll(cx).map_err(Into::into);
                }
            }
        }
    }
}
