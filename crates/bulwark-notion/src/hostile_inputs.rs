//! The preset's parsers against hostile input: Notion's error bodies (and the classifier's
//! reading of them), `canonical_json` and the route matching. Property tests at normal sizes,
//! and the ignored `fuzz_*` targets (see `bulwark_testkit::fuzz`) that feed each a million
//! inputs.

use bulwark_http::{Class, Classify, HttpClassifier, MAX_RETRY_AFTER};
use bulwark_testkit::fuzz::{self, pick};
use bytes::Bytes;
use fastrand::Rng;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use proptest::prelude::*;
use serde_json::Value;

use crate::body::finish;
use crate::canonical::has_float;
use crate::error::{CODES, REQUEST_ID_HEADER};
use crate::routes::{is_cacheable, is_idempotent, is_read_only_post};
use crate::{
    canonical_json, from_edge, NotionBreakerClassifier, NotionClassifier, NotionError,
    NotionErrorCode, UnexpectedResponse,
};

/// A string of anything: ASCII, controls, quotes, multi-byte and astral characters.
fn text(rng: &mut Rng, max: usize) -> String {
    (0..rng.usize(..=max))
        .map(|_| match rng.u8(..8) {
            0 => rng.char('\u{0}'..'\u{20}'),
            1 => pick(rng, &['"', '\\', '/', '\u{7f}', '\u{2028}', '\u{feff}']),
            2 => rng.char('\u{80}'..='\u{10ffff}'),
            _ => rng.alphanumeric(),
        })
        .collect()
}

fn notion_error(rng: &mut Rng) -> NotionError {
    let code = if rng.u8(..4) == 0 {
        let name = text(rng, 12);
        NotionErrorCode::from(name.as_str())
    } else {
        CODES[rng.usize(..CODES.len())].1.clone()
    };
    let additional_data = match rng.u8(..3) {
        // Floats aside (serde_json reads them back only to within a unit in the last place),
        // and as deep as an error read from a body can hold (serde_json stops at 128 levels).
        0 => serde_json::from_str(&fuzz::json(rng, 3))
            .ok()
            .filter(|v| !has_float(v) && depth(v) < 127),
        1 => Some(serde_json::json!({"rate_limit_reason": text(rng, 8)})),
        _ => None,
    };
    NotionError {
        status: StatusCode::from_u16(rng.u16(400..600)).expect("a status"),
        code,
        message: text(rng, 40),
        request_id: rng.bool().then(|| text(rng, 36)),
        additional_data,
        retry_after: None,
    }
}

/// A response: any status, Notion's headers or an edge proxy's, and a body that is Notion's
/// error (as written, or mutated), other JSON, an HTML page, or random bytes.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, Bytes)>,
    body: Bytes,
}

fn answer(rng: &mut Rng) -> Answer {
    let status = match rng.u8(..4) {
        0 => rng.u16(100..1000),
        _ => pick(
            rng,
            &[
                200, 400, 401, 404, 409, 418, 429, 500, 501, 502, 503, 504, 507, 520, 522, 529, 599,
            ],
        ),
    };
    let mut headers = Vec::new();
    let candidates: &[(&str, &[u8])] = &[
        (REQUEST_ID_HEADER, b"5d1e7f6c-0000-4000-8000-000000000000"),
        ("cf-ray", b"8a1b2c3d4e5f-AMS"),
        ("retry-after", b"3"),
        ("retry-after", b"Wed, 21 Oct 2015 07:28:00 GMT"),
        ("content-type", b"application/json"),
        ("content-type", b"text/html; charset=UTF-8"),
    ];
    for (name, value) in candidates {
        if rng.u8(..3) == 0 {
            let value = if rng.u8(..4) == 0 {
                fuzz::mutate(rng, value, &[])
            } else {
                value.to_vec()
            };
            headers.push((*name, Bytes::from(value)));
        }
    }
    let error = serde_json::to_vec(&notion_error(rng).to_json()).expect("JSON");
    let body = match rng.u8(..8) {
        0..=1 => error,
        2..=4 => fuzz::mutate(
            rng,
            &error,
            &[
                b"\"code\"",
                b"\"message\"",
                b"\"request_id\"",
                b"null",
                b"5",
            ],
        ),
        5 => fuzz::json(rng, 4).into_bytes(),
        6 => b"<!DOCTYPE html>\n<html><h1>502 Bad Gateway</h1>\r\n\0</html>".to_vec(),
        _ => fuzz::bytes(rng, 300),
    };
    Answer {
        status,
        headers,
        body: Bytes::from(body),
    }
}

