//! [`TokenBucketConfig`]: the bucket's settings as read from a configuration file (feature
//! `serde`).
//!
//! Every field is optional: what the file leaves out keeps the layer's default. The rate is
//! written `"3/s"`, `"100/m"`, `"5/h"`, `"10/250ms"` or `{ count = 3, per = "1s" }`; durations
//! as people write them (`"250ms"`, `"30s"`, parsed by `humantime`); unknown fields are
//! rejected. Wrap the deserializer in `serde_path_to_error` to get the path of a bad value;
//! [`TokenBucketLayer::validate`] (run by [`TokenBucketLayer::from_config`]) names the setting
//! a semantic error is about.

use std::{fmt, hash::Hash, time::Duration};

use bulwark_http::InvalidConfig;
use serde::{de, Deserialize, Deserializer};

use crate::{layer::TokenBucketLayer, rate::Rate};

/// The settings of a [`TokenBucketLayer`], as in a `[bucket]` table:
///
/// ```toml
/// rate = "3/s"
/// burst = 3
/// max_wait = "30s"
/// emit_headers = false
/// pause_on_retry_after = true
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenBucketConfig {
    /// [`TokenBucketLayer::name`]: the `name` label of the layer's metrics.
    #[serde(default)]
    pub name: Option<String>,
    /// The layer's [`Rate`]. Only [`TokenBucketLayer::from_config`] can use it (a built
    /// layer's rate is fixed); it is required there.
    #[serde(default)]
    pub rate: Option<RateConfig>,
    /// [`TokenBucketLayer::burst`].
    #[serde(default)]
    pub burst: Option<u32>,
    /// [`TokenBucketLayer::max_wait`].
    #[serde(default, with = "humantime_serde")]
    pub max_wait: Option<Duration>,
    /// [`TokenBucketLayer::max_keys`].
    #[serde(default)]
    pub max_keys: Option<usize>,
    /// [`TokenBucketLayer::emit_headers`].
    #[serde(default)]
    pub emit_headers: Option<bool>,
    /// [`TokenBucketLayer::pause_on_retry_after`].
    #[serde(default)]
    pub pause_on_retry_after: Option<bool>,
}

/// A [`Rate`] in a file: `"3/s"` (units `s`, `m`, `h` or any `humantime` duration such as
/// `"10/250ms"`), or `{ count = 3, per = "1s" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig(pub Rate);

impl From<RateConfig> for Rate {
    fn from(rate: RateConfig) -> Self {
        rate.0
    }
}

impl std::str::FromStr for RateConfig {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (count, per) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not a rate: write `COUNT/PERIOD`, e.g. `3/s`"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("`{count}` in `{text}` is not a whole number of requests"))?;
        let per = per.trim();
        let per = match per {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => humantime_serde::re::humantime::parse_duration(other)
                .map_err(|e| format!("`{other}` in `{text}` is not a period: {e}"))?,
        };
        if per.is_zero() {
            return Err(format!("the period of `{text}` is zero"));
        }
        Ok(Self(Rate::new(count, per)))
    }
}

impl<'de> Deserialize<'de> for RateConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RateVisitor)
    }
}

struct RateVisitor;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateTable {
    count: u32,
    #[serde(with = "humantime_serde")]
    per: Duration,
}

impl<'de> de::Visitor<'de> for RateVisitor {
    type Value = RateConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a rate such as \"3/s\" or { count = 3, per = \"1s\" }")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        text.parse().map_err(E::custom)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let table = RateTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
        if table.per.is_zero() {
            return Err(de::Error::custom("`per` is zero"));
        }
        Ok(RateConfig(Rate::new(table.count, table.per)))
    }
}

impl TokenBucketConfig {
    /// Sets on `layer` what the file sets, except `rate` (a built layer's rate is fixed: see
    /// [`TokenBucketLayer::from_config`]); the rest stays as it is.
    pub fn apply<C, E, K>(self, mut layer: TokenBucketLayer<C, E, K>) -> TokenBucketLayer<C, E, K>
    where
        K: Hash + Eq + Send + Sync + 'static,
    {
        if let Some(name) = self.name {
            layer = layer.name(name);
        }
        if let Some(burst) = self.burst {
            layer = layer.burst(burst);
        }
        if let Some(wait) = self.max_wait {
            layer = layer.max_wait(wait);
        }
        if let Some(keys) = self.max_keys {
            layer = layer.max_keys(keys);
        }
        if let Some(emit) = self.emit_headers {
            layer = layer.emit_headers(emit);
        }
        if let Some(pause) = self.pause_on_retry_after {
            layer = layer.pause_on_retry_after(pause);
        }
        layer
    }
}

impl TokenBucketLayer {
    /// A bucket of `config.rate`, changed by what `config` sets, then
    /// [validated](Self::validate).
    ///
    /// # Errors
    /// [`InvalidConfig`] naming `rate` when the file has none, or what
    /// [`validate`](Self::validate) reports.
    pub fn from_config(config: TokenBucketConfig) -> Result<Self, InvalidConfig> {
        let rate = config
            .rate
            .ok_or_else(|| InvalidConfig::new("rate", "missing: write e.g. `rate = \"3/s\"`"))?;
        let layer = config.apply(Self::new(rate.into()));
        layer.validate()?;
        Ok(layer)
    }
}
