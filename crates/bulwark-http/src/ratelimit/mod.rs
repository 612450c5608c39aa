//! Rate-limit and quota headers: parse what upstreams announce, render what our servers announce.
//!
//! Upstreams describe their limits in several dialects; [`RateLimitInfo::from_headers`]
//! reads them all into one struct and says which dialect it came from ([`QuotaSource`]):
//!
//! * IETF `draft-ietf-httpapi-ratelimit-headers` (08 and later): `RateLimit: "default";r=0;t=3`
//!   and `RateLimit-Policy: "default";q=100;w=60`. Both are structured fields (RFC 8941/9651),
//!   parsed with the [`sfv`] crate; a field that is not a valid structured field is ignored as
//!   a whole, as the RFC says. When a field lists several policies
//!   (`"burst";r=5;t=30, "daily";r=100;t=3600`) the one with the least `r` — the binding one —
//!   is taken, with the `RateLimit-Policy` entry of the same name (an unnamed policy applies to
//!   any);
//! * the same draft's earlier forms: `RateLimit: limit=100, remaining=0, reset=3` (a
//!   dictionary), `RateLimit-Policy: 100;w=60`, and separate `RateLimit-Limit` / `-Remaining` /
//!   `-Reset`;
//! * the legacy `X-RateLimit-Limit` / `X-RateLimit-Remaining` / `X-RateLimit-Reset`, where
//!   `Reset` is either seconds from now or a Unix timestamp (values above 10⁹ are timestamps);
//! * the usage quota of Mark2Notion and similar APIs: `X-Usage-Current` (used so far),
//!   `X-Usage-Quota`, `X-Usage-Remaining` (`Quota − Current` when absent) and `X-Usage-Plan`.
//!   A billing-period quota: it never carries a reset or a window.
//!
//! The IETF fields take precedence over `X-RateLimit-*`, field by field. An `X-Usage-*` quota
//! replaces both when it has less left (it binds first) or when they say nothing about what is
//! left; [`used`](RateLimitInfo::used) and [`plan`](RateLimitInfo::plan) are kept either way.
//!
//! ```
//! use bulwark_http::ratelimit::{QuotaSource, RateLimitInfo};
//! use http::HeaderMap;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("x-usage-current", "950".parse().unwrap());
//! headers.insert("x-usage-quota", "1000".parse().unwrap());
//! headers.insert("x-usage-plan", "free".parse().unwrap());
//! let info = RateLimitInfo::from_headers(&headers);
//! assert_eq!(info.used, Some(950));
//! assert_eq!(info.limit, Some(1000));
//! assert_eq!(info.remaining, Some(50)); // 1000 − 950: no `X-Usage-Remaining` was sent
//! assert_eq!(info.reset, None);
//! assert_eq!(info.plan.as_deref(), Some("free"));
//! assert_eq!(info.source, Some(QuotaSource::XUsage));
//! assert_eq!(info.share_left(), Some(0.05));
//! ```
//!
//! A malformed field is ignored on its own; nothing here panics. Waits are capped at
//! [`MAX_RETRY_AFTER`] (one year); numbers too large for a `u64` saturate. A response with
//! none of these headers costs one pass over its header names and no allocation.
//!
//! [`insert_headers`] renders our own servers' limits, with waits capped like `Retry-After`
//! (at [`MAX_RETRY_AFTER`], one year) and every number a valid structured-field integer, so an
//! extreme setting (a zero rate: "never") never writes a value a client cannot read.
//!
//! [`MAX_RETRY_AFTER`]: crate::MAX_RETRY_AFTER

use std::fmt;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};

mod plain;
mod render;
mod structured;
#[cfg(test)]
mod tests;

pub use render::insert_headers;