/// Error responses carry exactly one reading: a [`NotionError`] when the body is a JSON object
/// with a string `code` (its fields read from the body, the request id falling back to the
/// header), else an [`UnexpectedResponse`] whose snippet and message are one clean line; the
/// body is kept byte for byte; the classes follow the documented table.
fn check_answer(a: &Answer) {
    let mut parts = Response::new(()).into_parts().0;
    parts.status = StatusCode::from_u16(a.status).expect("100..1000");
    for (name, value) in &a.headers {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            parts.headers.append(*name, value);
        }
    }
    let headers = parts.headers.clone();
    let res = finish(parts, a.body.clone(), None);
    assert_eq!(res.body().as_ref(), &a.body[..]);
    let error = res.extensions().get::<NotionError>();
    let unexpected = res.extensions().get::<UnexpectedResponse>();
    if a.status < 400 {
        assert!(error.is_none() && unexpected.is_none());
    } else {
        let json = serde_json::from_slice::<Value>(&a.body).ok();
        let field = |name: &str| json.as_ref().and_then(|j| j.get(name));
        let code = field("code").and_then(Value::as_str);
        assert_eq!(error.is_some(), code.is_some());
        assert_eq!(unexpected.is_some(), code.is_none());
        let header_id = headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
        if let Some(err) = error {
            assert_eq!(err.status.as_u16(), a.status);
            assert_eq!(Some(err.code.as_str()), code);
            let message = field("message").and_then(Value::as_str).unwrap_or("");
            assert_eq!(err.message, message);
            let id = field("request_id").and_then(Value::as_str).or(header_id);
            assert_eq!(err.request_id.as_deref(), id);
            assert_eq!(err.additional_data.as_ref(), field("additional_data"));
            assert!(err.retry_after.is_none_or(|w| w <= MAX_RETRY_AFTER));
            assert!(err.to_string().contains(err.code.as_str()));
        }
        if let Some(u) = unexpected {
            assert_eq!(u.status.as_u16(), a.status);
            assert!(u.snippet.chars().count() <= 200);
            assert_eq!(u.snippet.trim(), u.snippet);
            assert!(!u.snippet.chars().any(char::is_control), "{:?}", u.snippet);
            // One line (a `Content-Type` may hold a tab).
            assert!(!u.to_string().chars().any(|c| c.is_control() && c != '\t'));
            assert_eq!(u.request_id.as_deref(), header_id);
            assert_eq!(
                u.from_edge,
                headers.contains_key("cf-ray") && !headers.contains_key(REQUEST_ID_HEADER)
            );
        }
    }
    check_classes(&res, &headers, error.map(|e| &e.code));
}

fn check_classes<B>(res: &Response<B>, headers: &HeaderMap, code: Option<&NotionErrorCode>) {
    let class = NotionClassifier.classify_response(res);
    let status = res.status().as_u16();
    let known = |class: &str| Some(class.to_owned());
    let by_code = code.and_then(|code| match code.as_str() {
        "rate_limited" | "service_overload" => known("throttled"),
        "conflict_error"
        | "internal_server_error"
        | "bad_gateway"
        | "service_unavailable"
        | "database_connection_unavailable"
        | "gateway_timeout" => known("transient"),
        c if NotionErrorCode::from(c).is_known() => known("permanent"),
        _ => None,
    });
    let expected = match status {
        ..400 => "success".to_owned(),
        429 | 529 => "throttled".to_owned(),
        409 | 500 | 502 | 503 | 504 => "transient".to_owned(),
        500..=599 if from_edge(headers) => "transient".to_owned(),
        400..=499 => "permanent".to_owned(),
        _ => by_code.unwrap_or_else(|| {
            HttpClassifier::classify_status(res.status(), None)
                .as_str()
                .to_owned()
        }),
    };
    assert_eq!(class.as_str(), expected, "{status} {code:?}");
    assert!(class.retry_after().is_none_or(|w| w <= MAX_RETRY_AFTER));
    if class == Class::Success {
        assert_eq!(class.retry_after(), None);
    }
    let breaker = NotionBreakerClassifier.classify_response(res);
    if status == 409 {
        assert_eq!(breaker, Class::Permanent);
    } else {
        assert_eq!(breaker.as_str(), class.as_str());
    }
}

/// What bulwark renders as Notion's error body reads back as the same error.
fn check_error_round_trip(err: &NotionError) {
    let body = serde_json::to_vec(&err.to_json()).expect("JSON");
    let back = NotionError::from_response(err.status, &HeaderMap::new(), &body);
    assert_eq!(back.as_ref(), Ok(err));
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// No whitespace outside strings.
fn is_compact(json: &[u8]) -> bool {
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b.is_ascii_whitespace() {
            return false;
        }
    }
    true
}

