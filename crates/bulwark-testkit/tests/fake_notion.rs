//! FakeNotion over real HTTP, through hyper-util's legacy client.

use std::collections::HashSet;
use std::time::Duration;

use bulwark_testkit::{
    FakeNotion, Fault, Matcher, StatusIndicator, SEED_DATABASE_ID, SEED_DATA_SOURCE_ID,
};
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const VERSION: &str = "2025-09-03";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One answer, fully read.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn request_id_header(&self) -> Option<&str> {
        self.headers
            .get("x-notion-request-id")
            .and_then(|v| v.to_str().ok())
    }

    /// Checks the Notion error shape and returns the body.
    fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        assert_eq!(body["object"], "error");
        assert_eq!(body["status"], status);
        assert_eq!(body["code"], code);
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        let id = body["request_id"].as_str().expect("request_id");
        assert_eq!(id.len(), 36);
        assert_eq!(self.request_id_header(), Some(id));
        body
    }

    fn assert_ok(&self) -> Value {
        assert_eq!(
            self.status,
            200,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        let id = body["request_id"].as_str().expect("request_id");
        assert_eq!(self.request_id_header(), Some(id));
        body
    }
}

/// A request with `Authorization: Bearer <token>` and `Notion-Version`.
fn request(
    fake: &FakeNotion,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("{}{path}", fake.url()))
        .header("authorization", format!("Bearer {token}"))
        .header("notion-version", VERSION)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .expect("valid request")
}

async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Reply {
    try_send(client, request).await.expect("an HTTP answer")
}

