//! [`NotionBodyLayer`]: reads each Notion response into a [`BufferedBody`] and attaches the
//! parsed [`NotionError`] to error responses, so [`NotionClassifier`] can read the body's
//! `code` and the cache can store the bytes.
//!
//! Notion's answers are bounded JSON documents (at most 100 results a page), so holding one
//! in memory costs what the caller's JSON parse would cost anyway. The preset puts this layer
//! inside the per-attempt timeout, so a body that stalls counts against the attempt.
//!
//! [`NotionClassifier`]: crate::NotionClassifier

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bulwark_http::{BodyTooLarge, BoxError, BufferedBody};
use bytes::Bytes;
use http::{response::Parts, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    defaults,
    error::{NotionError, UnexpectedResponse, REQUEST_ID_HEADER},
    metrics::Metrics,
    trace::record_request_id,
};

/// The default largest response body read: 32 MiB ([`defaults::MAX_RESPONSE_BYTES`]).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = defaults::MAX_RESPONSE_BYTES;

/// Reads each response into a [`BufferedBody`] and attaches the parsed [`NotionError`] (or an
/// [`UnexpectedResponse`]) to error responses as an extension, so
/// [`NotionClassifier`](crate::NotionClassifier) can read the body's `code`.
///
/// Notion's answers are bounded JSON documents (at most 100 results a page), so holding one in
/// memory costs what the caller's JSON parse would anyway. The preset puts this layer inside
/// the per-attempt timeout, so a body that stalls counts against the attempt.
#[derive(Debug, Clone)]
#[must_use]
pub struct NotionBodyLayer {
    limit: usize,
    /// Where Notion error answers are counted (the preset's, with feature `metrics`).
    metrics: Option<Arc<Metrics>>,
}

impl NotionBodyLayer {
    /// Reads bodies of at most `limit` bytes; a larger one fails the attempt with
    /// [`BodyTooLarge`].
    pub const fn new(limit: usize) -> Self {
        Self {
            limit,
            metrics: None,
        }
    }

    /// Counts Notion error answers in `metrics`.
    pub(crate) fn counted(mut self, metrics: Option<Arc<Metrics>>) -> Self {
        self.metrics = metrics;
        self
    }
}

impl Default for NotionBodyLayer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RESPONSE_BYTES)
    }
}

impl<S> Layer<S> for NotionBodyLayer {
    type Service = NotionBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NotionBody {
            inner,
            limit: self.limit,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service made by [`NotionBodyLayer`].
#[derive(Debug, Clone)]
pub struct NotionBody<S> {
    inner: S,
    limit: usize,
    metrics: Option<Arc<Metrics>>,
}

impl<S> NotionBody<S> {
    /// Wraps `inner`, reading bodies of at most `limit` bytes.
    pub const fn new(inner: S, limit: usize) -> Self {
        Self {
            inner,
            limit,
            metrics: None,
        }
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

impl<S, Req, ResB> Service<Req> for NotionBody<S>
where
    S: Service<Req, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<BufferedBody>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture {
            state: State::Calling {
                future: self.inner.call(req),
            },
            limit: self.limit,
            metrics: self.metrics.clone(),
        }
    }
}

pin_project! {
    /// The response future of [`NotionBody`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
        limit: usize,
        metrics: Option<Arc<Metrics>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Calling { #[pin] future: F },
        Reading { parts: Option<Parts>, #[pin] body: B, chunks: Vec<Bytes>, len: usize },
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Calling { .. } => "calling",
            State::Reading { .. } => "reading",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<BufferedBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let res = std::task::ready!(future.poll(cx)).map_err(Into::into)?;
                    let (parts, body) = res.into_parts();
                    this.state.set(State::Reading {
                        parts: Some(parts),
                        body,
                        chunks: Vec::new(),
                        len: 0,
                    });
                }
                StateProj::Reading {
                    parts,
                    mut body,
                    chunks,
                    len,
                } => loop {
                    match std::task::ready!(body.as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => {
                            let Ok(data) = frame.into_data() else {
                                continue;
                            };
                            *len += data.len();
                            if *len > *this.limit {
                                return Poll::Ready(Err(BodyTooLarge::new(*this.limit).into()));
                            }
                            if !data.is_empty() {
                                chunks.push(data);
                            }
                        }
                        Some(Err(err)) => return Poll::Ready(Err(err.into())),
                        None => {
                            let bytes = match chunks.len() {
                                0 => Bytes::new(),
                                1 => chunks.pop().unwrap_or_default(),
                                _ => Bytes::from(chunks.concat()),
                            };
                            let parts = parts.take().expect("polled after completion");
                            return Poll::Ready(Ok(finish(parts, bytes, this.metrics.as_deref())));
                        }
                    }
                },
            }
        }
    }
}

