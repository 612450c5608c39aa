//! The preset's defaults, in one place.
//!
//! [`NotionLayerBuilder::new`](crate::NotionLayerBuilder::new) takes every setting from here,
//! and every table that states a default (this crate's docs and README, the root README)
//! carries a doc test asserting these values, so a default cannot change without its
//! documentation.

use std::time::Duration;

use bulwark_http::Idempotency;
use bulwark_retry::Jitter;

use crate::routes;

/// Retries after the first attempt.
pub const MAX_RETRIES: u32 = 3;
/// The first backoff delay, doubling on each retry.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The largest backoff delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// How backoff delays are randomised.
pub const JITTER: Jitter = Jitter::Full;
/// The longest `Retry-After` waited out; a longer one is returned to the caller.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Consecutive failures that open the breaker.
pub const CONSECUTIVE_FAILURES: u32 = 5;
/// The failure ratio in the window that opens the breaker.
pub const FAILURE_RATIO: f64 = 0.5;
/// Calls the window must hold before [`FAILURE_RATIO`] applies.
pub const MINIMUM_CALLS: u32 = 10;
/// The length of the breaker's time window.
pub const WINDOW: Duration = Duration::from_secs(30);
/// How long the breaker stays open before its first probe: short, so a blip costs a second.
pub const BREAK_DURATION: Duration = Duration::from_secs(1);
/// Each failed probe doubles the break, up to this (1, 2, 4, 4, … s): a long outage costs
/// Notion one probe per 4–5 s, and requests flow again within 5 s of its end (measured by
/// `cargo bench --bench outcomes`: 30 s breaks took 12 s to recover from a 20 s outage).
pub const MAX_BREAK_DURATION: Duration = Duration::from_secs(4);
/// Each break lasts up to this fraction longer, at random, so processes that opened together
/// do not probe together.
pub const BREAK_JITTER: f64 = 0.25;
/// How long a write (or a read with no stored copy) waits for an open circuit instead of
/// failing at once; cached reads fail fast to their stale copy.
pub const WRITE_MAX_WAIT: Duration = Duration::from_secs(30);
/// The former name of [`WRITE_MAX_WAIT`].
#[deprecated(note = "renamed `WRITE_MAX_WAIT`")]
pub const WRITE_WAIT: Duration = WRITE_MAX_WAIT;

/// A call the caller drops after this long counts against Notion in the breaker
/// ([`slow_call_threshold`](bulwark_breaker::CircuitBreakerBuilder::slow_call_threshold)):
/// the bucket's wait for a token ([`MAX_WAIT`]) plus one attempt ([`ATTEMPT_TIMEOUT`]), since
/// both run inside the breaker. A call dropped sooner — a caller that gave up while waiting
/// for a token — is not Notion's failure.
pub const SLOW_CALL_THRESHOLD: Duration = Duration::from_secs(90);

/// How long a read waits for an identical read already in flight before it asks Notion
/// itself: one answer late by tens of seconds no longer holds up every identical read
/// (measured by `cargo bench --bench outcomes`, profile `slow`).
pub const COALESCE_MAX_WAIT: Duration = Duration::from_secs(2);

/// Whether requests that break Notion's size limits are refused before they are sent
/// ([`NotionLayerBuilder::check_limits`](crate::NotionLayerBuilder::check_limits)). Off: the
/// check reads each body once more, and Notion's own answer stays the authority.
pub const CHECK_LIMITS: bool = false;

/// Whether a page update (`PATCH /v1/pages/{id}`) that fails ambiguously is read back and
/// settled ([`NotionLayerBuilder::reconcile_page_updates`](crate::NotionLayerBuilder::reconcile_page_updates)).
pub const RECONCILE_PAGE_UPDATES: bool = true;

/// Requests per second, per token (Notion's published average).
pub const RATE_PER_SECOND: u32 = 3;
/// Requests admitted back to back.
pub const BURST: u32 = 3;
/// How long a caller waits for a token before `RateLimited`.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// Whether Notion's `Retry-After` on a 429 pauses the bucket for every caller.
pub const PAUSE_ON_RETRY_AFTER: bool = true;

/// How long one attempt (request and response body) may take: Notion's own maximum.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest response body read: 32 MiB.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// How old a cached answer may be and still be served when Notion fails.
pub const STALE_IF_ERROR: Duration = Duration::from_secs(5 * 60);

/// The `Notion-Version` sent on requests that carry none.
pub const NOTION_VERSION: &str = "2025-09-03";
/// The `User-Agent` sent on requests that carry none.
pub const USER_AGENT: &str = concat!("bulwark-notion/", env!("CARGO_PKG_VERSION"));

/// Which requests the retry layer may repeat after an ambiguous failure (a 5xx, a 409, a
/// timeout): RFC 9110's idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and the
/// read-only POSTs ([`routes::is_idempotent`]). `Idempotency-Key` is not honoured: Notion
/// ignores it.
///
/// ```
/// use bulwark_notion::defaults::idempotency;
/// use http::{Method, Request};
///
/// let repeatable = |m: Method, path: &str| {
///     idempotency().is_idempotent(&Request::builder().method(m).uri(path).body(()).unwrap())
/// };
/// assert!(repeatable(Method::PUT, "/v1/x") && repeatable(Method::POST, "/v1/search"));
/// assert!(!repeatable(Method::PATCH, "/v1/pages/p1") && !repeatable(Method::POST, "/v1/pages"));
/// ```
#[must_use]
pub fn idempotency() -> Idempotency {
    Idempotency::methods_only().allow(routes::is_idempotent)
}

/// The instance name of the preset and of each of its layers: the `name` label of their
/// metrics ([`NotionLayerBuilder::name`](crate::NotionLayerBuilder::name)).
pub const NAME: &str = "notion";
