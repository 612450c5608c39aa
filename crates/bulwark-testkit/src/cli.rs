//! FakeNotion as a program: the flags of `bulwark fake-notion` and [`run`], which serves until
//! Ctrl-C or `SIGTERM`.
//!
//! The `bulwark` command (crate `bulwark-cli`) flattens [`FakeNotionArgs`] into its
//! `fake-notion` subcommand and calls [`run`]; logging is the caller's (`run` emits `tracing`
//! events and installs no subscriber).
//!
//! ```no_run
//! use bulwark_testkit::cli::{run, FakeNotionArgs};
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     fake: FakeNotionArgs,
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let cli = Cli::parse_from(["fake", "--port", "0", "--failure-ratio", "0.1"]);
//! run(&cli.fake).await?; // prints the URL, serves until Ctrl-C
//! # Ok(())
//! # }
//! ```

use std::{
    error::Error as StdError,
    fmt,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::fake::{FakeNotion, FakeNotionBuilder};

/// The address `bulwark fake-notion` listens on unless told otherwise.
pub const DEFAULT_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT);

/// The port `bulwark fake-notion` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7777;

/// The control API, for `--help` after the options.
pub const CONTROL_HELP: &str = "\
Control API (no token needed; never rate-limited, delayed, faulted or recorded):
  POST /_fake/outage  body {\"on\": true} or {\"on\": false}: every /v1 request answers
                      503 service_unavailable while on; answers {\"on\": bool}
  GET  /_fake/outage  answers {\"on\": bool}
  POST /_fake/reset   clears every fault (scripts, failure ratio, outage, latency);
                      answers {\"reset\": true}
Example: curl -X POST -d '{\"on\":true}' http://127.0.0.1:7777/_fake/outage";

/// A fake Notion API with Notion's rate limit and optional faults; no credentials needed.
#[derive(Debug, Clone, clap::Args)]
pub struct FakeNotionArgs {
    /// Address to listen on (port 0 picks a free one). FakeNotion accepts any token unless
    /// --token says otherwise, and its /_fake control routes need none: keep it on loopback
    /// unless the network is yours.
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_BIND)]
    pub bind: SocketAddr,
    /// Shorthand for --bind 127.0.0.1:PORT.
    #[arg(long, value_name = "PORT", conflicts_with = "bind")]
    pub port: Option<u16>,
    /// Requests per second allowed per token; 0 disables the rate limit.
    #[arg(long = "rate-limit", value_name = "PER_SEC", default_value_t = 3)]
    pub rate_limit: u32,
    /// Requests a token may make at once [default: the rate]
    #[arg(long, value_name = "N")]
    pub burst: Option<u32>,
    /// Fraction of API requests answered 502 bad_gateway (0.0 to 1.0).
    #[arg(long = "failure-ratio", value_name = "RATIO", default_value_t = 0.0)]
    pub failure_ratio: f64,
    /// Seed of the failure-ratio RNG (same seed, same failures).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Latency added to every response, in milliseconds.
    #[arg(long = "latency-ms", value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Pages to pre-create in database db_1 / data source ds_1.
    #[arg(long = "seed-pages", value_name = "N", default_value_t = 0)]
    pub seed_pages: usize,
    /// Accepted bearer token (repeatable); by default any non-empty token is accepted.
    #[arg(long = "token", value_name = "TOKEN")]
    pub tokens: Vec<String>,
    /// Once listening, write {"url": URL} to this file (written whole, then renamed into
    /// place), so a script learns the port chosen by --port 0.
    #[arg(long = "ready-file", value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

impl Default for FakeNotionArgs {
    /// The flags' defaults: `127.0.0.1:7777`, 3 requests/s with a burst of 3, no faults.
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND,
            port: None,
            rate_limit: 3,
            burst: None,
            failure_ratio: 0.0,
            seed: 0,
            latency_ms: 0,
            seed_pages: 0,
            tokens: Vec::new(),
            ready_file: None,
        }
    }
}

/// A flag value that makes no sense, by flag name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidArgs {
    flag: &'static str,
    reason: String,
}

impl InvalidArgs {
    /// The flag at fault, e.g. `--failure-ratio`.
    #[must_use]
    pub const fn flag(&self) -> &'static str {
        self.flag
    }
}

impl fmt::Display for InvalidArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.flag, self.reason)
    }
}

impl StdError for InvalidArgs {}

impl FakeNotionArgs {
    /// The address to listen on: `--port` wins over `--bind`.
    #[must_use]
    pub fn bind_addr(&self) -> SocketAddr {
        self.port.map_or(self.bind, |port| {
            SocketAddr::from((Ipv4Addr::LOCALHOST, port))
        })
    }

