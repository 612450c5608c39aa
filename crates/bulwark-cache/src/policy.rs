//! Freshness rules: `Cache-Control` (RFC 9111) and its RFC 5861 extensions, as pure functions.

use std::time::Duration;

use http::{header, HeaderMap};

/// The largest delta-seconds value read: 2^31 s (68 years). RFC 9111 §1.2.2: a cache that
/// receives a greater value, or one it cannot represent, must take it as 2^31; so the sums of
/// lifetimes and ages made on every request never overflow.
pub(crate) const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// The longest lifetime the cache uses: 2^31 seconds (about 68 years).
///
/// Settings above it ([`fresh_for`], [`stale_while_revalidate`], [`stale_if_error`]) are
/// clamped to it, and [`validate`] names them. It is the cap RFC 9111 §1.2.2 sets on an
/// upstream's delta-seconds (`max-age=`, `stale-if-error=`, `Age`), which the cache applies
/// too, so a setting and an upstream value are held to the same limit. Any sum of lifetimes
/// and ages the cache makes then stays far below `Duration::MAX` (and saturates regardless).
///
/// [`fresh_for`]: crate::StaleCacheLayer::fresh_for
/// [`stale_while_revalidate`]: crate::StaleCacheLayer::stale_while_revalidate
/// [`stale_if_error`]: crate::StaleCacheLayer::stale_if_error
/// [`validate`]: crate::StaleCacheLayer::validate
pub const MAX_LIFETIME: Duration = Duration::from_secs(MAX_DELTA_SECONDS);

/// `delta-seconds` (`1*DIGIT`, RFC 9111 §1.2.2), capped at [`MAX_DELTA_SECONDS`].
fn delta_seconds(text: &str) -> Option<Duration> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits: the parse fails only for numbers past `u64`, which the cap covers too.
    let secs = text
        .parse::<u64>()
        .map_or(MAX_DELTA_SECONDS, |s| s.min(MAX_DELTA_SECONDS));
    Some(Duration::from_secs(secs))
}

/// What a response's `Cache-Control` says, where bulwark cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) max_age: Option<Duration>,
    pub(crate) stale_if_error: Option<Duration>,
    pub(crate) stale_while_revalidate: Option<Duration>,
}

impl Directives {
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut d = Self::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(text) = value.to_str() else { continue };
            for item in text.split(',') {
                let item = item.trim();
                let (name, arg) = match item.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (item, None),
                };
                let secs = || arg.and_then(delta_seconds);
                // Compared without case and without a lower-cased copy.
                let is = |directive: &str| name.eq_ignore_ascii_case(directive);
                if is("no-store") {
                    d.no_store = true;
                } else if is("no-cache") {
                    d.no_cache = true;
                } else if is("must-revalidate") || is("proxy-revalidate") {
                    d.must_revalidate = true;
                } else if is("max-age") || is("s-maxage") {
                    d.max_age = secs().or(d.max_age);
                } else if is("stale-if-error") {
                    d.stale_if_error = secs();
                } else if is("stale-while-revalidate") {
                    d.stale_while_revalidate = secs();
                }
            }
        }
        d
    }
}

/// How long a stored response stays usable, each period counted from when it was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifetimes {
    /// Served without asking the upstream.
    pub(crate) fresh: Duration,
    /// Served at once while a background refresh runs.
    pub(crate) stale_while_revalidate: Duration,
    /// Served when the upstream fails.
    pub(crate) stale_if_error: Duration,
}

impl Lifetimes {
    /// Each lifetime at most [`MAX_LIFETIME`].
    pub(crate) fn capped(self) -> Self {
        Self {
            fresh: self.fresh.min(MAX_LIFETIME),
            stale_while_revalidate: self.stale_while_revalidate.min(MAX_LIFETIME),
            stale_if_error: self.stale_if_error.min(MAX_LIFETIME),
        }
    }

    /// Up to this age a copy is served at once (fresh, or stale while revalidating).
    pub(crate) fn served_at_once(&self) -> Duration {
        self.fresh.saturating_add(self.stale_while_revalidate)
    }

    /// Up to this age a copy is served when the upstream fails.
    pub(crate) fn served_on_error(&self) -> Duration {
        self.fresh.saturating_add(self.stale_if_error)
    }

    /// Up to this age a copy is of any use.
    pub(crate) fn useful(&self) -> Duration {
        self.served_at_once().max(self.served_on_error())
    }
}

/// The layer's defaults, overridden by what the upstream said (RFC 5861 §3 and §4: the
/// upstream's `max-age`, `stale-if-error` and `stale-while-revalidate` win; `must-revalidate`
/// and `no-cache` forbid serving stale).
pub(crate) fn lifetimes(d: &Directives, defaults: Lifetimes) -> Lifetimes {
    let fresh = if d.no_cache {
        Duration::ZERO
    } else {
        d.max_age.unwrap_or(defaults.fresh)
    };
    if d.must_revalidate || d.no_cache {
        return Lifetimes {
            fresh,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
        };
    }
    Lifetimes {
        fresh,
        stale_while_revalidate: d
            .stale_while_revalidate
            .unwrap_or(defaults.stale_while_revalidate),
        stale_if_error: d.stale_if_error.unwrap_or(defaults.stale_if_error),
    }
}

/// Seconds of `Age` the upstream already reported (RFC 9111 §5.1), at most 2^31.
pub(crate) fn upstream_age(headers: &HeaderMap) -> Duration {
    headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| delta_seconds(v.trim()))
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &'static str) -> Directives {
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, v.parse().unwrap());
        Directives::parse(&h)
    }

    const DEFAULTS: Lifetimes = Lifetimes {
        fresh: Duration::ZERO,
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::from_secs(300),
    };

    #[test]
    fn rfc5861_example() {
        let d = parse("max-age=600, stale-if-error=1200");
        let l = lifetimes(&d, DEFAULTS);
        assert_eq!(l.fresh, Duration::from_secs(600));
        assert_eq!(l.stale_if_error, Duration::from_secs(1200));
    }

    #[test]
    fn must_revalidate_and_no_cache_forbid_stale() {
        let l = lifetimes(&parse("max-age=60, must-revalidate"), DEFAULTS);
        assert_eq!(
            (l.fresh, l.stale_if_error),
            (Duration::from_secs(60), Duration::ZERO)
        );
        let l = lifetimes(&parse("no-cache"), DEFAULTS);
        assert_eq!(
            (l.fresh, l.stale_if_error),
            (Duration::ZERO, Duration::ZERO)
        );
        assert!(parse("private, no-store").no_store);
    }

    #[test]
    fn garbage_is_ignored() {
        let d = parse("max-age=abc, stale-if-error=-5, , =, stale-while-revalidate=\"30\"");
        assert_eq!(d.max_age, None);
        assert_eq!(d.stale_if_error, None);
        assert_eq!(d.stale_while_revalidate, Some(Duration::from_secs(30)));
    }
}