async fn try_send(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

async fn call(
    client: &HttpClient,
    fake: &FakeNotion,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> Reply {
    send(client, request(fake, method, path, "secret_a", body)).await
}

async fn unlimited() -> FakeNotion {
    FakeNotion::builder()
        .no_rate_limit()
        .start()
        .await
        .expect("start")
}

async fn create_page(client: &HttpClient, fake: &FakeNotion, title: &str) -> Reply {
    let body = json!({
        "parent": {"data_source_id": SEED_DATA_SOURCE_ID},
        "properties": {"Name": {"title": [{"text": {"content": title}}]}},
    })
    .to_string();
    call(client, fake, Method::POST, "/v1/pages", Some(&body)).await
}

#[tokio::test]
async fn errors_have_notion_shape() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens(["secret_a", "secret_b"])
        .start()
        .await
        .unwrap();
    let c = client();
    let url = |path: &str| format!("{}{path}", fake.url());

    // 401: no Authorization at all, and an unknown token.
    let no_auth = Request::get(url("/v1/users/me"))
        .header("notion-version", VERSION)
        .body(Full::default())
        .unwrap();
    send(&c, no_auth).await.assert_error(401, "unauthorized");
    send(
        &c,
        request(&fake, Method::GET, "/v1/users/me", "secret_x", None),
    )
    .await
    .assert_error(401, "unauthorized");

    // 400 missing_version.
    let no_version = Request::get(url("/v1/users/me"))
        .header("authorization", "Bearer secret_a")
        .body(Full::default())
        .unwrap();
    send(&c, no_version)
        .await
        .assert_error(400, "missing_version");

    // 404 for unknown ids.
    call(
        &c,
        &fake,
        Method::GET,
        "/v1/pages/0f5e1b2c-0000-4000-8000-000000000000",
        None,
    )
    .await
    .assert_error(404, "object_not_found");
    call(
        &c,
        &fake,
        Method::POST,
        "/v1/data_sources/ds_404/query",
        Some("{}"),
    )
    .await
    .assert_error(404, "object_not_found");
    call(&c, &fake, Method::GET, "/v1/blocks/nope/children", None)
        .await
        .assert_error(404, "object_not_found");

    // Bad bodies.
    call(&c, &fake, Method::POST, "/v1/pages", Some("{not json"))
        .await
        .assert_error(400, "invalid_json");
    call(&c, &fake, Method::POST, "/v1/search", Some("[1, 2]"))
        .await
        .assert_error(400, "validation_error");
    call(
        &c,
        &fake,
        Method::POST,
        "/v1/pages",
        Some(r#"{"properties": {}}"#),
    )
    .await
    .assert_error(400, "validation_error");
    call(
        &c,
        &fake,
        Method::POST,
        "/v1/search",
        Some(r#"{"page_size": 101}"#),
    )
    .await
    .assert_error(400, "validation_error");
    call(
        &c,
        &fake,
        Method::GET,
        "/v1/blocks/x/children?page_size=abc",
        None,
    )
    .await
    .assert_error(400, "validation_error");

    // Unknown routes and wrong methods.
    call(&c, &fake, Method::GET, "/v1/nope", None)
        .await
        .assert_error(400, "invalid_request_url");
    call(&c, &fake, Method::DELETE, "/v1/users/me", None)
        .await
        .assert_error(400, "invalid_request_url");

    // Every one of them was recorded.
    assert_eq!(fake.requests().len(), 13);
    assert!(fake.requests().iter().all(|r| r.status >= 400));
    assert_eq!(fake.page_count(), 0);
}

#[tokio::test]
async fn scripted_fault_statuses_have_notion_bodies() {
    let fake = unlimited().await;
    let c = client();
    fake.faults().script([
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::Status(504),
        Fault::Status(529),
        Fault::Status(409),
        Fault::Status(429),
        Fault::RateLimited {
            retry_after_secs: 7,
        },
    ]);
    let expected = [
        (500, "internal_server_error"),
        (502, "bad_gateway"),
        (503, "service_unavailable"),
        (504, "gateway_timeout"),
        (529, "service_overload"),
        (409, "conflict_error"),
        (429, "rate_limited"),
        (429, "rate_limited"),
    ];
    let mut retry_afters = Vec::new();
    for (status, code) in expected {
        let reply = call(&c, &fake, Method::GET, "/v1/users/me", None).await;
        let body = reply.assert_error(status, code);
        if status == 429 {
            assert_eq!(
                body["additional_data"]["rate_limit_reason"],
                "public_api_request_rate_limit"
            );
            retry_afters.push(reply.headers["retry-after"].to_str().unwrap().to_owned());
        }
    }
    assert_eq!(retry_afters, ["1", "7"]);
    assert_eq!(fake.faults().remaining(), 0);
    call(&c, &fake, Method::GET, "/v1/users/me", None)
        .await
        .assert_ok();
}

#[tokio::test]
async fn rate_limit_is_per_token_and_refusals_are_free() {
    let fake = FakeNotion::builder()
        .rate_limit(3, 3)
        .start()
        .await
        .unwrap();
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let reply = send(
            &c,
            request(&fake, Method::GET, "/v1/users/me", "token_a", None),
        )
        .await;
        if reply.status == 429 {
            let body = reply.assert_error(429, "rate_limited");
            assert_eq!(
                body["additional_data"]["rate_limit_reason"],
                "public_api_request_rate_limit"
            );
            let retry_after: u64 = reply.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry_after >= 1);
        } else {
            reply.assert_ok();
        }
        statuses.push(reply.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(&statuses[..3], [200, 200, 200]);

    // Token B has its own bucket.
    for _ in 0..3 {
        send(
            &c,
            request(&fake, Method::GET, "/v1/users/me", "token_b", None),
        )
        .await
        .assert_ok();
    }
    let log = fake.requests();
    assert_eq!(log.len(), 13);
    assert_eq!(log.iter().filter(|r| r.status == 429).count(), 7);
}

#[tokio::test]
async fn script_runs_in_order() {
    let fake = unlimited().await;
    let c = client();
    fake.faults()
        .script([Fault::Status(502), Fault::Pass, Fault::Status(503)]);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            call(&c, &fake, Method::GET, "/v1/users/me", None)
                .await
                .status,
        );
    }
    assert_eq!(statuses, [502, 200, 503, 200]);
}

#[tokio::test]
async fn script_for_matches_only_its_route() {
    let fake = unlimited().await;
    let c = client();
    let page = create_page(&c, &fake, "target").await.assert_ok();
    let page_path = format!("/v1/pages/{}", page["id"].as_str().unwrap());
    fake.faults().script_for(
        Matcher::new(Method::GET, "/v1/pages/"),
        [Fault::Status(503), Fault::Status(504)],
    );

    call(&c, &fake, Method::GET, "/v1/users/me", None)
        .await
        .assert_ok();
    call(&c, &fake, Method::GET, &page_path, None)
        .await
        .assert_error(503, "service_unavailable");
    // Same prefix, other method: not matched.
    call(&c, &fake, Method::PATCH, &page_path, Some("{}"))
        .await
        .assert_ok();
    create_page(&c, &fake, "other").await.assert_ok();
    call(&c, &fake, Method::GET, &page_path, None)
        .await
        .assert_error(504, "gateway_timeout");
    let again = call(&c, &fake, Method::GET, &page_path, None)
        .await
        .assert_ok();
    assert_eq!(again["id"], page["id"]);
    assert_eq!(
        again["properties"]["Name"]["title"][0]["plain_text"],
        "target"
    );
}

#[tokio::test]
async fn status_after_apply_creates_the_page_and_answers_502() {
    let fake = unlimited().await;
    let c = client();
    fake.faults().script([Fault::StatusAfterApply(502)]);

    create_page(&c, &fake, "Invoice 17")
        .await
        .assert_error(502, "bad_gateway");
    assert_eq!(fake.page_count(), 1, "the write landed");

    // The blind retry makes a duplicate.
    let retried = create_page(&c, &fake, "Invoice 17").await.assert_ok();
    assert_eq!(retried["object"], "page");
    assert_eq!(retried["parent"]["data_source_id"], SEED_DATA_SOURCE_ID);
    let titles: Vec<_> = fake.pages().iter().filter_map(|p| p.title()).collect();
    assert_eq!(titles, ["Invoice 17", "Invoice 17"]);
}

#[tokio::test]
async fn outage_switches_at_run_time() {
    let fake = unlimited().await;
    let c = client();
    call(&c, &fake, Method::GET, "/v1/users/me", None)
        .await
        .assert_ok();
    fake.faults().script([Fault::Status(500)]);

    fake.faults().outage(true);
    for _ in 0..3 {
        call(&c, &fake, Method::GET, "/v1/users/me", None)
            .await
            .assert_error(503, "service_unavailable");
    }
    create_page(&c, &fake, "during outage")
        .await
        .assert_error(503, "service_unavailable");
    assert_eq!(fake.page_count(), 0);
    assert_eq!(
        fake.faults().remaining(),
        1,
        "scripts wait for the outage to end"
    );

    fake.faults().outage(false);
    call(&c, &fake, Method::GET, "/v1/users/me", None)
        .await
        .assert_error(500, "internal_server_error");
    call(&c, &fake, Method::GET, "/v1/users/me", None)
        .await
        .assert_ok();
}

#[tokio::test]
async fn request_log_records_what_was_sent() {
    let fake = FakeNotion::builder().start().await.unwrap();
    let c = client();
    let body = json!({
        "parent": {"database_id": SEED_DATABASE_ID},
        "properties": {"Name": {"title": [{"text": {"content": "logged"}}]}},
    })
    .to_string();
    send(
        &c,
        request(&fake, Method::POST, "/v1/pages", "secret_log", Some(&body)),
    )
    .await
    .assert_ok();
    let no_auth = Request::get(format!("{}/v1/users/me", fake.url()))
        .body(Full::default())
        .unwrap();
    send(&c, no_auth).await.assert_error(401, "unauthorized");
    let page_id = fake.pages()[0].id.clone();
    send(
        &c,
        request(
            &fake,
            Method::GET,
            &format!("/v1/blocks/{page_id}/children?page_size=1"),
            "secret_log",
            None,
        ),
    )
    .await
    .assert_ok();

    let log = fake.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].method, Method::POST);
    assert_eq!(log[0].path, "/v1/pages");
    assert_eq!(log[0].query, None);
    assert_eq!(log[0].token.as_deref(), Some("secret_log"));
    assert_eq!(log[0].body, Bytes::from(body));
    assert_eq!(
        log[0].json().unwrap()["properties"]["Name"]["title"][0]["text"]["content"],
        "logged"
    );
    assert_eq!(log[0].status, 200);
    assert_eq!(log[0].headers["notion-version"], VERSION);
    assert!(log[0].request_id.is_some());
    assert_eq!(log[1].token, None);
    assert_eq!(log[1].status, 401);
    assert!(log[1].is(&Method::GET, "/v1/users/me"));
    assert_eq!(log[2].query.as_deref(), Some("page_size=1"));
    assert!(log[0].at <= log[1].at && log[1].at <= log[2].at);

    fake.clear_requests();
    assert!(fake.requests().is_empty());
    assert_eq!(fake.page_count(), 1, "clearing the log keeps the pages");
}

