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
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `retry` | on | `bulwark::retry` (`RetryLayer`) |
//! | `breaker` | on | `bulwark::breaker` (`CircuitBreakerLayer`) |
//! | `bucket` | on | `bulwark::bucket` (`TokenBucketLayer`) |
//! | `cache` | on | `bulwark::cache` (`StaleCacheLayer`) |
//! | `hyper-util` | on | classification of hyper and hyper-util client errors (refused connects, resets, incomplete messages) by type; without it they are classified through their `std::io::Error` source |
//! | `notion` | on | `bulwark::notion`: the Notion preset, Notion-style rejections and the ready `Client` (hyper-util + rustls with `ring`); turns on the four layers and `hyper-util` |
//! | `redis` | off | `RedisStore` for `bulwark::bucket` and `bulwark::cache`: one limit and one stale cache shared by every process on a Redis (`redis` crate, tokio), keys named with a deployment secret (`KeySecret`) |
//! | `metrics` | off | counters and gauges through the `metrics` facade in every layer (the application installs a recorder) |
//!
//! The defaults are what the Notion quickstart and `cargo run --example notion_demo` need. A
//! library that wants one layer, without an HTTP client or a TLS stack, turns them off:
//! `tower-bulwark = { version = "0.1", default-features = false, features = ["retry"] }` builds
//! 19 crates (`cargo tree -e normal`), none of them hyper, h2, rustls or ring.
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
