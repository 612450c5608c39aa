//! The data source's schema: retrievable with `GET /v1/data_sources/{id}`, changeable with
//! `PATCH /v1/data_sources/{id}` as Notion documents it and with `FakeNotion::set_schema`,
//! and queries follow it (what `bulwark triage --expect-properties` compares against).

use bulwark_testkit::{FakeNotion, SEED_DATA_SOURCE_ID};
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

async fn call(fake: &FakeNotion, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let request = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", fake.url()))
        .header("authorization", "Bearer secret_schema")
        .header("notion-version", "2025-09-03")
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("a valid request");
    let response = client.request(request).await.expect("FakeNotion answers");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, serde_json::from_slice(&body).expect("JSON"))
}

fn types(properties: &Value) -> Vec<(String, String)> {
    let mut types: Vec<(String, String)> = properties
        .as_object()
        .expect("an object")
        .iter()
        .map(|(name, p)| (name.clone(), p["type"].as_str().unwrap_or("").to_owned()))
        .collect();
    types.sort();
    types
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect()
}

#[tokio::test]
async fn patch_adds_renames_retypes_and_removes_properties() {
    let fake = FakeNotion::builder().no_rate_limit().start().await.unwrap();
    let path = format!("/v1/data_sources/{SEED_DATA_SOURCE_ID}");

    let (status, ds) = call(&fake, Method::GET, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(types(&ds["properties"]), pairs(&[("Name", "title")]));

    let (status, ds) = call(
        &fake,
        Method::PATCH,
        &path,
        Some(json!({"properties": {
            "Status": {"select": {"options": [{"name": "Done"}]}},
            "Due": {"date": {}},
            "Old": {"rich_text": {}},
        }})),
    )
    .await;
    assert_eq!(status, 200, "{ds}");
    assert_eq!(ds["object"], "data_source");
    assert_eq!(
        types(&ds["properties"]),
        pairs(&[
            ("Due", "date"),
            ("Name", "title"),
            ("Old", "rich_text"),
            ("Status", "select")
        ])
    );

    let (status, ds) = call(
        &fake,
        Method::PATCH,
        &path,
        Some(json!({"properties": {
            "Old": null,
            "Status": {"multi_select": {}},
            "Due": {"name": "Deadline"},
        }})),
    )
    .await;
    assert_eq!(status, 200, "{ds}");
    let expected = pairs(&[
        ("Deadline", "date"),
        ("Name", "title"),
        ("Status", "multi_select"),
    ]);
    assert_eq!(types(&ds["properties"]), expected);
    // Retrieved again (and through the testkit API): the change stuck.
    let (_, ds) = call(&fake, Method::GET, &path, None).await;
    assert_eq!(types(&ds["properties"]), expected);
    assert_eq!(types(&fake.schema()), expected);

    // The query follows the schema: Status is a multi_select now.
    let query = format!("{path}/query");
    let (status, body) = call(
        &fake,
        Method::POST,
        &query,
        Some(json!({"filter": {"property": "Status", "select": {"equals": "Done"}}})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "validation_error");
    let (status, _) = call(
        &fake,
        Method::POST,
        &query,
        Some(json!({"filter": {"property": "Status", "multi_select": {"contains": "Done"}}})),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_patches_are_notion_errors_and_change_nothing() {
    let fake = FakeNotion::builder().no_rate_limit().start().await.unwrap();
    let path = format!("/v1/data_sources/{SEED_DATA_SOURCE_ID}");
    for body in [
        json!({"properties": {"Name": null}}),
        json!({"properties": {"Name": {"select": {}}}}),
        json!({"properties": {"Missing": null}}),
        json!({"properties": {"Typeless": {"name": "x"}}}),
        json!({"properties": [1]}),
        json!({"title": "not rich text"}),
    ] {
        let (status, answer) = call(&fake, Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["code"], "validation_error", "{body}");
    }
    assert_eq!(types(&fake.schema()), pairs(&[("Name", "title")]));
    let (status, answer) = call(
        &fake,
        Method::PATCH,
        "/v1/data_sources/ds_nope",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("object_not_found"))
    );
}

#[tokio::test]
async fn set_schema_is_what_get_returns() {
    let fake = FakeNotion::builder().no_rate_limit().start().await.unwrap();
    fake.set_schema([("Task", "title"), ("Owner", "people"), ("Due", "date")]);
    let (status, ds) = call(
        &fake,
        Method::GET,
        &format!("/v1/data_sources/{SEED_DATA_SOURCE_ID}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        types(&ds["properties"]),
        pairs(&[("Due", "date"), ("Owner", "people"), ("Task", "title")])
    );
    assert_eq!(ds["properties"]["Task"]["id"], "title");
    assert_eq!(ds["properties"]["Owner"]["name"], "Owner");
}
