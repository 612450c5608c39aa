//! The last good answer when the upstream fails (RFC 5861), never someone else's.
//!
//! [`StaleCacheLayer`] always goes live by default, stores every successful answer to a
//! cacheable request, and when the upstream fails — a response or an error classified
//! `Transient`, `Unreachable`, `Throttled` or `Rejected` (including an inner breaker's
//! `CircuitOpen` or bucket's `RateLimited`) — answers with the stored copy if it is young
//! enough ([`stale_if_error`](StaleCacheLayer::stale_if_error), 5 minutes by default),
//! visibly marked: an `Age` header, `Cache-Status: bulwark; fwd=stale; fwd-status=503`
//! (RFC 9211) and the response extension [`CacheStatus::Stale { age }`](CacheStatus).
//!
//! ## `Cache-Status` (RFC 9211)
//! The layer appends one member, named `bulwark`, after any the upstream sent (the upstream's
//! own `Cache-Status` is kept):
//!
//! | what happened | `Cache-Status` member |
//! |---|---|
//! | a stored copy, still fresh, served without asking the upstream | `bulwark; hit; ttl=42` (`; detail=shared` when it came from Redis) |
//! | a stale copy served without asking: within stale-while-revalidate, or the request was refused before the upstream (an inner breaker's `CircuitOpen`, a bucket's `RateLimited`) | `bulwark; hit; ttl=-17` (negative: seconds past fresh) |
//! | the upstream was asked and failed, a stored copy answered | `bulwark; fwd=stale; fwd-status=503` (`bulwark; fwd=stale; detail=error` when no response came back) |
//! | no usable copy, forwarded, the answer stored | `bulwark; fwd=uri-miss; stored` (`fwd=stale; stored` when a too-old copy was there) |
//! | forwarded, the answer not stored (an error status, `no-store`, too large) | `bulwark; fwd=uri-miss` (or `fwd=stale`) |
//! | waited for an identical request in flight and got its stored answer | `bulwark; fwd=uri-miss; collapsed` |
//! | waited for an identical request in flight, which failed: a stored copy answered | `bulwark; fwd=stale; collapsed` |
//!
//! Requests that are not cacheable (writes, by default anything but GET/HEAD) pass through
//! without a member. The [`CacheStatus`] extension says the same in a type: `Live`,
//! `Fresh { age }` or `Stale { age }`.
//!
//! * **RFC 9111/5861**: the upstream's `max-age`, `stale-if-error=N`, `stale-while-revalidate=N`
//!   and `must-revalidate` / `no-cache` take precedence over the layer's defaults; `no-store`
//!   and `Set-Cookie` responses are never stored.
//! * **Never someone else's**: the key holds a hash of `Authorization` (never the token), plus
//!   `Accept`, the [`vary_headers`](StaleCacheLayer::vary_headers) and, for cacheable POSTs,
//!   the body. A 401, 403, 404 or 410 evicts the key; a successful POST/PUT/PATCH/DELETE evicts
//!   the cached reads of its path.
//! * **Coalescing**: concurrent identical misses make one upstream call; if the leader's future
//!   is dropped, a waiting one takes over.
//! * **Bounded**: `quick_cache` (S3-FIFO), weighed by bytes ([`max_bytes`](StaleCacheLayer::max_bytes)) and
//!   entries; responses over [`max_body_bytes`](StaleCacheLayer::max_body_bytes) stream
//!   through uncached.
//!
//! * **Shared between processes** (feature `redis`): `store(RedisStore::new(client, prefix, secret))`
//!   adds Redis as a second level: what memory cannot answer is looked up there, every stored
//!   copy is written there (with a TTL of its windows), evictions delete there. Keys are
//!   HMAC-SHA-256 under the deployment's [`KeySecret`], never the token, and cannot be checked
//!   against a guessed token without the secret. If Redis is down the cache uses memory only, logs once,
//!   and uses Redis again when it answers. The `redis` crate is re-exported.
//!
//! ## Readiness
//! [`StaleCache::poll_ready`](tower_service::Service::poll_ready) is always ready at once: the
//! cache cannot tell before the request whether it will be answered from memory. A request
//! that goes upstream clones the inner service and waits for that clone's readiness in its
//! response future, right before the call — after waiting for an identical request in
//! flight, after the shared store — the way tower's `Retry` readies a clone between attempts.
//! So a fresh or stale-while-revalidate hit never waits for the upstream's capacity, and a
//! request waiting for an identical one holds none of it (no `ConcurrencyLimit` permit, no
//! `Buffer` slot). The inner service's backpressure shows as the latency of the requests that
//! go upstream rather than in `poll_ready`: to refuse work while the upstream is saturated,
//! put the limit or load-shedding outside the cache.
//!
//! ## Settings at their limits
//! No setting panics, whatever its value: lifetimes above [`MAX_LIFETIME`] (2^31 s, the cap
//! RFC 9111 sets on an upstream's values too) are clamped to it, zero sizes to 1, and
//! [`StaleCacheLayer::validate`] names any setting it clamps or that makes no sense. An
//! upstream's `max-age`, `stale-if-error`, `stale-while-revalidate` and `Age` are read up to
//! 2^31 s, whatever they say.
//!
//! ## How it differs from http-cache and tower-resilience's cache
//! Those serve fresh copies; neither serves a stale copy when the upstream fails, and
//! http-cache cannot key on a body. This layer's job is the failure case.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use bulwark_cache::{CacheStatus, StaleCacheLayer};
//! use bulwark_http::BufferedBody;
//! use http::{Request, Response};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
//! let healthy = up.clone();
//! let cache = StaleCacheLayer::new().stale_if_error(Duration::from_secs(300));
//! let svc = cache.layer(service_fn(move |_req: Request<BufferedBody>| {
//!     let ok = healthy.load(std::sync::atomic::Ordering::SeqCst);
//!     async move {
//!         let status = if ok { 200 } else { 503 };
//!         Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(BufferedBody::from("page")).unwrap())
//!     }
//! }));
//! let get = || Request::get("https://api.example/v1/pages/1").body(BufferedBody::empty()).unwrap();
//! assert_eq!(svc.clone().oneshot(get()).await.unwrap().status(), 200);
//! up.store(false, std::sync::atomic::Ordering::SeqCst);
//! let res = svc.clone().oneshot(get()).await.unwrap();
//! assert_eq!(res.status(), 200, "the stored copy, not the 503");
//! assert!(matches!(res.extensions().get::<CacheStatus>(), Some(CacheStatus::Stale { .. })));
//! assert_eq!(res.headers()["cache-status"], "bulwark; fwd=stale; fwd-status=503");
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod config;
#[cfg(test)]
mod hostile_inputs;
mod key;
mod layer;
mod metrics;
mod policy;
#[cfg(feature = "redis")]
mod redis_store;
mod service;
mod shared;
mod stats;
mod status;
mod store;

pub use body::CacheBody;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use bulwark_http::KeySecret;
pub use key::{CacheKey, KeyBody};
pub use layer::StaleCacheLayer;
pub use policy::MAX_LIFETIME;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_store::RedisStore;
pub use service::{ResponseFuture, StaleCache};
pub use stats::CacheStats;
pub use status::CacheStatus;

#[cfg(feature = "serde")]
mod config_file;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use config_file::StaleCacheConfig;