/// Builds the buffered response, attaching the parsed error to error responses.
///
/// Records the answer's `x-notion-request-id` on the current span (the request's
/// `bulwark.request`) and emits one event per error answer (see [`notion_error_event`]).
pub(crate) fn finish(
    mut parts: Parts,
    bytes: Bytes,
    metrics: Option<&Metrics>,
) -> Response<BufferedBody> {
    if let Some(id) = parts
        .headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        record_request_id(id);
    }
    if parts.status.as_u16() >= 400 {
        match NotionError::from_response(parts.status, &parts.headers, &bytes) {
            Ok(err) => {
                notion_error_event(&err);
                if let Some(metrics) = metrics {
                    metrics.error(&err);
                }
                parts.extensions.insert(err);
            }
            Err(unexpected) => {
                tracing::warn!(
                    target: "bulwark_notion",
                    status = unexpected.status.as_u16(),
                    request_id = unexpected.request_id.as_deref(),
                    from_edge = unexpected.from_edge,
                    content_type = unexpected.content_type.as_deref(),
                    "unexpected answer (not a Notion error body)"
                );
                parts.extensions.insert::<UnexpectedResponse>(unexpected);
            }
        }
    }
    Response::from_parts(parts, BufferedBody::from(bytes))
}

/// One event per Notion error answer, at a level an on-call engineer can filter on: 429 at
/// `debug` (the bucket and the retry layer handle it), 5xx at `warn`, 401/403 at `error`
/// (a token or an integration share to fix), other 4xx at `info` (the caller's request).
fn notion_error_event(err: &NotionError) {
    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                target: "bulwark_notion",
                $level,
                status = err.status.as_u16(),
                code = err.code.as_str(),
                request_id = err.request_id.as_deref(),
                "Notion error"
            )
        };
    }
    match err.status.as_u16() {
        429 => event!(tracing::Level::DEBUG),
        401 | 403 => event!(tracing::Level::ERROR),
        500.. => event!(tracing::Level::WARN),
        _ => event!(tracing::Level::INFO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};
    use tower::{service_fn, ServiceExt};

    #[tokio::test]
    async fn error_bodies_are_parsed_into_an_extension() {
        let svc = NotionBodyLayer::default().layer(service_fn(|_req: ()| async {
            let body =
                r#"{"object":"error","status":409,"code":"conflict_error","message":"retry"}"#;
            Ok::<_, BoxError>(
                Response::builder()
                    .status(409)
                    .body(Full::new(Bytes::from(body)))
                    .unwrap(),
            )
        }));
        let res = svc.oneshot(()).await.unwrap();
        let err = res.extensions().get::<NotionError>().unwrap();
        assert_eq!(err.code, crate::NotionErrorCode::ConflictError);
        assert!(res.body().as_ref().starts_with(b"{\"object\""));
    }

    #[tokio::test]
    async fn html_error_pages_are_marked_unexpected() {
        let svc = NotionBodyLayer::default().layer(service_fn(|_req: ()| async {
            Ok::<_, BoxError>(
                Response::builder()
                    .status(502)
                    .header("cf-ray", "x-AMS")
                    .body(Full::new(Bytes::from("<html>bad gateway</html>")))
                    .unwrap(),
            )
        }));
        let res = svc.oneshot(()).await.unwrap();
        assert!(res.extensions().get::<NotionError>().is_none());
        assert!(
            res.extensions()
                .get::<UnexpectedResponse>()
                .unwrap()
                .from_edge
        );
    }

    #[tokio::test]
    async fn oversized_bodies_fail_with_body_too_large() {
        let svc = NotionBodyLayer::new(8).layer(service_fn(|_req: ()| async {
            let chunks = futures_util::stream::iter(
                (0..4).map(|_| Ok::<_, BoxError>(http_body::Frame::data(Bytes::from("12345")))),
            );
            Ok::<_, BoxError>(Response::new(StreamBody::new(chunks)))
        }));
        let err = svc.oneshot(()).await.unwrap_err();
        assert_eq!(err.downcast_ref::<BodyTooLarge>().unwrap().limit, 8);
    }
}
