//! Ambiguous writes settled against FakeNotion: a create that failed after it was applied is
//! found by its dedupe property and never made twice, one that failed before is sent again,
//! a page update is read back, and what cannot be settled says "may have been applied" in
//! its type — through the layer (in process, paused time) and through the ready client (real
//! loopback HTTP).

use bulwark::{
    http::{BoxError, BufferedBody},
    notion::{Client, Error, MaybeApplied, NotionLayer, Reconciled, RECONCILED_HEADER},
};
use bulwark_testkit::{FakeNotion, Fault, InProcessNotion, Matcher, SEED_DATA_SOURCE_ID};
use http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};

const TOKEN: &str = "secret_reconcile";
const KEY: &str = "External ID";

fn fake() -> InProcessNotion {
    FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .seed_pages(2)
        .in_process()
}

fn create_body(key: &str) -> Value {
    json!({
        "parent": {"data_source_id": SEED_DATA_SOURCE_ID},
        "properties": {
            "Name": {"title": [{"text": {"content": format!("row {key}")}}]},
            KEY: {"rich_text": [{"text": {"content": key}}]},
        }
    })
}

fn request(
    fake: &InProcessNotion,
    method: Method,
    path: &str,
    body: &Value,
) -> Request<BufferedBody> {
    Request::builder()
        .method(method)
        .uri(format!("{}{path}", fake.base_url()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(BufferedBody::from(body.to_string()))
        .unwrap()
}

/// Sends one request through the preset (`dedupe` on or off); the status, the mark, the body.
async fn send(
    fake: &InProcessNotion,
    layer: &NotionLayer,
    method: Method,
    path: &str,
    body: &Value,
) -> Result<(u16, Option<Reconciled>, Value), BoxError> {
    let svc = layer.layer(fake.clone());
    let res = svc.oneshot(request(fake, method, path, body)).await?;
    let mark = Reconciled::of(&res);
    if let Some(mark) = mark {
        assert_eq!(res.headers()[RECONCILED_HEADER], mark.as_str());
    }
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await?.to_bytes();
    Ok((
        status,
        mark,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn with_key(fake: &InProcessNotion, key: &str) -> usize {
    fake.pages()
        .iter()
        .filter(|p| p.properties[KEY]["rich_text"][0]["plain_text"] == key)
        .count()
}

fn dedupe() -> NotionLayer {
    NotionLayer::builder()
        .dedupe_creates_by(KEY)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_create_applied_before_its_502_is_found_not_made_twice() {
    let fake = fake();
    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::StatusAfterApply(502)],
    );
    let (status, mark, page) = send(
        &fake,
        &dedupe(),
        Method::POST,
        "/v1/pages",
        &create_body("k-1"),
    )
    .await
    .unwrap();
    assert_eq!((status, mark), (200, Some(Reconciled::Found)));
    assert_eq!(page["object"], "page");
    assert_eq!(with_key(&fake, "k-1"), 1);
    assert_eq!(page["id"], fake.pages().last().unwrap().id.as_str());
    // The create, then the lookup; nothing sent twice.
    let sent: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        sent,
        [
            "/v1/pages".to_owned(),
            format!("/v1/data_sources/{SEED_DATA_SOURCE_ID}/query")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_create_that_failed_before_it_was_applied_is_sent_again_once() {
    let fake = fake();
    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::Status(504)],
    );
    let (status, mark, _) = send(
        &fake,
        &dedupe(),
        Method::POST,
        "/v1/pages",
        &create_body("k-2"),
    )
    .await
    .unwrap();
    assert_eq!((status, mark), (200, Some(Reconciled::Resent)));
    assert_eq!(with_key(&fake, "k-2"), 1);
    // A reset mid-request: the same.
    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::DropConnection],
    );
    let (status, mark, _) = send(
        &fake,
        &dedupe(),
        Method::POST,
        "/v1/pages",
        &create_body("k-3"),
    )
    .await
    .unwrap();
    assert_eq!((status, mark), (200, Some(Reconciled::Resent)));
    assert_eq!(with_key(&fake, "k-3"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_create_that_keeps_failing_unapplied_says_so_after_two_resends() {
    let fake = fake();
    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        vec![Fault::Status(502); 3],
    );
    let (status, mark, _) = send(
        &fake,
        &dedupe(),
        Method::POST,
        "/v1/pages",
        &create_body("k-4"),
    )
    .await
    .unwrap();
    assert_eq!((status, mark), (502, Some(Reconciled::NotApplied)));
    assert_eq!(with_key(&fake, "k-4"), 0);
    let creates = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/pages")
        .count();
    assert_eq!(creates, 3, "the create and two resends, no more");
}

#[tokio::test(start_paused = true)]
async fn a_failed_lookup_leaves_the_create_marked_may_have_been_applied() {
    let fake = fake();
    fake.faults()
        .script_for(
            Matcher::new(Method::POST, "/v1/pages"),
            [Fault::StatusAfterApply(502)],
        )
        .script_for(
            Matcher::new(Method::POST, "/v1/data_sources/"),
            [Fault::Status(403)],
        );
    let (status, mark, _) = send(
        &fake,
        &dedupe(),
        Method::POST,
        "/v1/pages",
        &create_body("k-5"),
    )
    .await
    .unwrap();
    assert_eq!((status, mark), (502, Some(Reconciled::MayHaveBeenApplied)));
    assert_eq!(with_key(&fake, "k-5"), 1, "applied, and not sent again");
}

#[tokio::test(start_paused = true)]
async fn without_the_option_an_ambiguous_create_is_never_resent_and_marked() {
    let fake = fake();
    let layer = NotionLayer::builder().build().unwrap();
    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::StatusAfterApply(502)],
    );
    let (status, mark, _) = send(
        &fake,
        &layer,
        Method::POST,
        "/v1/pages",
        &create_body("k-6"),
    )
    .await
    .unwrap();
    assert_eq!((status, mark), (502, Some(Reconciled::MayHaveBeenApplied)));
    assert_eq!(fake.requests().len(), 1);
    // No answer at all: the error's type says it.
    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::DropConnection],
    );
    let err = send(
        &fake,
        &layer,
        Method::POST,
        "/v1/pages",
        &create_body("k-7"),
    )
    .await
    .unwrap_err();
    let maybe = err
        .downcast_ref::<MaybeApplied>()
        .expect("a MaybeApplied error");
    assert_eq!((maybe.method(), maybe.path()), ("POST", "/v1/pages"));
    // A create refused outright (429, 400) is not ambiguous: no mark.
    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::Status(400)],
    );
    let (status, mark, _) = send(
        &fake,
        &layer,
        Method::POST,
        "/v1/pages",
        &create_body("k-8"),
    )
    .await
    .unwrap();
    assert_eq!((status, mark), (400, None));
}

