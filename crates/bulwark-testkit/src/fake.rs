//! [`FakeNotion`] and its builder.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bucket::{Buckets, RateLimit};
use crate::fault::{Fault, FaultHandle};
use crate::in_process::InProcessNotion;
use crate::record::{Log, RecordedRequest};
use crate::server::{self, Shared};
use crate::status::{StatusIndicator, StatusPage};
use crate::store::{Page, Store};

/// The default number of recorded requests kept (the oldest go first).
const DEFAULT_RECORD_LIMIT: usize = 100_000;

/// A running fake Notion API on `127.0.0.1`.
///
/// Built with [`FakeNotion::builder`] (or [`FakeNotion::start`] for the
/// defaults). The server runs on the Tokio runtime that started it and stops
/// on [`shutdown`](Self::shutdown) or when this value is dropped; it owns
/// every task it spawned, so nothing outlives it.
pub struct FakeNotion {
    addr: SocketAddr,
    core: InProcessNotion,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for FakeNotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeNotion")
            .field("addr", &self.addr)
            .field("faults", &self.core.shared.faults)
            .finish_non_exhaustive()
    }
}

impl FakeNotion {
    /// A builder with the defaults: a free port, 3 requests per second with
    /// a burst of 3 per token, any non-empty bearer token accepted, no
    /// faults, no latency, no seeded pages.
    #[must_use]
    pub fn builder() -> FakeNotionBuilder {
        FakeNotionBuilder::default()
    }

    /// Starts a server with the defaults of [`builder`](Self::builder).
    ///
    /// # Errors
    ///
    /// When the listening socket cannot be bound.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub async fn start() -> io::Result<Self> {
        Self::builder().start().await
    }

    /// The base URL, `http://127.0.0.1:PORT` (no trailing slash): give it
    /// to an SDK as its base URL, requests go to `{url}/v1/…`. A server bound
    /// to every interface ([`bind`](FakeNotionBuilder::bind) `0.0.0.0` or
    /// `[::]`) is named by its loopback address, which reaches it from this
    /// machine.
    pub fn url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        format!("http://{addr}")
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The emulator behind the socket: the same state, reachable without one
    /// (what [`FakeNotionBuilder::in_process`] gives on its own).
    pub fn core(&self) -> &InProcessNotion {
        &self.core
    }

    /// Every request received so far, in arrival order, including refused,
    /// faulted and dropped ones.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.core.requests()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.core.clear_requests();
    }

    /// Every page that exists (seeded and created), in creation order.
    pub fn pages(&self) -> Vec<Page> {
        self.core.pages()
    }

    /// How many pages exist (seeded and created): duplicates created by
    /// retried writes show up here.
    pub fn page_count(&self) -> usize {
        self.core.page_count()
    }

    /// The page with this id (hyphenated form), if it exists.
    pub fn page(&self, id: &str) -> Option<Page> {
        self.core.page(id)
    }

    /// How many blocks exist (appended or created with pages).
    pub fn block_count(&self) -> usize {
        self.core.block_count()
    }

    /// The handle that controls faults while the server runs.
    pub fn faults(&self) -> FaultHandle {
        self.core.faults()
    }

    /// Sets what `GET /api/v2/status.json` reports, with Statuspage's usual
    /// description for the indicator.
    pub fn set_status_indicator(&self, indicator: StatusIndicator) {
        self.core.set_status_indicator(indicator);
    }

    /// Sets what `GET /api/v2/status.json` reports.
    pub fn set_status(&self, indicator: StatusIndicator, description: impl Into<String>) {
        self.core.set_status(indicator, description);
    }

    /// What `GET /api/v2/status.json` reports now.
    pub fn status_indicator(&self) -> StatusIndicator {
        self.core.status_indicator()
    }

    /// Replaces the data source's schema. See [`InProcessNotion::set_schema`].
    pub fn set_schema<I, N, T>(&self, properties: I)
    where
        I: IntoIterator<Item = (N, T)>,
        N: Into<String>,
        T: Into<String>,
    {
        self.core.set_schema(properties);
    }

    /// The data source's schema now. See [`InProcessNotion::schema`].
    pub fn schema(&self) -> serde_json::Value {
        self.core.schema()
    }

    /// Stops accepting connections, lets in-flight requests finish (for at
    /// most a second), closes idle keep-alive connections and returns when
    /// every task of the server has ended.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                tracing::debug!(target: "bulwark_testkit", %error, "server task ended abnormally");
            }
        }
    }
}

impl Drop for FakeNotion {
    /// Stops the server at once: the listener and every connection are
    /// closed (in-flight requests are cut off).
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Configures and starts a [`FakeNotion`]. Every setter says its default.
/// Nothing happens until [`start`](Self::start) is awaited.
#[derive(Debug, Clone)]
pub struct FakeNotionBuilder {
    ip: IpAddr,
    port: u16,
    rate_limit: Option<RateLimit>,
    tokens: Option<HashSet<String>>,
    failure: Option<(f64, u64, Fault)>,
    script: Vec<Fault>,
    latency: Duration,
    seed_pages: usize,
    record_limit: usize,
    status: StatusIndicator,
}

impl Default for FakeNotionBuilder {
    fn default() -> Self {
        Self {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            rate_limit: Some(RateLimit::new(3, 3)),
            tokens: None,
            failure: None,
            script: Vec::new(),
            latency: Duration::ZERO,
            seed_pages: 0,
            record_limit: DEFAULT_RECORD_LIMIT,
            status: StatusIndicator::None,
        }
    }
}

impl FakeNotionBuilder {
    /// The port to listen on (on 127.0.0.1 unless [`bind`](Self::bind)
    /// said otherwise). Defaults to 0: any free port.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The address to listen on, port included (0 picks a free one).
    /// Defaults to `127.0.0.1:0`. FakeNotion is a test double: it accepts
    /// any token by default and its `/_fake/*` control routes need none, so
    /// bind beyond loopback only on a network you trust.
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.ip = addr.ip();
        self.port = addr.port();
        self
    }

