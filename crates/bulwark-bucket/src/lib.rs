//! Exact, lock-free token-bucket rate limiting for Tower: local, keyed, shared by clones.
//!
//! [`TokenBucketLayer::new(Rate::per_second(3))`](TokenBucketLayer::new) lets a burst of 3
//! requests through, then one every third of a second. A request that would exceed the rate
//! **waits** for its slot if it comes within [`max_wait`](TokenBucketLayer::max_wait)
//! (client-side shaping: the upstream never sees the excess), or is **refused at once** with
//! [`RateLimited { retry_after }`](bulwark_http::RateLimited) — `max_wait(Duration::ZERO)` is
//! reject mode for servers, where [`RejectionResponseLayer`](bulwark_http::RejectionResponseLayer)
//! turns the refusal into a 429 with `Retry-After` and `RateLimit` headers.
//!
//! * **GCRA in one `AtomicU64`**: the bucket is its theoretical arrival time, updated with one
//!   compare-and-swap — no lock, no allocation, no background task. Over any interval of length
//!   `t`, at most `burst + rate·t` requests are admitted.
//! * **Fair waits**: requests that must wait queue per bucket and are served in arrival order;
//!   nothing is reserved ahead, so a dropped waiter (a client timeout, a closed socket) leaves
//!   the queue wherever it stands and everyone behind it moves up. The queue takes a lock;
//!   admissions without a wait do not.
//! * **Paused by the upstream**: a 429 with `Retry-After` pauses the bucket for everyone until
//!   then ([`pause_on_retry_after`](TokenBucketLayer::pause_on_retry_after)), so no request is
//!   sent into a known wall.
//! * **Keyed**: [`keyed`](TokenBucketLayer::keyed) gives one bucket per key (a token hash, a
//!   client IP) in a bounded concurrent map (`dashmap`) that forgets a key only once its
//!   bucket is full again and unused.
//! * **Shared by clones**: the buckets live in an `Arc` owned by the layer. tower's
//!   `RateLimit` keeps a fixed window per service instance, so every clone gets its own limit;
//!   governor's waits use their own clock, not tokio's, so they cannot be tested with paused
//!   time. This layer's time is `tokio::time` throughout. Setters that only change how
//!   requests use the bucket (`max_wait`, `emit_headers`, …) keep a clone's bucket shared;
//!   those that define it (`burst`, `keyed`, …) give it new buckets (see
//!   [`TokenBucketLayer`'s `# Clone`](TokenBucketLayer#clone)).
//! * **Shared between processes** (feature `redis`): `store(RedisStore::new(client, prefix, secret))`
//!   keeps the buckets in Redis — one atomic Lua script (GCRA on one key, Redis's clock), one
//!   round trip per acquisition — so every process on that Redis shares one limit. While
//!   Redis is unreachable each process falls back to its local bucket (logged once), and it
//!   goes back to Redis when Redis answers again. The `redis` crate is re-exported.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use bulwark_bucket::{Rate, TokenBucketLayer};
//! use http::{Request, Response};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let layer = TokenBucketLayer::new(Rate::per_second(3)).max_wait(Duration::from_secs(5));
//! let svc = layer.layer(service_fn(|_req: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(()))
//! }));
//! let start = tokio::time::Instant::now();
//! for _ in 0..6 {
//!     svc.clone().oneshot(Request::new(())).await.unwrap();
//! }
//! // 3 at once, then 3 more at 1/3 s intervals.
//! assert_eq!(start.elapsed(), Duration::from_secs(1));
//! assert_eq!(layer.stats().waited, 3);
//! # }
//! ```
//!
//! # Readiness
//! tower's `RateLimit` makes `poll_ready` wait for the next token, holding up whatever called
//! it. This layer decides in `call` instead, and never holds the inner service's readiness
//! while a request waits:
//!
//! * `poll_ready` drives the inner service to readiness (backpressure, as tower expects), and
//!   a request admitted at once calls that readied service directly — the hot path takes no
//!   clone and no allocation.
//! * A request that must wait for its token gives that readiness back at once (the readied
//!   service is dropped, which releases a `ConcurrencyLimit` permit or a `Buffer` slot, and a
//!   clone takes its place); once its token is granted, its response future drives a clone of
//!   the inner service to readiness and calls it. So one key's wait never blocks another key's
//!   request behind a `ConcurrencyLimitLayer`.
//! * A refused request gives the readiness back too, and in reject mode
//!   ([`max_wait(Duration::ZERO)`](TokenBucketLayer::max_wait)) or with a zero rate
//!   `poll_ready` is ready at once even while the inner service is not: a refusal never waits
//!   for the inner service. A request admitted then waits for the inner service in its
//!   future.
//!
//! That takes `S: Clone`, like every tower layer that waits (`Retry`, `Buffer`'s workers).
//!
//! ```
//! use std::time::Duration;
//! use bulwark_bucket::{Rate, TokenBucketLayer};
//! use http::{Request, Response};
//! use tower::{limit::ConcurrencyLimitLayer, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let mut svc = ServiceBuilder::new()
//!     .layer(TokenBucketLayer::new(Rate::per_second(1)).burst(1))
//!     .layer(ConcurrencyLimitLayer::new(1))
//!     .service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(()))
//!     });
//! svc.ready().await.unwrap().call(Request::new(())).await.unwrap();
//! // The next token is a second away: this request waits for it …
//! let waiting = tokio::spawn(svc.ready().await.unwrap().call(Request::new(())));
//! // … without the permit, so another caller's `ready()` is not held up.
//! tokio::time::timeout(Duration::from_millis(1), svc.clone().ready())
//!     .await
//!     .expect("the permit is free")
//!     .unwrap();
//! waiting.await.unwrap().unwrap();
//! # }
//! ```
//!
//! # Settings
//! Every setter is infallible and nothing panics, whatever the value: what the bucket cannot
//! use is clamped (each setter documents how — `burst(0)` is 1, a rate faster than one per
//! nanosecond is one per nanosecond, intervals and waits beyond about 146 years are "never"),
//! and [`TokenBucketLayer::validate`] reports each such setting by name, for code that would
//! rather fail at startup. A zero rate is valid: it refuses everything, with a `retry_after` of
//! [`MAX_RETRY_AFTER`](bulwark_http::MAX_RETRY_AFTER) (one year). No refusal says more than
//! that, whatever pause an upstream asked for.
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod future;
mod gcra;
mod key;
mod layer;
mod metrics;
mod quota;
mod rate;
#[cfg(feature = "redis")]
mod redis_store;
mod remote;
mod service;
mod shared;
mod stats;
mod store;
mod validate;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use bulwark_http::KeySecret;
pub use bulwark_http::RateLimited;
pub use key::{KeyExtractor, KeyedBy, Unkeyed};
pub use layer::{TokenBucketLayer, DEFAULT_QUOTA_RECHECK};
pub use rate::Rate;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_store::RedisStore;
pub use service::TokenBucket;
pub use stats::BucketStats;

#[cfg(feature = "serde")]
mod config_file;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use config_file::{RateConfig, TokenBucketConfig};
