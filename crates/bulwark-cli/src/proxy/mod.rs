//! `bulwark proxy`: a local reverse proxy that puts the bulwark Notion preset in front of any
//! Notion SDK, hardened for a port anyone on the machine (or network) can reach.
//!
//! Point an SDK's base-URL option at it; its requests get retries, a circuit breaker, a
//! 3 requests/s token bucket per token and a stale cache, and the SDK keeps seeing Notion's
//! own answers. Every answer the proxy makes itself is a Notion error body
//! (`{"object":"error","status",…,"code",…,"message",…,"request_id":…}`, the id a UUID v4,
//! no `x-notion-request-id`), so the SDKs read it like any Notion error.
//!
//! # What is forwarded
//!
//! Only the Notion API: a path that lies under `/v1/` once normalised — percent-encoded dots
//! decoded, `.` and `..` segments resolved, `//` collapsed — is forwarded, normalised, after
//! the upstream's path prefix. Everything else is answered by the proxy:
//!
//! | request | answer |
//! |---|---|
//! | a path outside `/v1/` (`/`, `/_fake/outage`, `/v1/../x`, `/v1/%2e%2e/x`, `/../x`), or with `%2f`, `%5c` or a control character in a segment | `400 invalid_request_url`, as Notion answers an unknown URL |
//! | `CONNECT` (a forward-proxy tunnel) or `TRACE` | `400 invalid_request` |
//! | an absolute-form target (`GET http://HOST/v1/… HTTP/1.1`) naming another host than the proxy | `400 invalid_request` |
//! | a request target over [`max_uri_bytes`](ProxyConfig::max_uri_bytes) | `414 invalid_request` |
//! | a head over [`max_header_bytes`](ProxyConfig::max_header_bytes) or with over 100 fields | `431 invalid_request`, then close |
//! | a malformed request line or header, bad `Content-Length`/`Transfer-Encoding` | `400 invalid_request`, then close |
//! | a body over [`max_body_bytes`](ProxyConfig::max_body_bytes) | `413 validation_error` (as `bulwark-notion` renders `BodyTooLarge`) |
//! | a malformed body (bad chunked encoding, cut short) | `400 invalid_request`, then close — never a 5xx, which SDKs retry |
//! | a body not received within [`body_read_timeout`](ProxyConfig::body_read_timeout) | `408 invalid_request`, then close |
//! | a new connection while all [`max_connections`](ProxyConfig::max_connections) are busy | `503 service_unavailable`, `Retry-After: 1`, then close |
//!
//! FakeNotion's unauthenticated control routes (`/_fake/…`) are therefore never reachable
//! through the proxy, and no path escapes an upstream's prefix.
//!
//! # Connections
//!
//! - **Header read timeout** ([`header_read_timeout`](ProxyConfig::header_read_timeout), hyper's
//!   `http1::Builder::header_read_timeout` on tokio's timer): a request head must be complete
//!   within it, counted from the accept or the end of the previous response; else the
//!   connection is closed without an answer.
//! - **Idle timeout** ([`idle_timeout`](ProxyConfig::idle_timeout)): a connection with no
//!   request in flight that receives nothing for this long is closed gracefully; responses
//!   announce it as `Keep-Alive: timeout=N`.
//! - **Connection cap** ([`max_connections`](ProxyConfig::max_connections)): when the table is
//!   full, the connections idle the longest (stalled heads, kept-alive connections between
//!   requests; one in 32 of the table at a time) are closed to make room, so stalled clients
//!   cannot lock working ones out; a connection with a request in flight is never cut. Only
//!   when all are busy is a new one answered 503.
//! - **Accept errors** never stop the proxy: out of file descriptors (`EMFILE`), it closes the
//!   longest idle sixteenth of its connections and retries; other errors back off from 5 ms
//!   to 500 ms. A warning when failures start and a line when accepting again, at most once
//!   per 10 s.
//!
//! # What hyper answers itself
//!
//! hyper answers a head it cannot parse (400, 414, 431) before the service sees it, with an
//! empty body and no hook to change it. The proxy recognises those answers on their way to
//! the socket and writes Notion-shaped ones instead (module `io`). Two cases keep
//! hyper's bare answer: when it shares a socket write with the unflushed end of the previous
//! response on a kept-alive connection, and when the client sends the HTTP/2 preface (hyper
//! closes without an answer). A header read timeout also closes without an answer, by design.
//!
//! # Logs
//!
//! One `tracing` event per request (target `bulwark_cli`, `info`): method, route with query
//! values redacted (`/v1/users?page_size=<redacted>`), status, `Cache-Status`, milliseconds.
//! Headers are never logged (so neither is `Authorization`), and the upstream prints without
//! credentials (`http://<redacted>@host`) everywhere, the ready file included.
//!
//! # Access log
//!
//! With [`access_log`](ProxyConfig::access_log) (`--access-log FILE`), one JSON line per
//! request is appended to a file ([`AccessRecord`] lists the fields): the route as a template
//! (`/v1/pages/{id}`, only words of Notion's routes, never an id or a query), the request's
//! size, status, duration, upstream attempts, cache outcome and Notion request id — the
//! record Notion's 502-troubleshooting guide asks integrations to keep, summarised by
//! [`bulwark report`](crate::report). Attempts are counted per request by a layer between the
//! preset and the HTTP client (every retry's copy of the request shares one counter), so they
//! include reconciliation read-backs. Lines go to a writer thread through a bounded channel:
//! a request never waits for the disk; a line the writer has no room for is dropped and
//! counted ([`ProxyStats::access_log_dropped`]).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use bulwark_cli::proxy::{Proxy, ProxyConfig};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ProxyConfig::new("https://api.notion.com")?
//!     .bind("127.0.0.1:7700".parse()?)
//!     .max_wait(Duration::ZERO) // 429 at once rather than queueing for a token
//!     .max_connections(256);
//! let proxy = Proxy::bind(config).await?;
//! proxy.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(())
//! # }
//! ```

mod accept;
mod access_log;
mod answer;
mod body;
pub mod cli;
mod config;
pub mod config_file;
mod conn;
mod connection;
mod handler;
mod io;
mod measure;
pub mod metrics;
pub(crate) mod record;
mod route;
mod server;
mod state;
mod upstream;

pub use config::{
    ProxyConfig, DEFAULT_BIND, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_URI_BYTES, DEFAULT_SHUTDOWN_GRACE,
};
pub use record::{AccessRecord, BadRecord, CacheOutcome};
pub use server::{Proxy, ProxyHandle, ProxyStats, StartError};
pub use upstream::{redact_url, Upstream};