/// `value` written another way: keys in random order, random whitespace, characters escaped
/// at random (`\u` escapes, surrogate pairs).
fn scrambled(value: &Value, rng: &mut Rng, out: &mut String) {
    let ws = |rng: &mut Rng, out: &mut String| {
        if rng.bool() {
            out.push_str(pick(rng, &[" ", "\n", "\t", " \r\n "]));
        }
    };
    ws(rng, out);
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                scrambled(item, rng, out);
            }
            ws(rng, out);
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            rng.shuffle(&mut entries);
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                scrambled_string(key, rng, out);
                ws(rng, out);
                out.push(':');
                scrambled(item, rng, out);
            }
            ws(rng, out);
            out.push('}');
        }
        Value::String(s) => scrambled_string(s, rng, out),
        other => out.push_str(&other.to_string()),
    }
    ws(rng, out);
}

fn scrambled_string(s: &str, rng: &mut Rng, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' || c.is_control() || rng.u8(..4) == 0 {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
}

/// `canonical_json` keeps the JSON value, is idempotent, compact, and independent of how the
/// value was written; it declines exactly what is not JSON or holds a non-integer number.
fn check_canonical(bytes: &Bytes) {
    let out = canonical_json(bytes);
    let parsed = serde_json::from_slice::<Value>(bytes).ok();
    let Some(value) = parsed else {
        assert_eq!(out, None);
        return;
    };
    let Some(canonical) = out else {
        assert!(has_float(&value), "declined {value}");
        return;
    };
    assert!(!has_float(&value));
    assert_eq!(
        serde_json::from_slice::<Value>(&canonical).ok().as_ref(),
        Some(&value)
    );
    assert!(is_compact(&canonical));
    assert_eq!(canonical_json(&canonical).as_ref(), Some(&canonical));
    let mut other = String::new();
    scrambled(&value, &mut Rng::with_seed(bytes.len() as u64), &mut other);
    assert_eq!(
        canonical_json(other.as_bytes()).as_ref(),
        Some(&canonical),
        "{other}"
    );
}

fn json_input(rng: &mut Rng) -> Bytes {
    let sample = br#"{"filter":{"property":"Done","checkbox":{"equals":true}},"sorts":[{"timestamp":"created_time","direction":"descending"}],"page_size":100,"start_cursor":null,"query":"caf\u00e9 \ud83d\ude00"}"#;
    Bytes::from(match rng.u8(..6) {
        0..=2 => fuzz::json(rng, 6).into_bytes(),
        3..=4 => fuzz::mutate(
            rng,
            sample,
            &[b"{", b"}", b"[", b"]", b"\"k\":", b"1.0", b"-0", b"1e2"],
        ),
        _ => fuzz::bytes(rng, 64),
    })
}

