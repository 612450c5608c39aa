//! bulwark: Tower middleware that keeps clients of rate-limited, flaky HTTP APIs working.
//!
//! This facade re-exports the member crates:
//!
//! * [`http`] — the shared HTTP semantics: classification, `Retry-After`, idempotency,
//!   replayable bodies, rejections rendered as responses ([`bulwark_http`]).
//!
//! * [`retry`] — `RetryLayer`: retries classified by status and error kind, jittered
//!   exponential backoff, `Retry-After`, a retry budget, idempotency-aware
//!   ([`bulwark_retry`], feature `retry`, on by default).
//!
//! * [`breaker`] — `CircuitBreakerLayer`: closed / open / half-open, lock-free when closed
//!   ([`bulwark_breaker`], feature `breaker`, on by default).
//!
//! * [`bucket`] — `TokenBucketLayer`: exact, lock-free GCRA rate limiting, wait or reject,
//!   keyed, paused by an upstream 429 ([`bulwark_bucket`], feature `bucket`, on by default).
//!
//! * [`cache`] — `StaleCacheLayer`: the last good answer, marked stale, when the upstream
//!   fails (RFC 5861), never another caller's ([`bulwark_cache`], feature `cache`, on by
//!   default).
//!
//! * [`notion`] — `NotionLayer`: the four composed with Notion's rules, `NotionError`,
//!   Notion-style rejections for proxies, and a ready `Client` ([`bulwark_notion`], feature
//!   `notion`, on by default).
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use bulwark_http as http;
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub use bulwark_retry as retry;

#[cfg(feature = "breaker")]
#[cfg_attr(docsrs, doc(cfg(feature = "breaker")))]
pub use bulwark_breaker as breaker;

#[cfg(feature = "bucket")]
#[cfg_attr(docsrs, doc(cfg(feature = "bucket")))]
pub use bulwark_bucket as bucket;

#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use bulwark_cache as cache;

#[cfg(feature = "notion")]
#[cfg_attr(docsrs, doc(cfg(feature = "notion")))]
pub use bulwark_notion as notion;

/// The README's examples, compiled (and run, where they need no network) as doc tests.
#[cfg(all(
    doctest,
    feature = "retry",
    feature = "breaker",
    feature = "bucket",
    feature = "cache",
    feature = "notion"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
