//! `notion-js-sdk`: the retry policy of the official JS SDK, `@notionhq/client` 5.26, as
//! `reference/NOTION.md` ("What the official SDKs do") describes it.
//!
//! - `maxRetries` 2, `initialRetryDelayMs` 1000, `maxRetryDelayMs` 60 000, `timeoutMs` 60 000
//!   (per attempt).
//! - A response is a Notion error only when its body is JSON with a string `message` and a
//!   known `code`; anything else (Cloudflare's HTML) is an `UnknownHTTPResponseError`, never
//!   retried.
//! - `rate_limited` and `service_overload` are retried for every method;
//!   `internal_server_error` and `service_unavailable` only for GET and DELETE; never
//!   `bad_gateway`, `gateway_timeout`, `conflict_error`, timeouts or network errors.
//! - The delay is `Retry-After` (seconds, capped at 60 s), else `1 s · 2^n · U[0.5, 1.5)`, capped
//!   at 60 s.

use std::{
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use bulwark_http::BoxError;
use http::{header::RETRY_AFTER, Method};
use serde_json::Value;
use tower::{Service, ServiceExt};

use super::{BoxFuture, Req, Res, Stack};

const MAX_RETRIES: u32 = 2;
const INITIAL_RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(60);

/// The JS SDK's policy over `inner`.
#[derive(Clone)]
pub(crate) struct JsSdk {
    inner: Stack,
    /// `Math.random()` for the jitter, seeded.
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl JsSdk {
    pub(crate) fn new(inner: Stack, seed: u64) -> Self {
        Self {
            inner,
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(seed))),
        }
    }
}

/// The error the SDK throws when an attempt runs past `timeoutMs`.
#[derive(Debug)]
struct RequestTimeout;

impl std::fmt::Display for RequestTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestTimeoutError: request timed out")
    }
}

impl std::error::Error for RequestTimeout {}

/// The Notion error code of a response, if its body is a Notion error as the SDK reads it.
fn notion_code(res: &Res) -> Option<String> {
    let body: Value = serde_json::from_slice(res.body()).ok()?;
    body.get("message")?.as_str()?;
    let code = body.get("code")?.as_str()?;
    // The SDK's `APIErrorCode` is the list Notion documents.
    bulwark_notion::NotionErrorCode::from(code)
        .is_known()
        .then(|| code.to_owned())
}

/// Whether the SDK retries this answer to `method`.
fn retried(method: &Method, res: &Res) -> bool {
    match notion_code(res).as_deref() {
        Some("rate_limited" | "service_overload") => true,
        Some("internal_server_error" | "service_unavailable") => {
            method == Method::GET || method == Method::DELETE
        }
        _ => false,
    }
}

/// `Retry-After` in seconds (integer or decimal), if the answer has a usable one.
fn retry_after(res: &Res) -> Option<Duration> {
    let value = res.headers().get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = value.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)))
}

impl Service<Req> for JsSdk {
    type Response = Res;
    type Error = BoxError;
    type Future = BoxFuture<Result<Res, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each attempt waits for the inner service's readiness on its own clone.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let mut inner = self.inner.clone();
        let rng = Arc::clone(&self.rng);
        Box::pin(async move {
            let method = req.method().clone();
            let mut retries = 0;
            loop {
                let attempt = async { inner.ready().await?.call(req.clone()).await };
                // A timeout or a network error is thrown at once, never retried.
                let res = tokio::time::timeout(TIMEOUT, attempt)
                    .await
                    .map_err(|_| Box::new(RequestTimeout) as BoxError)??;
                if res.status().is_success() || retries == MAX_RETRIES || !retried(&method, &res) {
                    return Ok(res);
                }
                let delay = retry_after(&res).unwrap_or_else(|| {
                    let jitter = 0.5 + rng.lock().unwrap_or_else(PoisonError::into_inner).f64();
                    INITIAL_RETRY_DELAY.mul_f64(f64::from(1u32 << retries) * jitter)
                });
                tokio::time::sleep(delay.min(MAX_RETRY_DELAY)).await;
                retries += 1;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;

    fn res(status: u16, body: &str) -> Res {
        Response::builder()
            .status(status)
            .body(bytes::Bytes::from(body.to_owned()))
            .unwrap()
    }

    #[test]
    fn only_notion_errors_with_retried_codes_are_retried() {
        let body = |code: &str| {
            format!(r#"{{"object":"error","status":0,"code":"{code}","message":"m"}}"#)
        };
        for method in [Method::GET, Method::POST, Method::PATCH, Method::DELETE] {
            let idempotent = method == Method::GET || method == Method::DELETE;
            assert!(retried(&method, &res(429, &body("rate_limited"))));
            assert!(retried(&method, &res(529, &body("service_overload"))));
            assert_eq!(
                retried(&method, &res(500, &body("internal_server_error"))),
                idempotent
            );
            assert_eq!(
                retried(&method, &res(503, &body("service_unavailable"))),
                idempotent
            );
            assert!(!retried(&method, &res(502, &body("bad_gateway"))));
            assert!(!retried(&method, &res(504, &body("gateway_timeout"))));
            assert!(!retried(&method, &res(409, &body("conflict_error"))));
            // Not a Notion error: HTML, an unknown code, no message.
            assert!(!retried(&method, &res(503, "<html>503</html>")));
            assert!(!retried(&method, &res(429, &body("slow_down"))));
            assert!(!retried(&method, &res(429, r#"{"code":"rate_limited"}"#)));
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let with = |v: &str| {
            let mut r = res(429, "");
            r.headers_mut().insert(RETRY_AFTER, v.parse().unwrap());
            retry_after(&r)
        };
        assert_eq!(with("3"), Some(Duration::from_secs(3)));
        assert_eq!(with("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(with("soon"), None);
        assert_eq!(with("-1"), None);
    }
}
