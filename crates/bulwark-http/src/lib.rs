//! Shared HTTP semantics for the bulwark Tower layers.
//!
//! Every bulwark layer — retry, circuit breaker, token bucket, stale cache — has to agree on
//! what a response or an error *means*. This crate is that agreement:
//!
//! * [`Class`] and [`Classify`]: one attempt's outcome as `Success`, `Throttled`, `Unreachable`,
//!   `Transient`, `Rejected` or `Permanent`; [`HttpClassifier`] is the default table.
//! * [`retry_after()`] / [`parse_retry_after`]: `Retry-After` in both of its forms, never panicking.
//! * [`Idempotency`]: which requests may be sent twice.
//! * [`BufferedBody`] and [`BufferBodyLayer`]: replayable request bodies.
//! * [`error`]: the rejections layers return ([`CircuitOpen`],
//!   [`RateLimited`], [`BodyTooLarge`]), and
//!   [`RejectionResponseLayer`] that renders them as 503 / 429 / 413 responses for servers.
//! * [`RateLimitInfo`]: what an upstream says is left — the IETF `RateLimit` fields, legacy
//!   `X-RateLimit-*` and `X-Usage-*` — in one struct; a 429 with nothing left until a far reset is
//!   [`Class::QuotaExhausted`], refused locally as [`QuotaExhausted`] by the bucket.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use bulwark_http::{BufferBodyLayer, BufferedBody, Class, Classify, HttpClassifier};
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bulwark_http::BoxError> {
//! let svc = ServiceBuilder::new()
//!     .layer(BufferBodyLayer::new(64 * 1024))
//!     .service(service_fn(|_req: Request<BufferedBody>| async {
//!         let res = Response::builder().status(429).header("retry-after", "2").body(())?;
//!         Ok::<_, http::Error>(res)
//!     }));
//! let res = svc.oneshot(Request::new(BufferedBody::from("{}"))).await?;
//! assert_eq!(
//!     HttpClassifier.classify_response(&res),
//!     Class::Throttled { retry_after: Some(Duration::from_secs(2)) }
//! );
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod as_error;
pub mod body;
pub mod classify;
pub mod error;
#[cfg(test)]
mod hostile_inputs;
pub mod idempotency;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod key_secret;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
pub mod ratelimit;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis_link;
pub mod rejection;
pub mod retry_after;

pub use as_error::AsStdError;
pub use body::{BufferBody, BufferBodyFuture, BufferBodyLayer, BufferedBody};
pub use classify::{classify_error_chain, Class, Classify, HttpClassifier, QUOTA_HORIZON};
pub use error::{
    BodyTooLarge, BoxError, CircuitOpen, InvalidConfig, QuotaExhausted, QuotaPolicy, RateLimited,
};
pub use idempotency::{Idempotency, IDEMPOTENCY_KEY};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use key_secret::KeySecret;
pub use ratelimit::{QuotaSource, RateLimitInfo};
pub use rejection::{
    DefaultRenderer, Rejection, RejectionResponse, RejectionResponseLayer, RenderRejection,
    ResponseFuture as RejectionResponseFuture,
};
/// The instance name of a layer whose `name(..)` was not set: the `name` label of its metrics
/// (feature `metrics`) and the name in its `Debug` output.
pub const DEFAULT_NAME: &str = "default";

pub use retry_after::{parse_retry_after, retry_after, retry_after_value, MAX_RETRY_AFTER};
