//! The rejections bulwark's layers return, in one place so one place renders them.
//!
//! Every layer that can refuse a request locally has `type Error = BoxError`; the refusal is
//! one of the small structs below, recovered with [`downcast_ref`](std::error::Error):
//!
//! ```
//! use std::time::Duration;
//! use bulwark_http::{BoxError, error::{CircuitOpen, RateLimited}};
//!
//! fn wait_hint(err: &BoxError) -> Option<Duration> {
//!     if let Some(open) = err.downcast_ref::<CircuitOpen>() {
//!         return Some(open.retry_after);
//!     }
//!     err.downcast_ref::<RateLimited>().map(|limited| limited.retry_after)
//! }
//!
//! let err: BoxError = CircuitOpen::new(Duration::from_secs(3)).into();
//! assert_eq!(wait_hint(&err), Some(Duration::from_secs(3)));
//! ```
//!
//! [`HttpClassifier`](crate::HttpClassifier) classifies `CircuitOpen` and `RateLimited` as
//! [`Class::Rejected`](crate::Class::Rejected) — refused locally, never sent — so an outer
//! layer never mistakes them for an upstream failure. [`RejectionResponseLayer`] renders
//! them as 503 / 429 / 413 responses for servers.
//!
//! Any `Duration` is a valid `retry_after`, `Duration::MAX` ("never", from a zero rate)
//! included: nothing here or in the renderers panics on it. The `Display` text and the
//! rendered `Retry-After` clamp waits longer than [`MAX_RETRY_AFTER`] (one year); the field
//! keeps the true value.
//!
//! [`RejectionResponseLayer`]: crate::RejectionResponseLayer

use std::{fmt, time::Duration};

use crate::retry_after::MAX_RETRY_AFTER;

/// The error type of every bulwark layer that can refuse a request.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A circuit breaker is open: the request was not sent.
///
/// `retry_after` is the time left before the breaker lets a probe through. Its `Display`
/// shows at most [`MAX_RETRY_AFTER`] ("retry after more than 31536000s").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CircuitOpen {
    /// Time until the breaker half-opens (zero when it is half-open and out of probes).
    pub retry_after: Duration,
}

impl CircuitOpen {
    /// A rejection that suggests coming back after `retry_after`.
    #[must_use]
    pub const fn new(retry_after: Duration) -> Self {
        Self { retry_after }
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "circuit open: upstream failing, retry after {}",
            Wait(self.retry_after)
        )
    }
}

/// A wait as the errors' `Display` shows it: seconds with milliseconds, or "more than
/// 31536000s" past [`MAX_RETRY_AFTER`] — never the twenty digits of `Duration::MAX`.
struct Wait(Duration);

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > MAX_RETRY_AFTER {
            write!(f, "more than {}s", MAX_RETRY_AFTER.as_secs())
        } else {
            write!(f, "{:.3}s", self.0.as_secs_f64())
        }
    }
}

impl std::error::Error for CircuitOpen {}

/// A quota: `quota` requests per `window` (what `RateLimit-Policy` announces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaPolicy {
    /// Requests allowed per window.
    pub quota: u64,
    /// The window the quota applies to.
    pub window: Duration,
}

/// A rate limiter refused the request: no token within the allowed wait.
///
/// `retry_after` is when a token will be available (`Duration::MAX` when never, from a zero
/// rate). Its `Display` shows at most [`MAX_RETRY_AFTER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimited {
    /// Time until a token is available.
    pub retry_after: Duration,
    /// The limit that refused it, when known (rendered as `RateLimit-Policy`).
    pub policy: Option<QuotaPolicy>,
}

impl RateLimited {
    /// A rejection that suggests coming back after `retry_after`.
    #[must_use]
    pub const fn new(retry_after: Duration) -> Self {
        Self {
            retry_after,
            policy: None,
        }
    }

    /// Attaches the quota that refused the request.
    #[must_use]
    pub const fn with_policy(mut self, policy: QuotaPolicy) -> Self {
        self.policy = Some(policy);
        self
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limited: retry after {}", Wait(self.retry_after))
    }
}

impl std::error::Error for RateLimited {}

/// The upstream's quota is used up (it answered a 429 whose usage signals said no allowance
/// is left, [`Class::QuotaExhausted`](crate::Class::QuotaExhausted)), so the request was
/// refused locally without being sent — by `TokenBucketLayer`, until the quota resets.
///
/// Rendered by [`RejectionResponseLayer`](crate::RejectionResponseLayer) as 429 with
/// `Retry-After`.
///
/// ```
/// use std::time::Duration;
/// use bulwark_http::QuotaExhausted;
///
/// let billing_period = QuotaExhausted::new(None, Duration::from_secs(60));
/// assert_eq!(billing_period.to_string(), "quota exhausted: no reset announced; next try in 60.000s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaExhausted {
    /// When the upstream said the quota resets, measured when the refusal was made (`None`:
    /// not announced — a billing-period quota).
    pub resets_in: Option<Duration>,
    /// When a request may be tried again: the reset, or — with no reset announced — when the
    /// next request is let through to see whether the quota came back.
    pub retry_after: Duration,
}

impl QuotaExhausted {
    /// A refusal until `resets_in` (when known), suggesting a new try after `retry_after`.
    #[must_use]
    pub const fn new(resets_in: Option<Duration>, retry_after: Duration) -> Self {
        Self {
            resets_in,
            retry_after,
        }
    }
}

impl fmt::Display for QuotaExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resets_in {
            Some(resets_in) => write!(f, "quota exhausted: resets in {}", Wait(resets_in)),
            None => write!(
                f,
                "quota exhausted: no reset announced; next try in {}",
                Wait(self.retry_after)
            ),
        }
    }
}

impl std::error::Error for QuotaExhausted {}

/// A request body was longer than the buffering limit; reading stopped at the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BodyTooLarge {
    /// The limit in bytes that was exceeded.
    pub limit: usize,
}

impl BodyTooLarge {
    /// A body longer than `limit` bytes.
    #[must_use]
    pub const fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request body exceeds the {} byte limit", self.limit)
    }
}

impl std::error::Error for BodyTooLarge {}

/// A configuration value was rejected when a layer was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig {
    field: &'static str,
    reason: String,
}

impl InvalidConfig {
    /// `field` is the setter's name, `reason` says what is wrong with the value.
    #[must_use]
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The name of the offending setting.
    #[must_use]
    pub const fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with it.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidConfig {}