#[tokio::test(start_paused = true)]
async fn page_updates_are_read_back_and_sent_again_only_when_unapplied() {
    let fake = fake();
    let layer = NotionLayer::builder().build().unwrap();
    let id = fake.pages()[0].id.clone();
    let path = format!("/v1/pages/{id}");
    let update =
        |title: &str| json!({"properties": {"Name": {"title": [{"text": {"content": title}}]}}});

    fake.faults().script_for(
        Matcher::new(Method::PATCH, "/v1/pages/"),
        [Fault::StatusAfterApply(502)],
    );
    let (status, mark, page) = send(&fake, &layer, Method::PATCH, &path, &update("first"))
        .await
        .unwrap();
    assert_eq!((status, mark), (200, Some(Reconciled::Verified)));
    assert_eq!(page["id"], id.as_str());
    let patches = |fake: &InProcessNotion| {
        fake.requests()
            .iter()
            .filter(|r| r.method == Method::PATCH)
            .count()
    };
    assert_eq!(patches(&fake), 1);

    fake.faults().script_for(
        Matcher::new(Method::PATCH, "/v1/pages/"),
        [Fault::Status(503)],
    );
    let (status, mark, _) = send(&fake, &layer, Method::PATCH, &path, &update("second"))
        .await
        .unwrap();
    assert_eq!((status, mark), (200, Some(Reconciled::Resent)));
    assert_eq!(fake.page(&id).unwrap().title().as_deref(), Some("second"));
    assert_eq!(patches(&fake), 3);

    // Switched off: the failure, marked.
    let off = NotionLayer::builder()
        .reconcile_page_updates(false)
        .build()
        .unwrap();
    fake.faults().script_for(
        Matcher::new(Method::PATCH, "/v1/pages/"),
        [Fault::StatusAfterApply(502)],
    );
    let (status, mark, _) = send(&fake, &off, Method::PATCH, &path, &update("third"))
        .await
        .unwrap();
    assert_eq!((status, mark), (502, Some(Reconciled::MayHaveBeenApplied)));
}

