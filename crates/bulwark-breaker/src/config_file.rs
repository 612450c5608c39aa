//! [`CircuitBreakerConfig`]: the breaker's settings as read from a configuration file
//! (feature `serde`).
//!
//! Every field is optional: what the file leaves out keeps the builder's default. Durations
//! are written as people write them (`"250ms"`, `"30s"`, `"5m"`, parsed by `humantime`);
//! unknown fields are rejected. Wrap the deserializer in `serde_path_to_error` to get the path
//! of a bad value; [`CircuitBreakerBuilder::build`] (run by
//! [`CircuitBreakerLayer::from_config`]) names the setting a semantic error is about
//! (`failure_ratio = 2.0` → `failure_ratio`).

use std::time::Duration;

use bulwark_http::InvalidConfig;
use serde::Deserialize;

use crate::{
    layer::{CircuitBreakerBuilder, CircuitBreakerLayer},
    window::Window,
};

/// The settings of a [`CircuitBreakerLayer`], as in a `[breaker]` table:
///
/// ```toml
/// failure_ratio = 0.5
/// minimum_calls = 20
/// window = { time = "30s" }     # or { count = 100 }
/// consecutive_failures = 5
/// break_duration = "5s"
/// max_break_duration = "5m"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CircuitBreakerConfig {
    /// [`CircuitBreakerBuilder::name`]: the `name` label of the layer's metrics.
    #[serde(default)]
    pub name: Option<String>,
    /// [`CircuitBreakerBuilder::failure_ratio`].
    #[serde(default)]
    pub failure_ratio: Option<f64>,
    /// [`CircuitBreakerBuilder::minimum_calls`].
    #[serde(default)]
    pub minimum_calls: Option<u32>,
    /// [`CircuitBreakerBuilder::window`].
    #[serde(default)]
    pub window: Option<WindowConfig>,
    /// [`CircuitBreakerBuilder::consecutive_failures`].
    #[serde(default)]
    pub consecutive_failures: Option<u32>,
    /// [`CircuitBreakerBuilder::slow_call_threshold`].
    #[serde(default, with = "humantime_serde")]
    pub slow_call_threshold: Option<Duration>,
    /// The ratio of [`CircuitBreakerBuilder::slow_call`]; needs `slow_call_threshold`.
    #[serde(default)]
    pub slow_call_ratio: Option<f64>,
    /// [`CircuitBreakerBuilder::break_duration`].
    #[serde(default, with = "humantime_serde")]
    pub break_duration: Option<Duration>,
    /// [`CircuitBreakerBuilder::max_break_duration`].
    #[serde(default, with = "humantime_serde")]
    pub max_break_duration: Option<Duration>,
    /// [`CircuitBreakerBuilder::break_jitter`].
    #[serde(default)]
    pub break_jitter: Option<f64>,
    /// [`CircuitBreakerBuilder::max_wait`].
    #[serde(default, with = "humantime_serde")]
    pub max_wait: Option<Duration>,
    /// [`CircuitBreakerBuilder::half_open_calls`].
    #[serde(default)]
    pub half_open_calls: Option<u32>,
    /// [`CircuitBreakerBuilder::count_throttled`].
    #[serde(default)]
    pub count_throttled: Option<bool>,
}

/// A [`Window`] in a file: `{ time = "30s" }` or `{ count = 100 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowConfig {
    /// [`Window::time`].
    Time(#[serde(with = "humantime_serde")] Duration),
    /// [`Window::count`].
    Count(u32),
}

impl From<WindowConfig> for Window {
    fn from(window: WindowConfig) -> Self {
        match window {
            WindowConfig::Time(duration) => Self::time(duration),
            WindowConfig::Count(n) => Self::count(n),
        }
    }
}

impl CircuitBreakerConfig {
    /// Sets on `builder` what the file sets; the rest stays as it is.
    ///
    /// # Errors
    /// [`InvalidConfig`] naming `slow_call_ratio` when it is set without
    /// `slow_call_threshold`. The values themselves are checked by
    /// [`build`](CircuitBreakerBuilder::build).
    pub fn apply<C>(
        self,
        mut builder: CircuitBreakerBuilder<C>,
    ) -> Result<CircuitBreakerBuilder<C>, InvalidConfig> {
        if let Some(name) = self.name {
            builder = builder.name(name);
        }
        if let Some(ratio) = self.failure_ratio {
            builder = builder.failure_ratio(ratio);
        }
        if let Some(calls) = self.minimum_calls {
            builder = builder.minimum_calls(calls);
        }
        if let Some(window) = self.window {
            builder = builder.window(window.into());
        }
        if let Some(failures) = self.consecutive_failures {
            builder = builder.consecutive_failures(failures);
        }
        match (self.slow_call_threshold, self.slow_call_ratio) {
            (Some(threshold), Some(ratio)) => builder = builder.slow_call(threshold, ratio),
            (Some(threshold), None) => builder = builder.slow_call_threshold(threshold),
            (None, Some(_)) => return Err(InvalidConfig::new(
                "slow_call_ratio",
                "set `slow_call_threshold` too: a ratio of slow calls needs to know what is slow",
            )),
            (None, None) => {}
        }
        if let Some(duration) = self.break_duration {
            builder = builder.break_duration(duration);
        }
        if let Some(duration) = self.max_break_duration {
            builder = builder.max_break_duration(duration);
        }
        if let Some(jitter) = self.break_jitter {
            builder = builder.break_jitter(jitter);
        }
        if let Some(wait) = self.max_wait {
            builder = builder.max_wait(wait);
        }
        if let Some(calls) = self.half_open_calls {
            builder = builder.half_open_calls(calls);
        }
        if let Some(count) = self.count_throttled {
            builder = builder.count_throttled(count);
        }
        Ok(builder)
    }
}

impl CircuitBreakerLayer {
    /// A breaker with the defaults, changed by what `config` sets, then built.
    ///
    /// # Errors
    /// What [`apply`](CircuitBreakerConfig::apply) and
    /// [`build`](CircuitBreakerBuilder::build) report, naming the setting.
    pub fn from_config(config: CircuitBreakerConfig) -> Result<Self, InvalidConfig> {
        config.apply(Self::builder())?.build()
    }
}
