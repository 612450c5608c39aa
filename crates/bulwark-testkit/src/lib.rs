//! A fake Notion API on loopback, with rate limits and scripted faults, for
//! bulwark's tests, examples and benches: a library for tests (published for
//! `bulwark fake-notion`, whose flags and loop are [`cli`]).
//!
//! [`FakeNotion`] is a real HTTP/1.1 server on `127.0.0.1` that speaks the
//! Notion API closely enough for the official SDKs:
//!
//! - **Endpoints:** `GET /v1/users/me`, `GET /v1/users[/{id}]`,
//!   `POST /v1/pages`, `GET`/`PATCH /v1/pages/{id}`, `GET /v1/databases/{id}`,
//!   `POST /v1/databases/{id}/query`, `GET`/`PATCH /v1/data_sources/{id}`,
//!   `POST /v1/data_sources/{id}/query`, `POST /v1/search`,
//!   `GET /v1/blocks/{id}`, `GET`/`PATCH /v1/blocks/{id}/children`, with
//!   cursor pagination (`page_size` ≤ 100, `start_cursor`, `next_cursor`,
//!   `has_more`). One database, [`SEED_DATABASE_ID`] (data source
//!   [`SEED_DATA_SOURCE_ID`]), always exists.
//! - **Query filters and sorts**, applied before pagination as Notion
//!   documents them: property filters on `title`, `rich_text`, `url`,
//!   `email`, `phone_number` (`equals`, `contains`, `starts_with`, …,
//!   `is_empty`), `number` / `unique_id` (`equals`, `greater_than`, …),
//!   `checkbox`, `select` / `status`, `multi_select` / `people` / `relation`
//!   (`contains`), `files` and `date`; `created_time` / `last_edited_time`
//!   timestamp filters (ISO 8601 dates or date-times, `past_week` and the
//!   like); `and` / `or` nested two levels deep; `sorts` by property or
//!   timestamp, the first key most significant, empty values last. A bad
//!   filter or sort answers Notion's 400 `validation_error` (`Could not find
//!   property with name or id: X.` for an unknown property). The schema
//!   starts as `Name` alone; a query may also name any property a row has or
//!   a create / update of a row named, even one a fault kept from landing.
//!   Formula and rollup filters are not emulated.
//! - **A changeable schema:** `PATCH /v1/data_sources/{id}` adds, renames,
//!   re-types and removes properties as Notion documents it (`{"properties":
//!   {"Status": {"select": {}}, "Old": null}}`), [`FakeNotion::set_schema`]
//!   replaces the schema; `GET /v1/data_sources/{id}` returns it.
//! - **Checks, in Notion's words:** 401 `unauthorized` (no or unknown bearer
//!   token), 400 `missing_version` (no `Notion-Version`), 429 `rate_limited`
//!   (per-token token bucket, integer `Retry-After`,
//!   `additional_data.rate_limit_reason`), 404 `object_not_found`, 400
//!   `invalid_json` / `validation_error` / `invalid_request_url`. Every error
//!   body is `{"object":"error","status","code","message","request_id"}`;
//!   every answer of the API carries `x-notion-request-id`.
//! - **Faults** ([`Fault`], controlled through [`FaultHandle`] while
//!   running): scripted statuses, a seeded failure ratio, an outage switch,
//!   latency, dropped connections, Cloudflare-style HTML errors, and
//!   [`Fault::StatusAfterApply`] — the write that lands and still fails.
//! - **Observation:** [`FakeNotion::requests`] records every request
//!   (method, path, token, time, body, status), [`FakeNotion::pages`] every
//!   page, so duplicate writes are visible.
//! - **Control API** for other processes (a script driving an SDK, a
//!   shell): `POST /_fake/outage` with `{"on": true}` or `{"on": false}`
//!   switches [`FaultHandle::outage`] (`GET /_fake/outage` reads it, both
//!   answer `{"on": bool}`), `POST /_fake/reset` clears every fault like
//!   [`FaultHandle::clear`] (answers `{"reset": true}`). These routes need no
//!   token and are never rate-limited, delayed, faulted or recorded; they
//!   answer plain JSON, `{"error": "…"}` with 400/404/405 on bad input.
//!   Reach them at [`FakeNotion::url`]`/_fake/…`.
//! - **Status page:** `GET /api/v2/status.json` answers like Statuspage, see
//!   [`FakeNotion::set_status_indicator`].
//!
//! Time is measured with `tokio::time`, so the rate limit follows a paused
//! clock when the server runs on a runtime with paused time.
//!
//! [`FakeNotionBuilder::in_process`] gives the same emulator without a
//! socket: an [`InProcessNotion`] that is a `tower::Service<http::Request<B>>`
//! on the same core as the TCP server (same API, rate limit, faults, pages and
//! log), for virtual-time simulations such as `cargo bench --bench outcomes`.
//!
//! [`RedisServer`] runs a real `redis-server` on a free loopback port (killed
//! on drop, restartable on the same port) for the tests of the Redis stores;
//! without `redis-server` on `PATH` those tests say `SKIPPED` and return,
//! unless `BULWARK_REQUIRE_REDIS=1` makes that a failure (as in CI).
//! [`CapturedLogs`] collects what a test's thread logged through `tracing`.
//!
//! # Example
//!
//! ```
//! use bulwark_testkit::{FakeNotion, Fault};
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let fake = FakeNotion::builder()
//!     .rate_limit(3, 3)
//!     .tokens(["secret_a"])
//!     .start()
//!     .await?;
//! fake.faults().script([Fault::Status(502)]);
//!
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let me = || {
//!     http::Request::get(format!("{}/v1/users/me", fake.url()))
//!         .header("authorization", "Bearer secret_a")
//!         .header("notion-version", "2025-09-03")
//!         .body(Full::new(Bytes::new()))
//! };
//!
//! let first = client.request(me()?).await?;
//! assert_eq!(first.status(), 502); // the scripted fault
//!
//! let second = client.request(me()?).await?;
//! assert_eq!(second.status(), 200);
//! let body = second.into_body().collect().await?.to_bytes();
//! let user: serde_json::Value = serde_json::from_slice(&body)?;
//! assert_eq!(user["object"], "user");
//!
//! let log = fake.requests();
//! assert_eq!(log.len(), 2);
//! assert_eq!(log[0].status, 502);
//! assert_eq!(log[1].token.as_deref(), Some("secret_a"));
//! fake.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::sync::{Mutex, MutexGuard, PoisonError};

mod api;
mod bucket;
pub mod cli;
mod control;
mod fake;
mod fault;
pub mod fuzz;
#[cfg(test)]
mod hostile_inputs;
mod in_process;
mod logs;
pub mod mark2notion;
mod query;
mod record;
mod redis_server;
mod server;
mod status;
mod store;
mod wire;

pub use fake::{FakeNotion, FakeNotionBuilder};
pub use fault::{Fault, FaultHandle, Matcher};
pub use in_process::InProcessNotion;
pub use logs::CapturedLogs;
pub use mark2notion::{
    FakeMark2Notion, FakeMark2NotionBuilder, InProcessMark2Notion, Mark2NotionHandle,
};
pub use record::RecordedRequest;
pub use redis_server::{RedisServer, REDIS_TEST_LOG_VAR, REQUIRE_REDIS_VAR};
pub use status::StatusIndicator;
pub use store::{Page, SEED_DATABASE_ID, SEED_DATA_SOURCE_ID};

/// Locks a mutex, ignoring poisoning: the state stays usable even if a
/// test thread panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
