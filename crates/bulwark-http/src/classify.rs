//! What one attempt's result *means*: the classification every bulwark layer shares.
//!
//! | result | [`Class`] |
//! |---|---|
//! | 1xx, 2xx, 3xx | [`Class::Success`] |
//! | 429 whose usage signals say the allowance is gone until a reset beyond [`QUOTA_HORIZON`] (or, `X-Usage-*`, with no reset at all) | [`Class::QuotaExhausted`] — refused until a reset, not applied; the upstream is healthy |
//! | other 429, 529 | [`Class::Throttled`] — refused by the upstream, not applied |
//! | connect refused, DNS, TLS handshake (hyper-util connect errors) | [`Class::Unreachable`] — never reached the upstream |
//! | 408, 500, 502, 503, 504 and other 5xx except 501/505, timeouts, connection reset mid-request | [`Class::Transient`] — may have been applied |
//! | [`CircuitOpen`], [`RateLimited`], [`QuotaExhausted`] from an inner layer | [`Class::Rejected`] — refused locally, never sent |
//! | other 4xx, 501, 505, [`BodyTooLarge`] | [`Class::Permanent`] |
//!
//! Errors are classified by walking their [`source()`](std::error::Error::source) chain, so a
//! `BoxError` wrapping a hyper-util client error wrapping an `io::Error` is still recognised.
//! An error nothing in the chain explains is `Transient`: it may have reached the upstream, so
//! only idempotent requests are retried after it.

use std::{error::Error as StdError, io, time::Duration};

use http::{Response, StatusCode};

use crate::{
    error::{BodyTooLarge, CircuitOpen, QuotaExhausted, RateLimited},
    RateLimitInfo,
};

/// How far away a reset must be for [`HttpClassifier`] to call a 429 with no allowance left
/// [`Class::QuotaExhausted`] rather than [`Class::Throttled`]: one minute, the longest
/// `Retry-After` `RetryLayer` waits by default. A sooner reset is an ordinary rate limit,
/// waited out like a `Retry-After`.
pub const QUOTA_HORIZON: Duration = Duration::from_secs(60);

/// The meaning of one attempt's outcome.
///
/// # Non-exhaustive
///
/// `Class` is `#[non_exhaustive]` so that a new class (one for an exhausted quota, say: refused
/// like `Throttled`, but for hours rather than seconds) can be added in a minor release. Code
/// outside this crate that matches on it needs a `_` arm. Prefer the methods —
/// [`retry_after`](Self::retry_after), [`is_success`](Self::is_success),
/// [`is_upstream_failure`](Self::is_upstream_failure), [`is_failure`](Self::is_failure),
/// [`as_str`](Self::as_str) — which this crate keeps right for every class it adds.
///
/// Where a match cannot be avoided, treat a class you do not know like [`Class::Permanent`]:
/// do not retry it (repeating a request for a reason you cannot name may apply it twice or
/// hammer an upstream that asked for calm) and do not count it as the upstream failing. The
/// bulwark layers do exactly that: `RetryLayer` returns the result as it is, `StaleCacheLayer`
/// serves no stale copy over it, and `CircuitBreakerLayer` records it as neither a success nor
/// a failure, since unlike a 4xx it proves nothing about the upstream's health.
///
/// ```
/// use bulwark_http::Class;
///
/// fn should_retry(class: Class) -> bool {
///     match class {
///         Class::Throttled { .. } | Class::Unreachable | Class::Transient { .. } => true,
///         Class::Success | Class::Permanent | Class::Rejected { .. } => false,
///         // A class added later: like `Permanent`.
///         _ => false,
///     }
/// }
/// assert!(should_retry(Class::Unreachable));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Class {
    /// 1xx, 2xx or 3xx: the upstream answered.
    Success,
    /// 429 or 529: the upstream refused the request without applying it.
    Throttled {
        /// The upstream's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The request never reached the upstream (connection refused, DNS, TLS handshake).
    Unreachable,
    /// A failure that may have been applied upstream (5xx, timeout, reset mid-request).
    Transient {
        /// The upstream's `Retry-After`, when it sent one (e.g. on a 503).
        retry_after: Option<Duration>,
    },
    /// A 429 whose usage signals (`X-Usage-Remaining: 0`, `RateLimit: …;r=0`,
    /// `X-RateLimit-Remaining: 0`) say the allowance is gone until a reset further away than
    /// [`QUOTA_HORIZON`], or — `X-Usage-*`, a billing-period quota — with no reset at all. Not applied, and
    /// not a sign of trouble: the upstream is healthy and answering — it will refuse this
    /// caller until the reset, so retrying is pure waste.
    ///
    /// `RetryLayer` does not retry it (unless its `max_retry_after` covers `resets_in`),
    /// `CircuitBreakerLayer` counts it as neither success nor failure, `TokenBucketLayer`
    /// refuses further requests locally with [`QuotaExhausted`] until
    /// the reset, and `StaleCacheLayer` may answer it with a stored copy.
    QuotaExhausted {
        /// When the allowance comes back, when the upstream said (`None`: not announced).
        resets_in: Option<Duration>,
    },
    /// Refused locally by an inner bulwark layer (open circuit, rate limit); never sent.
    Rejected {
        /// When the local refusal is expected to lift.
        retry_after: Option<Duration>,
    },
    /// The request itself is wrong (4xx) or cannot be sent; repeating it cannot help.
    Permanent,
}

