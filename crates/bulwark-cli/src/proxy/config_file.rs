//! `bulwark proxy --config FILE`: a TOML file with a `[proxy]` table (the proxy's own
//! settings) and a `[notion]` table (the preset's: [`NotionConfig`], with `[notion.retry]`,
//! `[notion.breaker]`, `[notion.bucket]`, `[notion.cache]`). `bulwark.example.toml` at the
//! repository root shows every setting, and a test parses it.
//!
//! Every setting is optional. Unknown fields are rejected, durations are written as people
//! write them (`"250ms"`, `"30s"`, `"5m"`), and every error names the value's path
//! (`notion.breaker.failure_ratio`). Flags given on the command line win over the file; a
//! flag left at its default gives way to the file. `NOTION_TOKEN`, when set, wins over
//! `notion.token_env`.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use bulwark_notion::{NotionConfig, NotionLayer};
use serde::Deserialize;

use crate::proxy::{
    cli::ProxyFlags,
    config::{
        ProxyConfig, DEFAULT_BIND, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT,
        DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS,
    },
};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ConfigFile {
    /// `[proxy]`: the proxy's own settings.
    #[serde(default)]
    pub proxy: ProxySection,
    /// `[notion]`: the preset's settings.
    #[serde(default)]
    pub notion: NotionConfig,
}

/// `[proxy]`: the settings of [`ProxyConfig`] a file may hold (the upstream comes from
/// `--upstream`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProxySection {
    /// [`ProxyConfig::bind`] (`--bind`).
    #[serde(default)]
    pub bind: Option<SocketAddr>,
    /// [`ProxyConfig::max_connections`] (`--max-connections`).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// [`ProxyConfig::header_read_timeout`] (`--header-read-timeout-ms`).
    #[serde(default, with = "humantime_serde")]
    pub header_read_timeout: Option<Duration>,
    /// [`ProxyConfig::idle_timeout`] (`--idle-timeout-ms`).
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// [`ProxyConfig::body_read_timeout`] (`--body-read-timeout-ms`).
    #[serde(default, with = "humantime_serde")]
    pub body_read_timeout: Option<Duration>,
    /// [`ProxyConfig::max_body_bytes`] (`--max-body-bytes`).
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// [`ProxyConfig::max_uri_bytes`].
    #[serde(default)]
    pub max_uri_bytes: Option<usize>,
    /// [`ProxyConfig::max_header_bytes`].
    #[serde(default)]
    pub max_header_bytes: Option<usize>,
    /// [`ProxyConfig::shutdown_grace`].
    #[serde(default, with = "humantime_serde")]
    pub shutdown_grace: Option<Duration>,
    /// [`ProxyConfig::access_log`] (`--access-log`).
    #[serde(default)]
    pub access_log: Option<PathBuf>,
    /// Where `GET /metrics` is served in Prometheus text format (`--metrics`).
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
}

/// A configuration file that cannot be used: unreadable, not TOML, or a value that is wrong
/// for its field. The message names the file and the value's path.
#[derive(Debug)]
pub struct ConfigFileError {
    message: String,
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigFileError {}

impl ConfigFile {
    /// Reads and [parses](Self::parse) the file at `path`.
    ///
    /// # Errors
    /// [`ConfigFileError`] naming the file: it cannot be read, or what
    /// [`parse`](Self::parse) reports.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigFileError {
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::parse(&text).map_err(|e| ConfigFileError {
            message: format!("{}: {e}", path.display()),
        })
    }

