//! Rejections rendered the Notion way, for proxies and servers in front of Notion clients.
//!
//! A Notion SDK behind a bulwark proxy must see bulwark's refusals as ordinary Notion API
//! errors: [`render_rejection`] answers
//!
//! | rejection | status | `code` |
//! |---|---|---|
//! | [`CircuitOpen`](bulwark_http::CircuitOpen) | 503 | `service_unavailable` |
//! | [`RateLimited`](bulwark_http::RateLimited) | 429 | `rate_limited` |
//! | [`BodyTooLarge`](bulwark_http::BodyTooLarge) | 413 | `validation_error` |
//! | a timeout inside the layer ([`Rejection::Timeout`]) | 503 | `service_unavailable`, as `bulwark-http` renders it (not 504 `gateway_timeout`: the layer cannot tell whether the deadline wrapped Notion or the proxy's own work) |
//! | an upstream failure (unreachable, reset) | 503 | `service_unavailable` (Notion's SDKs do not know `bad_gateway`) |
//! | anything else | 500 | `internal_server_error` |
//!
//! with `Retry-After` (and IETF `RateLimit` headers for a rate limit), in Notion's body
//! `{"object":"error","status",…,"code",…,"message",…,"request_id":…}`.

use bulwark_http::{BufferedBody, Rejection, RejectionResponseLayer};
use http::{header, HeaderValue, Response, StatusCode};

use crate::error::{NotionError, NotionErrorCode};

/// The renderer's type, for naming the layer.
pub type RenderFn = fn(&Rejection) -> Response<BufferedBody>;

/// [`RejectionResponseLayer`] rendering Notion's error format (see the [module docs](self)).
///
/// ```
/// use axum::{routing::get, Router};
///
/// let app: Router = Router::new()
///     .route("/v1/users/me", get(|| async { "{}" }))
///     .layer(bulwark_notion::rejection_layer());
/// # let _ = app;
/// ```
pub fn rejection_layer() -> RejectionResponseLayer<RenderFn> {
    RejectionResponseLayer::new().render_with(render_rejection as RenderFn)
}

/// The [`NotionError`] a rejection stands for (what a proxy would answer).
#[must_use]
pub fn rejection_error(rejection: &Rejection) -> NotionError {
    let (status, code, message) = match rejection {
        Rejection::CircuitOpen(open) => (
            StatusCode::SERVICE_UNAVAILABLE,
            NotionErrorCode::ServiceUnavailable,
            format!(
                "bulwark: the circuit breaker is open after repeated Notion failures; the request was not sent. Retry after {} s.",
                whole_seconds(open.retry_after)
            ),
        ),
        Rejection::RateLimited(limited) => (
            StatusCode::TOO_MANY_REQUESTS,
            NotionErrorCode::RateLimited,
            format!(
                "bulwark: rate limited locally to stay under Notion's limit; the request was not sent. Retry after {} s.",
                whole_seconds(limited.retry_after)
            ),
        ),
        Rejection::QuotaExhausted(exhausted) => (
            StatusCode::TOO_MANY_REQUESTS,
            NotionErrorCode::RateLimited,
            format!(
                "bulwark: the upstream's usage quota is exhausted; the request was not sent. Retry after {} s.",
                whole_seconds(exhausted.retry_after)
            ),
        ),
        Rejection::BodyTooLarge(large) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            NotionErrorCode::ValidationError,
            format!("bulwark: the request body exceeds {} bytes.", large.limit),
        ),
        // 503 like `bulwark-http`'s own rendering of a timeout (see `Rejection`'s docs).
        Rejection::Timeout => (
            StatusCode::SERVICE_UNAVAILABLE,
            NotionErrorCode::ServiceUnavailable,
            "bulwark: the request timed out before an answer was ready.".to_owned(),
        ),
        // 503 `service_unavailable` rather than 502 `bad_gateway`: Notion's SDKs know the
        // former as an API error (and retry it for reads); the latter is an unknown response.
        Rejection::Upstream => (
            StatusCode::SERVICE_UNAVAILABLE,
            NotionErrorCode::ServiceUnavailable,
            "bulwark: Notion did not answer (unreachable, timed out or reset).".to_owned(),
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            NotionErrorCode::InternalServerError,
            "bulwark: internal error.".to_owned(),
        ),
    };
    NotionError {
        status,
        code,
        message,
        request_id: Some(request_id()),
        additional_data: None,
        retry_after: rejection.retry_after(),
    }
}

/// Renders `rejection` as Notion would answer (see the [module docs](self)).
#[must_use]
pub fn render_rejection(rejection: &Rejection) -> Response<BufferedBody> {
    let err = rejection_error(rejection);
    let mut res = Response::new(BufferedBody::from(err.to_json().to_string()));
    *res.status_mut() = err.status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    rejection.insert_headers(res.headers_mut());
    res
}

/// The wait as the `Retry-After` header gives it (whole seconds, rounded up), so the message
/// and the header always agree.
fn whole_seconds(d: std::time::Duration) -> String {
    bulwark_http::retry_after_value(d)
        .to_str()
        .map_or_else(|_| "?".to_owned(), str::to_owned)
}

/// A random id shaped like Notion's (a UUID), so SDKs that log request ids get one.
fn request_id() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bulwark_http::{CircuitOpen, RateLimited};

    use super::*;

    #[test]
    fn breaker_and_bucket_rejections_look_like_notion() {
        let res = render_rejection(&Rejection::CircuitOpen(CircuitOpen::new(
            Duration::from_millis(29_100),
        )));
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "30");
        let body: serde_json::Value = serde_json::from_slice(res.body().as_ref()).unwrap();
        assert_eq!(body["object"], "error");
        assert_eq!(body["status"], 503);
        assert_eq!(body["code"], "service_unavailable");
        assert!(body["message"].as_str().unwrap().contains("circuit"));
        assert_eq!(body["request_id"].as_str().unwrap().len(), 36);

        let res = render_rejection(&Rejection::RateLimited(RateLimited::new(
            Duration::from_secs(2),
        )));
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()["retry-after"], "2");
        let body: serde_json::Value = serde_json::from_slice(res.body().as_ref()).unwrap();
        assert_eq!(body["code"], "rate_limited");
    }

    /// Issue 15: a timeout is 503 `service_unavailable` (it fell to `internal_server_error`
    /// through the catch-all arm when `bulwark-http` added `Rejection::Timeout`).
    #[test]
    fn a_timeout_is_service_unavailable() {
        let elapsed = tower::timeout::error::Elapsed::new();
        let res = render_rejection(&Rejection::from_error(&elapsed));
        assert_eq!(res.status(), 503);
        assert!(res.headers().get("retry-after").is_none());
        let body: serde_json::Value = serde_json::from_slice(res.body().as_ref()).unwrap();
        assert_eq!(body["code"], "service_unavailable");
        assert!(body["message"].as_str().unwrap().contains("timed out"));
    }
}
