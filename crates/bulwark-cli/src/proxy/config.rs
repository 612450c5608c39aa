//! [`ProxyConfig`]: where the proxy forwards to and the limits it keeps.

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::PathBuf,
    time::Duration,
};

use bulwark_http::InvalidConfig;

use crate::proxy::upstream::Upstream;

/// Where `bulwark proxy` listens unless told otherwise: `127.0.0.1:7700`.
pub const DEFAULT_BIND: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7700));
/// Client connections open at once (see [`ProxyConfig::max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Time allowed for a request head (see [`ProxyConfig::header_read_timeout`]).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Time a kept-alive connection may sit idle (see [`ProxyConfig::idle_timeout`]).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a request body (see [`ProxyConfig::body_read_timeout`]).
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request body forwarded (Notion's own limit is 500 KB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The longest request target (path and query) forwarded.
pub const DEFAULT_MAX_URI_BYTES: usize = 16 * 1024;
/// The largest request head (request line and headers) read.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// How long a shutdown lets requests in flight finish.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The longest any timeout may be; longer values are rejected (a deadline that far away is
/// a mistake, and adding it to the clock could overflow).
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// The proxy's settings: the upstream (required) and optional limits, each defaulted.
///
/// ```
/// use std::time::Duration;
/// use bulwark_cli::proxy::ProxyConfig;
///
/// let config = ProxyConfig::new("http://user:secret@127.0.0.1:7777")?
///     .bind("127.0.0.1:0".parse()?)
///     .max_connections(256)
///     .header_read_timeout(Duration::from_secs(5))
///     .idle_timeout(Duration::from_secs(5));
/// // Credentials in the upstream URL are never printed (nor sent upstream).
/// assert_eq!(config.upstream().to_string(), "http://<redacted>@127.0.0.1:7777");
/// assert!(!format!("{config:?}").contains("secret"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ProxyConfig {
    pub(crate) upstream: Upstream,
    pub(crate) bind: SocketAddr,
    pub(crate) token: Option<String>,
    pub(crate) max_retries: Option<u32>,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_uri_bytes: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) shutdown_grace: Duration,
    pub(crate) access_log: Option<PathBuf>,
    /// The preset's settings from a configuration file (`[notion]`), applied before the
    /// proxy's own (`token`, `max_retries`, `max_wait`).
    pub(crate) notion: Option<bulwark_notion::NotionConfig>,
}

impl ProxyConfig {
    /// A configuration forwarding to `upstream` (`http://HOST[:PORT][/PREFIX]` or `https://…`),
    /// every other setting at its default.
    ///
    /// # Errors
    /// [`InvalidConfig`] for the field `upstream` (its text never contains the URL's
    /// credentials) when the URL does not parse, its scheme is not `http` or `https`, it has no
    /// host, it carries a query or a fragment, or its path prefix has `.`/`..` or empty
    /// segments.
    pub fn new(upstream: &str) -> Result<Self, InvalidConfig> {
        Ok(Self {
            upstream: Upstream::parse(upstream)?,
            bind: DEFAULT_BIND,
            token: None,
            max_retries: None,
            max_wait: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            access_log: None,
            notion: None,
        })
    }

    /// The upstream requests are forwarded to.
    pub const fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The address [`Proxy::bind`](crate::proxy::Proxy::bind) listens on.
    pub const fn bind_addr(&self) -> SocketAddr {
        self.bind
    }

    /// Listen on `addr` (port 0 picks a free one). Defaults to [`DEFAULT_BIND`],
    /// `127.0.0.1:7700`. Anyone who can reach the address can spend the token of
    /// [`token`](Self::token): bind a non-loopback address only behind a firewall.
    #[must_use]
    pub const fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The Notion token used for requests that carry no `Authorization` of their own (a
    /// request's own token is always passed through). Defaults to none. Never printed.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Retries per request. Defaults to the Notion preset's
    /// ([`bulwark_notion::defaults::MAX_RETRIES`], 3).
    #[must_use]
    pub const fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// How long a request may wait for a token of the 3 requests/s bucket; zero answers
    /// `429 rate_limited` at once. Defaults to the preset's
    /// ([`bulwark_notion::defaults::MAX_WAIT`], 30 s).
    #[must_use]
    pub const fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = Some(wait);
        self
    }

