//! A Tower retry layer for HTTP clients that never makes things worse.
//!
//! [`RetryLayer`] retries an attempt according to its [`Class`](bulwark_http::Class):
//!
//! | class | retried? |
//! |---|---|
//! | `Throttled` (429, 529) | yes, any method — the upstream refused it without applying it |
//! | `Unreachable` (connect refused, DNS, TLS) | yes, any method — it never arrived |
//! | `Transient` (5xx, timeouts, resets) | only if idempotent: RFC 9110 methods, an `Idempotency-Key` header, or [`RetryLayer::idempotent_when`] — a POST that got a 502 may have been applied |
//! | `Rejected` (an inner breaker or bucket refused) | never — waiting is the caller's or an outer cache's call |
//! | `Success`, `Permanent` | never |
//!
//! Waits follow the server's `Retry-After` when it sent one (up to
//! [`max_retry_after`](RetryLayer::max_retry_after), plus at most 10 % / 1 s of jitter),
//! otherwise a jittered exponential [`Backoff`]. A [`RetryBudget`] shared by all clones bounds
//! retries to a fraction of recent traffic, so a failing upstream is not hit by a retry storm.
//! On giving up the last attempt's **response** is returned (not an error), so callers still
//! see the upstream's status and body; errors keep the inner service's type.
//!
//! ## Extreme settings
//! No setting and no upstream value makes the layer panic. Waits saturate: a backoff or a
//! `Retry-After` of `Duration::MAX` is "forever" (under a
//! [`total_timeout`](RetryLayer::total_timeout) it is not started and the last result is
//! returned at once), a `total_timeout` beyond what the clock can represent is no deadline,
//! `max_retries(u32::MAX)` leaves the bound to the budget, and invalid budget numbers (NaN,
//! negative, infinite) are refused by [`RetryBudget::new`]. A property test drives every
//! setter with `0`, 1 ns, `Duration::MAX`, `u32::MAX` and random values
//! (`tests/extreme_values.rs`).
//!
//! ## hyper-util's client
//! The layer classifies the inner service's error through
//! [`AsStdError`](bulwark_http::AsStdError), implemented for `BoxError`, `std::io::Error`,
//! tower's and tokio's `Elapsed` and bulwark's rejections. For
//! `hyper_util::client::legacy::Client`, whose error is `hyper_util::client::legacy::Error`,
//! enable this crate's **`hyper-util`** feature:
//!
//! ```toml
//! bulwark-retry = { version = "0.1", features = ["hyper-util"] }
//! ```
//!
//! It is off by default on purpose. Rust cannot implement `AsStdError` for every
//! `std::error::Error` *and* for `BoxError` (coherence: `Box<dyn Error>` might one day be an
//! `Error` itself), so hyper-util's type has to be named, and naming it means depending on
//! hyper and hyper-util's client (15 more crates in `cargo tree -e normal`). Cargo has no
//! "when the user already has hyper-util" switch, so the choice is one feature line for
//! hyper-util users against hyper in every user's tree; the lean default won. Without the
//! feature, the compiler says what to do ("enable the `hyper-util` feature of
//! `bulwark-retry`") wherever it needs the `Service` bound. Alternatively, map the client's
//! error to a `BoxError` below the layer (`.map_err(BoxError::from)`), which works with no
//! feature at all. The facade crate (`tower-bulwark`) turns the feature on by default.
//!
//! ```no_run
//! # #[cfg(feature = "hyper-util")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bulwark_http::BufferedBody;
//! use bulwark_retry::RetryLayer;
//! use http::Request;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
//! let svc = ServiceBuilder::new().layer(RetryLayer::new()).service(client);
//! let res = svc
//!     .oneshot(Request::get("http://localhost:8080/").body(BufferedBody::empty())?)
//!     .await?; // a `hyper_util::client::legacy::Error`, unchanged, when all attempts fail
//! println!("{}", res.status());
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "hyper-util"))]
//! # fn main() {}
//! ```
//!
//! ## How it differs from tower's `Retry`
//! tower's `retry` knows nothing of HTTP: you write the policy. This layer is that policy:
//! status and error classification, `Retry-After`, idempotency and a time-windowed budget,
//! with every wait on `tokio::time` (testable with paused time) and no boxing per request.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use bulwark_retry::{Backoff, Jitter, RetryLayer};
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let layer = RetryLayer::new()
//!     .max_retries(3)
//!     .backoff(Backoff::exponential(Duration::from_millis(1)).jitter(Jitter::None))
//!     .on_retry(|event| println!("retry #{} after {:?}", event.attempt, event.wait));
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let counter = calls.clone();
//! let svc = ServiceBuilder::new()
//!     .layer(layer.clone())
//!     .service(service_fn(move |_req: Request<String>| {
//!         let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!         async move {
//!             let status = if n < 2 { 503 } else { 200 };
//!             Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(()).unwrap())
//!         }
//!     }));
//! let res = svc.oneshot(Request::new(String::new())).await.unwrap();
//! assert_eq!(res.status(), 200);
//! assert_eq!(layer.stats().retries, 2);
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backoff;
pub mod budget;
pub mod event;
pub mod future;
mod layer;
mod metrics;
mod policy;
mod service;

pub use backoff::{Backoff, Jitter};
pub use budget::RetryBudget;
pub use event::{GiveUp, RetryEvent, RetryStats};
pub use layer::RetryLayer;
pub use service::Retry;

#[cfg(feature = "serde")]
mod config_file;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use config_file::{BackoffConfig, BackoffKind, JitterConfig, RetryConfig};
