//! The bulwark preset for the Notion API: one layer in front of any HTTP client, and talk to
//! Notion without 429 storms, duplicate pages, or a dead app during a Notion outage.
//!
//! [`NotionLayer`] composes, outermost first:
//!
//! | layer | Notion's defaults |
//! |---|---|
//! | stale cache | GET reads and read-only POSTs (`search`, `…/query`); always live, the last good answer (marked `Age`, `Cache-Status: bulwark; fwd=stale; fwd-status=503`, or `bulwark; hit; ttl=-N` when the breaker or bucket refused it unsent) for up to 5 min when Notion fails; keyed by `Notion-Version`, the token's hash and the canonical JSON body; an identical read in flight is shared for up to 2 s |
//! | reconcile | a write that fails ambiguously (5xx, timeout, reset) is settled, never blindly repeated: `PATCH /v1/pages/{id}` read back (applied → the page, else sent again); `POST /v1/pages` looked up by the property named in `dedupe_creates_by` (found → that page, absent → sent again); otherwise marked `bulwark-reconciled: may-have-been-applied` / `MaybeApplied` |
//! | retry | 3 retries, exponential from 1 s capped at 30 s, full jitter; `Retry-After` honoured up to 60 s; 429/529 retried for any request, 5xx/409/timeouts only for idempotent requests — RFC 9110's methods (GET, HEAD, PUT, DELETE, …) and the read-only POSTs; never PATCH or `POST /v1/pages` |
//! | circuit breaker | opens after 5 consecutive failures or 50 % of ≥ 10 calls in 30 s; 1 s break doubling after each failed probe up to 4 s, +0–25 % jitter; a call its caller drops counts only after 90 s; writes wait up to 30 s for an open circuit (cached reads fail fast); a 409 does not count |
//! | token bucket | 3 requests/s, burst 3, one bucket per token, paused by Notion's `Retry-After`, callers wait up to 30 s |
//! | per-attempt timeout | 60 s (Notion's own maximum) |
//! | [`NotionBodyLayer`] | reads the answer, parses Notion's error body for [`NotionClassifier`] |
//!
//! and sets `Authorization`, `Notion-Version` (`2025-09-03`) and a `User-Agent`. The values
//! live in [`defaults`], and this table is checked against them:
//!
//! ```
//! use std::time::Duration;
//! use bulwark_notion::defaults::*;
//! use http::{Method, Request};
//!
//! let s = Duration::from_secs;
//! let repeats = |m: Method, path: &str| {
//!     idempotency().is_idempotent(&Request::builder().method(m).uri(path).body(()).unwrap())
//! };
//! assert_eq!(STALE_IF_ERROR, s(5 * 60));
//! assert_eq!((MAX_RETRIES, BACKOFF_BASE, BACKOFF_CAP, MAX_RETRY_AFTER), (3, s(1), s(30), s(60)));
//! assert_eq!(JITTER, bulwark_retry::Jitter::Full);
//! for m in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
//!     assert!(repeats(m, "/v1/blocks/b"));
//! }
//! assert!(repeats(Method::POST, "/v1/search") && repeats(Method::POST, "/v1/data_sources/d/query"));
//! assert!(!repeats(Method::PATCH, "/v1/pages/p") && !repeats(Method::POST, "/v1/pages"));
//! assert_eq!((CONSECUTIVE_FAILURES, FAILURE_RATIO, MINIMUM_CALLS, WINDOW), (5, 0.5, 10, s(30)));
//! assert_eq!((BREAK_DURATION, MAX_BREAK_DURATION, BREAK_JITTER), (s(1), s(4), 0.25));
//! assert_eq!(WRITE_MAX_WAIT, s(30));
//! assert_eq!((COALESCE_MAX_WAIT, RECONCILE_PAGE_UPDATES), (s(2), true));
//! assert_eq!(SLOW_CALL_THRESHOLD, MAX_WAIT + ATTEMPT_TIMEOUT);
//! assert_eq!((RATE_PER_SECOND, BURST, PAUSE_ON_RETRY_AFTER, MAX_WAIT), (3, 3, true, s(30)));
//! assert_eq!((ATTEMPT_TIMEOUT, NOTION_VERSION), (s(60), "2025-09-03"));
//! ```
//!
//! Every default can be changed through a closure on the sub-layer
//! (`.retry(|r| r.max_retries(5))`, `.bucket(..)`, `.breaker(..)`, `.cache(..)`), and the cache
//! switched off (`.without_cache()`).
//!
//! Also here: [`NotionError`] (every documented code, and `Unknown`), Notion-style
//! rejections for proxies ([`rejection_layer`]), and a ready [`Client`] (feature `client`, on
//! by default) over hyper-util with rustls, whose connector is [`proxied_https_connector`]:
//! it honours `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` ([`ProxyConfig`]) as curl does.
//!
//! # Example: the preset over any client
//! ```
//! use bulwark_http::BufferedBody;
//! use bulwark_notion::NotionLayer;
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bulwark_http::BoxError> {
//! let notion = NotionLayer::builder()
//!     .token("secret_abc")
//!     .bucket(|b| b.max_wait(std::time::Duration::from_secs(10)))
//!     .build()?;
//! let http_client = service_fn(|req: Request<BufferedBody>| async move {
//!     assert_eq!(req.headers()["authorization"], "Bearer secret_abc");
//!     Ok::<_, std::convert::Infallible>(Response::new(BufferedBody::from(r#"{"results":[]}"#)))
//! });
//! let svc = ServiceBuilder::new().layer(notion.clone()).service(http_client);
//! let req = Request::post("https://api.notion.com/v1/search")
//!     .body(BufferedBody::from(r#"{"query": "roadmap"}"#))?;
//! let res = svc.oneshot(req).await?;
//! assert_eq!(res.status(), 200);
//! assert_eq!(notion.stats().retry.attempts, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Example: the ready client
//! ```no_run
//! # #[cfg(feature = "client")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bulwark_notion::{Client, Error, NotionErrorCode};
//! use serde_json::json;
//!
//! let notion = Client::new(std::env::var("NOTION_TOKEN")?)?;
//! match notion.get("pages/59833787-2cf9-4fdf-8782-e53db20768a5", json!({})).await {
//!     Ok(page) => println!("{}", page["url"]),
//!     Err(Error::Api(e)) if e.code == NotionErrorCode::ObjectNotFound => println!("not shared"),
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "client"))]
//! # fn main() {}
//! ```
//!
//! # Tracing
//!
//! Each request runs inside one `INFO` span, `bulwark.request` (target `bulwark_notion`), with
//! the fields `http.method`, `http.route` (the path, never the query string), `attempts`,
//! `notion.request_id` (of the last upstream answer, then of the final error),
//! `http.status_code` and `outcome` (`ok`, `stale`, `http_error`, `rejected`, `error`); see
//! [`NotionFuture`]. Every layer's decisions are events inside it — retries with their wait
//! and its reason (`backoff` or `retry_after`), bucket waits, pauses and refusals, breaker
//! transitions, refusals and waits, stale answers with their age, coalesced reads — and each
//! Notion error answer is an event (`status`, `code`, `request_id`) at `DEBUG` for 429, `WARN`
//! for 5xx, `ERROR` for 401/403 and `INFO` for other 4xx. The README lists them all. Bearer
//! tokens appear in no event, span field or `Debug` output.
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod builder;
mod canonical;
mod classify;
#[cfg(feature = "client")]
mod client;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod connect;
pub mod defaults;
pub mod error;
mod headers;
#[cfg(test)]
mod hostile_inputs;
mod layer;
pub mod limits;
pub mod mark2notion;
mod metrics;
pub mod reconcile;
pub mod rejection;
pub mod routes;
mod service;
#[cfg(feature = "client")]
mod tls;
mod token;
mod trace;