    /// The [`FakeNotionBuilder`] these flags describe.
    ///
    /// # Errors
    /// [`InvalidArgs`] naming `--failure-ratio` when it is not a number from 0 to 1, or
    /// `--burst` when it is 0 while the rate limit is on.
    pub fn builder(&self) -> Result<FakeNotionBuilder, InvalidArgs> {
        if !(0.0..=1.0).contains(&self.failure_ratio) {
            return Err(InvalidArgs {
                flag: "--failure-ratio",
                reason: format!("{} is not between 0.0 and 1.0", self.failure_ratio),
            });
        }
        if self.burst == Some(0) && self.rate_limit > 0 {
            return Err(InvalidArgs {
                flag: "--burst",
                reason: "0 would refuse every request; use --rate-limit 0 to turn the limit off"
                    .to_owned(),
            });
        }
        let mut builder = FakeNotion::builder()
            .bind(self.bind_addr())
            .seed_pages(self.seed_pages)
            .latency(Duration::from_millis(self.latency_ms));
        builder = if self.rate_limit == 0 {
            builder.no_rate_limit()
        } else {
            builder.rate_limit(self.rate_limit, self.burst.unwrap_or(self.rate_limit))
        };
        if self.failure_ratio > 0.0 {
            builder = builder.failure_ratio(self.failure_ratio, self.seed);
        }
        if !self.tokens.is_empty() {
            builder = builder.tokens(self.tokens.iter().cloned());
        }
        Ok(builder)
    }
}

/// Runs FakeNotion as these flags say until Ctrl-C or `SIGTERM`: binds, prints its URL on
/// stdout (one line), writes the ready file, serves, and shuts down gracefully (in-flight
/// requests get a second).
///
/// # Errors
/// Invalid flags ([`InvalidArgs`]), an address that cannot be bound, a ready file that cannot
/// be written.
///
/// # Panics
/// When called outside a Tokio runtime.
pub async fn run(args: &FakeNotionArgs) -> Result<(), Box<dyn StdError + Send + Sync>> {
    let builder = args.builder()?;
    let addr = args.bind_addr();
    let fake = builder
        .start()
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let url = fake.url();
    if !fake.addr().ip().is_loopback() {
        tracing::warn!(target: "bulwark_testkit", addr = %fake.addr(), "FakeNotion is reachable beyond this machine: its control routes need no token");
    }
    println!("{url}");
    if let Some(path) = &args.ready_file {
        write_ready_file(path, &url)
            .map_err(|e| format!("cannot write the ready file {}: {e}", path.display()))?;
    }
    stop_signal().await;
    tracing::info!(target: "bulwark_testkit", "FakeNotion shutting down");
    fake.shutdown().await;
    Ok(())
}

/// Writes `{"url": …}` atomically (a temporary file, then a rename), so a reader never sees
/// half of it.
fn write_ready_file(path: &Path, url: &str) -> std::io::Result<()> {
    let json = serde_json::json!({ "url": url });
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{json}\n"))?;
    std::fs::rename(&tmp, path)
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
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::error!(target: "bulwark_testkit", %error, "cannot wait for Ctrl-C");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: FakeNotionArgs,
    }

    fn parse(flags: &[&str]) -> Result<FakeNotionArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("fake-notion").chain(flags.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn defaults_listen_on_loopback_7777() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.bind_addr(), "127.0.0.1:7777".parse().unwrap());
        assert_eq!(
            format!("{:?}", args),
            format!("{:?}", FakeNotionArgs::default())
        );
    }

    #[test]
    fn port_is_loopback_shorthand_and_conflicts_with_bind() {
        let args = parse(&["--port", "0"]).unwrap();
        assert_eq!(args.bind_addr(), "127.0.0.1:0".parse().unwrap());
        let args = parse(&["--bind", "0.0.0.0:8080"]).unwrap();
        assert_eq!(args.bind_addr(), "0.0.0.0:8080".parse().unwrap());
        assert!(parse(&["--bind", "127.0.0.1:1", "--port", "2"]).is_err());
    }

    #[test]
    fn bad_values_are_named() {
        let err = parse(&["--failure-ratio", "1.5"])
            .unwrap()
            .builder()
            .unwrap_err();
        assert_eq!(err.flag(), "--failure-ratio");
        let err = parse(&["--failure-ratio", "NaN"])
            .unwrap()
            .builder()
            .unwrap_err();
        assert_eq!(err.flag(), "--failure-ratio");
        let err = parse(&["--burst", "0"]).unwrap().builder().unwrap_err();
        assert_eq!(err.flag(), "--burst");
        assert!(parse(&["--burst", "0", "--rate-limit", "0"])
            .unwrap()
            .builder()
            .is_ok());
        assert!(
            parse(&["--failure-ratio", "1", "--token", "a", "--token", "b"])
                .unwrap()
                .builder()
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_flags_reach_the_server() {
        let args = parse(&["--port", "0", "--token", "secret_a", "--seed-pages", "3"]).unwrap();
        let fake = args.builder().unwrap().start().await.unwrap();
        assert!(fake.addr().ip().is_loopback());
        assert_ne!(fake.addr().port(), 0);
        assert_eq!(fake.page_count(), 3);
        fake.shutdown().await;
    }

    #[test]
    fn the_ready_file_is_json_with_the_url() {
        let dir =
            std::env::temp_dir().join(format!("bulwark-testkit-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ready.json");
        write_ready_file(&path, "http://127.0.0.1:1234").unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["url"], "http://127.0.0.1:1234");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