/// `RateLimit` (IETF draft).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// `RateLimit-Policy` (IETF draft).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Which dialect a [`RateLimitInfo`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaSource {
    /// The IETF `RateLimit` / `RateLimit-Policy` fields, or the draft's separate
    /// `RateLimit-Limit` / `-Remaining` / `-Reset`.
    Ietf,
    /// The legacy `X-RateLimit-Limit` / `-Remaining` / `-Reset`.
    XRateLimit,
    /// `X-Usage-Current` / `-Quota` / `-Remaining` / `-Plan` (Mark2Notion): a billing-period
    /// quota without a reset.
    XUsage,
}

impl QuotaSource {
    /// A short stable name: `"ietf"`, `"x-ratelimit"` or `"x-usage"` (for logs and metric labels).
    ///
    /// ```
    /// assert_eq!(bulwark_http::ratelimit::QuotaSource::XUsage.as_str(), "x-usage");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ietf => "ietf",
            Self::XRateLimit => "x-ratelimit",
            Self::XUsage => "x-usage",
        }
    }
}

impl fmt::Display for QuotaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an upstream said about its rate limit or quota. Every field is optional: servers send
/// subsets.
///
/// It is `Clone + Send + Sync + 'static`, so a layer can attach it to a response as an
/// extension (`res.extensions_mut().insert(info)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitInfo {
    /// Requests allowed per window (the quota).
    pub limit: Option<u64>,
    /// Requests left in the current window.
    pub remaining: Option<u64>,
    /// Time until the quota resets (or until `remaining` grows), at most one year.
    pub reset: Option<Duration>,
    /// The policy's window length, at most one year.
    pub window: Option<Duration>,
    /// The dialect `limit`, `remaining`, `reset` and `window` were read from; `None` when
    /// nothing was understood.
    pub source: Option<QuotaSource>,
    /// How much of the quota is used (`X-Usage-Current`).
    pub used: Option<u64>,
    /// The account's plan (`X-Usage-Plan`), when it is 1 to 64 characters of printable ASCII
    /// (visible characters and inner spaces); anything else is dropped.
    pub plan: Option<String>,
}

impl RateLimitInfo {
    /// Parses every known dialect from `headers`, relative to the current wall-clock time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::HeaderMap;
    /// use bulwark_http::RateLimitInfo;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("ratelimit", r#""default";r=0;t=3"#.parse().unwrap());
    /// headers.insert("ratelimit-policy", r#""default";q=100;w=60"#.parse().unwrap());
    /// let info = RateLimitInfo::from_headers(&headers);
    /// assert_eq!(info.remaining, Some(0));
    /// assert_eq!(info.reset, Some(Duration::from_secs(3)));
    /// assert_eq!(info.limit, Some(100));
    /// assert_eq!(info.window, Some(Duration::from_secs(60)));
    /// ```
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let found = Found::scan(headers);
        if !found.any {
            // The common case (no usage headers at all): not even a clock read.
            return Self::default();
        }
        Self::parse(headers, &found, SystemTime::now())
    }

    /// Like [`from_headers`](Self::from_headers), with Unix-timestamp resets measured from `now`.
    #[must_use]
    pub fn from_headers_at(headers: &HeaderMap, now: SystemTime) -> Self {
        let found = Found::scan(headers);
        if !found.any {
            return Self::default();
        }
        Self::parse(headers, &found, now)
    }

    /// What the headers `found` say, relative to `now`.
    fn parse(headers: &HeaderMap, found: &Found<'_>, now: SystemTime) -> Self {
        let mut info = Self::default();
        // Lowest precedence first; later dialects overwrite what they define.
        if plain::counts(
            &mut info,
            found.x_limit,
            found.x_remaining,
            found.x_reset,
            now,
        ) {
            info.source = Some(QuotaSource::XRateLimit);
        }
        let ietf = plain::counts(
            &mut info,
            found.ietf_limit,
            found.ietf_remaining,
            found.ietf_reset,
            now,
        );
        let structured = structured::apply(&mut info, headers, found.ratelimit, found.policy);
        if ietf || structured {
            info.source = Some(QuotaSource::Ietf);
        }
        plain::usage(&mut info, &found.usage);
        info
    }

    /// The headers of `res`, or `None` when none of them was understood.
    ///
    /// ```
    /// use bulwark_http::RateLimitInfo;
    ///
    /// let res = http::Response::builder()
    ///     .header("x-ratelimit-remaining", "0")
    ///     .body(())
    ///     .unwrap();
    /// let info = RateLimitInfo::from_response(&res).unwrap();
    /// assert!(info.exhausted());
    /// assert_eq!(RateLimitInfo::from_response(&http::Response::new(())), None);
    /// ```
    #[must_use]
    pub fn from_response<B>(res: &http::Response<B>) -> Option<Self> {
        let info = Self::from_headers(res.headers());
        (!info.is_empty()).then_some(info)
    }

    /// `true` when no field was understood.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `true` when nothing is left: `remaining` is known and zero.
    #[must_use]
    pub const fn exhausted(&self) -> bool {
        matches!(self.remaining, Some(0))
    }

    /// The share of the quota left, `remaining / limit` in `0.0..=1.0`; `None` unless both are
    /// known and `limit` is above zero.
    ///
    /// ```
    /// use bulwark_http::RateLimitInfo;
    ///
    /// let mut info = RateLimitInfo::default();
    /// info.limit = Some(200);
    /// info.remaining = Some(50);
    /// assert_eq!(info.share_left(), Some(0.25));
    /// info.remaining = Some(500); // more left than the quota: a server's rounding
    /// assert_eq!(info.share_left(), Some(1.0));
    /// ```
    #[must_use]
    pub fn share_left(&self) -> Option<f64> {
        match (self.remaining, self.limit) {
            (Some(remaining), Some(limit)) if limit > 0 => {
                Some((remaining as f64 / limit as f64).clamp(0.0, 1.0))
            }
            _ => None,
        }
    }
}

