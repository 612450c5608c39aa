//! [`NotionConfig`]: the preset's settings as read from a configuration file (feature
//! `serde`), applied by [`NotionLayer::from_config`] or [`NotionLayerBuilder::config`].
//!
//! Every field is optional: what the file leaves out keeps Notion's default (see
//! [`defaults`]). Durations are written as people write them (`"250ms"`, `"30s"`, `"5m"`,
//! parsed by `humantime`); unknown fields are rejected. A file never holds the token itself:
//! `token_env` names the environment variable that does. Wrap the deserializer in
//! `serde_path_to_error` to get the path of a value that does not parse (`breaker.window.time`);
//! a value that parses but makes no sense is reported as a [`ConfigError`] with its path
//! (`breaker.failure_ratio`) and the sub-layer's [`InvalidConfig`].

use std::{fmt, time::Duration};

use bulwark_breaker::CircuitBreakerConfig;
use bulwark_bucket::TokenBucketConfig;
use bulwark_cache::StaleCacheConfig;
use bulwark_http::InvalidConfig;
use bulwark_retry::{Backoff, RetryConfig};
use serde::Deserialize;

use crate::{
    builder::{notion_bucket, NotionLayerBuilder},
    defaults,
    layer::NotionLayer,
};

/// The settings of a [`NotionLayer`], as in `bulwark.example.toml` at the repository root:
///
/// ```toml
/// token_env = "NOTION_TOKEN"
/// attempt_timeout = "60s"
/// write_max_wait = "30s"
///
/// [retry]
/// max_retries = 3
/// backoff = { base = "1s", max_delay = "30s" }
///
/// [breaker]
/// failure_ratio = 0.5
///
/// [bucket]
/// rate = "3/s"
///
/// [cache]
/// stale_if_error = "5m"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NotionConfig {
    /// [`NotionLayerBuilder::name`]: the `name` label of the metrics of the preset and its
    /// layers (a sub-table's own `name` overrides it for that layer).
    #[serde(default)]
    pub name: Option<String>,
    /// The name of the environment variable that holds the integration token
    /// ([`NotionLayerBuilder::token`]); never the token itself. A variable that is not set is
    /// an error naming `token_env`.
    #[serde(default)]
    pub token_env: Option<String>,
    /// [`NotionLayerBuilder::notion_version`].
    #[serde(default)]
    pub notion_version: Option<String>,
    /// [`NotionLayerBuilder::user_agent`].
    #[serde(default)]
    pub user_agent: Option<String>,
    /// [`NotionLayerBuilder::attempt_timeout`].
    #[serde(default, with = "humantime_serde")]
    pub attempt_timeout: Option<Duration>,
    /// [`NotionLayerBuilder::write_max_wait`].
    #[serde(default, with = "humantime_serde")]
    pub write_max_wait: Option<Duration>,
    /// [`NotionLayerBuilder::max_response_bytes`].
    #[serde(default)]
    pub max_response_bytes: Option<usize>,
    /// [`NotionLayerBuilder::dedupe_creates_by`].
    #[serde(default)]
    pub dedupe_creates_by: Option<String>,
    /// [`NotionLayerBuilder::reconcile_page_updates`].
    #[serde(default)]
    pub reconcile_page_updates: Option<bool>,
    /// `false` is [`NotionLayerBuilder::without_cache`]. Defaults to `true`.
    #[serde(default)]
    pub cache_enabled: Option<bool>,
    /// `[retry]`: [`NotionLayerBuilder::retry`]. A `backoff` table fills what it leaves out
    /// from Notion's backoff (1 s, capped at 30 s).
    #[serde(default)]
    pub retry: Option<RetryConfig>,
    /// `[breaker]`: [`NotionLayerBuilder::breaker`].
    #[serde(default)]
    pub breaker: Option<CircuitBreakerConfig>,
    /// `[bucket]`: [`NotionLayerBuilder::bucket`]. A `rate` gives new buckets of that rate, with
    /// Notion's burst, wait and pause unless the table sets them.
    #[serde(default)]
    pub bucket: Option<TokenBucketConfig>,
    /// `[cache]`: [`NotionLayerBuilder::cache`].
    #[serde(default)]
    pub cache: Option<StaleCacheConfig>,
}

/// A configuration value that parsed but was rejected, with its path in the file
/// (`breaker.failure_ratio`, `token_env`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    path: String,
    invalid: InvalidConfig,
}

impl ConfigError {
    /// `invalid`, found at `path`.
    #[must_use]
    pub fn new(path: impl Into<String>, invalid: InvalidConfig) -> Self {
        Self {
            path: path.into(),
            invalid,
        }
    }

    /// The same error, under `prefix` (`"notion"` turns `breaker.failure_ratio` into
    /// `notion.breaker.failure_ratio`).
    #[must_use]
    pub fn within(self, prefix: &str) -> Self {
        Self {
            path: format!("{prefix}.{}", self.path),
            invalid: self.invalid,
        }
    }

