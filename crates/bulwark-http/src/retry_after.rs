//! Parsing the `Retry-After` header (RFC 9110 §10.2.3).
//!
//! Both forms are accepted: delta-seconds (`Retry-After: 7`) and an HTTP-date
//! (`Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`, parsed with [`httpdate`]). Servers in the
//! wild also send decimals (`1.5`); those are rounded **up**, so a client never comes back
//! early. A date in the past means "now" (zero). Anything else — garbage, a negative number,
//! a value that overflows, non-UTF-8 bytes, or an absurdly long wait — yields `None`, so the
//! caller falls back to its own backoff. Nothing here panics.
//!
//! ## One bound for reading and writing
//! [`MAX_RETRY_AFTER`] (one year, 31 536 000 s) is both the longest wait [`parse_retry_after`]
//! accepts and the longest one [`retry_after_value`] writes: a longer wait — `Duration::MAX`
//! from a zero rate or a breaker that never half-opens — is rendered as one year. So what a
//! bulwark server renders, a bulwark client reads back; the number fits a signed 32-bit
//! integer, so clients that parse `Retry-After` into one do not overflow; and a month-long
//! quota reset is still rendered exactly. A client coming back after a year is refused
//! again with a fresh value.

use std::time::{Duration, SystemTime};

use http::{header::RETRY_AFTER, HeaderMap, HeaderValue};

/// The longest wait this crate reads or writes: one year (31 536 000 s).
///
/// [`parse_retry_after`] treats longer values as garbage; [`retry_after_value`], the
/// `RateLimit` headers ([`ratelimit::insert_headers`](crate::ratelimit::insert_headers)) and
/// the `Display` of [`CircuitOpen`](crate::CircuitOpen) and
/// [`RateLimited`](crate::RateLimited) clamp longer waits to it (see the
/// [module docs](self)).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Reads the `Retry-After` header of a response, relative to the current wall-clock date.
///
/// Returns `None` when the header is absent or cannot be understood.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use http::HeaderMap;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "7".parse().unwrap());
/// assert_eq!(bulwark_http::retry_after(&headers), Some(Duration::from_secs(7)));
/// ```
#[must_use]
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?;
    parse_retry_after(value, SystemTime::now())
}

/// Parses one `Retry-After` value; HTTP-dates are measured from `now`.
///
/// * `"120"` → 120 s; `"1.5"` → 2 s (decimals round up); `"0"` → zero.
/// * an HTTP-date → the time from `now` until it, rounded up to whole seconds; a past date → zero.
/// * negative, garbage, non-UTF-8, overflowing or longer than [`MAX_RETRY_AFTER`] → `None`.
///
/// # Example
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use http::HeaderValue;
/// use bulwark_http::parse_retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470);
/// let date = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
/// assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(10)));
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("1.2"), now), Some(Duration::from_secs(2)));
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("-1"), now), None);
/// ```
#[must_use]
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if text.is_empty() {
        return None;
    }
    if text.as_bytes()[0].is_ascii_digit() {
        return parse_seconds(text);
    }
    let date = httpdate::parse_http_date(text).ok()?;
    let wait = match date.duration_since(now) {
        Ok(wait) => round_up(wait),
        Err(_) => Duration::ZERO,
    };
    (wait <= MAX_RETRY_AFTER).then_some(wait)
}

/// Delta-seconds, with an optional fraction that rounds the result up.
fn parse_seconds(text: &str) -> Option<Duration> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // 19 digits always fit in a u64; longer strings are either absurd or zero-padded.
    let whole = whole.trim_start_matches('0');
    if whole.len() > 19 {
        return None;
    }
    let mut secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    if let Some(fraction) = fraction {
        if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if fraction.bytes().any(|b| b != b'0') {
            secs = secs.checked_add(1)?;
        }
    }
    let wait = Duration::from_secs(secs);
    (wait <= MAX_RETRY_AFTER).then_some(wait)
}

fn round_up(d: Duration) -> Duration {
    if d.subsec_nanos() == 0 {
        d
    } else {
        Duration::from_secs(d.as_secs().saturating_add(1))
    }
}

/// Formats a wait as a `Retry-After` value: whole seconds, rounded up, at most
/// [`MAX_RETRY_AFTER`] (31 536 000).
///
/// # Panics
/// Never: any `Duration`, `Duration::MAX` included, gives a value [`parse_retry_after`]
/// reads back.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(bulwark_http::retry_after_value(Duration::from_millis(1001)), "2");
/// assert_eq!(bulwark_http::retry_after_value(Duration::ZERO), "0");
/// // "Forever" is rendered as the one-year cap.
/// assert_eq!(bulwark_http::retry_after_value(Duration::MAX), "31536000");
/// ```
#[must_use]
pub fn retry_after_value(wait: Duration) -> HeaderValue {
    HeaderValue::from(whole_secs_capped(wait))
}

/// `wait` in whole seconds, rounded up, at most [`MAX_RETRY_AFTER`]: how every wait this crate
/// renders is written.
pub(crate) fn whole_secs_capped(wait: Duration) -> u64 {
    round_up(wait.min(MAX_RETRY_AFTER)).as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn parse(s: &[u8]) -> Option<Duration> {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        HeaderValue::from_bytes(s)
            .ok()
            .and_then(|v| parse_retry_after(&v, now))
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(parse(b"0"), Some(Duration::ZERO));
        assert_eq!(parse(b"7"), Some(Duration::from_secs(7)));
        assert_eq!(parse(b" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse(b"007"), Some(Duration::from_secs(7)));
    }

    #[test]
    fn decimals_round_up() {
        assert_eq!(parse(b"1.5"), Some(Duration::from_secs(2)));
        assert_eq!(parse(b"0.001"), Some(Duration::from_secs(1)));
        assert_eq!(parse(b"3.0"), Some(Duration::from_secs(3)));
        assert_eq!(parse(b"1."), None);
        assert_eq!(parse(b".5"), None);
        assert_eq!(parse(b"1.2.3"), None);
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse(b"Wed, 21 Oct 2015 07:28:07 GMT"),
            Some(Duration::from_secs(7))
        );
        // Exactly now and in the past are both zero.
        assert_eq!(
            parse(b"Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse(b"Tue, 20 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        // The obsolete formats RFC 9110 requires recipients to accept.
        assert_eq!(
            parse(b"Wednesday, 21-Oct-15 07:28:10 GMT"),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse(b"Wed Oct 21 07:28:20 2015"),
            Some(Duration::from_secs(20))
        );
        // More than a year ahead is absurd.
        assert_eq!(parse(b"Fri, 21 Oct 2050 07:28:00 GMT"), None);
    }

    #[test]
    fn garbage_is_none() {
        for bad in [
            &b""[..],
            b"   ",
            b"-1",
            b"+5",
            b"soon",
            b"1e3",
            b"12abc",
            b"99999999999999999999999",
            b"18446744073709551615",
            b"\xff\xfe",
            b"Wed, 32 Oct 2015 07:28:00 GMT",
            b"31536001",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(b"31536000"), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn header_value_round_trip() {
        assert_eq!(retry_after_value(Duration::from_millis(1)), "1");
        assert_eq!(retry_after_value(Duration::from_secs(30)), "30");
        for wait in [
            MAX_RETRY_AFTER,
            MAX_RETRY_AFTER + Duration::from_nanos(1),
            Duration::MAX,
        ] {
            let value = retry_after_value(wait);
            assert_eq!(value, "31536000");
            assert_eq!(parse(value.as_bytes()), Some(MAX_RETRY_AFTER));
        }
    }
}
