//! The proxy's command line: the flags shared by `bulwark proxy` and the `notion_proxy`
//! example, and [`run`], which serves until Ctrl-C or `SIGTERM`.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use bulwark_http::{BoxError, InvalidConfig};

use crate::proxy::{
    config::{
        DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
        DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS,
    },
    config_file::ConfigFile,
    Proxy, ProxyConfig,
};

/// `bulwark proxy --help`, after the options.
pub const AFTER_HELP: &str = "\
Examples:
  bulwark proxy --upstream https://api.notion.com                  # 127.0.0.1:7700
  bulwark proxy --upstream http://127.0.0.1:7777 --port 0 --ready-file /tmp/proxy.json
  bulwark proxy --upstream https://api.notion.com --access-log /var/log/bulwark/access.jsonl
  bulwark report /var/log/bulwark/access.jsonl                     # then: what went wrong, when
  bulwark proxy --upstream https://api.notion.com --config bulwark.toml  # see bulwark.example.toml
  bulwark proxy --upstream https://api.notion.com --metrics 127.0.0.1:9464  # Prometheus: GET /metrics

Requests without an Authorization header of their own use NOTION_TOKEN when it is set.
Logs go to stdout (BULWARK_LOG=debug for more); Ctrl-C or SIGTERM stops it gracefully.";

/// `bulwark proxy`: the Notion API at `--upstream`, behind the bulwark Notion preset.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct ProxyArgs {
    /// The Notion API to forward to: `https://api.notion.com`, or `http://127.0.0.1:7777` for
    /// a FakeNotion (`bulwark fake-notion`). Credentials in the URL are never sent or
    /// printed.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// Everything else.
    #[command(flatten)]
    pub flags: ProxyFlags,
}

/// The proxy's flags, every one optional.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyFlags {
    /// Address to listen on (port 0 picks a free one). Anyone who can reach it can spend the
    /// NOTION_TOKEN: keep it on loopback unless behind a firewall.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7700")]
    pub bind: SocketAddr,
    /// Shorthand for --bind 127.0.0.1:PORT.
    #[arg(long, value_name = "PORT", conflicts_with = "bind")]
    pub port: Option<u16>,
    /// Retries per request [default: the preset's 3]
    #[arg(long = "max-retries", value_name = "N")]
    pub max_retries: Option<u32>,
    /// How long a request may wait for a token, in milliseconds; 0 answers 429 rate_limited
    /// at once [default: the preset's 30000]
    #[arg(long = "max-wait-ms", value_name = "MS")]
    pub max_wait_ms: Option<u64>,
    /// Once listening, write {"proxy": URL, "upstream": URL} to this file (the upstream
    /// without credentials).
    #[arg(long = "ready-file", value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
    /// Client connections open at once; when full, the longest idle one makes room, and when
    /// all are busy a new one is answered 503. Keep it under `ulimit -n`.
    #[arg(long = "max-connections", value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Time a client has to send a request head, from the accept or the end of the previous
    /// response, in milliseconds.
    #[arg(long = "header-read-timeout-ms", value_name = "MS", default_value_t = millis(DEFAULT_HEADER_READ_TIMEOUT))]
    pub header_read_timeout_ms: u64,
    /// Time a connection with no request in flight may receive nothing, in milliseconds (at
    /// most the header read timeout).
    #[arg(long = "idle-timeout-ms", value_name = "MS", default_value_t = millis(DEFAULT_IDLE_TIMEOUT))]
    pub idle_timeout_ms: u64,
    /// Time a request body may take to arrive after its head, in milliseconds.
    #[arg(long = "body-read-timeout-ms", value_name = "MS", default_value_t = millis(DEFAULT_BODY_READ_TIMEOUT))]
    pub body_read_timeout_ms: u64,
    /// The largest request body forwarded, in bytes.
    #[arg(long = "max-body-bytes", value_name = "N", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Append one JSON line per request to FILE (created if missing): ts, method, route
    /// template, request_bytes, status, duration_ms, attempts, cache, request_id. Never query
    /// values, headers or bodies. Summarise it with `bulwark report FILE`.
    #[arg(long = "access-log", value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// Read settings from a TOML file: the proxy's own in a `proxy` table, the preset's in
    /// `notion`, `notion.retry`, `notion.breaker`, `notion.bucket` and `notion.cache` (see
    /// bulwark.example.toml). Flags given on the command line win over the file.
    #[arg(long = "config", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Serve the preset's metrics (requests by layer and outcome, retries, waits, breaker
    /// state, stale answers, Notion errors, durations) in Prometheus text format at
    /// http://ADDR/metrics. Port 0 picks a free port (logged, and in the ready file).
    #[arg(long = "metrics", value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

/// A duration's whole milliseconds, for defaults shown in `--help`.
const fn millis(d: Duration) -> u64 {
    d.as_secs() * 1000 + d.subsec_millis() as u64
}

