//! FakeNotion's request parsers against hostile input: the API's routing, JSON bodies,
//! `Authorization` and query; the filters and sorts of database queries; the control routes. Property tests at normal sizes, and the
//! ignored `fuzz_*` targets (see [`crate::fuzz`]) that feed each a million inputs.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use fastrand::Rng;
use http::{HeaderMap, HeaderValue, Method, Response};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::api::{self, ApiRequest};
use crate::bucket::{Buckets, RateLimit};
use crate::control;
use crate::fault::FaultHandle;
use crate::fuzz::{self, pick};
use crate::query::Query;
use crate::record::Log;
use crate::server::{bearer, Shared};
use crate::status::StatusPage;
use crate::store::{normalize_properties, NewParent, Page, Store, BOT_USER_ID};
use crate::wire::{Body, REQUEST_ID_HEADER};
use crate::StatusIndicator;

const TOKEN: &str = "secret_a";
const SEGMENTS: &[&str] = &[
    "users",
    "me",
    "pages",
    "databases",
    "data_sources",
    "db_1",
    "ds_1",
    "query",
    "search",
    "blocks",
    "children",
    BOT_USER_ID,
    "16d84278ab0e484c9bddb35da3bd8905",
    "16D84278AB0E484C9BDDB35DA3BD8905",
];
const METHODS: &[&str] = &[
    "GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS", "FOO",
];
/// Valid requests, each route with a body it accepts.
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/v1/users/me", ""),
    ("GET", "/v1/users", ""),
    ("GET", "/v1/users/16d84278ab0e484c9bddb35da3bd8905", ""),
    (
        "POST",
        "/v1/pages",
        r#"{"parent":{"database_id":"db_1"},"properties":{"Name":{"title":[{"text":{"content":"x"}}]},"Done":{"checkbox":true}},"children":[{"paragraph":{"rich_text":[{"text":{"content":"a","link":{"url":"https://e.x"}}}],"children":[{"to_do":{"rich_text":[]}}]}}]}"#,
    ),
    (
        "POST",
        "/v1/pages",
        r#"{"parent":{"type":"workspace","workspace":true},"icon":{"emoji":"🦀"}}"#,
    ),
    ("GET", "/v1/databases/db_1", ""),
    (
        "POST",
        "/v1/databases/db_1/query",
        r#"{"page_size":2,"filter":{"property":"Name","title":{"contains":"seed"}},"sorts":[]}"#,
    ),
    (
        "POST",
        "/v1/data_sources/ds_1/query",
        r#"{"filter":{"or":[{"property":"title","title":{"ends_with":"2"}},{"and":[{"timestamp":"created_time","created_time":{"on_or_after":"2000-01-01"}}]}]},"sorts":[{"property":"Name","direction":"descending"},{"timestamp":"last_edited_time","direction":"ascending"}]}"#,
    ),
    ("GET", "/v1/data_sources/ds_1", ""),
    (
        "POST",
        "/v1/data_sources/ds_1/query",
        r#"{"page_size":100,"start_cursor":null,"in_trash":false}"#,
    ),
    (
        "POST",
        "/v1/search",
        r#"{"query":"Seed","filter":{"value":"page","property":"object"},"page_size":1}"#,
    ),
    (
        "PATCH",
        "/v1/pages/x",
        r#"{"properties":{"Name":{"title":[]}},"in_trash":true}"#,
    ),
    ("GET", "/v1/blocks/x", ""),
    ("GET", "/v1/blocks/x/children", ""),
    (
        "PATCH",
        "/v1/blocks/x/children",
        r#"{"children":[{"type":"heading_1","heading_1":{"rich_text":[{"type":"equation","equation":{"expression":"x"}}]}}],"after":null}"#,
    ),
];
const JSON_WORDS: &[&[u8]] = &[
    b"\"parent\"",
    b"\"properties\"",
    b"\"children\"",
    b"\"page_size\"",
    b"\"start_cursor\"",
    b"\"filter\"",
    b"\"sorts\"",
    b"\"query\"",
    b"\"after\"",
    b"\"type\"",
    b"\"rich_text\"",
    b"\"title\"",
    b"\"database_id\"",
    b"\"page_id\"",
    b"\"workspace\"",
    b"\"in_trash\"",
    b"\"archived\"",
    b"\"value\"",
    b"\"and\"",
    b"\"or\"",
    b"\"property\"",
    b"\"timestamp\"",
    b"\"created_time\"",
    b"\"equals\"",
    b"\"direction\"",
    b"null",
    b"{}",
    b"[]",
    b"[{}]",
    b"1e999",
    b"-1",
    b"101",
];

