//! Rate-limit headers: parse what upstreams announce, render what our servers announce.
//!
//! Upstreams describe their limits in several dialects; [`RateLimitInfo::from_headers`]
//! reads them all into one struct:
//!
//! * IETF `draft-ietf-httpapi-ratelimit-headers` (08 and later): `RateLimit: "default";r=0;t=3`
//!   and `RateLimit-Policy: "default";q=100;w=60`;
//! * the same draft's earlier forms: `RateLimit: limit=100, remaining=0, reset=3`,
//!   `RateLimit-Policy: 100;w=60`, and separate `RateLimit-Limit` / `-Remaining` / `-Reset`;
//! * the legacy `X-RateLimit-Limit` / `X-RateLimit-Remaining` / `X-RateLimit-Reset`, where
//!   `Reset` is either seconds from now or a Unix timestamp (values above 10⁹ are timestamps).
//!
//! A malformed field is ignored on its own; nothing here panics.
//!
//! [`insert_headers`] renders our own servers' limits, with waits capped like `Retry-After`
//! (at [`MAX_RETRY_AFTER`](crate::MAX_RETRY_AFTER), one year) and every number a valid
//! structured-field integer, so an extreme setting (a zero rate: "never") never writes a
//! value a client cannot read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::retry_after::whole_secs_capped;

/// `RateLimit` (IETF draft).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// `RateLimit-Policy` (IETF draft).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Values above this in `X-RateLimit-Reset` are Unix timestamps, not seconds (2001-09-09).
const EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// What an upstream said about its rate limit. Every field is optional: servers send subsets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitInfo {
    /// Requests allowed per window (the quota).
    pub limit: Option<u64>,
    /// Requests left in the current window.
    pub remaining: Option<u64>,
    /// Time until the quota resets (or until `remaining` grows).
    pub reset: Option<Duration>,
    /// The policy's window length.
    pub window: Option<Duration>,
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
        Self::from_headers_at(headers, SystemTime::now())
    }

    /// Like [`from_headers`](Self::from_headers), with Unix-timestamp resets measured from `now`.
    #[must_use]
    pub fn from_headers_at(headers: &HeaderMap, now: SystemTime) -> Self {
        let mut info = Self::default();
        // Lowest precedence first; later dialects overwrite what they define.
        info.legacy(
            headers,
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            now,
        );
        info.legacy(
            headers,
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            now,
        );
        if let Some(v) = text(headers.get(RATELIMIT_POLICY)) {
            info.policy(v);
        }
        if let Some(v) = text(headers.get(RATELIMIT)) {
            info.ratelimit(v);
        }
        info
    }

    /// `true` when no field was understood.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn legacy(
        &mut self,
        headers: &HeaderMap,
        limit: &str,
        remaining: &str,
        reset: &str,
        now: SystemTime,
    ) {
        if let Some(v) = text(headers.get(limit)).and_then(first_number) {
            self.limit = Some(v);
        }
        if let Some(v) = text(headers.get(remaining)).and_then(first_number) {
            self.remaining = Some(v);
        }
        if let Some(v) = text(headers.get(reset)).and_then(first_number) {
            self.reset = Some(reset_from(v, now));
        }
    }

    /// `RateLimit-Policy`: `"name";q=100;w=60` (08+) or `100;w=60` (07), first policy wins.
    fn policy(&mut self, value: &str) {
        let Some(first) = value.split(',').next() else {
            return;
        };
        let mut params = first.split(';').map(str::trim);
        let head = params.next().unwrap_or_default();
        if let Some(q) = number(head) {
            self.limit = Some(q);
        }
        for param in params {
            match param.split_once('=') {
                Some(("q", v)) => {
                    if let Some(q) = number(v) {
                        self.limit = Some(q);
                    }
                }
                Some(("w", v)) => {
                    if let Some(w) = number(v) {
                        self.window = Some(Duration::from_secs(w));
                    }
                }
                _ => {}
            }
        }
    }

    /// `RateLimit`: `"name";r=0;t=3` (08+) or `limit=100, remaining=0, reset=3` (07).
    fn ratelimit(&mut self, value: &str) {
        if value.contains("remaining=") || value.contains("limit=") || value.contains("reset=") {
            for item in value.split([',', ';']).map(str::trim) {
                match item.split_once('=') {
                    Some(("limit", v)) => set(&mut self.limit, number(v)),
                    Some(("remaining", v)) => set(&mut self.remaining, number(v)),
                    Some(("reset", v)) => set(&mut self.reset, number(v).map(Duration::from_secs)),
                    _ => {}
                }
            }
            return;
        }
        let Some(first) = value.split(',').next() else {
            return;
        };
        for param in first.split(';').map(str::trim).skip(1) {
            match param.split_once('=') {
                Some(("r", v)) => set(&mut self.remaining, number(v)),
                Some(("t", v)) => set(&mut self.reset, number(v).map(Duration::from_secs)),
                _ => {}
            }
        }
    }
}

fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

fn text(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok()).map(str::trim)
}

/// A non-negative integer that fits a `u64` (all of them: what [`insert_headers`] writes
/// reads back); larger ones are ignored.
fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Legacy headers sometimes list several windows (`"100, 100;w=60"`): take the first number.
fn first_number(s: &str) -> Option<u64> {
    let first = s.split([',', ';']).next()?;
    // Some servers send fractional resets ("1.5"): round up.
    match first.trim().split_once('.') {
        Some((whole, frac)) if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) => {
            let whole = number(whole)?;
            Some(if frac.bytes().any(|b| b != b'0') {
                whole.checked_add(1)?
            } else {
                whole
            })
        }
        Some(_) => None,
        None => number(first),
    }
}