impl ProxyFlags {
    /// The address to listen on: `--port` wins over `--bind`.
    #[must_use]
    pub fn bind_addr(&self) -> SocketAddr {
        self.port.map_or(self.bind, |port| {
            SocketAddr::from((Ipv4Addr::LOCALHOST, port))
        })
    }

    /// The configuration these flags describe, forwarding to `upstream` with `token` for
    /// requests that carry none.
    ///
    /// # Errors
    /// [`InvalidConfig`] from [`ProxyConfig::new`] and [`ProxyConfig::validate`].
    pub fn config(
        &self,
        upstream: &str,
        token: Option<String>,
    ) -> Result<ProxyConfig, InvalidConfig> {
        let mut config = ProxyConfig::new(upstream)?
            .bind(self.bind_addr())
            .max_connections(self.max_connections)
            .header_read_timeout(Duration::from_millis(self.header_read_timeout_ms))
            .idle_timeout(Duration::from_millis(self.idle_timeout_ms))
            .body_read_timeout(Duration::from_millis(self.body_read_timeout_ms))
            .max_body_bytes(self.max_body_bytes);
        if let Some(token) = token {
            config = config.token(token);
        }
        if let Some(n) = self.max_retries {
            config = config.max_retries(n);
        }
        if let Some(ms) = self.max_wait_ms {
            config = config.max_wait(Duration::from_millis(ms));
        }
        if let Some(path) = &self.access_log {
            config = config.access_log(path.clone());
        }
        config.validate()?;
        Ok(config)
    }
}

/// Runs the proxy in front of `upstream` until Ctrl-C or `SIGTERM`: binds, logs where it
/// listens, writes the ready file, serves. Requests without an `Authorization` of their own
/// use `NOTION_TOKEN` when it is set.
///
/// # Errors
/// Invalid flags, an address that cannot be bound, a ready file that cannot be written. No
/// message ever holds the upstream URL's credentials.
pub async fn run(upstream: &str, flags: &ProxyFlags) -> Result<(), BoxError> {
    let token = std::env::var("NOTION_TOKEN").ok().filter(|t| !t.is_empty());
    let mut config = flags.config(upstream, token)?;
    let mut metrics_addr = flags.metrics;
    if let Some(path) = &flags.config_file {
        let file = ConfigFile::load(path)?;
        // The flag wins over the file, as every other flag does.
        metrics_addr = metrics_addr.or(file.proxy.metrics);
        config = file.apply(config, flags);
        config.validate()?;
    }
    // The recorder goes in before the proxy's first request: each layer registers its
    // handles on first use.
    let metrics = match metrics_addr {
        Some(addr) => {
            let handle = crate::proxy::metrics::install()
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
            let server = crate::proxy::metrics::MetricsServer::bind(addr, handle)
                .await
                .map_err(|e| format!("cannot listen for --metrics on {addr}: {e}"))?;
            let url = server.url();
            tokio::spawn(server.serve());
            Some(url)
        }
        None => None,
    };
    let proxy = Proxy::bind(config.clone()).await?;
    let proxy_url = proxy.url();
    let upstream = proxy.upstream().to_string();
    tracing::info!(
        target: "bulwark_cli",
        proxy = %proxy_url,
        upstream = %upstream,
        max_retries = %flags.max_retries.map_or_else(|| "preset default".to_owned(), |n| n.to_string()),
        max_wait = %flags.max_wait_ms.map_or_else(|| "preset default".to_owned(), |ms| format!("{ms} ms")),
        max_connections = flags.max_connections,
        access_log = %flags.access_log.as_ref().map_or_else(|| "off".to_owned(), |p| p.display().to_string()),
        metrics = %metrics.as_deref().unwrap_or("off"),
        "bulwark proxy listening"
    );
    if proxy.upstream().has_credentials() {
        tracing::warn!(target: "bulwark_cli", upstream = %upstream, "the credentials in --upstream are not sent: Notion authenticates each request by its bearer token");
    }
    if let Some(path) = &flags.ready_file {
        write_ready_file(path, &proxy_url, &upstream, metrics.as_deref())
            .map_err(|e| format!("cannot write the ready file {}: {e}", path.display()))?;
    }
    proxy.run_until(stop_signal()).await;
    tracing::info!(target: "bulwark_cli", "bulwark proxy stopped");
    Ok(())
}

/// Ctrl-C, or `SIGTERM` on Unix.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Writes `{"proxy": …, "upstream": …}` atomically (a temporary file, then a rename), so a
/// reader never sees half of it.
///
/// # Errors
/// When the file cannot be written or renamed.
pub fn write_ready_file(
    path: &Path,
    proxy: &str,
    upstream: &str,
    metrics: Option<&str>,
) -> std::io::Result<()> {
    let mut json = serde_json::json!({ "proxy": proxy, "upstream": upstream });
    if let Some(metrics) = metrics {
        json["metrics"] = metrics.into();
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{json}\n"))?;
    std::fs::rename(&tmp, path)
}