pub use body::{
    NotionBody, NotionBodyLayer, ResponseFuture as NotionBodyFuture, DEFAULT_MAX_RESPONSE_BYTES,
};
pub use builder::NotionLayerBuilder;
pub use canonical::canonical_json;
pub use classify::{NotionBreakerClassifier, NotionClassifier};
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use client::{Client, ClientBuilder, Error, DEFAULT_BASE_URL};
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use connect::{ProxyConfig, ProxyConfigBuilder, ProxyConnector, ProxyError};
pub use error::{NotionError, NotionErrorCode, UnexpectedResponse};
pub use headers::{from_edge, DEFAULT_NOTION_VERSION, DEFAULT_USER_AGENT, NOTION_VERSION};
pub use layer::{NotionBreaker, NotionBucket, NotionCache, NotionLayer, NotionRetry, NotionStats};
pub use reconcile::{MaybeApplied, Reconciled, RECONCILED_HEADER};
pub use rejection::{rejection_error, rejection_layer, render_rejection};
pub use service::{Notion, NotionStack};
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use tls::{https_connector, proxied_https_connector};
pub use token::{token_key, TokenKey};
pub use trace::NotionFuture;

/// The README's examples and defaults table, compiled (and run, where they need no network) as
/// doc tests.
#[cfg(all(doctest, feature = "client"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(feature = "serde")]
mod config_file;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use config_file::{ConfigError, NotionConfig};
