//! `bulwark`: the operator's tools.
//!
//! ```text
//! bulwark proxy --upstream https://api.notion.com            # 127.0.0.1:7700
//! bulwark proxy --upstream http://127.0.0.1:7777 --port 0 --ready-file /tmp/proxy.json
//! bulwark proxy --upstream https://api.notion.com --access-log access.jsonl
//! bulwark report access.jsonl [--json]                        # errors by hour, route, status, size
//! bulwark fake-notion                                         # FakeNotion on 127.0.0.1:7777
//! bulwark triage --base-url https://api.notion.com            # verdict, action, exit code
//! ```
//!
//! Logs go to stdout (filter with `BULWARK_LOG`, e.g. `BULWARK_LOG=debug`).

use std::process::ExitCode;

use bulwark_cli::proxy::cli::ProxyArgs;
use bulwark_cli::report::cli::ReportArgs;
use bulwark_cli::triage::cli::TriageArgs;
use bulwark_testkit::cli::FakeNotionArgs;
use clap::{Parser, Subcommand};

/// The operator's tools for bulwark.
#[derive(Debug, Parser)]
#[command(name = "bulwark", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A local reverse proxy for the Notion API with the bulwark preset in front: point any
    /// Notion SDK's base URL at it. Only /v1/ is forwarded; see the crate docs.
    Proxy(ProxyArgs),
    /// Summarise an access log written by `bulwark proxy --access-log FILE`: errors by hour
    /// (UTC), route, status and code, and request size, with the share of 429s and 5xx.
    #[command(after_help = bulwark_cli::report::cli::AFTER_HELP)]
    Report(ReportArgs),
    /// FakeNotion: a fake Notion API on loopback with Notion's rate limit (3 requests/s per
    /// token) and optional faults, to try bulwark without credentials. Prints its URL.
    #[command(after_help = fake_notion_help())]
    FakeNotion(FakeNotionArgs),
    /// The Notion incident runbook as a command: the status page, the token, one query (and
    /// a data source's schema, pages that should exist), then the verdict, the action and an
    /// exit code; Slack, status-page and postmortem write-ups; --watch for transitions.
    Triage(TriageArgs),
}

/// `bulwark fake-notion --help`, after the options: examples, then the control API.
fn fake_notion_help() -> String {
    format!(
        "\
Examples:
  bulwark fake-notion                                  # http://127.0.0.1:7777, until Ctrl-C
  bulwark fake-notion --port 0 --ready-file /tmp/fake.json   # a free port, written as {{\"url\": …}}
  bulwark fake-notion --failure-ratio 0.1 --seed 42 --latency-ms 50
  bulwark fake-notion --token secret_a --seed-pages 250 --rate-limit 0
  bulwark proxy --upstream http://127.0.0.1:7777       # then: the proxy in front of it
  curl -H 'Authorization: Bearer secret' -H 'Notion-Version: 2025-09-03' \\
       http://127.0.0.1:7777/v1/users/me

{}",
        bulwark_testkit::cli::CONTROL_HELP
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Triage's stdout is its report (JSON for scripts): no log lines there.
    if !matches!(cli.command, Command::Triage(_)) {
        bulwark_cli::logging::init();
    }
    let result = match cli.command {
        Command::Proxy(args) => bulwark_cli::proxy::cli::run(&args.upstream, &args.flags).await,
        Command::Report(args) => bulwark_cli::report::cli::run(&args),
        Command::FakeNotion(args) => bulwark_testkit::cli::run(&args).await,
        Command::Triage(args) => return ExitCode::from(bulwark_cli::triage::cli::run(&args).await),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bulwark: {error}");
            ExitCode::FAILURE
        }
    }
}