#[tokio::test(start_paused = true)]
async fn reads_and_other_writes_pass_unmarked_or_marked_only() {
    let fake = fake();
    let layer = dedupe();
    let id = fake.pages()[0].id.clone();
    let (status, mark, _) = send(
        &fake,
        &layer,
        Method::GET,
        &format!("/v1/pages/{id}"),
        &Value::Null,
    )
    .await
    .unwrap();
    assert_eq!((status, mark), (200, None));
    fake.faults().script_for(
        Matcher::new(Method::PATCH, "/v1/blocks/"),
        [Fault::StatusAfterApply(502)],
    );
    let append = json!({"children": [{"paragraph": {"rich_text": [{"text": {"content": "x"}}]}}]});
    let (status, mark, _) = send(
        &fake,
        &layer,
        Method::PATCH,
        &format!("/v1/blocks/{id}/children"),
        &append,
    )
    .await
    .unwrap();
    assert_eq!((status, mark), (502, Some(Reconciled::MayHaveBeenApplied)));
    assert_eq!(fake.block_count(), 1, "appended once, never again");
}

/// Through the ready client over loopback HTTP: the same, as typed results.
#[tokio::test]
async fn the_client_returns_found_pages_and_maybe_applied_errors() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .start()
        .await
        .unwrap();
    let client = |dedupe: bool| {
        Client::builder(TOKEN)
            .base_url(fake.url())
            .preset(|p| if dedupe { p.dedupe_creates_by(KEY) } else { p })
            .build()
            .unwrap()
    };
    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::StatusAfterApply(502)],
    );
    let page = client(true)
        .post("pages", create_body("c-1"))
        .await
        .unwrap();
    assert_eq!(page["object"], "page");
    assert_eq!(fake.pages().len(), 1);

    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::StatusAfterApply(502)],
    );
    let err = client(false)
        .post("pages", create_body("c-2"))
        .await
        .unwrap_err();
    assert!(err.may_have_been_applied(), "{err}");
    let Error::MaybeApplied(maybe) = &err else {
        panic!("not MaybeApplied: {err:?}");
    };
    assert_eq!(maybe.notion().map(|e| e.status.as_u16()), Some(502));
    assert!(err.to_string().contains("may have been applied"));
    assert_eq!(fake.pages().len(), 2);

    // Unambiguous failures keep their own variant.
    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::Status(400)],
    );
    let err = client(false)
        .post("pages", create_body("c-3"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api(_)) && !err.may_have_been_applied());
}

#[test]
fn an_empty_dedupe_property_is_refused() {
    let err = NotionLayer::builder()
        .dedupe_creates_by(" ")
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "dedupe_creates_by");
}

/// During an outage settling gives up within the write's wait for the circuit (30 s), on top
/// of the wait the write itself had: never minutes of lookups and resends.
#[tokio::test(start_paused = true)]
async fn settling_is_bounded_by_the_write_wait_during_an_outage() {
    let fake = fake();
    fake.faults().outage(true);
    let started = tokio::time::Instant::now();
    let (status, mark, _) = send(
        &fake,
        &dedupe(),
        Method::POST,
        "/v1/pages",
        &create_body("k-9"),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(status, 503);
    assert!(
        matches!(
            mark,
            Some(Reconciled::MayHaveBeenApplied | Reconciled::NotApplied)
        ),
        "{mark:?}"
    );
    assert!(took <= std::time::Duration::from_secs(65), "took {took:?}");
    assert_eq!(with_key(&fake, "k-9"), 0);
}

/// With `check_limits`, a request over one of Notion's size limits never leaves: the client
/// gets the limit by name, FakeNotion sees nothing.
#[tokio::test]
async fn oversized_requests_fail_locally_with_the_limit_named() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .start()
        .await
        .unwrap();
    let client = Client::builder(TOKEN)
        .base_url(fake.url())
        .preset(|p| p.check_limits(true))
        .build()
        .unwrap();
    let blocks: Vec<Value> = (0..101)
        .map(|_| json!({"paragraph": {"rich_text": [{"text": {"content": "x"}}]}}))
        .collect();
    let mut body = create_body("big");
    body["children"] = Value::Array(blocks);
    let err = client.post("pages", body).await.unwrap_err();
    let Error::LimitExceeded(exceeded) = &err else {
        panic!("not LimitExceeded: {err:?}");
    };
    assert_eq!(
        exceeded.limit,
        bulwark::notion::limits::NotionLimit::Children
    );
    assert_eq!(exceeded.path, "children");
    assert!(fake.requests().is_empty(), "nothing was sent");
    // Within the limits, the same client sends as usual.
    let page = client.post("pages", create_body("small")).await.unwrap();
    assert_eq!(page["object"], "page");
}