/// How a server that decodes escapes and resolves dot and empty segments reads `path`: the
/// route after its first `/v1/`.
fn served_route(path: &str) -> Option<String> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|&b| hex(b)),
            bytes.get(i + 2).and_then(|&b| hex(b)),
        ) {
            (b'%', Some(h), Some(l)) => {
                decoded.push(u8::try_from(h * 16 + l).unwrap_or(0));
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let root = if decoded.starts_with('/') { "/" } else { "" };
    let normal = format!("{root}{}/", segments.join("/"));
    let start = normal.find("/v1/")?;
    Some(normal[start + 3..].trim_end_matches('/').to_owned())
}

/// Read-only and cacheable only where a server reads the path as a read: a read-only POST is
/// `/search` or a `…/query` outside the write-only trees as the server sees it, a cacheable GET
/// is never under `/file_uploads` or `/oauth`; neither answer changes with a query, a trailing
/// slash or a mount prefix.
fn check_route((method, path): &(Method, String)) {
    let read_only = is_read_only_post(path);
    let plain_path = path.split(['?', '#']).next().unwrap_or_default();
    let mut variants = vec![
        format!("{plain_path}?filter=%2e%2e/comments"),
        format!("{plain_path}/"),
    ];
    if plain_path.starts_with('/') {
        variants.push(format!("/mount{plain_path}"));
    }
    for variant in variants {
        assert_eq!(is_read_only_post(&variant), read_only, "{variant}");
    }
    let write_only = |r: &str| {
        ["/comments", "/file_uploads", "/oauth"]
            .iter()
            .any(|p| r == *p || r.starts_with(&format!("{p}/")))
    };
    if read_only {
        let route = served_route(path).expect("an API path");
        assert!(
            route == "/search" || route.ends_with("/query"),
            "{path} as {route}"
        );
        assert!(!write_only(&route), "{path} as {route}");
    }
    let Ok(uri) = path.parse::<Uri>() else {
        return;
    };
    let uri_read_only = is_read_only_post(uri.path());
    assert_eq!(
        is_idempotent(method, &uri),
        method == Method::POST && uri_read_only
    );
    assert_eq!(is_cacheable(&Method::POST, &uri), uri_read_only);
    for get in [Method::GET, Method::HEAD] {
        if is_cacheable(&get, &uri) {
            let route = served_route(uri.path()).expect("an API path");
            assert!(
                !route.starts_with("/file_uploads") && !route.starts_with("/oauth"),
                "{uri}"
            );
        }
    }
    if !matches!(*method, Method::GET | Method::HEAD | Method::POST) {
        assert!(!is_cacheable(method, &uri));
    }
}

const ROUTE_SEGMENTS: &[&str] = &[
    "search",
    "query",
    "databases",
    "data_sources",
    "db_1",
    "pages",
    "blocks",
    "children",
    "comments",
    "file_uploads",
    "oauth",
    "token",
    "templates",
    "users",
];

fn route_input(rng: &mut Rng) -> (Method, String) {
    let methods = [
        Method::POST,
        Method::POST,
        Method::GET,
        Method::HEAD,
        Method::PATCH,
    ];
    let method = methods[rng.usize(..methods.len())].clone();
    let sample = pick(
        rng,
        &[
            "/v1/search",
            "/v1/databases/db_1/query",
            "/v1/data_sources/ds_1/query?filter_properties=title",
            "/v1/comments/query",
            "/v1/file_uploads/f1",
            "/v1/oauth/token",
            "/prefix/v1/pages/p1",
        ],
    );
    let path = match rng.u8(..4) {
        0 => sample.to_owned(),
        1 => fuzz::mutate_str(
            rng,
            sample,
            &[b"/", b"//", b"..", b"%2e", b"%2f", b"/v1/", b"comments"],
        ),
        _ => fuzz::path(rng, ROUTE_SEGMENTS),
    };
    (method, path)
}

proptest! {
    #[test]
    fn error_responses_are_read_the_notion_way(seed in any::<u64>()) {
        check_answer(&answer(&mut Rng::with_seed(seed)));
    }

    #[test]
    fn notion_errors_read_back_what_bulwark_writes(seed in any::<u64>()) {
        check_error_round_trip(&notion_error(&mut Rng::with_seed(seed)));
    }

    #[test]
    fn canonical_json_keeps_the_value_and_is_idempotent(seed in any::<u64>()) {
        check_canonical(&json_input(&mut Rng::with_seed(seed)));
    }

    #[test]
    fn routes_are_read_only_only_where_a_server_reads_a_read(seed in any::<u64>()) {
        check_route(&route_input(&mut Rng::with_seed(seed)));
    }

    #[test]
    fn notions_read_only_routes_are_recognised(
        id in "[a-zA-Z0-9_-]{1,36}",
        which in 0usize..3,
        mount in prop::sample::select(vec!["", "/notion", "/a/b"]),
        tail in prop::sample::select(vec!["", "/", "?page_size=10", "/?x=%2e%2e"]),
    ) {
        let route = match which {
            0 => "/v1/search".to_owned(),
            1 => format!("/v1/databases/{id}/query"),
            _ => format!("/v1/data_sources/{id}/query"),
        };
        let path = format!("{mount}{route}{tail}");
        prop_assert!(is_read_only_post(&path), "{}", path);
        let uri: Uri = path.parse().unwrap();
        prop_assert!(is_idempotent(&Method::POST, &uri) && is_cacheable(&Method::POST, &uri));
    }
}

/// Regression: escapes and dot segments before the route (`/v1%2fcomments/v1/x/query`, which a
/// server decoding `%2f` reads as `/v1/comments/…`) made a write look like a read-only query,
/// and `/v1/./file_uploads/f1` or `/v1//oauth/x` made GETs a server reads under
/// `/file_uploads` or `/oauth` cacheable.
#[test]
fn escapes_and_dot_segments_anywhere_in_the_path_fail_safe() {
    assert!(!is_read_only_post("/v1%2fcomments/v1/x/query"));
    assert!(!is_read_only_post("/a/%2e%2e/v1/search"));
    for path in [
        "/v1/./file_uploads/f1",
        "/v1//oauth/x",
        "/v1/%66ile_uploads/f1",
    ] {
        assert!(
            !is_cacheable(&Method::GET, &path.parse().unwrap()),
            "{path}"
        );
    }
    assert!(is_cacheable(&Method::GET, &"/v1/pages/p1".parse().unwrap()));
}

#[test]
#[ignore = "a million inputs: run with `cargo test --release fuzz_ -- --ignored`"]
fn fuzz_notion_error_body() {
    fuzz::run(
        "notion_error_body",
        |rng| (answer(rng), notion_error(rng)),
        |(answer, error)| {
            check_answer(answer);
            check_error_round_trip(error);
        },
    );
}

#[test]
#[ignore = "a million inputs: run with `cargo test --release fuzz_ -- --ignored`"]
fn fuzz_canonical_json() {
    fuzz::run("canonical_json", json_input, check_canonical);
}

#[test]
#[ignore = "a million inputs: run with `cargo test --release fuzz_ -- --ignored`"]
fn fuzz_routes() {
    fuzz::run("routes", route_input, check_route);
}
