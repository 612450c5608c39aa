//! [`RetryConfig`]: the retry layer's settings as read from a configuration file (feature
//! `serde`).
//!
//! Every field is optional: what the file leaves out keeps the layer's default. Durations are
//! written as people write them (`"250ms"`, `"30s"`, `"5m"`, parsed by `humantime`); unknown
//! fields are rejected. Wrap the deserializer in `serde_path_to_error` to get the path of a bad
//! value (`retry.backoff.base`); [`RetryLayer::validate`] (run by
//! [`RetryLayer::from_config`]) names the setting a semantic error is about.

use std::time::Duration;

use bulwark_http::InvalidConfig;
use serde::Deserialize;

use crate::{
    backoff::{Backoff, Jitter},
    layer::RetryLayer,
};

/// The settings of a [`RetryLayer`], as in a `[retry]` table:
///
/// ```toml
/// max_retries = 5
/// max_retry_after = "1m"
/// total_timeout = "2m"
/// backoff = { kind = "exponential", base = "250ms", max_delay = "20s", jitter = "full" }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// [`RetryLayer::name`]: the `name` label of the layer's metrics.
    #[serde(default)]
    pub name: Option<String>,
    /// [`RetryLayer::max_retries`].
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// [`RetryLayer::backoff`].
    #[serde(default)]
    pub backoff: Option<BackoffConfig>,
    /// [`RetryLayer::max_retry_after`].
    #[serde(default, with = "humantime_serde")]
    pub max_retry_after: Option<Duration>,
    /// [`RetryLayer::total_timeout`].
    #[serde(default, with = "humantime_serde")]
    pub total_timeout: Option<Duration>,
}

/// A [`Backoff`] in a file: `kind` (`"exponential"`, the default, or `"constant"`), `base`,
/// `max_delay` and `jitter` (`"full"`, `"equal"`, `"decorrelated"`, `"none"`).
///
/// A missing `base` or `max_delay` keeps the one of the backoff it replaces (for a constant
/// backoff, `max_delay` defaults to `base`); a missing `jitter` is the kind's default
/// ([`Backoff::exponential`], [`Backoff::constant`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// Exponential or constant.
    #[serde(default)]
    pub kind: Option<BackoffKind>,
    /// [`Backoff::base`].
    #[serde(default, with = "humantime_serde")]
    pub base: Option<Duration>,
    /// [`Backoff::max_delay`].
    #[serde(default, with = "humantime_serde")]
    pub max_delay: Option<Duration>,
    /// [`Backoff::jitter`].
    #[serde(default)]
    pub jitter: Option<JitterConfig>,
}

/// The shape of a [`Backoff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackoffKind {
    /// [`Backoff::exponential`].
    Exponential,
    /// [`Backoff::constant`].
    Constant,
}

/// [`Jitter`] as written in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JitterConfig {
    /// [`Jitter::Full`].
    Full,
    /// [`Jitter::Equal`].
    Equal,
    /// [`Jitter::Decorrelated`].
    Decorrelated,
    /// [`Jitter::None`].
    None,
}

impl From<JitterConfig> for Jitter {
    fn from(jitter: JitterConfig) -> Self {
        match jitter {
            JitterConfig::Full => Self::Full,
            JitterConfig::Equal => Self::Equal,
            JitterConfig::Decorrelated => Self::Decorrelated,
            JitterConfig::None => Self::None,
        }
    }
}

impl BackoffConfig {
    /// The backoff this section describes; what it leaves out comes from `defaults`.
    #[must_use]
    pub fn to_backoff(&self, defaults: Backoff) -> Backoff {
        let base = self.base.unwrap_or(defaults.base());
        let backoff = match self.kind.unwrap_or(BackoffKind::Exponential) {
            BackoffKind::Exponential => {
                Backoff::exponential(base).max_delay(self.max_delay.unwrap_or(defaults.cap()))
            }
            BackoffKind::Constant => {
                Backoff::constant(base).max_delay(self.max_delay.unwrap_or(base))
            }
        };
        match self.jitter {
            Some(jitter) => backoff.jitter(jitter.into()),
            None => backoff,
        }
    }
}

impl RetryConfig {
    /// Sets on `layer` what the file sets; the rest stays as it is. A `[backoff]` section
    /// fills its missing `base`/`max_delay` from [`Backoff::default`]; use
    /// [`apply_over`](Self::apply_over) when the layer's backoff is another one.
    pub fn apply<C>(self, layer: RetryLayer<C>) -> RetryLayer<C> {
        self.apply_over(layer, Backoff::default())
    }

    /// [`apply`](Self::apply), with the missing fields of a `[backoff]` section taken from
    /// `backoff_defaults` (a preset's own backoff).
    pub fn apply_over<C>(
        self,
        mut layer: RetryLayer<C>,
        backoff_defaults: Backoff,
    ) -> RetryLayer<C> {
        if let Some(name) = self.name {
            layer = layer.name(name);
        }
        if let Some(max_retries) = self.max_retries {
            layer = layer.max_retries(max_retries);
        }
        if let Some(backoff) = self.backoff {
            layer = layer.backoff(backoff.to_backoff(backoff_defaults));
        }
        if let Some(max) = self.max_retry_after {
            layer = layer.max_retry_after(max);
        }
        if let Some(timeout) = self.total_timeout {
            layer = layer.total_timeout(timeout);
        }
        layer
    }
}

impl RetryLayer {
    /// A layer with the defaults, changed by what `config` sets, then
    /// [validated](Self::validate).
    ///
    /// # Errors
    /// What [`validate`](Self::validate) reports, naming the setting.
    pub fn from_config(config: RetryConfig) -> Result<Self, InvalidConfig> {
        let layer: Self = config.apply(Self::new());
        layer.validate()?;
        Ok(layer)
    }
}