/// One request as the server hands it to `api::handle`.
#[derive(Debug, Clone)]
struct Input {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

fn input(rng: &mut Rng) -> Input {
    let (method, path, body) = pick(rng, ROUTES);
    let method = if rng.u8(..8) == 0 {
        Method::from_bytes(pick(rng, METHODS).as_bytes()).unwrap_or(Method::GET)
    } else {
        Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET)
    };
    let path = match rng.u8(..6) {
        0..=2 => path.to_owned(),
        3 => fuzz::mutate_str(rng, path, &[b"/", b"..", b"%2e", b"db_1"]),
        _ => fuzz::path(rng, SEGMENTS),
    };
    let query = match rng.u8(..6) {
        0 => Some(fuzz::mutate_str(rng, "page_size=2&start_cursor=a%2Db", &[])),
        1 => Some(String::from_utf8_lossy(&fuzz::bytes(rng, 24)).into_owned()),
        _ => None,
    };
    let mut headers = HeaderMap::new();
    let auth = match rng.u8(..10) {
        0 => None,
        1 => Some(fuzz::mutate(
            rng,
            b"Bearer secret_a",
            &[b"bearer", b"Basic"],
        )),
        2 => Some(fuzz::bytes(rng, 20)),
        3 => Some(b"bearer   secret_a  ".to_vec()),
        _ => Some(b"Bearer secret_a".to_vec()),
    };
    if let Some(value) = auth.and_then(|v| HeaderValue::from_bytes(&v).ok()) {
        headers.insert(http::header::AUTHORIZATION, value);
    }
    let version = match rng.u8(..10) {
        0 => None,
        1 => Some(fuzz::mutate(rng, b"2025-09-03", &[])),
        2..=5 => Some(b"2022-06-28".to_vec()),
        _ => Some(b"2025-09-03".to_vec()),
    };
    if let Some(value) = version.and_then(|v| HeaderValue::from_bytes(&v).ok()) {
        headers.insert("notion-version", value);
    }
    let body = match rng.u8(..8) {
        0..=2 => fuzz::mutate(rng, body.as_bytes(), JSON_WORDS),
        3..=4 => body.as_bytes().to_vec(),
        5 => fuzz::json(rng, 5).into_bytes(),
        6 => fuzz::bytes(rng, 64),
        _ => Vec::new(),
    };
    Input {
        method,
        path,
        query,
        headers,
        body: Bytes::from(body),
    }
}

fn shared() -> Shared {
    Shared {
        faults: FaultHandle::default(),
        tokens: Some(HashSet::from([TOKEN.to_owned()])),
        buckets: Buckets::new(Some(RateLimit::new(1_000_000, 1_000_000))),
        store: Mutex::new(Store::new(3)),
        log: Mutex::new(Log::new(0)),
        status: Mutex::new(StatusPage::new(StatusIndicator::None)),
    }
}

/// The bytes of an answer (the fake's bodies are `Full`: ready at once).
fn body_of(response: Response<Body>) -> Bytes {
    let mut collect = std::pin::pin!(response.into_body().collect());
    match collect
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(Ok(collected)) => collected.to_bytes(),
        Poll::Ready(Err(never)) => match never {},
        Poll::Pending => panic!("a Full body is never pending"),
    }
}

