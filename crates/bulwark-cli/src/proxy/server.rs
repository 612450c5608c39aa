//! [`Proxy`]: the listener, the accept loop and one task per connection.

use std::{
    fmt,
    future::{self, Future},
    io,
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use bulwark_http::InvalidConfig;
use bulwark_notion::NotionLayer;
use http::HeaderValue;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

use crate::proxy::{
    accept::{is_out_of_descriptors, is_per_connection, listen, Backoff},
    access_log::AccessLog,
    config::ProxyConfig,
    conn::{Admission, ConnTable},
    connection::{connection, refuse},
    handler::Ctx,
    state::{Counters, Shared, UpstreamClient},
    upstream::Upstream,
};

/// Why a [`Proxy`] could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// A setting was rejected (see [`ProxyConfig::validate`]) or the preset refused it.
    Config(InvalidConfig),
    /// The address could not be bound, or the listener has no local address.
    Io(io::Error),
    /// The TLS client could not be set up.
    Tls(rustls::Error),
    /// The access log ([`ProxyConfig::access_log`]) could not be opened; the message names
    /// the file.
    AccessLog(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "{e}"),
            Self::Io(e) => write!(f, "cannot listen: {e}"),
            Self::Tls(e) => write!(f, "cannot set up TLS: {e}"),
            Self::AccessLog(e) => write!(f, "cannot open the access log {e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(e) => Some(e),
            Self::Io(e) => Some(e),
            Self::Tls(e) => Some(e),
            Self::AccessLog(e) => Some(e),
        }
    }
}

/// Counters of a running proxy, from [`ProxyHandle::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Client connections open now.
    pub open_connections: usize,
    /// Of those, connections with a request in flight.
    pub busy_connections: usize,
    /// Connections accepted since the start.
    pub accepted: u64,
    /// Idle connections closed to make room for new ones (table full, or out of file
    /// descriptors).
    pub evicted: u64,
    /// Connections answered `503` and closed because every slot was busy.
    pub refused: u64,
    /// Failed `accept` calls (out of file descriptors, …), each followed by a back-off.
    pub accept_errors: u64,
    /// Access log lines dropped because its writer was behind (the request never waits for
    /// the disk); 0 without an access log.
    pub access_log_dropped: u64,
    /// Access log lines lost to write errors (a full disk, …).
    pub access_log_write_errors: u64,
}

/// A cheap handle on a [`Proxy`]: its counters, and a way to stop it. Clones share the proxy.
#[derive(Clone)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ProxyHandle {
    /// The counters now.
    #[must_use]
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        let log = self.shared.ctx.access_log.as_ref();
        ProxyStats {
            open_connections: self.shared.table.len(),
            busy_connections: self.shared.table.busy(),
            accepted: c.accepted.load(Ordering::Relaxed),
            evicted: c.evicted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            accept_errors: c.accept_errors.load(Ordering::Relaxed),
            access_log_dropped: log.map_or(0, AccessLog::dropped),
            access_log_write_errors: log.map_or(0, AccessLog::write_errors),
        }
    }

    /// Stops the proxy: [`Proxy::run`] stops accepting, lets requests in flight finish for up
    /// to the shutdown grace, then returns.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }
}