#[tokio::test]
async fn queries_paginate_without_duplicates() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .seed_pages(250)
        .start()
        .await
        .unwrap();
    let c = client();
    assert_eq!(fake.page_count(), 250);

    for (path, version, list_type) in [
        (
            format!("/v1/data_sources/{SEED_DATA_SOURCE_ID}/query"),
            VERSION,
            "page_or_data_source",
        ),
        (
            format!("/v1/databases/{SEED_DATABASE_ID}/query"),
            "2022-06-28",
            "page_or_database",
        ),
    ] {
        let mut seen = HashSet::new();
        let mut sizes = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let mut body = json!({"page_size": 100});
            if let Some(cursor) = &cursor {
                body["start_cursor"] = json!(cursor);
            }
            let mut req = request(
                &fake,
                Method::POST,
                &path,
                "secret_a",
                Some(&body.to_string()),
            );
            req.headers_mut()
                .insert("notion-version", version.parse().unwrap());
            let page = send(&c, req).await.assert_ok();
            assert_eq!(page["object"], "list");
            assert_eq!(page["type"], list_type);
            assert!(page[list_type].is_object());
            let results = page["results"].as_array().unwrap();
            sizes.push(results.len());
            for row in results {
                assert_eq!(row["object"], "page");
                assert!(
                    seen.insert(row["id"].as_str().unwrap().to_owned()),
                    "duplicate row"
                );
            }
            assert_eq!(page["has_more"], page["next_cursor"].is_string());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(seen.len(), 250);
    }

    // Old versions see the database parent, new ones the data source.
    let mut old = request(
        &fake,
        Method::POST,
        "/v1/databases/db_1/query",
        "t",
        Some(r#"{"page_size": 1}"#),
    );
    old.headers_mut()
        .insert("notion-version", "2022-06-28".parse().unwrap());
    let old = send(&c, old).await.assert_ok();
    assert_eq!(old["results"][0]["parent"]["type"], "database_id");

    // Search finds titles and paginates too.
    let found = call(
        &c,
        &fake,
        Method::POST,
        "/v1/search",
        Some(r#"{"query": "seed page 1", "page_size": 5}"#),
    )
    .await
    .assert_ok();
    let titles: Vec<_> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["properties"]["Name"]["title"][0]["plain_text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(titles.len(), 5);
    assert!(titles.iter().all(|t| t.starts_with("Seed page 1")));
    assert_eq!(found["has_more"], true);
    assert_eq!(found["type"], "page_or_data_source");

    call(
        &c,
        &fake,
        Method::POST,
        "/v1/data_sources/ds_1/query",
        Some(r#"{"start_cursor": "bogus"}"#),
    )
    .await
    .assert_error(400, "validation_error");
}

/// Creates a row with a title, a rich-text `External ID` and a number `Score`; its id.
async fn create_row(
    client: &HttpClient,
    fake: &FakeNotion,
    external_id: &str,
    score: f64,
) -> String {
    let body = json!({
        "parent": {"data_source_id": SEED_DATA_SOURCE_ID},
        "properties": {
            "Name": {"title": [{"text": {"content": format!("Row {external_id}")}}]},
            "External ID": {"rich_text": [{"text": {"content": external_id}}]},
            "Score": {"number": score},
        },
    })
    .to_string();
    let page = call(client, fake, Method::POST, "/v1/pages", Some(&body))
        .await
        .assert_ok();
    page["id"].as_str().expect("an id").to_owned()
}

fn result_ids(list: &Value) -> Vec<String> {
    list["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|row| row["id"].as_str().expect("an id").to_owned())
        .collect()
}

#[tokio::test]
async fn queries_apply_filters_and_sorts_before_paginating() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .seed_pages(3)
        .start()
        .await
        .unwrap();
    let c = client();
    let x1 = create_row(&c, &fake, "x-1", 1.0).await;
    let x2 = create_row(&c, &fake, "x-2", 5.0).await;
    let x3 = create_row(&c, &fake, "x-3", 3.0).await;
    let path = format!("/v1/data_sources/{SEED_DATA_SOURCE_ID}/query");

    // `and` of a property and a timestamp filter: exactly the x-2 row.
    let body = json!({"filter": {"and": [
        {"property": "External ID", "rich_text": {"equals": "x-2"}},
        {"timestamp": "created_time", "created_time": {"on_or_after": "2000-01-01"}},
    ]}});
    let found = call(&c, &fake, Method::POST, &path, Some(&body.to_string()))
        .await
        .assert_ok();
    assert_eq!(result_ids(&found), std::slice::from_ref(&x2));
    assert_eq!(found["results"][0]["properties"]["Score"]["number"], 5.0);
    assert_eq!(found["has_more"], false);

    // `or` sorted by a property, descending; the same through the old databases route.
    let body = json!({
        "filter": {"or": [
            {"property": "External ID", "rich_text": {"equals": "x-1"}},
            {"property": "Score", "number": {"greater_than_or_equal_to": 3}},
        ]},
        "sorts": [{"property": "Score", "direction": "descending"}],
    });
    let sorted = call(&c, &fake, Method::POST, &path, Some(&body.to_string()))
        .await
        .assert_ok();
    let expected = [x2.clone(), x3.clone(), x1.clone()];
    assert_eq!(result_ids(&sorted), expected);
    let mut old = request(
        &fake,
        Method::POST,
        &format!("/v1/databases/{SEED_DATABASE_ID}/query"),
        "secret_a",
        Some(&body.to_string()),
    );
    old.headers_mut()
        .insert("notion-version", "2022-06-28".parse().unwrap());
    assert_eq!(result_ids(&send(&c, old).await.assert_ok()), expected);

    // One row a page: the cursors walk the filtered, sorted rows.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut page_body = body.clone();
        page_body["page_size"] = json!(1);
        if let Some(cursor) = &cursor {
            page_body["start_cursor"] = json!(cursor);
        }
        let page = call(&c, &fake, Method::POST, &path, Some(&page_body.to_string()))
            .await
            .assert_ok();
        walked.extend(result_ids(&page));
        assert_eq!(page["has_more"], page["next_cursor"].is_string());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(walked, expected);

    // Seeded rows have no External ID: an empty value, so `is_empty` finds them.
    let body = json!({"filter": {"property": "External ID", "rich_text": {"is_empty": true}}});
    let empty = call(&c, &fake, Method::POST, &path, Some(&body.to_string()))
        .await
        .assert_ok();
    assert_eq!(result_ids(&empty).len(), 3);

    // Notion's validation errors.
    let bad = [
        (
            json!({"filter": {"property": "Nope", "rich_text": {"equals": "x"}}}),
            "Could not find property with name or id: Nope.",
        ),
        (
            json!({"filter": {"property": "Score", "number": {"equals": "5"}}}),
            "body failed validation: body.filter.number.equals should be a number",
        ),
        (
            json!({"sorts": [{"property": "Score", "direction": "sideways"}]}),
            "body failed validation: body.sorts[0].direction",
        ),
    ];
    for (body, message) in bad {
        let error = call(&c, &fake, Method::POST, &path, Some(&body.to_string()))
            .await
            .assert_error(400, "validation_error");
        let text = error["message"].as_str().unwrap();
        assert!(text.starts_with(message), "{body}: {text}");
    }
    fake.shutdown().await;
}

/// FakeNotion's schema has only `Name`; a property a create named counts as the database's
/// even when a fault kept the create from landing, as in a real database it exists first.
#[tokio::test]
async fn a_property_a_faulted_create_named_can_be_queried() {
    let fake = unlimited().await;
    let c = client();
    let path = format!("/v1/data_sources/{SEED_DATA_SOURCE_ID}/query");
    let filter =
        json!({"filter": {"property": "External ID", "rich_text": {"equals": "x-9"}}}).to_string();
    call(&c, &fake, Method::POST, &path, Some(&filter))
        .await
        .assert_error(400, "validation_error");

    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::Status(504)],
    );
    let body = json!({
        "parent": {"database_id": SEED_DATABASE_ID},
        "properties": {"External ID": {"rich_text": [{"text": {"content": "x-9"}}]}},
    })
    .to_string();
    call(&c, &fake, Method::POST, "/v1/pages", Some(&body))
        .await
        .assert_error(504, "gateway_timeout");
    assert_eq!(fake.page_count(), 0);
    let found = call(&c, &fake, Method::POST, &path, Some(&filter))
        .await
        .assert_ok();
    assert_eq!(found["results"], json!([]));

    // A request with an unknown token teaches nothing.
    let other = json!({
        "parent": {"database_id": SEED_DATABASE_ID},
        "properties": {"Stranger": {"number": 1}},
    })
    .to_string();
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens(["secret_a"])
        .start()
        .await
        .unwrap();
    send(
        &c,
        request(&fake, Method::POST, "/v1/pages", "secret_x", Some(&other)),
    )
    .await
    .assert_error(401, "unauthorized");
    let stranger = json!({"sorts": [{"property": "Stranger", "direction": "ascending"}]});
    call(&c, &fake, Method::POST, &path, Some(&stranger.to_string()))
        .await
        .assert_error(400, "validation_error");
}

#[tokio::test]
async fn blocks_append_and_list() {
    let fake = unlimited().await;
    let c = client();
    let page = create_page(&c, &fake, "with blocks").await.assert_ok();
    let id = page["id"].as_str().unwrap();
    let children = json!({"children": [
        {"object": "block", "type": "paragraph", "paragraph": {"rich_text": [{"type": "text", "text": {"content": "one"}}]}},
        {"bulleted_list_item": {"rich_text": [{"text": {"content": "two"}}]}},
    ]})
    .to_string();
    let appended = call(
        &c,
        &fake,
        Method::PATCH,
        &format!("/v1/blocks/{id}/children"),
        Some(&children),
    )
    .await
    .assert_ok();
    assert_eq!(appended["type"], "block");
    assert_eq!(appended["results"].as_array().unwrap().len(), 2);

    let listed = call(
        &c,
        &fake,
        Method::GET,
        &format!("/v1/blocks/{id}/children?page_size=1"),
        None,
    )
    .await
    .assert_ok();
    assert_eq!(
        listed["results"][0]["paragraph"]["rich_text"][0]["plain_text"],
        "one"
    );
    assert_eq!(listed["has_more"], true);
    let next = listed["next_cursor"].as_str().unwrap();
    let rest = call(
        &c,
        &fake,
        Method::GET,
        &format!("/v1/blocks/{id}/children?start_cursor={next}"),
        None,
    )
    .await
    .assert_ok();
    assert_eq!(rest["results"][0]["type"], "bulleted_list_item");
    assert_eq!(rest["has_more"], false);
    assert_eq!(fake.block_count(), 2);

    let too_many = json!({"children": vec![json!({"divider": {}}); 101]}).to_string();
    call(
        &c,
        &fake,
        Method::PATCH,
        &format!("/v1/blocks/{id}/children"),
        Some(&too_many),
    )
    .await
    .assert_error(400, "validation_error");
    assert_eq!(fake.block_count(), 2);
}

#[tokio::test]
async fn dropped_connection_is_a_client_error() {
    let fake = unlimited().await;
    let c = client();
    fake.faults().script([Fault::DropConnection]);
    let result = try_send(
        &c,
        request(&fake, Method::GET, "/v1/users/me", "secret_a", None),
    )
    .await;
    assert!(result.is_err(), "expected an error, got {result:?}");

    call(&c, &fake, Method::GET, "/v1/users/me", None)
        .await
        .assert_ok();
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0, 200]);
}

