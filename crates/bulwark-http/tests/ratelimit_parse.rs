//! `RateLimitInfo`: each dialect on its own, and property tests — no header value makes a
//! parser panic, what bulwark renders reads back, several policies bind on the least left.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bulwark_http::ratelimit::{insert_headers, QuotaSource};
use bulwark_http::{RateLimitInfo, MAX_RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use proptest::prelude::*;

/// Every header name any dialect reads.
const NAMES: [&str; 15] = [
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-usage-current",
    "x-usage-quota",
    "x-usage-remaining",
    "x-usage-plan",
    // Near misses of the prefixes the scan looks for.
    "ratelimit-other",
    "x-ratelimit-",
    "x-usage-",
];

/// The largest integer a structured field may carry.
const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

const NOW: u64 = 1_700_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn parse(pairs: &[(&str, &str)]) -> RateLimitInfo {
    RateLimitInfo::from_headers_at(&headers(pairs), now())
}

fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

// ---- IETF, current draft ----------------------------------------------------------------

#[test]
fn ietf_one_policy() {
    let info = parse(&[
        ("ratelimit", r#""default";r=0;t=3"#),
        ("ratelimit-policy", r#""default";q=100;w=60"#),
    ]);
    assert_eq!(info.limit, Some(100));
    assert_eq!(info.remaining, Some(0));
    assert_eq!(info.reset, secs(3));
    assert_eq!(info.window, secs(60));
    assert_eq!(info.source, Some(QuotaSource::Ietf));
    assert!(info.exhausted());
    assert_eq!(info.share_left(), Some(0.0));
}

#[test]
fn ietf_several_policies_bind_on_the_least_remaining_and_its_own_policy() {
    let info = parse(&[
        ("ratelimit", r#""burst";r=50;t=1, "daily";r=7;t=3600"#),
        (
            "ratelimit-policy",
            r#""burst";q=100;w=1, "daily";q=1000;w=86400"#,
        ),
    ]);
    assert_eq!(info.remaining, Some(7));
    assert_eq!(info.reset, secs(3600));
    assert_eq!(info.limit, Some(1000));
    assert_eq!(info.window, secs(86400));
}

#[test]
fn ietf_several_lines_are_one_field() {
    let info = parse(&[
        ("ratelimit", r#""burst";r=50;t=1"#),
        ("ratelimit", r#""daily";r=7;t=3600"#),
        ("ratelimit-policy", r#""daily";q=1000;w=86400"#),
        ("ratelimit-policy", r#""burst";q=100;w=1"#),
    ]);
    assert_eq!((info.remaining, info.limit), (Some(7), Some(1000)));
}

#[test]
fn ietf_token_names_and_an_unnamed_policy() {
    let token = parse(&[
        ("ratelimit", "hourly;r=3;t=40"),
        ("ratelimit-policy", "hourly;q=10;w=3600"),
    ]);
    assert_eq!(
        (token.limit, token.remaining, token.window),
        (Some(10), Some(3), secs(3600))
    );
    // An unnamed policy applies to a named state.
    let unnamed = parse(&[
        ("ratelimit", r#""x";r=3;t=40"#),
        ("ratelimit-policy", "10;w=60"),
    ]);
    assert_eq!((unnamed.limit, unnamed.window), (Some(10), secs(60)));
    // A named state whose policy is missing takes no other policy's quota.
    let other = parse(&[
        ("ratelimit", r#""x";r=3;t=40"#),
        ("ratelimit-policy", r#""y";q=10;w=60"#),
    ]);
    assert_eq!((other.limit, other.window), (None, None));
    assert_eq!(other.remaining, Some(3));
    // Without a `RateLimit`, the first policy.
    let alone = parse(&[("ratelimit-policy", r#""a";q=5;w=1, "b";q=9;w=2"#)]);
    assert_eq!((alone.limit, alone.window), (Some(5), secs(1)));
}

#[test]
fn ietf_decimal_waits_round_up_and_everything_is_capped() {
    let info = parse(&[
        ("ratelimit", r#""d";r=1;t=1.2"#),
        ("ratelimit-policy", r#""d";q=2;w=999999999999999"#),
    ]);
    assert_eq!(info.reset, secs(2));
    assert_eq!(info.window, Some(MAX_RETRY_AFTER));
}

#[test]
fn ietf_an_invalid_structured_field_is_ignored_whole() {
    // Unterminated string; a negative count; 16 digits (past RFC 9651's integers).
    for value in [
        r#""default;r=0;t=3"#,
        r#""d";r=-1;t=-3"#,
        r#""d";r=1234567890123456"#,
    ] {
        let info = parse(&[("ratelimit", value)]);
        assert_eq!((info.remaining, info.reset), (None, None), "{value}");
    }
    // One bad line spoils the field, not the other field.
    let info = parse(&[
        ("ratelimit", r#""d";r=1;t=1"#),
        ("ratelimit", "(("),
        ("ratelimit-policy", r#""d";q=2;w=3"#),
    ]);
    assert_eq!((info.remaining, info.limit), (None, Some(2)));
}

// ---- IETF, earlier drafts ---------------------------------------------------------------

#[test]
fn ietf_draft07_dictionary() {
    let info = parse(&[
        ("ratelimit", "limit=100, remaining=7, reset=12"),
        ("ratelimit-policy", "100;w=60"),
    ]);
    assert_eq!(info.limit, Some(100));
    assert_eq!(info.remaining, Some(7));
    assert_eq!(info.reset, secs(12));
    assert_eq!(info.window, secs(60));
    assert_eq!(info.source, Some(QuotaSource::Ietf));
}

#[test]
fn ietf_separate_fields() {
    let info = parse(&[
        ("ratelimit-limit", "100"),
        ("ratelimit-remaining", "99"),
        ("ratelimit-reset", "50"),
    ]);
    assert_eq!(
        (info.limit, info.remaining, info.reset),
        (Some(100), Some(99), secs(50))
    );
    assert_eq!(info.source, Some(QuotaSource::Ietf));
}

// ---- X-RateLimit ------------------------------------------------------------------------

#[test]
fn x_ratelimit_seconds_timestamps_and_fractions() {
    let info = parse(&[
        ("x-ratelimit-limit", "60"),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "17"),
    ]);
    assert_eq!(
        (info.limit, info.remaining, info.reset),
        (Some(60), Some(0), secs(17))
    );
    assert_eq!(info.source, Some(QuotaSource::XRateLimit));
    assert_eq!(
        parse(&[("x-ratelimit-reset", "1700000042")]).reset,
        secs(42)
    );
    assert_eq!(parse(&[("x-ratelimit-reset", "1600000000")]).reset, secs(0));
    assert_eq!(parse(&[("x-ratelimit-reset", "1.2")]).reset, secs(2));
    assert_eq!(
        parse(&[("x-ratelimit-limit", "100, 100;w=60")]).limit,
        Some(100)
    );
}

#[test]
fn x_ratelimit_caps_waits_and_saturates_numbers() {
    for reset in [
        "99999999",
        "9999999999",
        "18446744073709551615",
        "99999999999999999999999",
    ] {
        let info = parse(&[("x-ratelimit-reset", reset)]);
        assert_eq!(info.reset, Some(MAX_RETRY_AFTER), "{reset}");
    }
    let info = parse(&[("x-ratelimit-remaining", "99999999999999999999999")]);
    assert_eq!(info.remaining, Some(u64::MAX));
}

#[test]
fn ietf_fields_take_precedence_over_x_ratelimit() {
    let info = parse(&[
        ("x-ratelimit-limit", "60"),
        ("x-ratelimit-remaining", "59"),
        ("ratelimit", r#""d";r=1;t=9"#),
    ]);
    assert_eq!((info.limit, info.remaining), (Some(60), Some(1)));
    assert_eq!(info.source, Some(QuotaSource::Ietf));
}

// ---- X-Usage (Mark2Notion) --------------------------------------------------------------

#[test]
fn x_usage_mark2notion() {
    let info = parse(&[
        ("X-Usage-Current", "950"),
        ("X-Usage-Quota", "1000"),
        ("X-Usage-Remaining", "50"),
        ("X-Usage-Plan", "free"),
    ]);
    assert_eq!(info.used, Some(950));
    assert_eq!(info.limit, Some(1000));
    assert_eq!(info.remaining, Some(50));
    assert_eq!(info.plan.as_deref(), Some("free"));
    assert_eq!((info.reset, info.window), (None, None));
    assert_eq!(info.source, Some(QuotaSource::XUsage));
    assert!(!info.exhausted());
    assert_eq!(info.share_left(), Some(0.05));
}

#[test]
fn x_usage_remaining_is_quota_minus_current_when_absent_saturating() {
    let info = parse(&[("x-usage-current", "950"), ("x-usage-quota", "1000")]);
    assert_eq!(info.remaining, Some(50));
    let over = parse(&[("x-usage-current", "1200"), ("x-usage-quota", "1000")]);
    assert_eq!(over.remaining, Some(0));
    assert!(over.exhausted());
    // What the server says wins over the subtraction.
    let said = parse(&[
        ("x-usage-current", "950"),
        ("x-usage-quota", "1000"),
        ("x-usage-remaining", "10"),
    ]);
    assert_eq!(said.remaining, Some(10));
    let current_only = parse(&[("x-usage-current", "5")]);
    assert_eq!(
        (
            current_only.used,
            current_only.remaining,
            current_only.limit
        ),
        (Some(5), None, None)
    );
    assert_eq!(current_only.source, Some(QuotaSource::XUsage));
}

#[test]
fn x_usage_plan_is_short_printable_ascii_or_dropped() {
    let plan = |value: &str| parse(&[("x-usage-plan", value)]).plan;
    assert_eq!(plan("  pro annual "), Some("pro annual".to_owned()));
    assert_eq!(plan(&"p".repeat(64)), Some("p".repeat(64)));
    assert_eq!(plan(&"p".repeat(65)), None);
    assert_eq!(plan("a\tb"), None);
    assert_eq!(plan(""), None);
    let mut map = HeaderMap::new();
    map.insert(
        "x-usage-plan",
        HeaderValue::from_bytes(b"pr\xc3\xa9").unwrap(),
    );
    assert_eq!(RateLimitInfo::from_headers_at(&map, now()).plan, None);
}

#[test]
fn x_usage_binds_when_it_has_less_left_than_a_window() {
    let window = [
        ("x-ratelimit-limit", "60"),
        ("x-ratelimit-remaining", "30"),
        ("x-ratelimit-reset", "10"),
    ];
    let mut pairs = window.to_vec();
    pairs.extend([("x-usage-quota", "1000"), ("x-usage-remaining", "3")]);
    let usage = parse(&pairs);
    assert_eq!(usage.source, Some(QuotaSource::XUsage));
    assert_eq!(
        (usage.limit, usage.remaining, usage.reset),
        (Some(1000), Some(3), None)
    );

    let mut pairs = window.to_vec();
    pairs.extend([("x-usage-remaining", "300"), ("x-usage-plan", "team")]);
    let rate = parse(&pairs);
    assert_eq!(rate.source, Some(QuotaSource::XRateLimit));
    assert_eq!(
        (rate.limit, rate.remaining, rate.reset),
        (Some(60), Some(30), secs(10))
    );
    assert_eq!(rate.plan.as_deref(), Some("team"));
}

// ---- The rest of the API ----------------------------------------------------------------

#[test]
fn from_response_is_none_when_nothing_was_understood() {
    assert_eq!(RateLimitInfo::from_response(&Response::new(())), None);
    let junk = Response::builder()
        .header("x-ratelimit-remaining", "lots")
        .header("x-usage-plan", "")
        .header("content-type", "text/plain")
        .body(())
        .unwrap();
    assert_eq!(RateLimitInfo::from_response(&junk), None);
    let res = Response::builder()
        .header("x-usage-remaining", "0")
        .body(())
        .unwrap();
    let info = RateLimitInfo::from_response(&res).unwrap();
    assert!(info.exhausted());
    assert_eq!(info.source.map(QuotaSource::as_str), Some("x-usage"));
}

#[test]
fn share_left_needs_both_and_a_positive_limit() {
    let mut info = RateLimitInfo::default();
    assert_eq!(info.share_left(), None);
    info.remaining = Some(3);
    assert_eq!(info.share_left(), None);
    info.limit = Some(0);
    assert_eq!(info.share_left(), None);
    info.limit = Some(4);
    assert_eq!(info.share_left(), Some(0.75));
    info.remaining = Some(u64::MAX);
    assert_eq!(info.share_left(), Some(1.0));
    assert!(!info.exhausted());
}

#[test]
fn quota_source_names() {
    assert_eq!(QuotaSource::Ietf.as_str(), "ietf");
    assert_eq!(QuotaSource::XRateLimit.as_str(), "x-ratelimit");
    assert_eq!(QuotaSource::XUsage.to_string(), "x-usage");
}

// ---- Properties -------------------------------------------------------------------------

/// Invariants of any result: waits capped, a share in range, a source exactly when something
/// was understood, a plan as documented.
fn check_sane(info: &RateLimitInfo) -> Result<(), TestCaseError> {
    prop_assert!(info.reset.is_none_or(|d| d <= MAX_RETRY_AFTER));
    prop_assert!(info.window.is_none_or(|d| d <= MAX_RETRY_AFTER));
    prop_assert!(info.share_left().is_none_or(|s| (0.0..=1.0).contains(&s)));
    prop_assert_eq!(info.is_empty(), info.source.is_none());
    prop_assert_eq!(info.exhausted(), info.remaining == Some(0));
    if let Some(plan) = &info.plan {
        prop_assert!(!plan.is_empty() && plan.len() <= 64);
        prop_assert!(plan.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
    }
    if info.source == Some(QuotaSource::XUsage) {
        prop_assert_eq!((info.reset, info.window), (None, None));
    }
    Ok(())
}

/// Text close to what servers send, for every dialect.
fn near_valid() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9=;,. \"()?:*-]{0,40}",
        r#"("[a-z]{0,3}"|[a-z]{1,3}|[0-9]{1,3});(r|t|q|w)=-?[0-9]{0,18}(\.[0-9]{0,4})?(, ?[a-z]=[0-9]{1,3})?"#,
        "(limit|remaining|reset)=[0-9]{0,20}(, (limit|remaining|reset)=[0-9.]{0,20}){0,3}",
        "[0-9]{0,25}(\\.[0-9]{0,3})?",
    ]
}

proptest! {
    /// Arbitrary bytes in every header, several lines each: no panic, sane results.
    #[test]
    fn arbitrary_bytes_never_panic(
        values in proptest::collection::vec(
            (0..NAMES.len(), proptest::collection::vec(any::<u8>(), 0..48)),
            0..24,
        ),
        at in any::<u64>(),
    ) {
        let mut map = HeaderMap::new();
        for (name, bytes) in values {
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                map.append(HeaderName::from_static(NAMES[name]), v);
            }
        }
        let now = UNIX_EPOCH.checked_add(Duration::from_secs(at)).unwrap_or(UNIX_EPOCH);
        let info = RateLimitInfo::from_headers_at(&map, now);
        check_sane(&info)?;
        let mut res = Response::new(());
        *res.headers_mut() = map;
        prop_assert_eq!(RateLimitInfo::from_response(&res).is_none(), info.is_empty());
    }

    /// Near-valid text in every header: no panic, sane results.
    #[test]
    fn near_valid_text_never_panics(
        values in proptest::collection::vec((0..NAMES.len(), near_valid()), 0..12),
    ) {
        let mut map = HeaderMap::new();
        for (name, text) in values {
            if let Ok(v) = HeaderValue::from_str(&text) {
                map.append(HeaderName::from_static(NAMES[name]), v);
            }
        }
        check_sane(&RateLimitInfo::from_headers_at(&map, now()))?;
    }

    /// What `insert_headers` renders reads back as what it meant (capped like it caps),
    /// whatever `X-RateLimit-*` says beside it.
    #[test]
    fn what_bulwark_renders_reads_back(
        quota in any::<u64>(),
        window_ms in prop_oneof![0u64..100_000_000, any::<u64>()],
        remaining in any::<u64>(),
        reset_ms in prop_oneof![0u64..100_000_000, any::<u64>()],
        legacy in proptest::option::of((any::<u64>(), any::<u64>(), any::<u64>())),
    ) {
        let (window, reset) = (Duration::from_millis(window_ms), Duration::from_millis(reset_ms));
        let mut map = HeaderMap::new();
        if let Some((l, r, t)) = legacy {
            map.insert("x-ratelimit-limit", l.into());
            map.insert("x-ratelimit-remaining", r.into());
            map.insert("x-ratelimit-reset", t.into());
        }
        insert_headers(&mut map, quota, window, remaining, reset);
        let info = RateLimitInfo::from_headers_at(&map, now());
        prop_assert_eq!(info.limit, Some(quota.min(SF_INTEGER_MAX)));
        prop_assert_eq!(info.remaining, Some(remaining.min(SF_INTEGER_MAX)));
        let reset = Duration::from_secs(ceil_secs(reset)).min(MAX_RETRY_AFTER);
        prop_assert_eq!(info.reset, Some(reset));
        prop_assert_eq!(
            info.window,
            Some(Duration::from_secs(ceil_secs(window).max(1)).min(MAX_RETRY_AFTER))
        );
        prop_assert_eq!(info.source, Some(QuotaSource::Ietf));
        prop_assert_eq!((info.used, &info.plan), (None, &None));
    }

    /// `X-Usage-*` from generated numbers reads back; `Remaining` is `Quota − Current`
    /// (saturating) when absent.
    #[test]
    fn x_usage_round_trips(
        current in prop_oneof![0u64..2000, any::<u64>()],
        quota in prop_oneof![0u64..2000, any::<u64>()],
        remaining in proptest::option::of(any::<u64>()),
        plan in proptest::option::of("[!-~]([ !-~]{0,62}[!-~])?"),
    ) {
        let mut map = HeaderMap::new();
        map.insert("x-usage-current", current.into());
        map.insert("x-usage-quota", quota.into());
        if let Some(r) = remaining {
            map.insert("x-usage-remaining", r.into());
        }
        if let Some(p) = &plan {
            map.insert("x-usage-plan", HeaderValue::from_str(p).unwrap());
        }
        let info = RateLimitInfo::from_headers_at(&map, now());
        prop_assert_eq!(info.used, Some(current));
        prop_assert_eq!(info.limit, Some(quota));
        prop_assert_eq!(info.remaining, Some(remaining.unwrap_or(quota.saturating_sub(current))));
        prop_assert_eq!((info.reset, info.window), (None, None));
        prop_assert_eq!(&info.plan, &plan);
        prop_assert_eq!(info.source, Some(QuotaSource::XUsage));
        check_sane(&info)?;
    }

    /// Several policies in one field: the least `r` binds (the first of equals), with the
    /// policy of its name wherever that stands in `RateLimit-Policy`.
    #[test]
    fn several_policies_pick_the_least_remaining(
        policies in proptest::collection::vec(
            (0..=SF_INTEGER_MAX, 0u64..=31_536_000, 0..=SF_INTEGER_MAX, 1u64..=31_536_000),
            1..6,
        ),
        rotate in 0usize..6,
        tokens in any::<bool>(),
    ) {
        let name = |i: usize| if tokens { format!("p{i}") } else { format!("\"p{i}\"") };
        let states: Vec<String> = policies
            .iter()
            .enumerate()
            .map(|(i, (r, t, _, _))| format!("{};r={r};t={t}", name(i)))
            .collect();
        let mut quotas: Vec<String> = policies
            .iter()
            .enumerate()
            .map(|(i, (_, _, q, w))| format!("{};q={q};w={w}", name(i)))
            .collect();
        let len = quotas.len();
        quotas.rotate_left(rotate % len);
        let (states, quotas) = (states.join(", "), quotas.join(", "));
        let map = headers(&[("ratelimit", &states), ("ratelimit-policy", &quotas)]);
        let info = RateLimitInfo::from_headers_at(&map, now());
        let least = policies.iter().map(|p| p.0).min().unwrap();
        let (r, t, q, w) = *policies.iter().find(|p| p.0 == least).unwrap();
        prop_assert_eq!(info.remaining, Some(r));
        prop_assert_eq!(info.reset, secs(t));
        prop_assert_eq!(info.limit, Some(q));
        prop_assert_eq!(info.window, secs(w));
    }
}
