//! `bulwark report`'s command line: [`ReportArgs`] and [`run`], which prints the report.

use std::{
    io::{self, Write},
    path::PathBuf,
};

use bulwark_http::BoxError;

use crate::report::Report;

/// `bulwark report --help`, after the options.
pub const AFTER_HELP: &str = "\
Examples:
  bulwark proxy --upstream https://api.notion.com --access-log /var/log/bulwark/access.jsonl
  bulwark report /var/log/bulwark/access.jsonl              # tables: by hour, route, status, size
  bulwark report /var/log/bulwark/access.jsonl --json | jq '.by_hour[] | select(.share_5xx > 0.05)'
  tail -n 100000 access.jsonl | bulwark report -            # the latest lines, from stdin

Errors are answers with a status of 400 or more; shares are of the row's requests. Lines that
are not access-log records are counted and skipped. The JSON fields are documented in the
bulwark-cli crate docs (module `report`).";

/// `bulwark report FILE [--json]`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The access log written by `bulwark proxy --access-log FILE`; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print one JSON document (stable field names) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Reads the log and prints its report on standard output.
///
/// # Errors
/// When the log cannot be opened or read (the message names it), or standard output cannot
/// be written (a closed pipe is not an error).
pub fn run(args: &ReportArgs) -> Result<(), BoxError> {
    let report = if args.file.as_os_str() == "-" {
        Report::from_reader(io::stdin().lock())?
    } else {
        Report::from_path(&args.file)?
    };
    let text = if args.json {
        let mut json = serde_json::to_string_pretty(&report.to_json())?;
        json.push('\n');
        json
    } else {
        format!("access log  {}\n{}", args.file.display(), report.to_text())
    };
    match io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
