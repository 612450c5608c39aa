//! bulwark: Tower middleware that keeps clients of rate-limited, flaky HTTP APIs working.
//!
//! This facade re-exports the member crates:
//!
//! * [`http`] — the shared HTTP semantics: classification, `Retry-After`, idempotency,
//!   replayable bodies, rejections rendered as responses ([`bulwark_http`]).
//!
//! The retry, circuit-breaker, token-bucket and stale-cache layers and the Notion preset are
//! added as their crates land.
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use bulwark_http as http;