    /// The dotted path of the offending value.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What the layer said about it.
    #[must_use]
    pub const fn invalid(&self) -> &InvalidConfig {
        &self.invalid
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.path, self.invalid.reason())
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.invalid)
    }
}

/// The settings [`NotionLayerBuilder::build`] checks itself; the breaker's are checked there
/// too, and every other sub-layer's when its section is applied.
const TOP_LEVEL: &[&str] = &[
    "notion_version",
    "user_agent",
    "attempt_timeout",
    "write_max_wait",
    "max_response_bytes",
    "dedupe_creates_by",
];

impl NotionLayer {
    /// Notion's defaults, changed by what `config` sets, then built.
    ///
    /// # Errors
    /// A [`ConfigError`] with the path of the offending value: what
    /// [`NotionLayerBuilder::config`] or [`NotionLayerBuilder::build`] reports.
    pub fn from_config(config: NotionConfig) -> Result<Self, ConfigError> {
        NotionLayerBuilder::new()
            .config(config)?
            .build()
            .map_err(|invalid| {
                let path = match invalid.field() {
                    "token" => "token_env".to_owned(),
                    field if TOP_LEVEL.contains(&field) => field.to_owned(),
                    field => format!("breaker.{field}"),
                };
                ConfigError::new(path, invalid)
            })
    }
}

impl NotionLayerBuilder {
    /// Sets what `config` sets; the rest stays as it is. Call it before other setters: a
    /// `bucket.rate` gives the builder new buckets (dropping a store set earlier).
    ///
    /// # Errors
    /// A [`ConfigError`] with the path of the offending value: `token_env` naming a variable
    /// that is not set (or not Unicode); `retry.*`, `bucket.*`, `cache.*` for what the
    /// sub-layer's `validate` reports; `breaker.slow_call_ratio` without a threshold. The
    /// other values are checked by [`build`](Self::build).
    pub fn config(mut self, config: NotionConfig) -> Result<Self, ConfigError> {
        if let Some(name) = config.name {
            self = self.name(name);
        }
        if let Some(name) = config.token_env {
            let token = std::env::var(&name).map_err(|e| {
                ConfigError::new(
                    "token_env",
                    InvalidConfig::new("token_env", format!("environment variable `{name}`: {e}")),
                )
            })?;
            self = self.token(token);
        }
        if let Some(version) = config.notion_version {
            self = self.notion_version(version);
        }
        if let Some(user_agent) = config.user_agent {
            self = self.user_agent(user_agent);
        }
        if let Some(timeout) = config.attempt_timeout {
            self = self.attempt_timeout(timeout);
        }
        if let Some(wait) = config.write_max_wait {
            self = self.write_max_wait(wait);
        }
        if let Some(limit) = config.max_response_bytes {
            self = self.max_response_bytes(limit);
        }
        if let Some(property) = config.dedupe_creates_by {
            self = self.dedupe_creates_by(property);
        }
        if let Some(on) = config.reconcile_page_updates {
            self = self.reconcile_page_updates(on);
        }
        let mut invalid = None;
        if let Some(retry) = config.retry {
            let notion_backoff = Backoff::exponential(defaults::BACKOFF_BASE)
                .max_delay(defaults::BACKOFF_CAP)
                .jitter(defaults::JITTER);
            self = self.retry(|layer| {
                let layer = retry.apply_over(layer, notion_backoff);
                invalid = layer
                    .validate()
                    .err()
                    .map(|e| ConfigError::new(format!("retry.{}", e.field()), e));
                layer
            });
            if let Some(err) = invalid.take() {
                return Err(err);
            }
        }
        if let Some(breaker) = config.breaker {
            self = self.breaker(|builder| match breaker.apply(builder) {
                Ok(builder) => builder,
                Err(e) => {
                    invalid = Some(ConfigError::new(format!("breaker.{}", e.field()), e));
                    bulwark_breaker::CircuitBreakerLayer::builder()
                        .classify(crate::classify::NotionBreakerClassifier)
                }
            });
            if let Some(err) = invalid.take() {
                return Err(err);
            }
        }
        if let Some(bucket) = config.bucket {
            let name = self.name.clone();
            self = self.bucket(|layer| {
                let layer = match bucket.rate {
                    Some(rate) => notion_bucket(rate.into(), name),
                    None => layer,
                };
                let layer = bucket.apply(layer);
                invalid = layer
                    .validate()
                    .err()
                    .map(|e| ConfigError::new(format!("bucket.{}", e.field()), e));
                layer
            });
            if let Some(err) = invalid.take() {
                return Err(err);
            }
        }
        if config.cache_enabled == Some(false) {
            self = self.without_cache();
        } else if let Some(cache) = config.cache {
            self = self.cache(|layer| {
                let layer = cache.apply(layer);
                invalid = layer
                    .validate()
                    .err()
                    .map(|e| ConfigError::new(format!("cache.{}", e.field()), e));
                layer
            });
            if let Some(err) = invalid.take() {
                return Err(err);
            }
        }
        Ok(self)
    }
}
