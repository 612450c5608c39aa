//! A lock-free Tower circuit breaker for HTTP clients: closed, open, half-open.
//!
//! [`CircuitBreakerLayer`] watches each call's [`Class`](bulwark_http::Class):
//!
//! | class | counts as |
//! |---|---|
//! | `Transient` (5xx, timeouts, resets), `Unreachable` | failure |
//! | `Success`, `Permanent` responses (a 404 says the upstream is healthy) | success |
//! | `Throttled` (429, 529) | nothing, unless [`count_throttled`](CircuitBreakerBuilder::count_throttled) |
//! | `Rejected` (an inner bucket's `RateLimited`), local errors (`BodyTooLarge`) | nothing |
//!
//! * **Closed**: outcomes go into a [`Window`] (time or count). The circuit opens on
//!   [`consecutive_failures`](CircuitBreakerBuilder::consecutive_failures) failures in a row,
//!   or when at least [`minimum_calls`](CircuitBreakerBuilder::minimum_calls) calls are in the
//!   window and the failure (or slow-call) ratio reaches its threshold.
//! * **Open**: calls fail at once with [`CircuitOpen { retry_after }`](bulwark_http::CircuitOpen)
//!   — in the response future; `poll_ready` never fails for it — without touching the inner
//!   service.
//! * **Half-open**: after the break, up to [`half_open_calls`](CircuitBreakerBuilder::half_open_calls)
//!   probes go through, the rest are rejected. All succeed → closed with a fresh window; one
//!   fails → open again with twice the break, up to
//!   [`max_break_duration`](CircuitBreakerBuilder::max_break_duration). A dropped probe gives
//!   its permit back. Outcomes of calls that started before the circuit opened are counted in
//!   the metrics but change nothing.
//!
//! The closed path is atomics only: the state is one `AtomicU64` (kind, generation and
//! open-until packed, so every transition is one compare-and-swap), time-window buckets are
//! striped per thread, and so is the reference each admitted call holds on the breaker (no
//! shared reference count is written per call); no call takes a lock or allocates.
//! [`BreakerHandle`] reads the state and metrics and offers `force_open`, `disable` and
//! `reset`.
//!
//! ## How it differs from tower-resilience's and failsafe's breakers
//! No mutex on the call path, `tokio::time` throughout (so paused-time tests work), a
//! half-open probe limit that a dropped future cannot leak, HTTP classification built in.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use bulwark_breaker::{BreakerState, CircuitBreakerLayer, Window};
//! use bulwark_http::CircuitOpen;
//! use http::{Request, Response};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bulwark_http::InvalidConfig> {
//! let layer = CircuitBreakerLayer::builder()
//!     .consecutive_failures(3)
//!     .window(Window::count(20))
//!     .break_duration(Duration::from_secs(10))
//!     .build()?;
//! let upstream = service_fn(|_req: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::builder().status(503).body(()).unwrap())
//! });
//! let svc = layer.layer(upstream);
//! for _ in 0..3 {
//!     let res = svc.clone().oneshot(Request::new(())).await.unwrap();
//!     assert_eq!(res.status(), 503);
//! }
//! // Open: the next call is refused without reaching the upstream.
//! let err = svc.clone().oneshot(Request::new(())).await.unwrap_err();
//! assert!(err.downcast_ref::<CircuitOpen>().is_some());
//! assert!(matches!(layer.handle().state(), BreakerState::Open { .. }));
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod future;
mod handle;
mod layer;
mod service;
mod shared;
mod state;
mod window;

pub use bulwark_http::CircuitOpen;
pub use handle::{BreakerHandle, BreakerMetrics, BreakerState, Transition};
pub use layer::{CircuitBreakerBuilder, CircuitBreakerLayer};
pub use service::{CircuitBreaker, CircuitWait};
pub use window::Window;