/// Every answer is Notion's: a JSON object carrying the request id (also in the header); an
/// error has Notion's shape and one of the statuses the fake documents; a 401 exactly when
/// the bearer token is missing or unknown; a 200 only on a route whose segments are all
/// plain (no dot segments, escapes or empty segments).
fn check_api(shared: &Shared, input: &Input) {
    let token = bearer(&input.headers);
    if let Some(token) = &token {
        assert!(!token.is_empty() && token.trim() == token, "{token:?}");
    }
    let request = ApiRequest {
        method: &input.method,
        path: &input.path,
        query: input.query.as_deref(),
        headers: &input.headers,
        token: token.as_deref(),
        body: &input.body,
        request_id: "rid-1",
    };
    // As the server does: learn the properties a create or update names, then answer.
    api::learn_properties(shared, &request);
    let response = api::handle(shared, &request);
    let status = response.status().as_u16();
    assert_eq!(response.headers()[REQUEST_ID_HEADER], "rid-1");
    let json: Value = serde_json::from_slice(&body_of(response)).expect("a JSON answer");
    assert_eq!(json["request_id"], "rid-1");
    assert_eq!(status == 401, token.as_deref() != Some(TOKEN), "{status}");
    if status == 200 {
        let rest = input.path.strip_prefix("/v1/").expect("an API path");
        assert!(
            rest.split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('%')),
            "200 for {:?}",
            input.path
        );
        assert_ne!(json["object"], "error");
    } else {
        assert!(matches!(status, 400 | 401 | 404 | 429), "status {status}");
        assert_eq!(json["object"], "error");
        assert_eq!(json["status"], status);
        assert!(json["message"].is_string());
        let code = json["code"].as_str().expect("a code");
        let expected: &[&str] = match status {
            400 => &[
                "missing_version",
                "invalid_request_url",
                "invalid_json",
                "validation_error",
            ],
            401 => &["unauthorized"],
            404 => &["object_not_found"],
            _ => &["rate_limited"],
        };
        assert!(expected.contains(&code), "{status} {code}");
    }
}