    /// Parses a file's text and checks the `[notion]` table by building the preset from it.
    ///
    /// # Errors
    /// [`ConfigFileError`] with the path of the offending value: an unknown field, a value of
    /// the wrong type or a duration that does not parse (`notion.retry.max_retry_after`), or a
    /// value the preset rejects (`notion.breaker.failure_ratio`, `notion.token_env` naming a
    /// variable that is not set).
    pub fn parse(text: &str) -> Result<Self, ConfigFileError> {
        let file: Self =
            serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
                let line = e
                    .inner()
                    .span()
                    .map(|span| format!(" (line {})", line_of(text, span.start)))
                    .unwrap_or_default();
                ConfigFileError {
                    message: format!("`{}`{line}: {}", e.path(), e.inner().message()),
                }
            })?;
        if let Err(e) = NotionLayer::from_config(file.notion.clone()) {
            return Err(ConfigFileError {
                message: e.within("notion").to_string(),
            });
        }
        Ok(file)
    }

    /// `config` with this file's settings: a `[proxy]` value where `flags` left the setting
    /// at its default, and the `[notion]` table under the flags' `--max-retries` and
    /// `--max-wait-ms`.
    #[must_use]
    pub fn apply(self, mut config: ProxyConfig, flags: &ProxyFlags) -> ProxyConfig {
        let proxy = self.proxy;
        if let Some(bind) = proxy.bind {
            if flags.port.is_none() && flags.bind == DEFAULT_BIND {
                config = config.bind(bind);
            }
        }
        if let Some(n) = proxy.max_connections {
            if flags.max_connections == DEFAULT_MAX_CONNECTIONS {
                config = config.max_connections(n);
            }
        }
        let at_default = |ms: u64, default: Duration| u128::from(ms) == default.as_millis();
        if let Some(t) = proxy.header_read_timeout {
            if at_default(flags.header_read_timeout_ms, DEFAULT_HEADER_READ_TIMEOUT) {
                config = config.header_read_timeout(t);
            }
        }
        if let Some(t) = proxy.idle_timeout {
            if at_default(flags.idle_timeout_ms, DEFAULT_IDLE_TIMEOUT) {
                config = config.idle_timeout(t);
            }
        }
        if let Some(t) = proxy.body_read_timeout {
            if at_default(flags.body_read_timeout_ms, DEFAULT_BODY_READ_TIMEOUT) {
                config = config.body_read_timeout(t);
            }
        }
        if let Some(n) = proxy.max_body_bytes {
            if flags.max_body_bytes == DEFAULT_MAX_BODY_BYTES {
                config = config.max_body_bytes(n);
            }
        }
        if let Some(n) = proxy.max_uri_bytes {
            config = config.max_uri_bytes(n);
        }
        if let Some(n) = proxy.max_header_bytes {
            config = config.max_header_bytes(n);
        }
        if let Some(grace) = proxy.shutdown_grace {
            config = config.shutdown_grace(grace);
        }
        if let Some(path) = proxy.access_log {
            if flags.access_log.is_none() {
                config = config.access_log(path);
            }
        }
        config.notion(self.notion)
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The annotated example at the repository root.
    const EXAMPLE: &str = include_str!("../../../../bulwark.example.toml");

    fn flags(args: &[&str]) -> ProxyFlags {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            flags: ProxyFlags,
        }
        let mut argv = vec!["bulwark"];
        argv.extend_from_slice(args);
        <Cli as clap::Parser>::parse_from(argv).flags
    }

    #[test]
    fn the_example_file_parses_and_builds() {
        // The example names NOTION_TOKEN in `token_env`, which the check reads; a variable
        // of this test's own keeps the process's NOTION_TOKEN alone.
        assert!(EXAMPLE.contains("token_env = \"NOTION_TOKEN\""));
        std::env::set_var("BULWARK_EXAMPLE_FILE_TEST_TOKEN", "secret_example");
        let text = EXAMPLE.replace("\"NOTION_TOKEN\"", "\"BULWARK_EXAMPLE_FILE_TEST_TOKEN\"");
        let file = ConfigFile::parse(&text).unwrap();
        assert!(file.notion.retry.is_some() && file.notion.breaker.is_some());
        assert!(file.notion.bucket.is_some() && file.notion.cache.is_some());
        assert!(file.proxy.bind.is_some());
        let config = file
            .apply(
                ProxyConfig::new("http://127.0.0.1:7777").unwrap(),
                &flags(&[]),
            )
            .validate();
        assert!(config.is_ok(), "{config:?}");
    }

    #[test]
    fn errors_name_the_path() {
        let err = ConfigFile::parse("[notion.breaker]\nfailure_ration = 0.5\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`notion.breaker.failure_ration` (line 2): unknown field"),
            "{err}"
        );
        let err = ConfigFile::parse("[proxy]\nidle_timeout = \"3 parsecs\"\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`proxy.idle_timeout` (line 2): "),
            "{err}"
        );
        let err = ConfigFile::parse("[notion.breaker]\nfailure_ratio = 2.0\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`notion.breaker.failure_ratio`: "),
            "{err}"
        );
        let err = ConfigFile::parse("[server]\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `server`"), "{err}");
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = ConfigFile::parse(
            "[proxy]\nbind = \"127.0.0.1:7801\"\nmax_connections = 64\nidle_timeout = \"2s\"\n",
        )
        .unwrap();
        let configure = |file: ConfigFile, args: &[&str]| {
            let flags = flags(args);
            file.apply(flags.config("http://127.0.0.1:7777", None).unwrap(), &flags)
        };
        let config = configure(file.clone(), &[]);
        assert_eq!(config.bind_addr(), "127.0.0.1:7801".parse().unwrap());
        assert_eq!(config.max_connections, 64);
        assert_eq!(config.idle_timeout, Duration::from_secs(2));
        let config = configure(file, &["--port", "7900", "--max-connections", "8"]);
        assert_eq!(config.bind_addr(), "127.0.0.1:7900".parse().unwrap());
        assert_eq!(config.max_connections, 8);
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = ConfigFile::load(Path::new("/nonexistent/bulwark.toml")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/bulwark.toml"),
            "{err}"
        );
    }
}
