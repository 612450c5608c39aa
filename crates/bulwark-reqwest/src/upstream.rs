//! [`Upstream`], the innermost service of the stack: it hands each attempt back to the
//! middleware call that owns the request, which sends it with `next.run(..)`.
//!
//! `reqwest_middleware::Next<'_>` borrows the client and the `Extensions` of one call, so a
//! service built once (and `'static`, as the stale cache's background revalidation needs)
//! cannot hold it. Instead each request carries an [`AttemptSender`] in its extensions
//! (`http::Request` clones keep them, so every retry's copy has it); [`Upstream::call`] sends
//! the attempt through it and waits for the answer, which the middleware's call produces with
//! `next.run(..)` while it drives the stack.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bulwark_http::{BoxError, BufferedBody};
use http::{Request, Response};
use tokio::sync::{mpsc, oneshot};
use tower_service::Service;

use crate::error::Detached;

/// One attempt, sent to the middleware call that owns the request.
pub(crate) struct Attempt {
    pub(crate) request: reqwest::Request,
    pub(crate) reply: oneshot::Sender<reqwest_middleware::Result<reqwest::Response>>,
}

/// Where a request's attempts go: put in its extensions by the middleware.
#[derive(Clone)]
pub(crate) struct AttemptSender(pub(crate) mpsc::UnboundedSender<Attempt>);

/// The URL reqwest answered from (after its redirects), kept for the `reqwest::Response`.
#[derive(Clone, Debug)]
pub(crate) struct AttemptUrl(pub(crate) reqwest::Url);

/// The innermost service of a [`BulwarkMiddleware`](crate::BulwarkMiddleware) stack: each call
/// is one attempt, sent down the rest of the `reqwest-middleware` chain (the middlewares
/// registered after bulwark, then the `reqwest::Client`).
///
/// A request that did not come through a `BulwarkMiddleware` call — or an attempt made after
/// that call returned, such as a stale-while-revalidate refresh in the background — fails
/// with [`Detached`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Upstream {
    _private: (),
}

impl Upstream {
    /// The innermost service; [`BulwarkMiddleware::new`](crate::BulwarkMiddleware::new) builds
    /// it for you.
    #[must_use]
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl Service<Request<BufferedBody>> for Upstream {
    type Response = Response<reqwest::Body>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<BufferedBody>) -> Self::Future {
        let Some(AttemptSender(sender)) = req.extensions_mut().remove::<AttemptSender>() else {
            return ResponseFuture::failed(Box::new(Detached));
        };
        let request =
            match reqwest::Request::try_from(req.map(|b| reqwest::Body::from(b.into_bytes()))) {
                Ok(request) => request,
                Err(err) => return ResponseFuture::failed(Box::new(err)),
            };
        let (reply, answer) = oneshot::channel();
        if sender.send(Attempt { request, reply }).is_err() {
            return ResponseFuture::failed(Box::new(Detached));
        }
        ResponseFuture {
            state: State::Waiting(answer),
        }
    }
}

/// The future of [`Upstream`]: the answer to one attempt.
pub struct ResponseFuture {
    state: State,
}

enum State {
    Waiting(oneshot::Receiver<reqwest_middleware::Result<reqwest::Response>>),
    Failed(Option<BoxError>),
}

impl ResponseFuture {
    fn failed(err: BoxError) -> Self {
        Self {
            state: State::Failed(Some(err)),
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Waiting(_) => "waiting",
            State::Failed(_) => "failed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<reqwest::Body>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Failed(err) => {
                Poll::Ready(Err(err.take().unwrap_or_else(|| Box::new(Detached))))
            }
            State::Waiting(answer) => match Pin::new(answer).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(_)) => Poll::Ready(Err(Box::new(Detached))),
                Poll::Ready(Ok(Ok(res))) => {
                    let url = AttemptUrl(res.url().clone());
                    let mut res = Response::<reqwest::Body>::from(res);
                    res.extensions_mut().insert(url);
                    Poll::Ready(Ok(res))
                }
                Poll::Ready(Ok(Err(err))) => Poll::Ready(Err(into_box(err))),
            },
        }
    }
}

/// A reqwest error stays itself (its source chain holds hyper's and io's errors, which
/// bulwark classifies); a middleware's error stays a `reqwest_middleware::Error`.
fn into_box(err: reqwest_middleware::Error) -> BoxError {
    match err {
        reqwest_middleware::Error::Reqwest(err) => Box::new(err),
        other => Box::new(other),
    }
}