impl Class {
    /// The wait the class carries, if any.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match *self {
            Self::Throttled { retry_after }
            | Self::Transient { retry_after }
            | Self::Rejected { retry_after } => retry_after,
            Self::QuotaExhausted { resets_in } => resets_in,
            Self::Success | Self::Unreachable | Self::Permanent => None,
        }
    }

    /// `true` for [`Class::Success`].
    #[must_use]
    pub const fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }

    /// `true` for the classes that say the upstream is in trouble: `Transient` and
    /// `Unreachable` (what a circuit breaker counts as failures).
    #[must_use]
    pub const fn is_upstream_failure(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::Unreachable)
    }

    /// `true` when a stale copy may stand in for this outcome: `Throttled`, `QuotaExhausted`,
    /// `Unreachable`, `Transient` and `Rejected`.
    #[must_use]
    pub const fn is_failure(&self) -> bool {
        !matches!(self, Self::Success | Self::Permanent)
    }

    /// A short stable name (`"success"`, `"throttled"`, …) for logs and metrics labels.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Throttled { .. } => "throttled",
            Self::QuotaExhausted { .. } => "quota_exhausted",
            Self::Unreachable => "unreachable",
            Self::Transient { .. } => "transient",
            Self::Rejected { .. } => "rejected",
            Self::Permanent => "permanent",
        }
    }
}

