//! A fake [Mark2Notion](https://mark2notion.com) (a hosted API that converts
//! Markdown to Notion blocks) with its error shapes, `X-Usage-*` headers on
//! its answers and a monthly quota that runs out: what bulwark's quota
//! handling is tested against.
//!
//! [`FakeMark2Notion`] is a real HTTP/1.1 server on `127.0.0.1`;
//! [`FakeMark2NotionBuilder::in_process`] gives the same fake as an
//! [`InProcessMark2Notion`] `tower::Service` for paused-clock tests. Both
//! share a [`Mark2NotionHandle`] that reads the calls and usage and injects
//! faults.
//!
//! # What it answers
//!
//! Checked in this order (the first that applies answers):
//!
//! | Condition | Status | Body |
//! |---|---|---|
//! | no (or an empty) `x-api-key` | 401 | `{"status":"error","message":"Missing x-api-key"}` |
//! | a key not in [`api_keys`](FakeMark2NotionBuilder::api_keys) | 403 | `{"status":"error","message":"Invalid API key"}` |
//! | [`outage`](Mark2NotionHandle::outage) on | 503 | `{"status":"error","message":"Service unavailable"}` |
//! | [`fail_next`](Mark2NotionHandle::fail_next) pending | 500 | `{"status":"error","message":"Internal server error"}` |
//! | not `POST /api/convert` or `POST /api/append` | 404 | `{"status":"error","message":"Not found"}` |
//! | quota exhausted | 429 | `{"status":"error","message":"Usage quota exceeded for current billing period","data":{"current_usage":1000,"quota":1000,"plan":"free","requests_remaining":0}}`, no `Retry-After` |
//! | body over [`MAX_BODY`] | 413 | `{"status":"fail","data":{"body":"Request body too large"}}` |
//! | body not JSON | 400 | `{"status":"fail","data":{"body":"Invalid JSON"}}` |
//! | bad fields | 400 | `{"status":"fail","data":{"markdown":"Missing or invalid markdown content"}}`, one entry per bad field |
//! | convert | 200 | `{"status":"success","data":{"blocks":[…]}}` |
//! | append | 200 | `{"status":"success","data":{"lastBlockId":"…","requestCount":N}}` |
//!
//! - **Fields:** `markdown` must be a non-empty string (both endpoints);
//!   append also needs non-empty strings `notionToken` (`"Missing or invalid
//!   notionToken"`) and `pageId` (`"Missing or invalid pageId"`), and
//!   `after`, when present and not `null`, must be a string (`"Invalid after
//!   block id"`). Bad fields are listed in the order `markdown`,
//!   `notionToken`, `pageId`, `after`.
//! - **Blocks:** one per non-empty line (`#`–`###` headings, `-`/`*`/`+`
//!   bulleted and `1.` numbered items, `>` quotes, else paragraphs), in
//!   Notion's block shape; append answers a random UUID as `lastBlockId` and
//!   `requestCount` = the Notion requests the blocks take (100 per request,
//!   at least 1). Nothing is stored.
//! - **Quota:** each 200 counts 1; nothing else does (not 400, 413, 429, the
//!   injected 500 or the 503). The check and the count happen under one
//!   lock, so concurrent calls never overshoot the quota.
//! - **`X-Usage-Current`, `X-Usage-Quota`, `X-Usage-Remaining`,
//!   `X-Usage-Plan`** are on every answer except the 401: without a key no
//!   account is known, so a client must cope with their absence there. The
//!   fake has one account shared by all its keys, and the 403 reports it.
//!   On a 200 they count the call just made.
//! - **Wasted calls:** a request that arrives while the quota is exhausted
//!   counts in [`Mark2NotionHandle::calls_after_exhaustion`] whatever it is
//!   answered (a 429 usually), and is marked [`Call::after_exhaustion`].
//! - **Time** is `tokio::time` only: with
//!   [`reset_after`](FakeMark2NotionBuilder::reset_after) a paused clock
//!   advanced past the period starts a new one. By default the quota never
//!   resets during a test; [`Mark2NotionHandle::reset_usage`] starts a new
//!   billing period.
//! - **Never panics:** any method, path, header or body gets one of the
//!   answers above.
//!
//! Hand-written rather than built on [`FakeNotion`](crate::FakeNotion)'s
//! core: the two APIs share nothing but the accept loop.
//!
//! # Example
//!
//! ```
//! use bulwark_testkit::FakeMark2Notion;
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let fake = FakeMark2Notion::builder().quota(2).start().await?;
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let convert = || {
//!     http::Request::post(format!("{}/api/convert", fake.url()))
//!         .header("x-api-key", "mk_test_key")
//!         .body(Full::new(Bytes::from(r##"{"markdown":"# Title\nSome text"}"##)))
//! };
//!
//! let ok = client.request(convert()?).await?;
//! assert_eq!(ok.status(), 200);
//! assert_eq!(ok.headers()["x-usage-remaining"], "1");
//! let body: serde_json::Value = serde_json::from_slice(&ok.into_body().collect().await?.to_bytes())?;
//! assert_eq!(body["data"]["blocks"][0]["type"], "heading_1");
//!
//! assert_eq!(client.request(convert()?).await?.status(), 200);
//! let refused = client.request(convert()?).await?;
//! assert_eq!(refused.status(), 429);
//! assert!(refused.headers().get("retry-after").is_none());
//!
//! let handle = fake.handle();
//! assert_eq!(handle.calls().len(), 3);
//! assert_eq!(handle.calls_after_exhaustion(), 1);
//! handle.reset_usage(); // a new billing period
//! assert_eq!(client.request(convert()?).await?.status(), 200);
//! fake.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod api;
mod blocks;
mod builder;
mod handle;
mod in_process;
mod server;
#[cfg(test)]
mod tests;
mod usage;
mod wire;

pub use builder::FakeMark2NotionBuilder;
pub use handle::{Call, Mark2NotionHandle};
pub use in_process::InProcessMark2Notion;
pub use server::FakeMark2Notion;
pub use usage::Usage;
pub use wire::{USAGE_CURRENT, USAGE_PLAN, USAGE_QUOTA, USAGE_REMAINING};

/// The API key a default fake accepts.
pub const DEFAULT_API_KEY: &str = "mk_test_key";
/// The default quota: successful calls per billing period.
pub const DEFAULT_QUOTA: u64 = 1000;
/// The default plan.
pub const DEFAULT_PLAN: &str = "free";
/// The largest request body read (1 MiB); a longer one is answered 413.
pub const MAX_BODY: usize = 1024 * 1024;