#[tokio::test]
async fn cloudflare_html_has_cf_ray_and_no_request_id() {
    let fake = unlimited().await;
    let c = client();
    fake.faults()
        .script([Fault::CloudflareHtml(502), Fault::CloudflareHtml(522)]);
    for status in [502, 522] {
        let reply = call(&c, &fake, Method::GET, "/v1/users/me", None).await;
        assert_eq!(reply.status, status);
        assert!(reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(reply.headers.contains_key("cf-ray"));
        assert_eq!(reply.headers["server"], "cloudflare");
        assert!(!reply.headers.contains_key("x-notion-request-id"));
        assert!(String::from_utf8_lossy(&reply.body).contains(&status.to_string()));
        assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
    }
    let log = fake.requests();
    assert_eq!(log[1].status, 522);
    assert_eq!(log[1].request_id, None);
}

#[tokio::test]
async fn failure_ratio_is_seeded() {
    async fn statuses(ratio: f64, seed: u64) -> Vec<u16> {
        let fake = FakeNotion::builder()
            .no_rate_limit()
            .failure_ratio(ratio, seed)
            .start()
            .await
            .unwrap();
        let c = client();
        let mut out = Vec::new();
        for _ in 0..30 {
            out.push(
                call(&c, &fake, Method::GET, "/v1/users/me", None)
                    .await
                    .status,
            );
        }
        out
    }
    let first = statuses(0.3, 42).await;
    assert_eq!(first, statuses(0.3, 42).await);
    let failed = first.iter().filter(|s| **s == 502).count();
    assert!((1..30).contains(&failed), "{first:?}");
    assert!(first.iter().all(|s| *s == 200 || *s == 502));

    // The ratio can apply the write before failing.
    let fake = unlimited().await;
    let c = client();
    fake.faults()
        .failure_ratio_with(1.0, 7, Fault::StatusAfterApply(502));
    create_page(&c, &fake, "lands")
        .await
        .assert_error(502, "bad_gateway");
    create_page(&c, &fake, "lands")
        .await
        .assert_error(502, "bad_gateway");
    assert_eq!(fake.page_count(), 2);
    fake.faults().clear();
    create_page(&c, &fake, "lands").await.assert_ok();
}

#[tokio::test]
async fn status_page_reports_the_indicator() {
    let fake = FakeNotion::start().await.unwrap();
    let c = client();
    let get = || {
        Request::get(format!("{}/api/v2/status.json", fake.url()))
            .body(Full::default())
            .unwrap()
    };
    let reply = send(&c, get()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"]["indicator"], "none");
    assert_eq!(reply.json()["page"]["name"], "Notion");

    fake.faults().outage(true);
    fake.set_status_indicator(StatusIndicator::Major);
    let reply = send(&c, get()).await;
    assert_eq!(reply.status, 200, "faults apply to /v1 only");
    assert_eq!(reply.json()["status"]["indicator"], "major");
    assert_eq!(
        reply.json()["status"]["description"],
        "Partial System Outage"
    );
    assert_eq!(fake.status_indicator(), StatusIndicator::Major);
}

#[tokio::test]
async fn latency_and_delay_are_added() {
    let fake = unlimited().await;
    let c = client();
    fake.faults().latency(Duration::from_millis(100));
    let started = tokio::time::Instant::now();
    call(&c, &fake, Method::GET, "/v1/users/me", None)
        .await
        .assert_ok();
    assert!(started.elapsed() >= Duration::from_millis(100));

    fake.faults().latency(Duration::ZERO);
    fake.faults()
        .script([Fault::Delay(Duration::from_millis(100))]);
    let started = tokio::time::Instant::now();
    call(&c, &fake, Method::GET, "/v1/users/me", None)
        .await
        .assert_ok();
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let fake = unlimited().await;
    let c = client();
    call(&c, &fake, Method::GET, "/v1/users/me", None)
        .await
        .assert_ok();
    let addr = fake.addr();
    fake.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let dropped = unlimited().await;
    let addr = dropped.addr();
    drop(dropped);
    // The abort lands on a later turn of the runtime.
    let mut closed = false;
    for _ in 0..100 {
        tokio::task::yield_now().await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed, "the listener outlived the FakeNotion");
}

#[tokio::test]
async fn pages_round_trip() {
    let fake = unlimited().await;
    let c = client();
    let page = create_page(&c, &fake, "first").await.assert_ok();
    let id = page["id"].as_str().unwrap();
    for key in [
        "created_time",
        "last_edited_time",
        "url",
        "parent",
        "properties",
    ] {
        assert!(!page[key].is_null(), "{key}");
    }
    let patch = json!({"properties": {"Name": {"title": [{"text": {"content": "renamed"}}]}}, "in_trash": true});
    let patched = call(
        &c,
        &fake,
        Method::PATCH,
        &format!("/v1/pages/{id}"),
        Some(&patch.to_string()),
    )
    .await
    .assert_ok();
    assert_eq!(
        patched["properties"]["Name"]["title"][0]["plain_text"],
        "renamed"
    );
    assert_eq!(patched["in_trash"], true);
    assert_eq!(fake.page(id).unwrap().title().as_deref(), Some("renamed"));

    // Ids without hyphens work too.
    let compact = id.replace('-', "");
    call(
        &c,
        &fake,
        Method::GET,
        &format!("/v1/pages/{compact}"),
        None,
    )
    .await
    .assert_ok();

    // A child page under it.
    let child = json!({"parent": {"page_id": id}, "properties": {"title": {"title": [{"text": {"content": "child"}}]}}});
    let child = call(
        &c,
        &fake,
        Method::POST,
        "/v1/pages",
        Some(&child.to_string()),
    )
    .await
    .assert_ok();
    assert_eq!(child["parent"]["page_id"], id);
    let me = call(&c, &fake, Method::GET, "/v1/users/me", None)
        .await
        .assert_ok();
    assert_eq!(me["type"], "bot");
}

#[tokio::test]
async fn odd_input_gets_an_answer_not_a_panic() {
    let fake = unlimited().await;
    let c = client();
    fake.faults().script([
        Fault::Status(200),
        Fault::Status(1000),
        Fault::CloudflareHtml(42),
    ]);
    let statuses = [
        call(&c, &fake, Method::GET, "/v1/users/me", None)
            .await
            .status,
        call(&c, &fake, Method::GET, "/v1/users/me", None)
            .await
            .status,
        call(&c, &fake, Method::GET, "/v1/users/me", None)
            .await
            .status,
    ];
    assert_eq!(statuses, [500, 500, 502]);

    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies = [
        deep.as_str(),
        r#"{"page_size": 1e300}"#,
        r#"{"page_size": -1}"#,
        r#"{"page_size": "10"}"#,
        r#"{"start_cursor": 5}"#,
        r#"{"query": {"nested": true}}"#,
        r#"{"filter": {"value": "nope"}}"#,
        r#"{"parent": {"page_id": "ünïcødé"}, "properties": {"x": 1}}"#,
        r#"{"parent": 7}"#,
        "\u{0}\u{1}",
        "null",
    ];
    for (i, body) in bodies.iter().enumerate() {
        let path = if i >= 7 { "/v1/pages" } else { "/v1/search" };
        let reply = call(&c, &fake, Method::POST, path, Some(body)).await;
        assert!(
            (400..500).contains(&reply.status),
            "{body:?} -> {}",
            reply.status
        );
        reply.json();
    }
    let paths = [
        "/v1/pages/%ZZ",
        "/v1/pages/%E2%9C%93",
        "/v1//pages",
        "/v1/blocks/x/children?page_size=99999999999999999999999",
        "/v1/blocks/x/children?start_cursor=%",
        "/v1",
        "/",
        "/api/v2/status.jsonx",
    ];
    for path in paths {
        let reply = call(&c, &fake, Method::GET, path, None).await;
        assert!(
            (400..500).contains(&reply.status),
            "{path} -> {}",
            reply.status
        );
    }
    assert_eq!(fake.page_count(), 0);
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<FakeNotion>();
    check::<bulwark_testkit::FaultHandle>();
    check::<bulwark_testkit::RecordedRequest>();
}

/// The in-process emulator is the same core: a write lands in its page store, faults apply,
/// and a dropped connection is a `ConnectionReset` error instead of a response.
#[tokio::test(start_paused = true)]
async fn in_process_shares_the_core_and_drops_as_a_reset() {
    use tower::ServiceExt;
    let notion = FakeNotion::builder()
        .no_rate_limit()
        .script([Fault::DropConnection, Fault::StatusAfterApply(502)])
        .in_process();
    let create = || {
        http::Request::post(format!("{}/v1/pages", notion.base_url()))
            .header("authorization", "Bearer secret")
            .header("notion-version", "2025-09-03")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                r#"{"parent":{"data_source_id":"ds_1"},"properties":{"Name":{"title":[{"text":{"content":"in process"}}]}}}"#,
            )))
            .unwrap()
    };
    let err = notion.clone().oneshot(create()).await.unwrap_err();
    let io = err.downcast_ref::<std::io::Error>().expect("an io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
    assert_eq!(
        notion.page_count(),
        0,
        "dropped before anything was applied"
    );
    let res = notion.clone().oneshot(create()).await.unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(notion.page_count(), 1, "applied, then answered 502");
    let res = notion.clone().oneshot(create()).await.unwrap();
    assert_eq!(res.status(), 200);
    let statuses: Vec<u16> = notion.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0, 502, 200]);
}
