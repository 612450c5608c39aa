//! What a traced preset run shows an on-call engineer: one `bulwark.request` span per request
//! with its method, route, attempts and Notion request ids, the layers' decisions as events
//! inside it — and never the bearer token, at any level (in process, paused time).

use std::time::Duration;

use bulwark_cache::CacheBody;
use bulwark_http::BufferedBody;
use bulwark_notion::{NotionLayer, Reconciled};
use bulwark_testkit::{
    CapturedLogs, FakeNotion, Fault, InProcessNotion, Matcher, SEED_DATA_SOURCE_ID,
};
use http::{Method, Request, Response};
use serde_json::json;
use tower::{Layer, ServiceExt};

const TOKEN: &str = "secret_trace_Zq9vX41kT";
const KEY: &str = "External ID";
/// A query-string value that must never reach a span or an event.
const QUERY_MARKER: &str = "qmarker7731";

fn request(fake: &InProcessNotion, method: Method, path_and_query: &str) -> Request<BufferedBody> {
    let body = if method == Method::POST {
        json!({
            "parent": {"data_source_id": SEED_DATA_SOURCE_ID},
            "properties": {
                "Name": {"title": [{"text": {"content": "traced row"}}]},
                KEY: {"rich_text": [{"text": {"content": "trace-1"}}]},
            }
        })
        .to_string()
    } else if method == Method::PATCH {
        json!({"properties": {}}).to_string()
    } else {
        String::new()
    };
    Request::builder()
        .method(method)
        .uri(format!("{}{path_and_query}", fake.base_url()))
        .header("content-type", "application/json")
        .body(BufferedBody::from(body))
        .unwrap()
}

async fn send(
    layer: &NotionLayer,
    fake: &InProcessNotion,
    method: Method,
    path: &str,
) -> Response<CacheBody<BufferedBody>> {
    layer
        .layer(fake.clone())
        .oneshot(request(fake, method, path))
        .await
        .unwrap()
}

/// The `bulwark.request` span lines (its close events and the events inside it) that mention
/// `needle`.
fn span_lines<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.contains("bulwark.request{") && l.contains(needle))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_traced_preset_run_shows_the_request_and_never_the_token() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .seed_pages(2)
        .in_process();
    let page = fake.pages()[0].id.clone();
    let read = format!("/v1/pages/{page}");
    let layer = NotionLayer::builder()
        .token(TOKEN)
        .dedupe_creates_by(KEY)
        .breaker(|b| b.consecutive_failures(3).minimum_calls(1_000))
        .build()
        .unwrap();
    // `Debug` of the layer and of its service redact the token too.
    assert!(!format!("{layer:?}").contains(TOKEN));
    assert!(!format!("{:?}", layer.layer(fake.clone())).contains(TOKEN));

    let logs = CapturedLogs::default();
    let guard = logs.capture_all();

    // 1. A read, answered at once (and stored by the cache); its query string stays out.
    let res = send(
        &layer,
        &fake,
        Method::GET,
        &format!("{read}?{QUERY_MARKER}=1"),
    )
    .await;
    assert_eq!(res.status(), 200);

    // 2. A 502 then a 429 (Retry-After: 1), then the answer: three attempts.
    fake.faults().script_for(
        Matcher::new(Method::GET, "/v1/pages/"),
        [Fault::Status(502), Fault::Status(429)],
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    let res = send(&layer, &fake, Method::GET, &read).await;
    assert_eq!(res.status(), 200);

    // 3. A create that failed after it was applied: reconciled, not made twice.
    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::StatusAfterApply(502)],
    );
    let res = send(&layer, &fake, Method::POST, "/v1/pages").await;
    assert_eq!(res.status(), 200);
    assert_eq!(Reconciled::of(&res), Some(Reconciled::Found));

    // 4. An outage: the breaker opens, the cache answers the read stale.
    fake.faults().outage(true);
    let res = send(&layer, &fake, Method::GET, &read).await;
    assert_eq!(res.status(), 200);
    let res = send(&layer, &fake, Method::GET, &read).await;
    assert_eq!(res.status(), 200);
    fake.faults().outage(false);
    // A write meets the open circuit and waits for it (writes have no stored copy).
    let res = send(&layer, &fake, Method::PATCH, &read).await;
    assert!(res.status().as_u16() < 500, "{}", res.status());

    // 5. A 403: an `error`-level Notion error event.
    fake.faults().script_for(
        Matcher::new(Method::GET, "/v1/pages/"),
        [Fault::Status(403)],
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    let other = format!("/v1/pages/{}", fake.pages()[1].id);
    let res = send(&layer, &fake, Method::GET, &other).await;
    assert_eq!(res.status(), 403);
    drop(guard);

    let text = logs.text();
    // Never the token, nor any bearer header, nor the query string.
    assert!(!text.contains(TOKEN), "the token leaked:\n{text}");
    assert!(!text.contains("Bearer "), "a bearer header leaked:\n{text}");
    assert!(
        !text.contains(QUERY_MARKER),
        "the query string leaked:\n{text}"
    );

    // One span per request, with method, route, attempts, request ids and outcome.
    let closes: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("bulwark.request{") && l.contains("bulwark_notion: close "))
        .collect();
    assert_eq!(closes.len(), 7, "one span per request:\n{text}");
    for line in &closes {
        assert!(line.contains("http.method="), "{line}");
        assert!(line.contains("http.route=\"/v1/"), "{line}");
        assert!(line.contains("outcome="), "{line}");
    }
    assert!(closes[0].contains("attempts=1"), "{}", closes[0]);
    assert!(closes[0].contains("notion.request_id="), "{}", closes[0]);
    assert!(closes[1].contains("attempts=3"), "{}", closes[1]);
    assert!(closes[1].contains("outcome=\"ok\""), "{}", closes[1]);
    assert!(closes[2].contains("http.method=POST"), "{}", closes[2]);
    assert!(closes[2].contains("notion.request_id="), "{}", closes[2]);
    assert!(
        closes[3..5].iter().any(|l| l.contains("outcome=\"stale\"")),
        "{text}"
    );
    assert!(closes[5].contains("http.method=PATCH"), "{}", closes[5]);
    let last = closes[6];
    assert!(last.contains("outcome=\"http_error\""), "{last}");
    assert!(last.contains("http.status_code=403"), "{last}");

    // The layers' decisions, each inside the request's span.
    for needle in [
        "retrying",
        "wait_reason=\"backoff\"",
        "wait_reason=\"retry_after\"",
        "bucket paused",
        "circuit opened",
        "circuit state changed",
        "refused: circuit open",
        "circuit open: waiting for it",
        "served a stale copy",
        "the ambiguous write was applied",
        "Notion error",
    ] {
        assert!(
            !span_lines(&text, needle).is_empty(),
            "no `{needle}` inside a request span:\n{text}"
        );
    }
    // Notion errors at their levels.
    let notion_errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Notion error"))
        .collect();
    assert!(notion_errors
        .iter()
        .any(|l| l.contains("DEBUG") && l.contains("status=429")));
    assert!(notion_errors
        .iter()
        .any(|l| l.contains(" WARN") && l.contains("status=502")));
    assert!(notion_errors
        .iter()
        .any(|l| l.contains("ERROR") && l.contains("status=403")));
}
