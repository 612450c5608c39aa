//! Property tests: header parsers never panic on arbitrary bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bulwark_http::{parse_retry_after, RateLimitInfo, MAX_RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

proptest! {
    #[test]
    fn retry_after_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            if let Some(wait) = parse_retry_after(&value, now()) {
                prop_assert!(wait <= MAX_RETRY_AFTER);
            }
        }
    }

    #[test]
    fn retry_after_numbers(secs in 0u64..=31_536_000, frac in proptest::option::of(0u32..1000)) {
        let text = match frac {
            Some(f) => format!("{secs}.{f:03}"),
            None => secs.to_string(),
        };
        let wait = parse_retry_after(&HeaderValue::from_str(&text).unwrap(), now());
        let expected = secs + u64::from(frac.is_some_and(|f| f > 0));
        if expected <= 31_536_000 {
            prop_assert_eq!(wait, Some(Duration::from_secs(expected)));
        } else {
            prop_assert_eq!(wait, None);
        }
    }

    #[test]
    fn retry_after_dates_round_trip(offset in 0u64..1_000_000) {
        let at = now() + Duration::from_secs(offset);
        let value = HeaderValue::from_str(&httpdate::fmt_http_date(at)).unwrap();
        prop_assert_eq!(parse_retry_after(&value, now()), Some(Duration::from_secs(offset)));
    }

    #[test]
    fn ratelimit_never_panics(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..48), 8)
    ) {
        let names = [
            "ratelimit", "ratelimit-policy", "ratelimit-limit", "ratelimit-remaining",
            "ratelimit-reset", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
        ];
        let mut headers = HeaderMap::new();
        for (name, bytes) in names.iter().zip(values) {
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        let _ = RateLimitInfo::from_headers_at(&headers, now());
    }

    #[test]
    fn ratelimit_structured_like_values(r in any::<u64>(), t in any::<u64>(), junk in "[a-z=;, \"0-9]{0,30}") {
        let mut headers = HeaderMap::new();
        let text = format!("\"p\";r={r};t={t}{junk}");
        headers.insert("ratelimit", HeaderValue::from_str(&text).unwrap());
        let _ = RateLimitInfo::from_headers_at(&headers, now());
    }
}