/// The headers of every dialect found in one pass over the map, without allocating.
#[derive(Default)]
struct Found<'a> {
    /// Any header of interest at all.
    any: bool,
    /// `RateLimit` (all of its lines are read later).
    ratelimit: bool,
    /// `RateLimit-Policy` (all of its lines are read later).
    policy: bool,
    ietf_limit: Option<&'a HeaderValue>,
    ietf_remaining: Option<&'a HeaderValue>,
    ietf_reset: Option<&'a HeaderValue>,
    x_limit: Option<&'a HeaderValue>,
    x_remaining: Option<&'a HeaderValue>,
    x_reset: Option<&'a HeaderValue>,
    usage: plain::Usage<'a>,
}

impl<'a> Found<'a> {
    fn scan(headers: &'a HeaderMap) -> Self {
        let mut found = Self::default();
        for (name, value) in headers {
            let name = name.as_str();
            let slot = if let Some(rest) = name.strip_prefix("ratelimit") {
                match rest {
                    "" => {
                        found.ratelimit = true;
                        found.any = true;
                        continue;
                    }
                    "-policy" => {
                        found.policy = true;
                        found.any = true;
                        continue;
                    }
                    "-limit" => &mut found.ietf_limit,
                    "-remaining" => &mut found.ietf_remaining,
                    "-reset" => &mut found.ietf_reset,
                    _ => continue,
                }
            } else if let Some(rest) = name.strip_prefix("x-ratelimit-") {
                match rest {
                    "limit" => &mut found.x_limit,
                    "remaining" => &mut found.x_remaining,
                    "reset" => &mut found.x_reset,
                    _ => continue,
                }
            } else if let Some(rest) = name.strip_prefix("x-usage-") {
                match rest {
                    "current" => &mut found.usage.current,
                    "quota" => &mut found.usage.quota,
                    "remaining" => &mut found.usage.remaining,
                    "plan" => &mut found.usage.plan,
                    _ => continue,
                }
            } else {
                continue;
            };
            // The first line of a repeated header, as `HeaderMap::get` would return.
            slot.get_or_insert(value);
            found.any = true;
        }
        found
    }
}
