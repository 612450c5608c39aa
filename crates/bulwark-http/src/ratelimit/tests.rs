//! Unit tests of each dialect; the property tests and the public-API tests are in
//! `tests/ratelimit_parse.rs`.

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

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
            source: Some(QuotaSource::Ietf),
            used: None,
            plan: None,
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

#[test]
fn mark2notion_usage() {
    let info = parse(&[
        ("x-usage-current", "950"),
        ("x-usage-quota", "1000"),
        ("x-usage-remaining", "50"),
        ("x-usage-plan", "free"),
    ]);
    assert_eq!(
        info,
        RateLimitInfo {
            limit: Some(1000),
            remaining: Some(50),
            reset: None,
            window: None,
            source: Some(QuotaSource::XUsage),
            used: Some(950),
            plan: Some("free".to_owned()),
        }
    );
}

#[test]
fn a_usage_quota_with_less_left_binds_before_a_window() {
    let rate = [
        ("x-ratelimit-limit", "60"),
        ("x-ratelimit-remaining", "30"),
        ("x-ratelimit-reset", "10"),
    ];
    let usage = parse(&[rate[0], rate[1], rate[2], ("x-usage-remaining", "3")]);
    assert_eq!(usage.source, Some(QuotaSource::XUsage));
    assert_eq!((usage.remaining, usage.reset), (Some(3), None));
    let window = parse(&[rate[0], rate[1], rate[2], ("x-usage-remaining", "300")]);
    assert_eq!(window.source, Some(QuotaSource::XRateLimit));
    assert_eq!((window.remaining, window.limit), (Some(30), Some(60)));
}