/// The Notion proxy, bound and ready to [`run`](Self::run).
///
/// ```no_run
/// use bulwark_cli::proxy::{Proxy, ProxyConfig};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = ProxyConfig::new("https://api.notion.com")?.bind("127.0.0.1:0".parse()?);
/// let proxy = Proxy::bind(config).await?;
/// println!("point the SDK's base URL at {}", proxy.url());
/// let handle = proxy.handle();
/// tokio::spawn(async move {
///     let _ = tokio::signal::ctrl_c().await;
///     handle.shutdown();
/// });
/// proxy.run().await;
/// # Ok(())
/// # }
/// ```
pub struct Proxy {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("local_addr", &self.local_addr)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Binds `config`'s address and prepares the preset and the upstream client.
    ///
    /// # Errors
    /// [`StartError::Config`] when a setting is invalid ([`ProxyConfig::validate`], or the
    /// preset's own checks), [`StartError::Io`] when the address cannot be bound,
    /// [`StartError::Tls`] when the TLS client cannot be set up, [`StartError::AccessLog`]
    /// when the access log cannot be opened.
    pub async fn bind(config: ProxyConfig) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let listener = listen(config.bind).map_err(StartError::Io)?;
        Self::from_listener(listener, config)
    }

    /// Serves on a listener bound by the caller (the configured address is ignored).
    ///
    /// # Errors
    /// As [`bind`](Self::bind), without the binding.
    pub fn from_listener(listener: TcpListener, config: ProxyConfig) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let local_addr = listener.local_addr().map_err(StartError::Io)?;

        let mut preset = NotionLayer::builder();
        if let Some(notion) = &config.notion {
            preset = preset
                .config(notion.clone())
                .map_err(|e| StartError::Config(e.invalid().clone()))?;
        }
        if let Some(token) = &config.token {
            preset = preset.token(token.clone());
        }
        if let Some(n) = config.max_retries {
            preset = preset.retry(|r| r.max_retries(n));
        }
        if let Some(wait) = config.max_wait {
            preset = preset.bucket(|b| b.max_wait(wait));
        }
        let notion = preset.build().map_err(StartError::Config)?;

        // `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` are honoured as curl honours them.
        let https = bulwark_notion::proxied_https_connector(
            HttpConnector::new(),
            bulwark_notion::ProxyConfig::from_env(),
        )
        .map_err(StartError::Tls)?;
        let client: UpstreamClient = Client::builder(TokioExecutor::new()).build(https);

        let keep_alive =
            HeaderValue::from_str(&format!("timeout={}", config.idle_timeout.as_secs().max(1)))
                .unwrap_or_else(|_| HeaderValue::from_static("timeout=1"));
        let access_log = match &config.access_log {
            Some(path) => Some(AccessLog::open(path).map_err(StartError::AccessLog)?),
            None => None,
        };
        let ctx = Arc::new(Ctx {
            access_log,
            local: local_addr,
            max_uri_bytes: config.max_uri_bytes,
            body_read_timeout: config.body_read_timeout,
            keep_alive,
        });
        let (shutdown, _) = watch::channel(false);
        Ok(Self {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                table: ConnTable::new(config.max_connections),
                config,
                notion,
                client,
                counters: Counters::default(),
                shutdown,
                ctx,
            }),
        })
    }

    /// The address it listens on.
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its base URL, `http://IP:PORT`: the SDKs' base-URL option.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The upstream it forwards to (prints without credentials).
    #[must_use]
    pub fn upstream(&self) -> &Upstream {
        &self.shared.config.upstream
    }

    /// A handle for its counters and for stopping it.
    #[must_use]
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves until [`ProxyHandle::shutdown`], then lets requests in flight finish for up to
    /// the shutdown grace and returns. Accept errors never end it: it backs off (and, out of
    /// file descriptors, closes idle connections) and keeps serving.
    pub async fn run(self) {
        self.run_until(future::pending()).await;
    }

    /// Serves until `signal` completes (or [`ProxyHandle::shutdown`]), then as
    /// [`run`](Self::run).
    pub async fn run_until<F: Future<Output = ()>>(self, signal: F) {
        let Self {
            listener, shared, ..
        } = self;
        let mut stop = shared.shutdown.subscribe();
        let stopped = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let mut signal = std::pin::pin!(async {
            tokio::select! {
                () = signal => {}
                () = stopped => {}
            }
        });

        let mut tasks = JoinSet::new();
        let mut backoff = Backoff::new();
        // How long accepting has waited for evicted connections to close (bounded: after
        // 100 ms it accepts anyway; running out of descriptors is handled below).
        let mut drained_for = Duration::ZERO;
        loop {
            if shared.table.draining() && drained_for < Duration::from_millis(100) {
                // Let the evicted connections' tasks run and close their descriptors.
                tokio::select! {
                    biased;
                    () = &mut signal => break,
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                    () = tokio::time::sleep(Duration::from_millis(1)) => {
                        drained_for += Duration::from_millis(1);
                    }
                }
                continue;
            }
            drained_for = Duration::ZERO;
            let accepted = tokio::select! {
                biased;
                () = &mut signal => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _peer)) => {
                    backoff.recovered();
                    shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    match shared.table.admit() {
                        Admission::Admitted(slot) => {
                            tasks.spawn(connection(stream, slot, Arc::clone(&shared)));
                        }
                        Admission::Evicted(slot) => {
                            shared.counters.evicted.fetch_add(1, Ordering::Relaxed);
                            tasks.spawn(connection(stream, slot, Arc::clone(&shared)));
                        }
                        Admission::Full => {
                            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                            let max = shared.config.max_connections;
                            // Lingering refusals hold descriptors too: at most one per eight
                            // table slots beyond the table, so that a flood arriving faster
                            // than evicted connections close cannot exhaust the process's
                            // descriptors (found under `ulimit -n 1024` on a loaded machine).
                            refuse(stream, max, &mut tasks, max + max / 8 + 1);
                        }
                    }
                }
                Err(error) if is_per_connection(&error) => {}
                Err(error) => {
                    shared
                        .counters
                        .accept_errors
                        .fetch_add(1, Ordering::Relaxed);
                    let mut evicted = 0;
                    if is_out_of_descriptors(&error) {
                        // Make room: every idle connection is a descriptor.
                        evicted = shared.table.evict_idle(shared.table.len() / 16 + 1);
                        shared
                            .counters
                            .evicted
                            .fetch_add(evicted as u64, Ordering::Relaxed);
                    }
                    let wait = backoff.failed(&error, evicted);
                    tokio::select! {
                        () = &mut signal => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        drop(listener);

        // Graceful shutdown: connections finish their requests, then close.
        shared.shutdown.send_replace(true);
        let grace = tokio::time::sleep(shared.config.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                () = &mut grace => break,
                next = tasks.join_next() => if next.is_none() { break },
            }
        }
        tasks.shutdown().await;
        // Every answered request's line is queued by now: have them written.
        if let Some(log) = &shared.ctx.access_log {
            log.close(shared.config.shutdown_grace.max(Duration::from_secs(1)))
                .await;
        }
    }
}
