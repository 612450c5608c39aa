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
//!   service: while open (or half-open, or forced open) `poll_ready` is ready at once and does
//!   not even poll the inner service, so a saturated `ConcurrencyLimit` or `Buffer` below
//!   cannot make fail-fast wait, and a refused request never holds an inner permit.
//! * **Half-open**: after the break, up to [`half_open_calls`](CircuitBreakerBuilder::half_open_calls)
//!   probes go through, the rest are rejected. All succeed → closed with a fresh window; one
//!   fails → open again with twice the break, up to
//!   [`max_break_duration`](CircuitBreakerBuilder::max_break_duration). A probe dropped early
//!   gives its permit back; one dropped after the slow-call threshold is a failed probe — so a
//!   dropped probe never wedges the half-open state. Outcomes of calls that started before the
//!   circuit opened are counted in the metrics but change nothing.
//! * **Dropped calls**: a response future dropped before the inner service answered (a
//!   timeout *outside* the breaker, a caller that went away) is recorded as a failure if the
//!   call had run at least [`slow_call_threshold`](CircuitBreakerBuilder::slow_call_threshold)
//!   (1 s by default), and not at all if it was dropped sooner: a client's cancellation is not
//!   the upstream's failure. See below.
//!
//! The closed path is atomics only: the state is one `AtomicU64` (kind, generation and
//! open-until packed, so every transition is one compare-and-swap), time-window buckets are
//! striped per thread, and so is the reference each admitted call holds on the breaker (no
//! shared reference count is written per call); no call takes a lock or allocates.
//! [`BreakerHandle`] reads the state and metrics and offers `force_open`, `disable` and
//! `reset`.
//!
//! ## Where a timeout belongs
//!
//! ```text
//!  recommended: timeout inside              also seen: timeout outside
//!
//!  ┌ CircuitBreakerLayer ───────┐           ┌ TimeoutLayer(10 s) ─────────┐
//!  │ ┌ TimeoutLayer(10 s) ────┐ │           │ ┌ CircuitBreakerLayer ────┐ │
//!  │ │  upstream client       │ │           │ │  upstream client        │ │
//!  │ └────────────────────────┘ │           │ └─────────────────────────┘ │
//!  └────────────────────────────┘           └─────────────────────────────┘
//!  the timeout's `Elapsed` error is an       the timeout drops the breaker's
//!  outcome the breaker classifies: a         future; the drop rule records it:
//!  failure, like a 504, every time           a failure if it had run at least
//!                                            `slow_call_threshold` (default 1 s)
//! ```
//!
//! * **Inside** (recommended; the Notion preset's per-attempt timeout sits there): each
//!   attempt's timeout is an ordinary failed outcome, whatever its length, and the breaker
//!   also sees everything else about the call.
//! * **Outside** (what most people write first, and where a `RetryLayer`'s total timeout or an
//!   axum handler's timeout sits anyway): the breaker cannot see an error that never reaches
//!   it, so it records a dropped call by how long it had run. Keep
//!   [`slow_call_threshold`](CircuitBreakerBuilder::slow_call_threshold) at or below that
//!   timeout, or the timeout goes unseen; calls dropped sooner than the threshold (cancelled
//!   clients, lost races) are not counted at all.
//!
//! ```
//! use std::time::Duration;
//! use bulwark_breaker::{BreakerState, CircuitBreakerLayer};
//! use tower::{service_fn, timeout::TimeoutLayer, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), bulwark_http::InvalidConfig> {
//! let breaker = CircuitBreakerLayer::builder()
//!     .consecutive_failures(3)
//!     .slow_call_threshold(Duration::from_millis(500)) // at or below the outer timeout
//!     .build()?;
//! let hanging = service_fn(|_req: http::Request<()>| async {
//!     std::future::pending::<Result<http::Response<()>, std::convert::Infallible>>().await
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(1)))
//!     .layer(breaker.clone())
//!     .service(hanging);
//! for _ in 0..3 {
//!     assert!(svc.clone().oneshot(http::Request::new(())).await.is_err()); // timed out
//! }
//! assert!(matches!(breaker.handle().state(), BreakerState::Open { .. }));
//! # Ok(())
//! # }
//! ```
//!
//! ## How it differs from tower-resilience's and failsafe's breakers
//! No mutex on the call path, `tokio::time` throughout (so paused-time tests work), a
//! half-open probe limit that a dropped future cannot leak, calls dropped by an outer timeout
//! recorded, fail-fast that never waits on the inner service's readiness, HTTP
//! classification built in.
//!
//! ## No panics
//! Every setting is either rejected by [`build`](CircuitBreakerBuilder::build) with an
//! [`InvalidConfig`](bulwark_http::InvalidConfig) naming it, or accepted and safe at any
//! value: durations saturate (`Duration::MAX` breaks and waits are "forever"; a break is at
//! least 1 ms; the clock arithmetic uses `checked_add`), counters saturate.
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
mod metrics;
mod service;
mod shared;
mod state;
mod window;

pub use bulwark_http::CircuitOpen;
pub use handle::{BreakerHandle, BreakerMetrics, BreakerState, Transition};
pub use layer::{CircuitBreakerBuilder, CircuitBreakerLayer};
pub use service::{CircuitBreaker, CircuitWait};
pub use window::Window;

#[cfg(feature = "serde")]
mod config_file;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use config_file::{CircuitBreakerConfig, WindowConfig};
