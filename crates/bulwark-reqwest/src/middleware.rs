//! [`BulwarkMiddleware`]: a bulwark layer stack as a `reqwest_middleware::Middleware`.

use std::{convert::Infallible, fmt};

use bulwark_http::{BoxError, BufferedBody};
use bytes::Bytes;
use http::Extensions;
use http_body::Body;
use reqwest_middleware::{Middleware, Next};
use tokio::sync::mpsc;
use tower::ServiceExt;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    error::{StackError, StreamingBody},
    upstream::{Attempt, AttemptSender, AttemptUrl, Upstream},
};

/// A bulwark layer stack — any `Layer<Upstream>`, such as `NotionLayer` or a
/// `ServiceBuilder` of `RetryLayer`, `CircuitBreakerLayer`, … — as a `reqwest-middleware`
/// middleware.
///
/// ```
/// use bulwark_reqwest::BulwarkMiddleware;
/// use reqwest_middleware::ClientBuilder;
///
/// let layer = bulwark_notion::NotionLayer::builder().token("secret_abc").build().unwrap();
/// let client = ClientBuilder::new(reqwest::Client::new())
///     .with(BulwarkMiddleware::new(layer))
///     .build();
/// # let _ = client;
/// ```
///
/// The stack is built once, in [`new`](Self::new), and cloned for each request, so its state
/// (bucket, breaker, retry budget, cache) is shared by every request of the client and of its
/// clones — and by any other client given the same layer, since bulwark layers keep their
/// state in the layer.
///
/// Each request's body is buffered first (a retry sends it again); a streaming body is
/// refused with [`StreamingBody`]. Every attempt of the stack goes down the rest of the
/// middleware chain with `next.run(..)`: middlewares registered after this one (tracing,
/// auth) see each attempt, those before it see the request once. The innermost service,
/// [`Upstream`], hands the attempt back to this call through a channel, because `Next<'_>`
/// borrows the call and a stack built once cannot hold it.
///
/// # Errors
/// The upstream's errors come back unchanged (`Error::Reqwest`, a later middleware's
/// `Error::Middleware`); bulwark's refusals as `Error::Middleware` holding the stack's error:
/// see [`rejection`](crate::rejection).
#[derive(Clone)]
pub struct BulwarkMiddleware<S> {
    service: S,
}

impl<S> fmt::Debug for BulwarkMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulwarkMiddleware")
            .field("service", &std::any::type_name::<S>())
            .finish()
    }
}

impl<S> BulwarkMiddleware<S> {
    /// Builds `layer`'s stack over [`Upstream`], once.
    pub fn new<L>(layer: L) -> Self
    where
        L: Layer<Upstream, Service = S>,
    {
        Self::from_service(layer.layer(Upstream::new()))
    }

    /// A stack already built over [`Upstream`] (e.g. with `ServiceBuilder::service`).
    pub const fn from_service(service: S) -> Self {
        Self { service }
    }

    /// The stack.
    pub const fn get_ref(&self) -> &S {
        &self.service
    }

    /// The stack, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.service
    }

    /// Consumes `self`, returning the stack.
    pub fn into_inner(self) -> S {
        self.service
    }
}

#[async_trait::async_trait]
impl<S, ResB> Middleware for BulwarkMiddleware<S>
where
    S: Service<http::Request<BufferedBody>, Response = http::Response<ResB>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ResB: Body + Send + Sync + 'static,
    ResB::Data: Into<Bytes>,
    ResB::Error: Into<BoxError>,
{
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let url = req.url().clone();
        let mut req = into_http(req)?;
        let (sender, mut attempts) = mpsc::unbounded_channel::<Attempt>();
        req.extensions_mut().insert(AttemptSender(sender));
        let stack = self.service.clone().oneshot(req);
        // Sends the stack's attempts, one at a time, down the rest of the chain. It ends
        // only with the stack: the request (and every retry's copy) holds a sender until then.
        let send_attempts = async {
            while let Some(Attempt { request, mut reply }) = attempts.recv().await {
                let sent = next.clone().run(request, extensions);
                let answer = tokio::select! {
                    answer = sent => Some(answer),
                    // The stack gave up on this attempt (a timeout inside it): stop sending.
                    () = reply.closed() => None,
                };
                if let Some(answer) = answer {
                    let _ = reply.send(answer);
                }
            }
            std::future::pending::<Infallible>().await
        };
        let result = tokio::select! {
            result = stack => result,
            never = send_attempts => match never {},
        };
        match result {
            Ok(res) => Ok(into_reqwest(res, url)),
            Err(err) => Err(from_stack_error(err.into())),
        }
    }
}

/// The request with its body buffered, or [`StreamingBody`].
fn into_http(req: reqwest::Request) -> reqwest_middleware::Result<http::Request<BufferedBody>> {
    let body = match req.body() {
        None => BufferedBody::default(),
        Some(body) => match body.as_bytes() {
            Some(bytes) => BufferedBody::from(Bytes::copy_from_slice(bytes)),
            None => return Err(reqwest_middleware::Error::middleware(StreamingBody)),
        },
    };
    let req = http::Request::<reqwest::Body>::try_from(req)?;
    Ok(req.map(|_| body))
}

/// The stack's answer as a `reqwest::Response`, with the URL reqwest answered from (or the
/// request's, for an answer the stack gave itself, such as a cached one).
fn into_reqwest<B>(res: http::Response<B>, url: reqwest::Url) -> reqwest::Response
where
    B: Body + Send + Sync + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    use reqwest::ResponseBuilderExt;

    let (mut parts, body) = res.into_parts();
    let url = parts
        .extensions
        .remove::<AttemptUrl>()
        .map_or(url, |AttemptUrl(url)| url);
    // `ResponseBuilderExt::url` is how reqwest takes a response's URL from `http`.
    let marked = http::Response::builder()
        .url(url)
        .body(())
        .map(|res| res.into_parts().0.extensions)
        .unwrap_or_default();
    parts.extensions.extend(marked);
    reqwest::Response::from(http::Response::from_parts(parts, reqwest::Body::wrap(body)))
}

/// The upstream's errors as they were; bulwark's own as `Error::Middleware`.
fn from_stack_error(err: BoxError) -> reqwest_middleware::Error {
    let err = match err.downcast::<reqwest::Error>() {
        Ok(err) => return reqwest_middleware::Error::Reqwest(*err),
        Err(err) => err,
    };
    match err.downcast::<reqwest_middleware::Error>() {
        Ok(err) => *err,
        Err(err) => reqwest_middleware::Error::middleware(StackError::new(err)),
    }
}
