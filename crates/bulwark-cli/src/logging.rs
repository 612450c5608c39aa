//! Logging for the `bulwark` command: `tracing` events as lines on stdout.

use tracing_subscriber::EnvFilter;

/// Prints `tracing` events on stdout, one line each, coloured only on a terminal. The filter
/// comes from `BULWARK_LOG` (e.g. `BULWARK_LOG=bulwark_cli=debug`), else `info`. Does nothing
/// when a subscriber is already set.
pub fn init() {
    let filter = EnvFilter::try_from_env("BULWARK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stdout)
        .try_init();
}