/// `percent_decode` as the URL standard decodes (`form_urlencoded`, the oracle).
fn check_percent_decode(text: &str) {
    let text = text.replace('&', "");
    let oracle = form_urlencoded::parse(format!("v={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    assert_eq!(api::percent_decode(&text), oracle, "{text:?}");
}

/// Each control answer is plain JSON with a documented status; only a well-formed
/// `POST /_fake/outage` changes the outage, to what it asked for.
fn check_control(faults: &FaultHandle, (method, path, body): &(Method, String, Option<Bytes>)) {
    let control = control::is_control(path);
    assert_eq!(control, path == "/_fake" || path.starts_with("/_fake/"));
    let before = faults.is_outage();
    let response = control::handle(faults, method, path, body.as_ref());
    let status = response.status().as_u16();
    let json: Value = serde_json::from_slice(&body_of(response)).expect("a JSON answer");
    assert!(json.is_object());
    assert!(matches!(status, 200 | 400 | 404 | 405 | 413), "{status}");
    let asked = body
        .as_ref()
        .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        .and_then(|v| v.get("on").and_then(Value::as_bool));
    let route = path.strip_suffix('/').unwrap_or(path);
    if route == "/_fake/outage" && method == Method::POST {
        assert_eq!(status == 200, asked.is_some());
        assert_eq!(faults.is_outage(), asked.unwrap_or(before));
        if status != 200 {
            assert!(json["error"].is_string());
        }
    } else if !(route == "/_fake/reset" && method == Method::POST) {
        assert_eq!(faults.is_outage(), before);
    }
}

fn control_input(rng: &mut Rng) -> (Method, String, Option<Bytes>) {
    let method = Method::from_bytes(pick(rng, METHODS).as_bytes()).unwrap_or(Method::GET);
    let path = match rng.u8(..4) {
        0 => fuzz::path(rng, &["_fake", "outage", "reset"]),
        1 => fuzz::mutate_str(rng, "/_fake/outage", &[b"/", b"_fake"]),
        _ => pick(
            rng,
            &["/_fake/outage", "/_fake/outage/", "/_fake/reset", "/_fake"],
        )
        .to_owned(),
    };
    let body = match rng.u8(..6) {
        0 => None,
        1 => Some(fuzz::json(rng, 3).into_bytes()),
        2 => Some(fuzz::bytes(rng, 32)),
        _ => {
            let sample = pick(rng, &[&br#"{"on":true}"#[..], br#"{"on": false}"#]);
            Some(fuzz::mutate(
                rng,
                sample,
                &[b"\"on\"", b"true", b"false", b"1"],
            ))
        }
    };
    (method, path, body.map(Bytes::from))
}

/// Query bodies near valid ones, each `filter` and `sorts` built on these.
const QUERY_SAMPLES: &[&str] = &[
    r#"{"filter":{"and":[{"property":"External ID","rich_text":{"equals":"x-2"}},{"timestamp":"created_time","created_time":{"on_or_after":"2000-01-01"}}]},"sorts":[{"property":"Score","direction":"descending"}]}"#,
    r#"{"filter":{"or":[{"property":"Score","number":{"greater_than":1}},{"and":[{"property":"Tags","multi_select":{"contains":"a"}},{"property":"Due","date":{"past_week":{}}}]}]},"sorts":[{"timestamp":"last_edited_time","direction":"ascending"},{"property":"Name","direction":"ascending"}]}"#,
    r#"{"filter":{"property":"Done","checkbox":{"does_not_equal":true}},"sorts":[{"property":"Color","direction":"descending"},{"property":"Due","direction":"ascending"}]}"#,
    r#"{"filter":{"timestamp":"last_edited_time","last_edited_time":{"before":"2024-05-01T12:00:00+02:00"}},"sorts":[{"property":"Tags","direction":"ascending"}]}"#,
];
const FILTER_WORDS: &[&[u8]] = &[
    b"\"and\"",
    b"\"or\"",
    b"{\"and\":[]}",
    b"\"property\"",
    b"\"timestamp\"",
    b"\"created_time\"",
    b"\"equals\"",
    b"\"is_empty\"",
    b"\"past_week\"",
    b"\"2024-05-01\"",
    b"\"2024-05-01T12:00:00+02:00\"",
    b"\"direction\"",
    b"\"descending\"",
    b"\"Name\"",
    b"\"title\"",
    b"\"number\"",
    b"\"date\"",
    b"true",
    b"[{}]",
];
/// Values a subtree of a sample is replaced with.
const FILTER_VALUES: &[&str] = &[
    "null",
    "true",
    "0",
    "-1e308",
    "\"\"",
    "\"Name\"",
    "\"x-2\"",
    "\"2024-02-30\"",
    "\"2024-05-01T23:59:59.999-23:59\"",
    "\"+999999-12-31\"",
    "{}",
    "[]",
    "{\"and\":[{\"or\":[{\"and\":[]}]}]}",
    "{\"property\":\"Score\",\"number\":{\"equals\":1}}",
    "{\"timestamp\":\"created_time\",\"created_time\":{\"this_week\":{}}}",
    "[{\"property\":\"Name\",\"direction\":\"descending\"}]",
];
/// Property values the rows of a query case carry, of every type, some malformed.
const ROW_PROPERTIES: &[&str] = &[
    r#"{"Name":{"title":[{"text":{"content":"x-2"}}]},"External ID":{"rich_text":[{"text":{"content":"x-2"}}]},"Score":{"number":3},"Tags":{"multi_select":[{"name":"a"}]},"Due":{"date":{"start":"2024-05-01T12:00:00+02:00"}},"Done":{"checkbox":true},"Color":{"select":{"name":"Red"}}}"#,
    r#"{"Name":{"title":[]},"Score":{"number":null},"Due":{"date":null},"Color":{"select":null},"Tags":{"multi_select":[]}}"#,
    r#"{"Name":{"title":5},"External ID":{"number":"x"},"Score":{"rich_text":{"a":1}},"Due":{"date":{"start":"nope"}},"Done":{"checkbox":"yes"},"Tags":{"multi_select":[1,{"name":2}]}}"#,
    r#"{"Score":{"number":1e308},"Due":{"date":{"start":"-9999-01-01"}},"Color":{"status":{"name":"Red"}}}"#,
];

/// A query body: a sample mutated as text, a sample with a subtree replaced, or any JSON as
/// `filter` or `sorts`; and the properties of one more row (any JSON).
fn query_input(rng: &mut Rng) -> (String, String) {
    let sample = pick(rng, QUERY_SAMPLES);
    let body = match rng.u8(..4) {
        0 => fuzz::mutate_str(rng, sample, FILTER_WORDS),
        1 | 2 => {
            let mut body: Value = serde_json::from_str(sample).unwrap_or_default();
            for _ in 0..rng.usize(1..=3) {
                let replacement = if rng.bool() {
                    serde_json::from_str(pick(rng, FILTER_VALUES)).unwrap_or_default()
                } else {
                    serde_json::from_str(&fuzz::json(rng, 4)).unwrap_or_default()
                };
                graft(rng, &mut body, replacement);
            }
            body.to_string()
        }
        _ => {
            let key = pick(rng, &["filter", "sorts"]);
            format!("{{\"{key}\":{}}}", fuzz::json(rng, 5))
        }
    };
    let row = if rng.bool() {
        fuzz::json(rng, 4)
    } else {
        let sample = pick(rng, ROW_PROPERTIES);
        fuzz::mutate_str(rng, sample, FILTER_WORDS)
    };
    (body, row)
}

/// Replaces a random subtree of `value` (maybe `value` itself) with `replacement`.
fn graft(rng: &mut Rng, value: &mut Value, replacement: Value) {
    let len = match &*value {
        Value::Object(map) => map.len(),
        Value::Array(items) => items.len(),
        _ => 0,
    };
    if len > 0 && rng.u8(..4) != 0 {
        let i = rng.usize(..len);
        let child = match value {
            Value::Object(map) => map.values_mut().nth(i),
            Value::Array(items) => items.get_mut(i),
            _ => None,
        };
        if let Some(child) = child {
            graft(rng, child, replacement);
            return;
        }
    }
    *value = replacement;
}

/// Any `filter` and `sorts` get an answer, not a panic: Notion's validation message, or the
/// rows that pass, each once, ordered as given when there is no sort, and the same again
/// when the query runs on its own answer.
fn check_query((body, row): &(String, String)) {
    let mut store = Store::new(2);
    for props in ROW_PROPERTIES
        .iter()
        .map(|p| serde_json::from_str::<Value>(p).ok())
        .chain([serde_json::from_str::<Value>(row).ok()])
    {
        if let Ok(props) = normalize_properties(props.as_ref()) {
            store.insert_page(NewParent::Database, props, Value::Null, Value::Null);
        }
    }
    let Ok(Value::Object(body)) = serde_json::from_str::<Value>(body) else {
        return;
    };
    let rows: Vec<&Page> = store.pages().iter().collect();
    let today = time::OffsetDateTime::now_utc().date();
    match Query::from_body(
        &body,
        &Store::schema(),
        &rows,
        store.named_properties(),
        today,
    ) {
        Ok(query) => {
            let kept = query.apply(rows.iter().copied());
            let ids: Vec<&str> = kept.iter().map(|p| p.id.as_str()).collect();
            let unique: HashSet<&str> = ids.iter().copied().collect();
            assert_eq!(unique.len(), ids.len(), "a row twice");
            let positions: Vec<usize> = ids
                .iter()
                .map(|id| {
                    rows.iter()
                        .position(|p| p.id == *id)
                        .expect("one of the rows")
                })
                .collect();
            if body
                .get("sorts")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                assert!(
                    positions.windows(2).all(|w| w[0] < w[1]),
                    "without sorts the rows keep their order"
                );
            }
            let again: Vec<&str> = query
                .apply(kept.iter().copied())
                .iter()
                .map(|p| p.id.as_str())
                .collect();
            assert_eq!(
                again, ids,
                "a query keeps and orders its own answer as it is"
            );
        }
        Err(message) => {
            assert!(
                message.starts_with("body failed validation: ")
                    || message.starts_with("Could not find ")
                    || message.starts_with("database property "),
                "{message}"
            );
            assert!(message.chars().count() < 600, "{message}");
        }
    }
}

/// Every query sample is valid against the rows of [`check_query`].
#[test]
fn query_samples_are_valid() {
    let store = {
        let mut store = Store::new(0);
        for props in ROW_PROPERTIES {
            let props: Map<String, Value> =
                normalize_properties(Some(&serde_json::from_str(props).unwrap())).unwrap();
            store.insert_page(NewParent::Database, props, Value::Null, Value::Null);
        }
        store
    };
    let rows: Vec<&Page> = store.pages().iter().collect();
    let today = time::OffsetDateTime::now_utc().date();
    for sample in QUERY_SAMPLES {
        let body: Value = serde_json::from_str(sample).unwrap();
        let body = body.as_object().unwrap();
        Query::from_body(
            body,
            &Store::schema(),
            &rows,
            store.named_properties(),
            today,
        )
        .unwrap_or_else(|e| panic!("{sample}: {e}"));
    }
    let first =
        json!({"filter": serde_json::from_str::<Value>(QUERY_SAMPLES[0]).unwrap()["filter"]});
    let query = Query::from_body(
        first.as_object().unwrap(),
        &Store::schema(),
        &rows,
        store.named_properties(),
        today,
    )
    .unwrap();
    assert_eq!(
        query.apply(rows.iter().copied()).len(),
        1,
        "x-2 is the first row"
    );
}

proptest! {
    #[test]
    fn api_answers_every_request_the_notion_way(seed in any::<u64>()) {
        let shared = shared();
        check_api(&shared, &input(&mut Rng::with_seed(seed)));
    }

    #[test]
    fn percent_decode_agrees_with_the_url_standard(
        text in "([a-zA-Z0-9+ =]|%[0-9a-fA-F+-]{0,2}|%[\\s\\S]|[é😀])*",
    ) {
        check_percent_decode(&text);
    }

    #[test]
    fn query_page_size_and_cursor_round_trip(size in 0u64..200, cursor in "\\PC{0,12}") {
        let encoded: String = form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
        let query = format!("x=1&start_cursor={encoded}&&page_size={size}");
        let params = api::PageParams::from_query(Some(&query));
        if (1..=100).contains(&size) {
            let params = params.unwrap();
            prop_assert_eq!(params.size, usize::try_from(size).unwrap());
            prop_assert_eq!(params.cursor, (!cursor.is_empty()).then_some(cursor));
        } else {
            prop_assert!(params.is_err());
        }
    }

    #[test]
    fn query_filters_and_sorts_never_panic(seed in any::<u64>()) {
        check_query(&query_input(&mut Rng::with_seed(seed)));
    }

    #[test]
    fn control_routes_change_only_what_they_say(seed in any::<u64>()) {
        check_control(&FaultHandle::default(), &control_input(&mut Rng::with_seed(seed)));
    }
}

/// Regression: `%+1` decoded to byte 0x01, because `u8::from_str_radix` takes a sign.
#[test]
fn percent_escapes_with_a_sign_are_kept_as_they_are() {
    // The escape is kept; its `+` is a space, as everywhere in a query.
    assert_eq!(api::percent_decode("%+1%-1%+f"), "% 1%-1% f");
    check_percent_decode("a%+1b");
}

#[test]
#[ignore = "a million inputs: run with `cargo test --release fuzz_ -- --ignored`"]
fn fuzz_fake_api() {
    let mut shared = shared();
    let mut n = 0u32;
    fuzz::run("fake_api", input, |input| {
        // A fresh workspace now and then, so pages created by the inputs do not pile up.
        n += 1;
        if n % 1024 == 0 {
            shared = self::shared();
        }
        check_api(&shared, input);
    });
}

#[test]
#[ignore = "a million inputs: run with `cargo test --release fuzz_ -- --ignored`"]
fn fuzz_fake_query() {
    fuzz::run(
        "fake_query",
        |rng| match rng.u8(..3) {
            0 => String::from_utf8_lossy(&fuzz::bytes(rng, 40)).into_owned(),
            _ => {
                let sample = pick(
                    rng,
                    &["page_size=5&start_cursor=a%2Db", "start_cursor=%e2%9c%93+x"],
                );
                fuzz::mutate_str(
                    rng,
                    sample,
                    &[b"%", b"%2", b"%+", b"page_size=", b"start_cursor="],
                )
            }
        },
        |query| {
            check_percent_decode(query);
            if let Ok(params) = api::PageParams::from_query(Some(query)) {
                assert!((1..=100).contains(&params.size));
                assert!(params.cursor.as_ref().is_none_or(|c| !c.is_empty()));
            }
        },
    );
}

#[test]
#[ignore = "a million inputs: run with `cargo test --release fuzz_ -- --ignored`"]
fn fuzz_fake_control() {
    let faults = FaultHandle::default();
    fuzz::run("fake_control", control_input, |input| {
        check_control(&faults, input);
    });
}

#[test]
#[ignore = "a million inputs: run with `cargo test --release fuzz_ -- --ignored`"]
fn fuzz_fake_filter() {
    fuzz::run("fake_filter", query_input, check_query);
}