    /// Each token may make `per_second` requests per second on average and
    /// `burst` at once; beyond that the answer is 429 `rate_limited` with an
    /// integer `Retry-After`. Refused requests spend nothing. Both values are
    /// clamped to at least 1. Defaults to `(3, 3)`, like Notion.
    #[must_use]
    pub fn rate_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.rate_limit = Some(RateLimit::new(per_second, burst));
        self
    }

    /// No rate limit at all. Defaults to a limit of `(3, 3)`.
    #[must_use]
    pub fn no_rate_limit(mut self) -> Self {
        self.rate_limit = None;
        self
    }

    /// Only these bearer tokens are accepted (an empty list accepts none);
    /// others get 401 `unauthorized`. Defaults to accepting any non-empty
    /// bearer token.
    #[must_use]
    pub fn tokens<I, T>(mut self, tokens: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.tokens = Some(tokens.into_iter().map(Into::into).collect());
        self
    }

    /// Answers a fraction `ratio` of the `/v1/*` requests with 502
    /// `bad_gateway` before processing them, drawn from an RNG seeded with
    /// `seed`. See [`FaultHandle::failure_ratio`]. Defaults to none.
    #[must_use]
    pub fn failure_ratio(self, ratio: f64, seed: u64) -> Self {
        self.failure_ratio_with(ratio, seed, Fault::Status(502))
    }

    /// Like [`failure_ratio`](Self::failure_ratio) with any fault, e.g.
    /// `Fault::StatusAfterApply(502)`. See [`FaultHandle::failure_ratio_with`].
    /// Defaults to none.
    #[must_use]
    pub fn failure_ratio_with(mut self, ratio: f64, seed: u64, fault: Fault) -> Self {
        self.failure = Some((ratio, seed, fault));
        self
    }

    /// Faults for the first `/v1/*` requests, in order. See
    /// [`FaultHandle::script`]. Defaults to none.
    #[must_use]
    pub fn script(mut self, faults: impl IntoIterator<Item = Fault>) -> Self {
        self.script.extend(faults);
        self
    }

    /// A delay added before every response. See [`FaultHandle::latency`].
    /// Defaults to none.
    #[must_use]
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Pre-creates `n` pages titled `Seed page 1` … `Seed page n` in the
    /// database [`SEED_DATABASE_ID`](crate::SEED_DATABASE_ID) (data source
    /// [`SEED_DATA_SOURCE_ID`](crate::SEED_DATA_SOURCE_ID)) so that queries
    /// paginate. Defaults to 0 (the database exists, empty).
    #[must_use]
    pub fn seed_pages(mut self, n: usize) -> Self {
        self.seed_pages = n;
        self
    }

    /// Keeps at most `n` recorded requests, forgetting the oldest (0 records
    /// nothing). Defaults to 100 000.
    #[must_use]
    pub fn record_limit(mut self, n: usize) -> Self {
        self.record_limit = n;
        self
    }

    /// What `GET /api/v2/status.json` reports at first. Defaults to
    /// [`StatusIndicator::None`].
    #[must_use]
    pub fn status_indicator(mut self, indicator: StatusIndicator) -> Self {
        self.status = indicator;
        self
    }

    /// Binds `127.0.0.1:PORT` (or the [`bind`](Self::bind) address) and
    /// starts serving on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// When the listening socket cannot be bound (e.g. the port is taken).
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub async fn start(self) -> io::Result<FakeNotion> {
        let listener = TcpListener::bind((self.ip, self.port)).await?;
        let addr = listener.local_addr()?;
        let core = self.in_process();
        let (shutdown, stop) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, Arc::clone(&core.shared), stop));
        tracing::info!(target: "bulwark_testkit", %addr, "FakeNotion listening");
        Ok(FakeNotion {
            addr,
            core,
            shutdown,
            task: Some(task),
        })
    }

    /// The same emulator without a socket: a `tower::Service` that answers
    /// `http::Request`s in process, with the same API, rate limit, faults,
    /// page store and request log as [`start`](Self::start)'s server. Its
    /// time is `tokio::time`, so under a paused clock a ten-minute trace runs
    /// in moments. The port setting is ignored. Needs no runtime to build;
    /// its futures run on any Tokio runtime with time enabled.
    #[must_use]
    pub fn in_process(self) -> InProcessNotion {
        let faults = FaultHandle::default();
        faults.latency(self.latency).script(self.script);
        if let Some((ratio, seed, fault)) = self.failure {
            faults.failure_ratio_with(ratio, seed, fault);
        }
        let shared = Arc::new(Shared {
            faults,
            tokens: self.tokens,
            buckets: Buckets::new(self.rate_limit),
            store: Mutex::new(Store::new(self.seed_pages)),
            log: Mutex::new(Log::new(self.record_limit)),
            status: Mutex::new(StatusPage::new(self.status)),
        });
        InProcessNotion { shared }
    }
}
