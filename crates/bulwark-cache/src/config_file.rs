//! [`StaleCacheConfig`]: the cache's settings as read from a configuration file (feature
//! `serde`).
//!
//! Every field is optional: what the file leaves out keeps the layer's default. Durations are
//! written as people write them (`"250ms"`, `"30s"`, `"5m"`, parsed by `humantime`); unknown
//! fields are rejected. Wrap the deserializer in `serde_path_to_error` to get the path of a bad
//! value; [`StaleCacheLayer::validate`] (run by [`StaleCacheLayer::from_config`]) names the
//! setting a semantic error is about.

use std::time::Duration;

use bulwark_http::{HttpClassifier, InvalidConfig};
use serde::Deserialize;

use crate::layer::StaleCacheLayer;

/// The settings of a [`StaleCacheLayer`], as in a `[cache]` table:
///
/// ```toml
/// fresh_for = "0s"
/// stale_if_error = "5m"
/// stale_while_revalidate = "0s"
/// coalesce_max_wait = "2s"
/// max_entries = 10000
/// max_bytes = 67108864
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StaleCacheConfig {
    /// [`StaleCacheLayer::name`]: the `name` label of the layer's metrics.
    #[serde(default)]
    pub name: Option<String>,
    /// [`StaleCacheLayer::fresh_for`].
    #[serde(default, with = "humantime_serde")]
    pub fresh_for: Option<Duration>,
    /// [`StaleCacheLayer::stale_if_error`].
    #[serde(default, with = "humantime_serde")]
    pub stale_if_error: Option<Duration>,
    /// [`StaleCacheLayer::stale_while_revalidate`].
    #[serde(default, with = "humantime_serde")]
    pub stale_while_revalidate: Option<Duration>,
    /// [`StaleCacheLayer::coalesce`].
    #[serde(default)]
    pub coalesce: Option<bool>,
    /// [`StaleCacheLayer::coalesce_max_wait`].
    #[serde(default, with = "humantime_serde")]
    pub coalesce_max_wait: Option<Duration>,
    /// [`StaleCacheLayer::max_entries`].
    #[serde(default)]
    pub max_entries: Option<u64>,
    /// [`StaleCacheLayer::max_bytes`].
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// [`StaleCacheLayer::max_body_bytes`].
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
}

impl StaleCacheConfig {
    /// Sets on `layer` what the file sets; the rest stays as it is.
    pub fn apply<C, B>(self, mut layer: StaleCacheLayer<C, B>) -> StaleCacheLayer<C, B> {
        if let Some(name) = self.name {
            layer = layer.name(name);
        }
        if let Some(d) = self.fresh_for {
            layer = layer.fresh_for(d);
        }
        if let Some(d) = self.stale_if_error {
            layer = layer.stale_if_error(d);
        }
        if let Some(d) = self.stale_while_revalidate {
            layer = layer.stale_while_revalidate(d);
        }
        if let Some(coalesce) = self.coalesce {
            layer = layer.coalesce(coalesce);
        }
        if let Some(wait) = self.coalesce_max_wait {
            layer = layer.coalesce_max_wait(wait);
        }
        if let Some(n) = self.max_entries {
            layer = layer.max_entries(n);
        }
        if let Some(n) = self.max_bytes {
            layer = layer.max_bytes(n);
        }
        if let Some(n) = self.max_body_bytes {
            layer = layer.max_body_bytes(n);
        }
        layer
    }
}

impl<B> StaleCacheLayer<HttpClassifier, B> {
    /// A cache with the defaults, changed by what `config` sets, then
    /// [validated](Self::validate).
    ///
    /// # Errors
    /// What [`validate`](Self::validate) reports, naming the setting.
    pub fn from_config(config: StaleCacheConfig) -> Result<Self, InvalidConfig> {
        let layer = config.apply(Self::new());
        layer.validate()?;
        Ok(layer)
    }
}
