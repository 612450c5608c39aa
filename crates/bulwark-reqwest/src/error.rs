//! Errors of this crate, and [`rejection`]: bulwark's refusals found in a
//! `reqwest_middleware::Error`.
//!
//! A request the stack refuses (an open breaker, a bucket in reject mode, a spent retry
//! budget, a timeout inside the stack) comes back as `reqwest_middleware::Error::Middleware`
//! holding a [`StackError`], whose source is the stack's error, so anyhow's `chain()` walks
//! it. Find the rejection with [`rejection`], or yourself through anyhow's chain:
//!
//! ```
//! use bulwark_http::CircuitOpen;
//!
//! fn circuit_open(err: &reqwest_middleware::Error) -> Option<&CircuitOpen> {
//!     match err {
//!         reqwest_middleware::Error::Middleware(err) => {
//!             err.chain().find_map(|e| e.downcast_ref::<CircuitOpen>())
//!         }
//!         reqwest_middleware::Error::Reqwest(_) => None,
//!     }
//! }
//! # let err = reqwest_middleware::Error::middleware(bulwark_reqwest::StackError::new(Box::new(
//! #     CircuitOpen::new(std::time::Duration::from_secs(1)),
//! # )));
//! # assert!(circuit_open(&err).is_some());
//! ```
//!
//! The upstream's own failures are left as they were: `Error::Reqwest` for reqwest's errors
//! (`is_connect()`, `is_timeout()` work as usual), and a later middleware's
//! `Error::Middleware` unchanged.

use std::fmt;

use bulwark_http::{BoxError, Rejection};

/// The stack's own error (a rejection, a timeout inside it, a spent retry budget), as the
/// `anyhow::Error` of `reqwest_middleware::Error::Middleware`: its
/// [`source`](std::error::Error::source) is the stack's error, so `err.chain()` finds
/// `CircuitOpen`, `RateLimited` and the rest with `downcast_ref`.
///
/// Its `Display` names only where the failure happened; `{:#}` (anyhow's alternate format)
/// prints the whole chain.
#[derive(Debug)]
pub struct StackError {
    inner: BoxError,
}

impl StackError {
    /// Wraps the stack's error.
    #[must_use]
    pub fn new(inner: BoxError) -> Self {
        Self { inner }
    }

    /// The stack's error.
    #[must_use]
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner
    }

    /// Consumes `self`, returning the stack's error.
    #[must_use]
    pub fn into_inner(self) -> BoxError {
        self.inner
    }
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the bulwark stack did not send or complete the request")
    }
}

impl std::error::Error for StackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.inner)
    }
}

/// A streaming request body (`reqwest::Body::wrap_stream`) can't be sent through a bulwark
/// stack: a retry must send the body again, so it is buffered, and a stream can be read
/// once. Build the request with bytes, a `String` or JSON instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StreamingBody;

impl fmt::Display for StreamingBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "bulwark-reqwest: a streaming request body can't be re-sent on retry; \
             build the request with a buffered body (bytes, String, JSON)",
        )
    }
}

impl std::error::Error for StreamingBody {}

/// An attempt reached [`Upstream`](crate::Upstream) outside the middleware call of its
/// request (a background stale-while-revalidate refresh after the answer was given, or a
/// stack used without [`BulwarkMiddleware`](crate::BulwarkMiddleware)), so it had no
/// `reqwest-middleware` chain to go down and was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Detached;

impl fmt::Display for Detached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bulwark-reqwest: attempt made outside its request's middleware call; not sent")
    }
}

impl std::error::Error for Detached {}

/// The bulwark rejection in `err`, if the request was refused locally: `CircuitOpen`,
/// `RateLimited`, `BodyTooLarge`, or `Timeout` (a deadline inside the stack). `None` for the
/// upstream's own failures (`Error::Reqwest`, a later middleware's error) and anything else.
///
/// ```
/// use std::time::Duration;
/// use bulwark_http::{RateLimited, Rejection};
///
/// use bulwark_reqwest::StackError;
///
/// let limited = RateLimited::new(Duration::from_secs(2));
/// let err = reqwest_middleware::Error::middleware(StackError::new(Box::new(limited)));
/// match bulwark_reqwest::rejection(&err) {
///     Some(Rejection::RateLimited(limited)) => assert_eq!(limited.retry_after, Duration::from_secs(2)),
///     other => panic!("{other:?}"),
/// }
/// ```
#[must_use]
pub fn rejection(err: &reqwest_middleware::Error) -> Option<Rejection> {
    let reqwest_middleware::Error::Middleware(err) = err else {
        return None;
    };
    err.chain()
        .map(Rejection::from_error)
        .find(|found| !matches!(found, Rejection::Upstream | Rejection::Internal))
}
