//! `bulwark`: the operator's tools.
//!
//! ```text
//! bulwark proxy --upstream https://api.notion.com            # 127.0.0.1:7700
//! bulwark proxy --upstream http://127.0.0.1:7777 --port 0 --ready-file /tmp/proxy.json
//! ```
//!
//! Logs go to stdout (filter with `BULWARK_LOG`, e.g. `BULWARK_LOG=debug`).

use std::process::ExitCode;

use bulwark_cli::proxy::cli::ProxyArgs;
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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    bulwark_cli::logging::init();
    let result = match cli.command {
        Command::Proxy(args) => bulwark_cli::proxy::cli::run(&args.upstream, &args.flags).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bulwark: {error}");
            ExitCode::FAILURE
        }
    }
}
