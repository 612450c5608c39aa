//! The `/_fake/*` control API over real HTTP: what a script in another
//! process uses to switch faults.

use std::time::Duration;

use bulwark_testkit::{FakeNotion, Fault};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Every call of these tests must answer within this.
const DEADLINE: Duration = Duration::from_secs(5);

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends one request (a bearer token and `Notion-Version` only for `/v1`
/// paths) and returns the status and the JSON body (`Null` if not JSON).
async fn send(
    client: &HttpClient,
    fake: &FakeNotion,
    method: Method,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{}{path}", fake.url()));
    if path.starts_with("/v1/") {
        request = request
            .header("authorization", "Bearer secret_a")
            .header("notion-version", "2025-09-03");
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("valid request");
    let exchange = async {
        let response = client.request(request).await.expect("an HTTP answer");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("answered in time")
}

#[tokio::test]
async fn outage_and_reset_switch_the_api() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .start()
        .await
        .expect("start");
    let c = client();
    assert_eq!(
        send(&c, &fake, Method::GET, "/v1/users/me", "").await.0,
        200
    );

    let (status, body) = send(&c, &fake, Method::POST, "/_fake/outage", r#"{"on":true}"#).await;
    assert_eq!((status, body), (200, json!({"on": true})));
    assert!(fake.faults().is_outage());
    let (status, body) = send(&c, &fake, Method::GET, "/v1/users/me", "").await;
    assert_eq!(status, 503);
    assert_eq!(body["code"], "service_unavailable");
    assert_eq!(
        send(&c, &fake, Method::GET, "/_fake/outage", "").await,
        (200, json!({"on": true}))
    );

    let (status, body) = send(&c, &fake, Method::POST, "/_fake/outage", r#"{"on":false}"#).await;
    assert_eq!((status, body), (200, json!({"on": false})));
    assert_eq!(
        send(&c, &fake, Method::GET, "/v1/users/me", "").await.0,
        200
    );

    // Reset clears the outage and every other fault.
    fake.faults().outage(true).script([Fault::Status(500)]);
    let (status, body) = send(&c, &fake, Method::POST, "/_fake/reset", "").await;
    assert_eq!((status, body), (200, json!({"reset": true})));
    assert!(!fake.faults().is_outage());
    assert_eq!(fake.faults().remaining(), 0);
    assert_eq!(
        send(&c, &fake, Method::GET, "/v1/users/me", "").await.0,
        200
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn bad_control_requests_are_refused_and_change_nothing() {
    let fake = FakeNotion::start().await.expect("start");
    let c = client();
    for body in ["", "{}", r#"{"on":"yes"}"#, "[true]", "not json"] {
        let (status, answer) = send(&c, &fake, Method::POST, "/_fake/outage", body).await;
        assert_eq!(status, 400, "body {body:?}");
        assert!(answer["error"].is_string());
    }
    assert!(!fake.faults().is_outage());
    assert_eq!(
        send(&c, &fake, Method::DELETE, "/_fake/outage", "").await.0,
        405
    );
    assert_eq!(
        send(&c, &fake, Method::GET, "/_fake/reset", "").await.0,
        405
    );
    assert_eq!(
        send(&c, &fake, Method::POST, "/_fake/latency", "").await.0,
        404
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn control_routes_are_never_limited_faulted_delayed_or_recorded() {
    let fake = FakeNotion::builder()
        .rate_limit(1, 1)
        .script([Fault::DropConnection, Fault::Status(500)])
        .failure_ratio(1.0, 7)
        .latency(Duration::from_secs(30))
        .start()
        .await
        .expect("start");
    let c = client();
    // Far more than the rate limit allows, with a fault queued and a 30 s
    // latency: each answers at once (the DEADLINE in `send` would fail).
    for _ in 0..10 {
        assert_eq!(
            send(&c, &fake, Method::GET, "/_fake/outage", "").await,
            (200, json!({"on": false}))
        );
    }
    assert_eq!(fake.faults().remaining(), 2, "no scripted fault consumed");
    assert!(
        fake.requests().is_empty(),
        "control requests are not recorded"
    );

    assert_eq!(
        send(&c, &fake, Method::POST, "/_fake/reset", "").await.0,
        200
    );
    assert_eq!(fake.faults().remaining(), 0);
    assert_eq!(fake.faults().current_latency(), Duration::ZERO);
    // The API's token was not spent by the control calls.
    let (status, body) = send(&c, &fake, Method::GET, "/v1/users/me", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fake.requests().len(), 1);
    fake.shutdown().await;
}
