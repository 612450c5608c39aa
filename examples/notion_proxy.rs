//! A local reverse proxy for the Notion API with the bulwark Notion preset in front: point any
//! Notion SDK at it and its requests get retries, a circuit breaker, a 3 requests/s token bucket
//! per token and a stale cache, while the SDK keeps seeing Notion's own answers — bulwark's
//! refusals arrive as Notion errors (`503 service_unavailable` when the circuit is open,
//! `429 rate_limited` from the bucket, both with `Retry-After`), and a stale copy arrives as a
//! normal `200` marked only in `Cache-Status` and `Age`.
//!
//! This example is `bulwark proxy` (the `bulwark-cli` crate, where the proxy lives and is
//! documented) plus one convenience: without `--upstream` it starts an embedded FakeNotion.
//!
//! ```sh
//! # an embedded FakeNotion as the upstream, the proxy on 127.0.0.1:7700
//! cargo run --example notion_proxy
//! # another upstream (FakeNotion on 7777, or https://api.notion.com), any free port, fail fast instead of queueing for a token
//! cargo run --example notion_proxy -- \
//!     --upstream http://127.0.0.1:7777 --port 0 --max-wait-ms 0 --ready-file /tmp/proxy.json
//! # the same without the example
//! cargo run -p bulwark-cli -- proxy --upstream http://127.0.0.1:7777
//! ```
//!
//! Point the SDKs at it through their base-URL option (each SDK's own token is passed
//! through; the bucket is keyed by a hash of it):
//!
//! ```text
//! JS      new Client({ auth: token, baseUrl: "http://127.0.0.1:7700" })          // @notionhq/client
//! Python  Client(auth=token, base_url="http://127.0.0.1:7700")                   # notion-client
//! ```
//!
//! Flags: those of `bulwark proxy` (`--help` lists them: `--port`/`--bind`, `--max-retries`,
//! `--max-wait-ms`, `--ready-file`, `--max-connections`, the timeouts), and `--upstream URL`,
//! which here defaults to an embedded FakeNotion (3 requests/s per token) whose control routes
//! `POST /_fake/outage` and `POST /_fake/reset` switch faults — on FakeNotion's own address
//! (the ready file's `upstream`), never through the proxy, which forwards only `/v1/`.
//! `.ci/sdk/run.sh` runs Notion's official JS and Python SDKs through it.

use std::process::ExitCode;

use bulwark_cli::proxy::cli::{self, ProxyFlags};
use bulwark_testkit::FakeNotion;
use clap::Parser;

/// A local reverse proxy applying the bulwark Notion preset (retry, circuit breaker, token
/// bucket, stale cache) in front of a Notion API.
#[derive(Debug, Parser)]
#[command(name = "notion_proxy")]
struct Args {
    /// The Notion API to forward to, e.g. http://127.0.0.1:7777 [default: an embedded
    /// FakeNotion, 3 requests/s per token]
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    #[command(flatten)]
    flags: ProxyFlags,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    bulwark_cli::logging::init();
    // The upstream: the one given, or an embedded FakeNotion that lives as long as `main`.
    let (upstream, _fake) = match args.upstream {
        Some(url) => (url, None),
        None => match FakeNotion::builder().rate_limit(3, 3).start().await {
            Ok(fake) => (fake.url(), Some(fake)),
            Err(error) => {
                eprintln!("notion_proxy: cannot start FakeNotion: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    match cli::run(&upstream, &args.flags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("notion_proxy: {error}");
            ExitCode::FAILURE
        }
    }
}