fn reset_from(value: u64, now: SystemTime) -> Duration {
    let value = Duration::from_secs(value);
    if value.as_secs() < EPOCH_THRESHOLD {
        return value;
    }
    // Measured without `UNIX_EPOCH + value`, which panics past what `SystemTime` holds.
    match now.duration_since(UNIX_EPOCH) {
        Ok(since_epoch) => value.saturating_sub(since_epoch),
        Err(before_epoch) => value.saturating_add(before_epoch.duration()),
    }
}

/// The largest integer an RFC 8941 structured field may carry (15 digits).
const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

/// Renders the IETF draft (08+) `RateLimit` and `RateLimit-Policy` fields for one policy.
///
/// `window` and `reset` are rounded up to whole seconds and, like `Retry-After`, capped at
/// [`MAX_RETRY_AFTER`](crate::MAX_RETRY_AFTER) (one year); `window` is at least 1 s.
/// `quota` and `remaining` are capped at 999 999 999 999 999, the largest integer a
/// structured field (RFC 8941) may carry. The policy is named `"default"`.
///
/// # Panics
/// Never, whatever the values (`Duration::MAX`, `u64::MAX` included).
///
/// ```
/// use std::time::Duration;
/// let mut headers = http::HeaderMap::new();
/// bulwark_http::ratelimit::insert_headers(&mut headers, 3, Duration::from_secs(1), 0, Duration::from_millis(200));
/// assert_eq!(headers["ratelimit-policy"], r#""default";q=3;w=1"#);
/// assert_eq!(headers["ratelimit"], r#""default";r=0;t=1"#);
///
/// // A zero rate's "never": capped, and still a valid structured field.
/// bulwark_http::ratelimit::insert_headers(&mut headers, u64::MAX, Duration::MAX, 0, Duration::MAX);
/// assert_eq!(headers["ratelimit-policy"], r#""default";q=999999999999999;w=31536000"#);
/// assert_eq!(headers["ratelimit"], r#""default";r=0;t=31536000"#);
/// ```
pub fn insert_headers(
    headers: &mut HeaderMap,
    quota: u64,
    window: Duration,
    remaining: u64,
    reset: Duration,
) {
    let quota = quota.min(SF_INTEGER_MAX);
    let remaining = remaining.min(SF_INTEGER_MAX);
    let window = whole_secs_capped(window).max(1);
    let reset = whole_secs_capped(reset);
    let policy = format!("\"default\";q={quota};w={window}");
    let state = format!("\"default\";r={remaining};t={reset}");
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert(RATELIMIT_POLICY, v);
    }
    if let Ok(v) = HeaderValue::from_str(&state) {
        headers.insert(RATELIMIT, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    const NOW: u64 = 1_700_000_000;

    fn parse(pairs: &[(&'static str, &'static str)]) -> RateLimitInfo {
        RateLimitInfo::from_headers_at(&headers(pairs), UNIX_EPOCH + Duration::from_secs(NOW))
    }

    #[test]
    fn ietf_structured() {
        let info = parse(&[
            ("ratelimit", r#""burst";r=5;t=30, "daily";r=100;t=3600"#),
            (
                "ratelimit-policy",
                r#""burst";q=10;w=60, "daily";q=1000;w=86400"#,
            ),
        ]);
        assert_eq!(
            info,
            RateLimitInfo {
                limit: Some(10),
                remaining: Some(5),
                reset: Some(Duration::from_secs(30)),
                window: Some(Duration::from_secs(60)),
            }
        );
    }

    #[test]
    fn ietf_draft07() {
        let info = parse(&[
            ("ratelimit", "limit=100, remaining=7, reset=12"),
            ("ratelimit-policy", "100;w=60"),
        ]);
        assert_eq!(info.limit, Some(100));
        assert_eq!(info.remaining, Some(7));
        assert_eq!(info.reset, Some(Duration::from_secs(12)));
        assert_eq!(info.window, Some(Duration::from_secs(60)));
    }

    #[test]
    fn legacy_seconds_and_epoch() {
        let info = parse(&[
            ("x-ratelimit-limit", "60"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "17"),
        ]);
        assert_eq!(info.limit, Some(60));
        assert_eq!(info.remaining, Some(0));
        assert_eq!(info.reset, Some(Duration::from_secs(17)));

        let epoch = parse(&[("x-ratelimit-reset", "1700000042")]);
        assert_eq!(epoch.reset, Some(Duration::from_secs(42)));
        let past = parse(&[("x-ratelimit-reset", "1600000000")]);
        assert_eq!(past.reset, Some(Duration::ZERO));
        let fractional = parse(&[("x-ratelimit-reset", "1.2")]);
        assert_eq!(fractional.reset, Some(Duration::from_secs(2)));
    }

    #[test]
    fn separate_draft_headers() {
        let info = parse(&[
            ("ratelimit-limit", "100"),
            ("ratelimit-remaining", "99"),
            ("ratelimit-reset", "50"),
        ]);
        assert_eq!(info.limit, Some(100));
        assert_eq!(info.remaining, Some(99));
        assert_eq!(info.reset, Some(Duration::from_secs(50)));
    }

    #[test]
    fn malformed_fields_are_ignored_one_by_one() {
        let info = parse(&[
            ("x-ratelimit-limit", "lots"),
            ("x-ratelimit-remaining", "-3"),
            ("x-ratelimit-reset", "99999999999999999999999"),
            ("ratelimit", r#""default";r=abc;t=4"#),
        ]);
        assert_eq!(info.limit, None);
        assert_eq!(info.remaining, None);
        assert_eq!(info.reset, Some(Duration::from_secs(4)));
        assert!(parse(&[]).is_empty());
    }
}