    /// Client connections open at once. When the table is full, the connections idle the
    /// longest (stalled or kept-alive ones, never one with a request in flight; one in 32 of
    /// the table at a time) are closed to make room for the new one; when every connection is
    /// busy it is answered `503 service_unavailable` and closed. Keep it under the process's open-file limit
    /// minus the upstream connections. Defaults to [`DEFAULT_MAX_CONNECTIONS`], 512.
    #[must_use]
    pub const fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// How long a client has to send a complete request head (request line and headers),
    /// counted from the moment the proxy starts waiting for it: the accept, or the end of the
    /// previous response on a kept-alive connection (that is how hyper's
    /// `header_read_timeout` counts). Past it the connection is closed without an answer.
    /// Defaults to [`DEFAULT_HEADER_READ_TIMEOUT`], 15 s.
    #[must_use]
    pub const fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a connection with no request in flight may go without receiving a byte
    /// before it is closed. At most [`header_read_timeout`](Self::header_read_timeout), which
    /// also runs while a connection is idle. Responses announce it in `Keep-Alive: timeout=N`
    /// so clients stop reusing a connection before the proxy closes it. Defaults to
    /// [`DEFAULT_IDLE_TIMEOUT`], 10 s.
    #[must_use]
    pub const fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a request body may take to arrive, counted from the end of its head. Past it
    /// the answer is `408 invalid_request` and the connection is closed. Defaults to
    /// [`DEFAULT_BODY_READ_TIMEOUT`], 30 s.
    #[must_use]
    pub const fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// The largest request body forwarded; a larger one is answered
    /// `413 validation_error`. Defaults to [`DEFAULT_MAX_BODY_BYTES`], 4 MiB.
    #[must_use]
    pub const fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// The longest request target (path and query); a longer one is answered
    /// `414 invalid_request` (a target that makes the head exceed
    /// [`max_header_bytes`](Self::max_header_bytes) is a `431` first). Defaults to
    /// [`DEFAULT_MAX_URI_BYTES`], 16 KiB.
    #[must_use]
    pub const fn max_uri_bytes(mut self, n: usize) -> Self {
        self.max_uri_bytes = n;
        self
    }

    /// The largest request head (request line and headers); a larger one is answered
    /// `431 invalid_request` and the connection closed. Defaults to
    /// [`DEFAULT_MAX_HEADER_BYTES`], 32 KiB.
    #[must_use]
    pub const fn max_header_bytes(mut self, n: usize) -> Self {
        self.max_header_bytes = n;
        self
    }

    /// How long a shutdown lets requests in flight finish before their connections are
    /// dropped. Defaults to [`DEFAULT_SHUTDOWN_GRACE`], 5 s.
    #[must_use]
    pub const fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Appends one JSON line per request to the file at `path` (created if missing), the
    /// record Notion's 502-troubleshooting guide asks integrations to keep: UTC timestamp,
    /// method, route template, request bytes, status, duration, upstream attempts, cache
    /// outcome, Notion request id (see [`AccessRecord`](crate::proxy::AccessRecord) for the
    /// line, `bulwark report` for a summary). Never a query value, a header or a body.
    ///
    /// Requests never wait for the disk: lines go through a bounded channel to a writer
    /// thread, and when it is that far behind a line is dropped and counted
    /// ([`ProxyStats::access_log_dropped`](crate::proxy::ProxyStats::access_log_dropped)).
    /// A shutdown flushes the lines of every answered request. The file is opened by
    /// [`Proxy::bind`](crate::proxy::Proxy::bind), which fails if it cannot be. Defaults to
    /// none.
    #[must_use]
    pub fn access_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.access_log = Some(path.into());
        self
    }

    /// The Notion preset's settings (the `[notion]` table of a configuration file), applied
    /// before [`token`](Self::token), [`max_retries`](Self::max_retries) and
    /// [`max_wait`](Self::max_wait), which win. Defaults to none: the preset's defaults.
    #[must_use]
    pub fn notion(mut self, notion: bulwark_notion::NotionConfig) -> Self {
        self.notion = Some(notion);
        self
    }

    /// The access log's path, if one is set.
    #[must_use]
    pub fn access_log_path(&self) -> Option<&std::path::Path> {
        self.access_log.as_deref()
    }

    /// Checks the values that interact or have bounds.
    ///
    /// # Errors
    /// [`InvalidConfig`] naming the field: `max_connections` is 0; a timeout is zero or
    /// longer than a day; `idle_timeout` is longer than `header_read_timeout`; `max_body_bytes`
    /// is 0; `max_header_bytes` is outside 1 KiB..=256 KiB; `max_uri_bytes` is under 256.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if self.max_connections == 0 {
            return Err(InvalidConfig::new("max_connections", "must be at least 1"));
        }
        for (field, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("shutdown_grace", self.shutdown_grace),
        ] {
            if value.is_zero() && field != "shutdown_grace" {
                return Err(InvalidConfig::new(field, "must be more than zero"));
            }
            if value > MAX_TIMEOUT {
                return Err(InvalidConfig::new(field, "must be at most a day"));
            }
        }
        if self.idle_timeout > self.header_read_timeout {
            return Err(InvalidConfig::new(
                "idle_timeout",
                format!(
                    "{} ms is longer than header_read_timeout ({} ms), which also runs while a connection is idle",
                    self.idle_timeout.as_millis(),
                    self.header_read_timeout.as_millis()
                ),
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(InvalidConfig::new("max_body_bytes", "must be at least 1"));
        }
        if !(1024..=256 * 1024).contains(&self.max_header_bytes) {
            return Err(InvalidConfig::new(
                "max_header_bytes",
                "must be between 1024 and 262144",
            ));
        }
        if self.max_uri_bytes < 256 {
            return Err(InvalidConfig::new("max_uri_bytes", "must be at least 256"));
        }
        Ok(())
    }
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("upstream", &self.upstream)
            .field("bind", &self.bind)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_retries", &self.max_retries)
            .field("max_wait", &self.max_wait)
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_uri_bytes", &self.max_uri_bytes)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("access_log", &self.access_log)
            .field("notion", &self.notion.as_ref().map(|_| "<from file>"))
            .finish()
    }
}
