//! Unit tests of the decision in `api.rs`: order of the checks, the charge,
//! and that no input panics.

use bytes::Bytes;
use http::{Method, StatusCode};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::api::{answer, Incoming, RequestBody};
use super::wire::Answer;
use super::FakeMark2Notion;

fn state(quota: u64, used: u64) -> super::Mark2NotionHandle {
    FakeMark2Notion::builder()
        .quota(quota)
        .used(used)
        .in_process()
        .handle()
}

fn ask(
    handle: &super::Mark2NotionHandle,
    method: &Method,
    path: &str,
    key: Option<&str>,
    body: RequestBody,
) -> Answer {
    let mut state = crate::lock(&handle.state);
    answer(
        &mut state,
        &Incoming {
            method,
            path,
            api_key: key,
            body: &body,
        },
    )
}

fn convert(handle: &super::Mark2NotionHandle, key: Option<&str>, body: &str) -> Answer {
    ask(
        handle,
        &Method::POST,
        "/api/convert",
        key,
        RequestBody::Read(Bytes::from(body.to_owned())),
    )
}

fn json(answer: &Answer) -> Value {
    serde_json::from_str(&answer.body).expect("every body is JSON")
}

const KEY: Option<&str> = Some("mk_test_key");

#[test]
fn auth_comes_before_faults_and_faults_before_the_quota() {
    let h = state(1, 1);
    h.outage(true).fail_next(1);
    let a = convert(&h, None, "{");
    assert_eq!(
        (a.status, a.usage.is_none()),
        (StatusCode::UNAUTHORIZED, true)
    );
    let a = convert(&h, Some("nope"), "{");
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.usage.map(|u| u.current), Some(1));
    assert_eq!(
        convert(&h, KEY, "{").status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    h.outage(false);
    assert_eq!(h.pending_failures(), 1, "the outage consumed no failure");
    assert_eq!(
        convert(&h, KEY, "{").status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let a = ask(
        &h,
        &Method::GET,
        "/api/convert",
        KEY,
        RequestBody::Unreadable,
    );
    assert_eq!(a.status, StatusCode::NOT_FOUND, "routing before the quota");
    assert_eq!(convert(&h, KEY, "{").status, StatusCode::TOO_MANY_REQUESTS);
    h.set_quota(2);
    let a = ask(
        &h,
        &Method::POST,
        "/api/convert/",
        KEY,
        RequestBody::TooLarge,
    );
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        json(&a),
        json!({"status": "fail", "data": {"body": "Request body too large"}})
    );
    assert_eq!(h.usage().current, 1, "nothing but a success counts");
}

#[test]
fn append_lists_every_bad_field_and_charges_only_success() {
    let h = state(10, 0);
    let append = |body: &str| {
        ask(
            &h,
            &Method::POST,
            "/api/append",
            KEY,
            RequestBody::Read(Bytes::from(body.to_owned())),
        )
    };
    let a = append(r#"{"markdown": 3, "after": 1}"#);
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.body,
        r#"{"status":"fail","data":{"markdown":"Missing or invalid markdown content","notionToken":"Missing or invalid notionToken","pageId":"Missing or invalid pageId","after":"Invalid after block id"}}"#
    );
    let a = append("[1, 2]");
    assert_eq!(json(&a)["data"].as_object().map(|o| o.len()), Some(3));
    let a = append(r#"{"markdown": "a\nb", "notionToken": "t", "pageId": "p", "after": null}"#);
    assert_eq!(a.status, StatusCode::OK);
    let body = json(&a);
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["requestCount"], 1);
    assert_eq!(body["data"]["lastBlockId"].as_str().map(str::len), Some(36));
    assert_eq!(a.usage.map(|u| (u.current, u.remaining())), Some((1, 9)));
    assert_eq!(
        convert(&h, KEY, r#"{"markdown": ""}"#).status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(h.usage().current, 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever arrives, the answer is one of the documented ones, its body
    /// is JSON with a `status`, and only a 200 is charged.
    #[test]
    fn any_request_gets_a_documented_answer(
        method in prop::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::DELETE]),
        path in prop_oneof![Just("/api/convert".to_owned()), Just("/api/append".to_owned()), "\\PC{0,20}"],
        key in prop_oneof![Just(None), Just(Some("mk_test_key".to_owned())), any::<String>().prop_map(Some)],
        body in prop_oneof![
            any::<Vec<u8>>(),
            "\\PC{0,64}".prop_map(String::into_bytes),
            (any::<Option<String>>(), any::<Option<String>>(), any::<bool>()).prop_map(|(m, p, t)| {
                json!({"markdown": m, "pageId": p, "notionToken": t.then_some("tok"), "after": 7})
                    .to_string()
                    .into_bytes()
            }),
        ],
        used in 0u64..4,
    ) {
        let h = state(3, used);
        let a = ask(&h, &method, &path, key.as_deref(), RequestBody::Read(Bytes::from(body)));
        let allowed = [200, 400, 401, 403, 404, 429];
        prop_assert!(allowed.contains(&a.status.as_u16()), "{}", a.status);
        let value = json(&a);
        prop_assert!(value["status"].is_string());
        let charged = h.usage().current - used;
        prop_assert_eq!(charged, u64::from(a.status == StatusCode::OK));
        prop_assert_eq!(a.usage.is_none(), a.status == StatusCode::UNAUTHORIZED);
    }
}