/// Turns one attempt's result — a response or an error — into a [`Class`].
///
/// Every bulwark layer takes a classifier (default [`HttpClassifier`]), so an API's own rules
/// (the Notion preset's, say) are swapped in at one place.
///
/// # Example: treat 409 as transient
/// ```
/// use bulwark_http::{Class, Classify, HttpClassifier};
/// use http::{Response, StatusCode};
///
/// #[derive(Clone, Debug)]
/// struct Conflicts;
///
/// impl Classify for Conflicts {
///     fn classify_response<B>(&self, res: &Response<B>) -> Class {
///         if res.status() == StatusCode::CONFLICT {
///             return Class::Transient { retry_after: None };
///         }
///         HttpClassifier.classify_response(res)
///     }
///     fn classify_error(&self, err: &(dyn std::error::Error + 'static)) -> Class {
///         HttpClassifier.classify_error(err)
///     }
/// }
///
/// let res = Response::builder().status(409).body(()).unwrap();
/// assert_eq!(Conflicts.classify_response(&res), Class::Transient { retry_after: None });
/// ```
pub trait Classify: Clone + Send + Sync + 'static {
    /// Classifies a response by its status and headers.
    fn classify_response<B>(&self, res: &Response<B>) -> Class;

    /// Classifies an error returned by the inner service.
    fn classify_error(&self, err: &(dyn StdError + 'static)) -> Class;

    /// Classifies one attempt's result. Layers call this; it dispatches to the two above.
    fn classify_result<B, E>(&self, result: &Result<Response<B>, E>) -> Class
    where
        E: crate::AsStdError,
    {
        match result {
            Ok(res) => self.classify_response(res),
            Err(err) => match err.as_std_error() {
                Some(err) => self.classify_error(err),
                None => Class::Permanent,
            },
        }
    }
}

/// The default classifier: the table in the [module docs](self).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpClassifier;

impl HttpClassifier {
    /// Classifies a bare status code, with the wait a `Retry-After` header gave.
    #[must_use]
    pub fn classify_status(status: StatusCode, retry_after: Option<Duration>) -> Class {
        match status.as_u16() {
            100..=399 => Class::Success,
            429 | 529 => Class::Throttled { retry_after },
            408 => Class::Transient { retry_after },
            501 | 505 => Class::Permanent,
            500..=599 => Class::Transient { retry_after },
            _ => Class::Permanent,
        }
    }
}

impl HttpClassifier {
    /// A 429 read with its usage signals: [`Class::QuotaExhausted`] when no allowance is left
    /// until a reset beyond [`QUOTA_HORIZON`] (or, for the `X-Usage-*` billing-period family,
    /// none announced), else
    /// [`Class::Throttled`] — waiting for `Retry-After`, or for the announced reset when the
    /// allowance is gone and no `Retry-After` was sent.
    #[must_use]
    pub fn classify_429(headers: &http::HeaderMap, retry_after: Option<Duration>) -> Class {
        let info = RateLimitInfo::from_headers(headers);
        if info.remaining != Some(0) {
            return Class::Throttled { retry_after };
        }
        // The allowance is gone: the sooner of `Retry-After` and the reset says when.
        let resets_in = match (retry_after, info.reset) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match resets_in {
            Some(wait) if wait <= QUOTA_HORIZON => Class::Throttled {
                retry_after: Some(wait),
            },
            Some(far) => Class::QuotaExhausted {
                resets_in: Some(far),
            },
            // No reset at all: a billing-period quota only when the `X-Usage-*` family says
            // so; a per-second limiter that sends `X-RateLimit-Remaining: 0` alone is an
            // ordinary throttle (retried with backoff), not a lock for an hour.
            None if info.source == Some(crate::ratelimit::QuotaSource::XUsage) => {
                Class::QuotaExhausted { resets_in: None }
            }
            None => Class::Throttled { retry_after: None },
        }
    }
}

impl Classify for HttpClassifier {
    fn classify_response<B>(&self, res: &Response<B>) -> Class {
        let status = res.status();
        if status.is_success() {
            return Class::Success;
        }
        let retry_after = crate::retry_after(res.headers());
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Self::classify_429(res.headers(), retry_after);
        }
        Self::classify_status(status, retry_after)
    }

    fn classify_error(&self, err: &(dyn StdError + 'static)) -> Class {
        classify_error_chain(err)
    }
}

/// Walks `err` and its sources; the first error of a known kind decides.
///
/// This is what [`HttpClassifier::classify_error`] does; custom classifiers call it for errors.
#[must_use]
pub fn classify_error_chain(err: &(dyn StdError + 'static)) -> Class {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(class) = classify_one(err) {
            return class;
        }
        next = err.source();
    }
    Class::Transient { retry_after: None }
}

