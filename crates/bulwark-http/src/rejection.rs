//! Rejections as HTTP responses, for servers.
//!
//! Behind bulwark's layers a service's error is a `BoxError`; axum's `Router::layer` wants an
//! infallible service. [`RejectionResponseLayer`] sits outermost and turns every error into a
//! response, so no `HandleErrorLayer` is needed:
//!
//! | error (anywhere in the `source()` chain) | [`Rejection`] | response |
//! |---|---|---|
//! | [`CircuitOpen`] | `CircuitOpen` | 503, `Retry-After` |
//! | [`RateLimited`] | `RateLimited` | 429, `Retry-After`, IETF `RateLimit` / `RateLimit-Policy` |
//! | [`QuotaExhausted`] | `QuotaExhausted` | 429, `Retry-After` (the reset, or the next try) |
//! | [`BodyTooLarge`] | `BodyTooLarge` | 413 |
//! | a deadline inside this layer ran out: `tower::timeout::error::Elapsed` (tower's `TimeoutLayer`), `tokio::time::error::Elapsed` | `Timeout` | 503, no `Retry-After` ([why](#a-timeout-is-503)) |
//! | an upstream failure (unreachable, reset, an HTTP client's error), or an error nothing explains | `Upstream` | 502 |
//! | an error that says the request itself was wrong (a `Permanent` class) | `Internal` | 500 |
//!
//! `Retry-After` is whole seconds, rounded up, and at most
//! [`MAX_RETRY_AFTER`](crate::MAX_RETRY_AFTER) (one year): a wait of `Duration::MAX` — a
//! zero rate's "never" — is rendered as `31536000`, the longest value bulwark's own parser
//! reads back; the `RateLimit` fields are capped the same way
//! ([`ratelimit::insert_headers`]). Rendering never panics. Bodies are a small JSON document
//! that never carries the error's text (internals stay in the logs, at `warn`); a preset can
//! render its API's own error format with [`RejectionResponseLayer::render_with`].
//!
//! ## A timeout is 503
//! A `TimeoutLayer` inside this layer — a server's deadline for its own handler, typically —
//! ran out: the server did not produce an answer in time. That is answered **503 Service
//! Unavailable** (RFC 9110 §15.6.4: the server cannot handle the request now, for a while),
//! which is true whatever the deadline wrapped, and which clients and SDKs treat as worth
//! retrying later. Not:
//!
//! * **502 Bad Gateway** — no upstream sent an invalid answer; there may be no upstream at all.
//! * **504 Gateway Timeout** (§15.6.5) — a *gateway or proxy* waited for an upstream. This
//!   layer cannot tell whether the deadline wrapped an upstream call or the server's own
//!   work, and 504 would claim the former. A proxy that knows its deadline wrapped the
//!   upstream can answer 504 with [`render_with`](RejectionResponseLayer::render_with).
//! * **408 Request Timeout** (§15.5.9) — the *client* did not finish sending its request in
//!   time. tower-http's `TimeoutLayer` answered 408 by default; that default was deprecated in
//!   tower-http 0.6.7 (`TimeoutLayer::with_status_code`) after browsers were seen treating
//!   the 408 as a broken connection (tower-http#300) and 503 was proposed instead (#579),
//!   the maintainers noting that 408 is only right while the handler is still reading the
//!   request body. A body that does not arrive in time is a client's fault and deserves 408:
//!   render it yourself, from your body-timeout error.
//!
//! No `Retry-After` is sent with it: nothing says when the server will be faster.

use std::{error::Error as StdError, time::Duration};

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::{
    classify::{classify_error_chain, Class},
    error::{BodyTooLarge, CircuitOpen, QuotaExhausted, RateLimited},
    ratelimit, retry_after_value, BufferedBody,
};

mod service;

pub use service::{RejectionResponse, RejectionResponseLayer, ResponseFuture};

/// Why a request was answered by [`RejectionResponseLayer`] instead of the inner service
/// (the table in the [module docs](self)).
///
/// `#[non_exhaustive]`: a renderer of one's own matches with a `_` arm, and can fall back to
/// [`status`](Self::status), [`code`](Self::code) and [`message`](Self::message), which this
/// crate keeps right for every variant it adds.
///
/// ```
/// use std::time::Duration;
/// use bulwark_http::{Rejection, RateLimited};
///
/// let elapsed = tower::timeout::error::Elapsed::new();
/// assert_eq!(Rejection::from_error(&elapsed), Rejection::Timeout);
/// assert_eq!(Rejection::Timeout.status(), 503);
///
/// let never = Rejection::from_error(&RateLimited::new(Duration::MAX));
/// assert_eq!(never.status(), 429);
/// let res = never.to_response();
/// assert_eq!(res.headers()["retry-after"], "31536000"); // capped at one year
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// A circuit breaker is open → 503.
    CircuitOpen(CircuitOpen),
    /// A rate limiter refused → 429.
    RateLimited(RateLimited),
    /// The upstream's quota is used up; refused locally until it resets → 429.
    QuotaExhausted(QuotaExhausted),
    /// The request body was too large → 413.
    BodyTooLarge(BodyTooLarge),
    /// A deadline inside this layer ran out (`tower::timeout::error::Elapsed`,
    /// `tokio::time::error::Elapsed`) → 503, not 502 or 504: see
    /// [why](self#a-timeout-is-503).
    Timeout,
    /// The upstream failed (unreachable, reset, an HTTP client's error) → 502.
    Upstream,
    /// An error saying the request itself was wrong → 500.
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
            if let Some(exhausted) = e.downcast_ref::<QuotaExhausted>() {
                return Self::QuotaExhausted(*exhausted);
            }
            if let Some(large) = e.downcast_ref::<BodyTooLarge>() {
                return Self::BodyTooLarge(*large);
            }
            if e.is::<tower::timeout::error::Elapsed>() || e.is::<tokio::time::error::Elapsed>() {
                return Self::Timeout;
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
            Self::RateLimited(_) | Self::QuotaExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
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
            Self::QuotaExhausted(exhausted) => Some(exhausted.retry_after),
            _ => None,
        }
    }

    /// A short machine-readable code: `circuit_open`, `rate_limited`, `quota_exhausted`,
    /// `body_too_large`,
    /// `timeout`, `bad_gateway`, `internal_error`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::CircuitOpen(_) => "circuit_open",
            Self::RateLimited(_) => "rate_limited",
            Self::QuotaExhausted(_) => "quota_exhausted",
            Self::BodyTooLarge(_) => "body_too_large",
            Self::Timeout => "timeout",
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
            Self::QuotaExhausted(_) => {
                "The upstream's usage quota is exhausted; requests resume when it resets."
            }
            Self::BodyTooLarge(_) => "The request body is too large.",
            Self::Timeout => "The request took too long to process.",
            Self::Upstream => "The upstream service failed to answer.",
            Self::Internal => "Internal error.",
        }
    }

    /// Inserts `Retry-After` and, for [`Rejection::RateLimited`] with a known policy, the IETF
    /// `RateLimit` / `RateLimit-Policy` headers. Custom renderers call this to keep them.
    ///
    /// Waits are whole seconds, rounded up, capped at
    /// [`MAX_RETRY_AFTER`](crate::MAX_RETRY_AFTER) (one year).
    ///
    /// # Panics
    /// Never, whatever the wait or the quota (`Duration::MAX`, `u64::MAX`).
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
    ///
    /// # Panics
    /// Never (see [`insert_headers`](Self::insert_headers)).
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
