//! `bulwark-testkit`: runs a FakeNotion server until Ctrl-C.
//!
//! ```text
//! cargo run -p bulwark-testkit -- --port 7777 --rate-limit 3 --burst 3 --failure-ratio 0.1 --seed 42
//! ```
//!
//! Logs go to stderr through `tracing` (filter with `RUST_LOG`, e.g.
//! `RUST_LOG=bulwark_testkit=debug`).
//!
//! Faults can be switched from another process through the control API
//! (see `--help`):
//!
//! ```text
//! curl -X POST -d '{"on":true}' http://127.0.0.1:7777/_fake/outage
//! curl -X POST http://127.0.0.1:7777/_fake/reset
//! ```

use std::process::ExitCode;
use std::time::Duration;

use bulwark_testkit::FakeNotion;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// The control API, shown after the options by `--help`.
const CONTROL_HELP: &str = "\
Control API (no token needed; never rate-limited, delayed, faulted or recorded):
  POST /_fake/outage  body {\"on\": true} or {\"on\": false}: every /v1 request answers
                      503 service_unavailable while on; answers {\"on\": bool}
  GET  /_fake/outage  answers {\"on\": bool}
  POST /_fake/reset   clears every fault (scripts, failure ratio, outage, latency);
                      answers {\"reset\": true}
Example: curl -X POST -d '{\"on\":true}' http://127.0.0.1:PORT/_fake/outage";

/// A fake Notion API on 127.0.0.1 with Notion's rate limit and optional faults.
#[derive(Debug, Parser)]
#[command(name = "bulwark-testkit", version, after_help = CONTROL_HELP)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Requests per second allowed per token; 0 disables the rate limit.
    #[arg(long = "rate-limit", value_name = "PER_SEC", default_value_t = 3)]
    rate_limit: u32,
    /// Requests a token may make at once (defaults to the rate).
    #[arg(long)]
    burst: Option<u32>,
    /// Fraction of API requests answered 502 bad_gateway (0.0 to 1.0).
    #[arg(long = "failure-ratio", default_value_t = 0.0)]
    failure_ratio: f64,
    /// Seed of the failure-ratio RNG.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Latency added to every response, in milliseconds.
    #[arg(long = "latency-ms", default_value_t = 0)]
    latency_ms: u64,
    /// Pages to pre-create in database db_1 / data source ds_1.
    #[arg(long = "seed-pages", default_value_t = 0)]
    seed_pages: usize,
    /// Accepted bearer token (repeatable); by default any token is accepted.
    #[arg(long = "token", value_name = "TOKEN")]
    tokens: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let mut builder = FakeNotion::builder()
        .port(args.port)
        .seed_pages(args.seed_pages)
        .latency(Duration::from_millis(args.latency_ms));
    builder = if args.rate_limit == 0 {
        builder.no_rate_limit()
    } else {
        builder.rate_limit(args.rate_limit, args.burst.unwrap_or(args.rate_limit))
    };
    if args.failure_ratio > 0.0 {
        builder = builder.failure_ratio(args.failure_ratio, args.seed);
    }
    if !args.tokens.is_empty() {
        builder = builder.tokens(args.tokens);
    }

    let fake = match builder.start().await {
        Ok(fake) => fake,
        Err(error) => {
            tracing::error!(%error, port = args.port, "cannot start FakeNotion");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", fake.url());

    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::error!(%error, "cannot wait for Ctrl-C");
    }
    tracing::info!("shutting down");
    fake.shutdown().await;
    ExitCode::SUCCESS
}