fn classify_one(err: &(dyn StdError + 'static)) -> Option<Class> {
    if let Some(open) = err.downcast_ref::<CircuitOpen>() {
        return Some(Class::Rejected {
            retry_after: Some(open.retry_after),
        });
    }
    if let Some(limited) = err.downcast_ref::<RateLimited>() {
        return Some(Class::Rejected {
            retry_after: Some(limited.retry_after),
        });
    }
    if let Some(exhausted) = err.downcast_ref::<QuotaExhausted>() {
        return Some(Class::Rejected {
            retry_after: Some(exhausted.retry_after),
        });
    }
    if err.is::<BodyTooLarge>() {
        return Some(Class::Permanent);
    }
    if err.is::<tower::timeout::error::Elapsed>() || err.is::<tokio::time::error::Elapsed>() {
        return Some(Class::Transient { retry_after: None });
    }
    #[cfg(feature = "hyper-util")]
    if let Some(class) = classify_hyper(err) {
        return Some(class);
    }
    if let Some(io) = err.downcast_ref::<io::Error>() {
        return classify_io(io.kind());
    }
    None
}

fn classify_io(kind: io::ErrorKind) -> Option<Class> {
    use io::ErrorKind::*;
    match kind {
        ConnectionRefused | AddrNotAvailable | NotConnected | HostUnreachable
        | NetworkUnreachable => Some(Class::Unreachable),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | TimedOut
        | Interrupted => Some(Class::Transient { retry_after: None }),
        // Other io errors say nothing definite; keep walking (their source may).
        _ => None,
    }
}

#[cfg(feature = "hyper-util")]
fn classify_hyper(err: &(dyn StdError + 'static)) -> Option<Class> {
    if let Some(client) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
        if client.is_connect() {
            // Connect failures (refused, DNS, TLS handshake) never reached the upstream.
            return Some(Class::Unreachable);
        }
        // Otherwise the source (a hyper::Error, an io::Error) says more.
        return None;
    }
    if let Some(hyper) = err.downcast_ref::<hyper::Error>() {
        if hyper.is_timeout() || hyper.is_incomplete_message() || hyper.is_closed() {
            return Some(Class::Transient { retry_after: None });
        }
        if hyper.is_user() {
            // A request the client could not send: body errors, bad headers.
            return Some(Class::Permanent);
        }
        if hyper.is_canceled() {
            return Some(Class::Transient { retry_after: None });
        }
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Class {
        let res = Response::builder().status(code).body(()).unwrap();
        HttpClassifier.classify_response(&res)
    }

    #[test]
    fn statuses() {
        for ok in [100, 200, 201, 204, 301, 304, 399] {
            assert_eq!(status(ok), Class::Success, "{ok}");
        }
        for t in [429, 529] {
            assert_eq!(status(t), Class::Throttled { retry_after: None });
        }
        for t in [408, 500, 502, 503, 504, 520, 599] {
            assert_eq!(status(t), Class::Transient { retry_after: None }, "{t}");
        }
        for p in [400, 401, 403, 404, 409, 410, 413, 422, 501, 505] {
            assert_eq!(status(p), Class::Permanent, "{p}");
        }
    }

    fn with_headers(code: u16, headers: &[(&str, &str)]) -> Class {
        let mut res = Response::builder().status(code);
        for (k, v) in headers {
            res = res.header(*k, *v);
        }
        HttpClassifier.classify_response(&res.body(()).unwrap())
    }

    #[test]
    fn a_429_with_no_allowance_left_is_quota_exhaustion() {
        // Mark2Notion's monthly quota: no reset at all.
        let usage = [
            ("x-usage-current", "1000"),
            ("x-usage-quota", "1000"),
            ("x-usage-remaining", "0"),
        ];
        assert_eq!(
            with_headers(429, &usage),
            Class::QuotaExhausted { resets_in: None }
        );
        // A reset an hour away.
        let hourly = [
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "3600"),
        ];
        assert_eq!(
            with_headers(429, &hourly),
            Class::QuotaExhausted {
                resets_in: Some(Duration::from_secs(3600))
            }
        );
        // A reset within the horizon is an ordinary rate limit, waited for.
        let soon = [("ratelimit", r#""default";r=0;t=3"#)];
        assert_eq!(
            with_headers(429, &soon),
            Class::Throttled {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        // Allowance left, or no signals: throttled as before.
        assert_eq!(
            with_headers(429, &[("x-usage-remaining", "5"), ("retry-after", "2")]),
            Class::Throttled {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(
            with_headers(429, &[]),
            Class::Throttled { retry_after: None }
        );
        // Only a 429 says "quota": a 503 with the same headers is transient.
        assert_eq!(
            with_headers(503, &usage),
            Class::Transient { retry_after: None }
        );
        // The class's own contract.
        let exhausted = Class::QuotaExhausted { resets_in: None };
        assert!(exhausted.is_failure() && !exhausted.is_upstream_failure());
        assert_eq!(exhausted.as_str(), "quota_exhausted");
    }

    #[test]
    fn retry_after_is_read_from_failures() {
        let res = Response::builder()
            .status(503)
            .header("retry-after", "4")
            .body(())
            .unwrap();
        assert_eq!(
            HttpClassifier.classify_response(&res),
            Class::Transient {
                retry_after: Some(Duration::from_secs(4))
            }
        );
    }
}
