//! The cache's parsers against hostile input: `Cache-Control` and `Age`, the key's reading of
//! request targets, and (feature `redis`) the Redis entry decoder. Property tests at normal
//! sizes, and the ignored `fuzz_*` targets (see `bulwark_testkit::fuzz`) that feed each a
//! million inputs.

use std::collections::hash_map::RandomState;
use std::time::Duration;

use bulwark_testkit::fuzz::{self, pick};
use bytes::Bytes;
use fastrand::Rng;
use http::{header, HeaderMap, HeaderValue, Method, Request};
use proptest::prelude::*;

use crate::key::{build, target};
use crate::policy::{lifetimes, upstream_age, Directives, Lifetimes, MAX_DELTA_SECONDS};

const MAX_DELTA: Duration = Duration::from_secs(MAX_DELTA_SECONDS);

/// One directive of a rendered `Cache-Control`, with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Flag(&'static str),
    Seconds(&'static str, u64),
    /// A number too long for a `u64`.
    Huge(&'static str),
}

/// Directives as typed values, to render and read back.
#[derive(Debug, Clone)]
struct Rendered {
    items: Vec<Item>,
    /// Case changes, spaces, quotes, unknown extensions, several header lines.
    seed: u64,
}

fn rendered(rng: &mut Rng) -> Rendered {
    let mut items = Vec::new();
    for name in ["no-store", "no-cache", "must-revalidate"] {
        if rng.u8(..4) == 0 {
            items.push(Item::Flag(name));
        }
    }
    for name in ["max-age", "stale-if-error", "stale-while-revalidate"] {
        match rng.u8(..6) {
            0 => items.push(Item::Huge(name)),
            1 => items.push(Item::Seconds(name, rng.u64(..))),
            2..=3 => items.push(Item::Seconds(name, rng.u64(..100_000))),
            _ => {}
        }
    }
    rng.shuffle(&mut items);
    Rendered {
        items,
        seed: rng.u64(..),
    }
}

impl Rendered {
    fn headers(&self) -> HeaderMap {
        let mut rng = Rng::with_seed(self.seed);
        let mut parts: Vec<String> = Vec::new();
        for item in &self.items {
            let text = match *item {
                Item::Flag(name) => name.to_owned(),
                Item::Seconds(name, n) if rng.bool() => format!("{name}=\"{n}\""),
                Item::Seconds(name, n) => format!("{name}={n}"),
                Item::Huge(name) => format!("{name}=99999999999999999999999"),
            };
            let text: String = text
                .chars()
                .map(|c| {
                    if rng.u8(..8) == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            parts.push(text);
            if rng.u8(..4) == 0 {
                parts.push(
                    pick(
                        &mut rng,
                        &["private", "public", "x-ext=\"a\"", "immutable", ""],
                    )
                    .to_owned(),
                );
            }
        }
        let mut headers = HeaderMap::new();
        let mut line = String::new();
        for part in parts {
            if !line.is_empty() && rng.u8(..4) == 0 {
                headers.append(header::CACHE_CONTROL, HeaderValue::from_str(&line).unwrap());
                line.clear();
            }
            if !line.is_empty() {
                line.push_str(pick(&mut rng, &[",", ", ", " ,  "]));
            }
            line.push_str(&part);
        }
        headers.append(header::CACHE_CONTROL, HeaderValue::from_str(&line).unwrap());
        headers
    }

    /// What the items say, delta-seconds capped at 2^31 as RFC 9111 §1.2.2 requires.
    fn expected(&self) -> Directives {
        let mut d = Directives::default();
        for item in &self.items {
            let (name, secs) = match *item {
                Item::Flag(name) => {
                    match name {
                        "no-store" => d.no_store = true,
                        "no-cache" => d.no_cache = true,
                        _ => d.must_revalidate = true,
                    }
                    continue;
                }
                Item::Seconds(name, n) => (name, n.min(MAX_DELTA_SECONDS)),
                Item::Huge(name) => (name, MAX_DELTA_SECONDS),
            };
            let secs = Some(Duration::from_secs(secs));
            match name {
                "max-age" => d.max_age = secs,
                "stale-if-error" => d.stale_if_error = secs,
                _ => d.stale_while_revalidate = secs,
            }
        }
        d
    }
}

/// Headers near the grammar (mutated renderings, odd numbers, `Age`) or random bytes.
fn cache_control_input(rng: &mut Rng) -> Vec<Vec<u8>> {
    let sample = rendered(rng).headers();
    (0..rng.usize(1..4))
        .map(|_| {
            let line = pick(
                rng,
                &sample
                    .get_all(header::CACHE_CONTROL)
                    .iter()
                    .collect::<Vec<_>>(),
            );
            match rng.u8(..5) {
                0 => fuzz::bytes(rng, 48),
                1 => pick(rng, fuzz::NUMBERS).as_bytes().to_vec(),
                _ => fuzz::mutate(
                    rng,
                    line.as_bytes(),
                    &[
                        b"max-age=",
                        b"s-maxage=",
                        b"stale-if-error=",
                        b"no-cache",
                        b"=\"",
                        b"\"",
                    ],
                ),
            }
        })
        .collect()
}

/// Never a panic; every duration within 2^31 s; lifetimes that add up without overflow.
fn check_cache_control(values: &[Vec<u8>], defaults: Lifetimes) {
    let mut headers = HeaderMap::new();
    for value in values {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(header::CACHE_CONTROL, value.clone());
            headers.append(header::AGE, value);
        }
    }
    let d = Directives::parse(&headers);
    for secs in [d.max_age, d.stale_if_error, d.stale_while_revalidate] {
        assert!(secs.is_none_or(|s| s <= MAX_DELTA), "{d:?}");
    }
    let age = upstream_age(&headers);
    assert!(age <= MAX_DELTA);
    let l = lifetimes(&d, defaults);
    // The sums the service makes on every hit and every failure.
    let _ = l.fresh + l.stale_while_revalidate.max(l.stale_if_error) + age;
    if d.no_cache {
        assert_eq!(l.fresh, Duration::ZERO);
    }
    if d.no_cache || d.must_revalidate {
        assert_eq!(
            (l.stale_if_error, l.stale_while_revalidate),
            (Duration::ZERO, Duration::ZERO)
        );
    }
}

fn defaults(rng: &mut Rng) -> Lifetimes {
    // Whatever the layer was configured with (a year at most here: the defaults are settings,
    // not input).
    let mut d = || match rng.u8(..4) {
        0 => Duration::from_secs(365 * 86_400),
        1 => Duration::ZERO,
        _ => Duration::from_millis(rng.u64(..1_000_000_000)),
    };
    Lifetimes {
        fresh: d(),
        stale_while_revalidate: d(),
        stale_if_error: d(),
    }
}

/// A request target: scheme, authority, a path with odd segments, a query with pairs in any
/// order, empty pairs, escapes; or random bytes.
fn target_input(rng: &mut Rng) -> (Vec<u8>, u64) {
    let mut uri = String::new();
    if rng.u8(..4) != 0 {
        uri.push_str(pick(rng, &["https://", "http://", "HTTPS://"]));
        uri.push_str(pick(
            rng,
            &[
                "api.notion.com",
                "a.test:8080",
                "user:pw@h.test",
                "[::1]:3000",
                "xn--b.test",
            ],
        ));
    }
    uri.push_str(&fuzz::path(
        rng,
        &["v1", "pages", "blocks", "children", "search"],
    ));
    if !uri.contains('?') && rng.bool() {
        uri.push('?');
        let pairs = [
            "a=1",
            "b=2",
            "a=2",
            "page_size=10",
            "x",
            "",
            "c=%26",
            "d=é",
            "e=1;f=2",
        ];
        for i in 0..rng.usize(..5) {
            if i > 0 {
                uri.push('&');
            }
            uri.push_str(pick(rng, &pairs));
        }
    }
    let bytes = match rng.u8(..6) {
        0 => fuzz::bytes(rng, 40),
        1 => fuzz::mutate(rng, uri.as_bytes(), &[b"&", b"&&", b"?", b"#", b"%2e"]),
        _ => uri.into_bytes(),
    };
    (bytes, rng.u64(..))
}

/// The key reads the target faithfully: its path is the request's, its target is scheme,
/// authority, path and the query's non-empty pairs sorted; the same pairs in another order
/// (with empty pairs between) make the same key, another pair or path another key; the token
/// is never in it.
fn check_target((bytes, seed): &(Vec<u8>, u64)) {
    let Ok(uri) = http::Uri::try_from(bytes.as_slice()) else {
        return;
    };
    let mut rng = Rng::with_seed(*seed);
    let token = format!("tok{}", rng.u64(..));
    let request = |uri: &http::Uri, auth: &str| {
        Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .header(header::AUTHORIZATION, format!("Bearer {auth}"))
            .body(Bytes::from_static(b"{}"))
            .unwrap()
    };
    let hasher = RandomState::new();
    let key_of = |uri: &http::Uri, auth: &str| {
        let req = request(uri, auth);
        build(&req, target(&req), &[], &hasher)
    };
    let key = key_of(&uri, &token);
    assert_eq!(key.path(), uri.path());
    let mut prefix = String::new();
    if let Some(scheme) = uri.scheme_str() {
        prefix = format!("{scheme}://");
    }
    prefix.push_str(uri.authority().map_or("", |a| a.as_str()));
    prefix.push_str(uri.path());
    let pairs: Vec<&str> = uri.query().map_or(Vec::new(), |q| {
        q.split('&').filter(|p| !p.is_empty()).collect()
    });
    let mut sorted = pairs.clone();
    sorted.sort_unstable();
    let expected = match uri.query() {
        None => prefix.clone(),
        Some(q) if !q.contains('&') => format!("{prefix}?{q}"),
        Some(_) => format!("{prefix}?{}", sorted.join("&")),
    };
    assert_eq!(key.target(), expected);
    assert!(!format!("{key:?}").contains(&token));
    assert_ne!(key, key_of(&uri, "another"));

    // The same pairs in another order, with empty pairs: the same key.
    let base = &prefix;
    if uri.query().is_some_and(|q| q.contains('&')) {
        let mut shuffled = pairs.clone();
        rng.shuffle(&mut shuffled);
        let query = shuffled.join(pick(&mut rng, &["&", "&&"]));
        if let Ok(other) = http::Uri::try_from(format!("{base}?&{query}")) {
            assert_eq!(key, key_of(&other, &token), "{other}");
        }
    }
    // One more pair, or another path: another key.
    let extra = format!("{base}?{}&zz=1", sorted.join("&"));
    if let Ok(other) = http::Uri::try_from(extra) {
        assert_ne!(key, key_of(&other, &token), "{other}");
    }
}

proptest! {
    #[test]
    fn cache_control_reads_back_what_it_says(seed in any::<u64>()) {
        let rendered = rendered(&mut Rng::with_seed(seed));
        let headers = rendered.headers();
        prop_assert_eq!(Directives::parse(&headers), rendered.expected(), "{:?}", headers);
    }

    #[test]
    fn cache_control_and_age_stay_bounded(seed in any::<u64>()) {
        let mut rng = Rng::with_seed(seed);
        let values = cache_control_input(&mut rng);
        check_cache_control(&values, defaults(&mut rng));
    }

    #[test]
    fn age_is_delta_seconds_capped_at_2_pow_31(digits in "[0-9]{1,30}") {
        let mut headers = HeaderMap::new();
        headers.insert(header::AGE, HeaderValue::from_str(&digits).unwrap());
        let expected = digits.parse::<u64>().map_or(MAX_DELTA_SECONDS, |n| n.min(MAX_DELTA_SECONDS));
        prop_assert_eq!(upstream_age(&headers), Duration::from_secs(expected));
    }

    #[test]
    fn the_key_reads_targets_faithfully(seed in any::<u64>()) {
        check_target(&target_input(&mut Rng::with_seed(seed)));
    }
}

/// Regression: `stale-while-revalidate` (or `stale-if-error`) of 2^64-1 seconds made the next
/// request overflow `fresh + stale_while_revalidate` and panic.
#[tokio::test(start_paused = true)]
async fn an_absurd_stale_while_revalidate_is_not_a_panic() {
    use bulwark_http::{BoxError, BufferedBody};
    use tower::{Layer, ServiceExt};

    let upstream = tower::service_fn(|_req: Request<BufferedBody>| async {
        let res = http::Response::builder()
            .header(
                header::CACHE_CONTROL,
                "max-age=1, stale-while-revalidate=18446744073709551615, stale-if-error=18446744073709551615",
            )
            .header(header::AGE, "99999999999999999999")
            .body(BufferedBody::from("v1"))?;
        Ok::<_, BoxError>(res)
    });
    let svc = crate::StaleCacheLayer::new().layer(upstream);
    let get = || {
        Request::get("https://api.test/v1/pages/p")
            .body(BufferedBody::empty())
            .unwrap()
    };
    assert_eq!(svc.clone().oneshot(get()).await.unwrap().status(), 200);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(svc.clone().oneshot(get()).await.unwrap().status(), 200);
}

#[test]
#[ignore = "a million inputs: run with `cargo test --release fuzz_ -- --ignored`"]
fn fuzz_cache_control() {
    fuzz::run(
        "cache_control",
        |rng| {
            let rendered = (rng.u8(..4) == 0).then(|| rendered(rng));
            (cache_control_input(rng), defaults(rng), rendered)
        },
        |(values, defaults, rendered)| {
            check_cache_control(values, *defaults);
            if let Some(rendered) = rendered {
                assert_eq!(Directives::parse(&rendered.headers()), rendered.expected());
            }
        },
    );
}

#[test]
#[ignore = "a million inputs: run with `cargo test --release fuzz_ -- --ignored`"]
fn fuzz_cache_key_target() {
    fuzz::run("cache_key_target", target_input, check_target);
}

#[cfg(feature = "redis")]
mod redis_entry {
    use super::*;
    use crate::redis_store::{decode, encode};
    use crate::store::Entry;
    use http::{HeaderName, StatusCode};
    use tokio::time::Instant;

    fn entry(rng: &mut Rng) -> Entry {
        let mut headers = HeaderMap::new();
        for _ in 0..rng.usize(..6) {
            let name = match rng.u8(..3) {
                0 => HeaderName::from_static(pick(rng, &["content-type", "etag", "x-multi"])),
                _ => {
                    let len = rng.usize(1..12);
                    let name: String = (0..len).map(|_| rng.lowercase()).collect();
                    HeaderName::from_bytes(name.as_bytes()).unwrap()
                }
            };
            let value: Vec<u8> = (0..rng.usize(..24))
                .map(|_| match rng.u8(..8) {
                    0 => rng.u8(0x80..=0xff),
                    1 => b'\t',
                    _ => rng.u8(0x20..0x7f),
                })
                .collect();
            headers.append(name, HeaderValue::from_bytes(&value).unwrap());
        }
        let mut millis = || match rng.u8(..4) {
            0 => Duration::from_millis(u64::MAX),
            _ => Duration::from_millis(rng.u64(..1_000_000_000)),
        };
        let lifetimes = Lifetimes {
            fresh: millis(),
            stale_while_revalidate: millis(),
            stale_if_error: millis(),
        };
        let mut body = vec![0; rng.usize(..64)];
        rng.fill(&mut body);
        Entry {
            status: StatusCode::from_u16(rng.u16(100..1000)).unwrap(),
            headers,
            body: Bytes::from(body),
            stored_at: Instant::now(),
            initial_age: Duration::ZERO,
            lifetimes,
            hit_head: crate::store::HitHead::default(),
        }
    }

    /// An encoded entry, then maybe mutated, cut or grown; `check` and the reader's clock.
    #[derive(Debug)]
    struct Stored {
        bytes: Bytes,
        check: [u8; 16],
        now_ms: u64,
        /// The entry, its age and write time when `bytes` is its unaltered encoding.
        intact: Option<(Entry, u64, u64)>,
    }

    fn stored(rng: &mut Rng) -> Stored {
        let e = entry(rng);
        let mut check = [0; 16];
        rng.fill(&mut check);
        let age_ms = rng.u64(..u64::MAX / 2);
        let written_ms = rng.u64(..);
        let now_ms = if rng.bool() {
            written_ms.saturating_add(rng.u64(..100_000))
        } else {
            rng.u64(..)
        };
        let bytes = encode(&e, &check, Duration::from_millis(age_ms), written_ms);
        let (bytes, intact) = match rng.u8(..10) {
            0..=2 => (bytes, Some((e, age_ms, written_ms))),
            3 => (Bytes::from(fuzz::bytes(rng, 200)), None),
            // Many distinct headers: past what a `HeaderMap` holds.
            4 if rng.u8(..100) == 0 => (many_headers(&check, rng.u32(20_000..40_000)), None),
            _ => (
                Bytes::from(fuzz::mutate(
                    rng,
                    &bytes,
                    &[&check[..], b"BWC\x01", &[0xff; 4]],
                )),
                None,
            ),
        };
        Stored {
            bytes,
            check,
            now_ms,
            intact,
        }
    }

    /// A well-formed entry with `count` distinct headers, as anyone who can write the Redis
    /// (and read an entry's check) could store.
    fn many_headers(check: &[u8; 16], count: u32) -> Bytes {
        let mut out = Vec::new();
        out.extend_from_slice(b"BWC\x01");
        out.extend_from_slice(&[0; 40]);
        out.extend_from_slice(&200u16.to_be_bytes());
        out.extend_from_slice(check);
        out.extend_from_slice(&count.to_be_bytes());
        for i in 0..count {
            let name = format!("h{i}");
            out.extend_from_slice(&u32::try_from(name.len()).unwrap().to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&1u32.to_be_bytes());
            out.push(b'v');
        }
        out.extend_from_slice(&0u32.to_be_bytes());
        Bytes::from(out)
    }

    /// A decoded entry is what was encoded (its age brought up to date); a wrong check, a
    /// strict prefix or a longer value is a miss; whatever decodes re-encodes to itself.
    fn check_stored(s: &Stored) {
        let decoded = decode(&s.bytes, &s.check, s.now_ms);
        if let Some((e, age_ms, written_ms)) = &s.intact {
            let d = decoded.as_ref().expect("an intact entry decodes");
            assert_eq!(
                (d.status, &d.headers, &d.body),
                (e.status, &e.headers, &e.body)
            );
            assert_eq!(d.lifetimes, e.lifetimes);
            let since = s.now_ms.saturating_sub(*written_ms);
            assert_eq!(
                d.initial_age,
                Duration::from_millis(*age_ms) + Duration::from_millis(since)
            );
            let mut other = s.check;
            other[0] ^= 1;
            assert!(decode(&s.bytes, &other, s.now_ms).is_none());
            let cut = fastrand::Rng::with_seed(s.now_ms).usize(..s.bytes.len());
            assert!(decode(&s.bytes[..cut], &s.check, s.now_ms).is_none());
            let mut longer = s.bytes.to_vec();
            longer.push(0);
            assert!(decode(&longer, &s.check, s.now_ms).is_none());
        }
        if let Some(d) = decoded {
            let again = encode(&d, &s.check, d.initial_age, s.now_ms);
            let d2 = decode(&again, &s.check, s.now_ms).expect("a decoded entry re-encodes");
            assert_eq!(
                (d2.status, &d2.headers, &d2.body),
                (d.status, &d.headers, &d.body)
            );
            assert_eq!(d2.lifetimes, d.lifetimes);
        }
    }

    proptest! {
        #[test]
        fn redis_entries_decode_to_what_was_encoded(seed in any::<u64>()) {
            check_stored(&stored(&mut Rng::with_seed(seed)));
        }
    }

    /// Regression: an entry naming more distinct headers than a `HeaderMap` holds (about
    /// 24,000) panicked in `HeaderMap::append` ("size overflows MAX_SIZE").
    #[test]
    fn an_entry_with_too_many_headers_is_a_miss() {
        let check = [3; 16];
        assert!(decode(&many_headers(&check, 100), &check, 0).is_some());
        assert!(decode(&many_headers(&check, 40_000), &check, 0).is_none());
    }

    #[test]
    #[ignore = "a million inputs: run with `cargo test --release fuzz_ -- --ignored`"]
    fn fuzz_redis_entry() {
        fuzz::run("redis_entry", stored, check_stored);
    }
}
