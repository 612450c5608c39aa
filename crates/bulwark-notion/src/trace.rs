//! [`NotionFuture`]: the response future of [`Notion`](crate::Notion), which runs the whole
//! stack inside one `bulwark.request` span and records how the request ended on it.
//!
//! The span is created with [`tracing::info_span!`]: with no subscriber interested it is
//! `Span::none()`, no allocation, and every `record` below is a no-op. Its fields:
//!
//! | field | set | value |
//! |---|---|---|
//! | `http.method` | at creation | the request's method |
//! | `http.route` | at creation | the URI's path (never its query string) |
//! | `attempts` | by the retry layer, when it returns | attempts made (absent when no attempt was made) |
//! | `notion.request_id` | after each upstream answer, then from the final error | the last `x-notion-request-id` / error body `request_id` |
//! | `http.status_code` | at the end | the status of the answer the caller gets |
//! | `outcome` | at the end | `ok`, `stale`, `http_error`, `rejected` or `error` |

use std::{
    error::Error as StdError,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use bulwark_cache::CacheStatus;
use bulwark_http::{BoxError, CircuitOpen, QuotaExhausted, RateLimited};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tracing::Span;

use crate::{
    error::{NotionError, UnexpectedResponse},
    metrics::{Metrics, Outcome},
};

/// When a request started, and where its duration goes (feature `metrics`).
#[derive(Debug)]
pub(crate) struct Timing {
    metrics: Arc<Metrics>,
    started: tokio::time::Instant,
}

impl Timing {
    pub(crate) fn start(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            started: tokio::time::Instant::now(),
        }
    }
}

/// Opens the `bulwark.request` span for `req` (disabled, and free, without a subscriber).
pub(crate) fn request_span<B>(req: &Request<B>) -> Span {
    tracing::info_span!(
        target: "bulwark_notion",
        "bulwark.request",
        http.method = %req.method(),
        http.route = req.uri().path(),
        attempts = tracing::field::Empty,
        notion.request_id = tracing::field::Empty,
        http.status_code = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
}

/// Records `id` as the `notion.request_id` of the current span, if it has that field.
pub(crate) fn record_request_id(id: &str) {
    // The span is `INFO`: with no subscriber at that level, not even a thread-local look-up.
    if tracing::level_enabled!(tracing::Level::INFO) {
        Span::current().record("notion.request_id", id);
    }
}

pin_project! {
    /// The response future of [`Notion`](crate::Notion): the stack's future, polled inside
    /// the request's `bulwark.request` span, which records the outcome when it completes.
    #[derive(Debug)]
    pub struct NotionFuture<F> {
        #[pin]
        inner: Option<F>,
        // A request refused before it reached the stack (a Notion limit it breaks).
        refused: Option<BoxError>,
        span: Span,
        timing: Option<Timing>,
    }
}

impl<F> NotionFuture<F> {
    pub(crate) const fn new(inner: F, span: Span, timing: Option<Timing>) -> Self {
        Self {
            inner: Some(inner),
            refused: None,
            span,
            timing,
        }
    }

    /// A future that fails at once with `error`, never calling the stack.
    pub(crate) const fn refused(error: BoxError, span: Span, timing: Option<Timing>) -> Self {
        Self {
            inner: None,
            refused: Some(error),
            span,
            timing,
        }
    }
}

impl<F, B> Future for NotionFuture<F>
where
    F: Future<Output = Result<Response<B>, BoxError>>,
{
    type Output = Result<Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = match this.inner.as_pin_mut() {
            Some(inner) => ready!(inner.poll(cx)),
            None => Err(this
                .refused
                .take()
                .unwrap_or_else(|| "the request future was polled after it completed".into())),
        };
        if !this.span.is_disabled() {
            record_end(this.span, &result);
        }
        if let Some(timing) = this.timing.take() {
            timing
                .metrics
                .finished(outcome(&result), timing.started.elapsed());
        }
        Poll::Ready(result)
    }
}

/// How a request ended.
fn outcome<B>(result: &Result<Response<B>, BoxError>) -> Outcome {
    match result {
        Ok(res) => {
            let status = res.status();
            if matches!(
                res.extensions().get::<CacheStatus>(),
                Some(CacheStatus::Stale { .. })
            ) {
                Outcome::Stale
            } else if status.is_client_error() || status.is_server_error() {
                Outcome::HttpError
            } else {
                Outcome::Ok
            }
        }
        Err(err) => {
            let mut source: Option<&(dyn StdError + 'static)> = Some(&**err);
            while let Some(e) = source {
                if e.is::<CircuitOpen>() || e.is::<RateLimited>() || e.is::<QuotaExhausted>() {
                    return Outcome::Rejected;
                }
                source = e.source();
            }
            Outcome::Error
        }
    }
}

fn record_end<B>(span: &Span, result: &Result<Response<B>, BoxError>) {
    // Every upstream answer's id is already recorded (by `NotionBody`); a stale copy's
    // headers are an old answer's, so the response's own are not read here.
    span.record("outcome", outcome(result).as_str());
    match result {
        Ok(res) => {
            span.record("http.status_code", res.status().as_u16());
        }
        Err(err) => {
            let mut source: Option<&(dyn StdError + 'static)> = Some(&**err);
            while let Some(e) = source {
                let id = e
                    .downcast_ref::<NotionError>()
                    .and_then(|n| n.request_id.as_deref())
                    .or_else(|| {
                        e.downcast_ref::<UnexpectedResponse>()
                            .and_then(|u| u.request_id.as_deref())
                    });
                if let Some(id) = id {
                    span.record("notion.request_id", id);
                }
                source = e.source();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::ready;

    use bulwark_testkit::CapturedLogs;
    use http::{HeaderMap, StatusCode};

    use super::*;

    fn get(uri: &str) -> Request<()> {
        Request::get(uri).body(()).unwrap()
    }

    /// Polls a finished stack future inside the request's span; what the span's close says.
    fn run(result: Result<Response<()>, BoxError>) -> String {
        let logs = CapturedLogs::default();
        {
            let _guard = logs.capture_all();
            let span = request_span(&get("https://api.notion.com/v1/search?q=secret-query"));
            let fut = NotionFuture::new(ready(result), span, None);
            drop(futures_util::FutureExt::now_or_never(fut));
        }
        logs.text()
    }

    #[test]
    fn a_local_refusal_ends_as_rejected_without_the_query_string() {
        let text = run(Err(
            CircuitOpen::new(std::time::Duration::from_secs(1)).into()
        ));
        assert!(text.contains("outcome=\"rejected\""), "{text}");
        assert!(text.contains("http.route=\"/v1/search\""), "{text}");
        assert!(!text.contains("secret-query"), "{text}");
    }

    #[test]
    fn a_final_notion_error_records_its_request_id() {
        let body = br#"{"object":"error","status":502,"code":"bad_gateway","message":"m","request_id":"req-final"}"#;
        let err =
            NotionError::from_response(StatusCode::BAD_GATEWAY, &HeaderMap::new(), body).unwrap();
        let text = run(Err(err.into()));
        assert!(text.contains("notion.request_id=\"req-final\""), "{text}");
        assert!(text.contains("outcome=\"error\""), "{text}");
    }

    #[test]
    fn an_error_answer_ends_as_http_error_with_its_status() {
        let res = Response::builder().status(404).body(()).unwrap();
        let text = run(Ok(res));
        assert!(text.contains("http.status_code=404"), "{text}");
        assert!(text.contains("outcome=\"http_error\""), "{text}");
    }
}
