//! `RetryLayer` against FakeNotion over real HTTP with a hyper-util client.

use std::time::Duration;

use bulwark::{
    http::BufferedBody,
    retry::{Backoff, RetryLayer},
};
use bulwark_testkit::{FakeNotion, Fault, Matcher};
use http::{Method, Request};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Layer, ServiceExt};

const TOKEN: &str = "secret_retry";

fn request(base: &str, method: Method, path: &str, body: &str) -> Request<BufferedBody> {
    Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("notion-version", "2025-09-03")
        .header("content-type", "application/json")
        .body(BufferedBody::from(body.to_owned()))
        .unwrap()
}

fn layer() -> RetryLayer {
    // Short waits keep the test fast; the rules are the defaults'.
    RetryLayer::new().max_retries(6).backoff(
        Backoff::exponential(Duration::from_millis(2)).max_delay(Duration::from_millis(20)),
    )
}

async fn create_page(fake: &FakeNotion, title: &str) -> String {
    let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let body = serde_json::json!({
        "parent": {"database_id": bulwark_testkit::SEED_DATABASE_ID},
        "properties": {"Name": {"title": [{"text": {"content": title}}]}}
    })
    .to_string();
    let res = client
        .request(request(&fake.url(), Method::POST, "/v1/pages", &body))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let page: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    page["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_read_succeeds_under_30_percent_502s() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .start()
        .await
        .unwrap();
    let id = create_page(&fake, "read me").await;
    fake.clear_requests();
    fake.faults().failure_ratio(0.3, 7);

    let layer = layer();
    let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let svc = layer.layer(client);
    let reads = 100;
    for _ in 0..reads {
        let res = svc
            .clone()
            .oneshot(request(
                &fake.url(),
                Method::GET,
                &format!("/v1/pages/{id}"),
                "",
            ))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let log = fake.requests();
    let failed = log.iter().filter(|r| r.status == 502).count();
    assert!(failed > 10, "the fault ratio was applied: {failed} 502s");
    assert_eq!(log.len(), reads + failed, "one retry per 502, no more");
    assert_eq!(layer.stats().retries as usize, failed);
}

#[tokio::test]
async fn page_creation_under_30_percent_502s_never_creates_a_page_twice() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .start()
        .await
        .unwrap();
    // The 502 comes *after* the page was written: the ambiguous failure.
    fake.faults()
        .failure_ratio_with(0.3, 11, Fault::StatusAfterApply(502));

    let layer = layer();
    let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let svc = layer.layer(client);
    let writes = 60;
    let mut answered_502 = 0;
    for i in 0..writes {
        let body = serde_json::json!({
            "parent": {"database_id": bulwark_testkit::SEED_DATABASE_ID},
            "properties": {"Name": {"title": [{"text": {"content": format!("page {i}")}}]}}
        })
        .to_string();
        let res = svc
            .clone()
            .oneshot(request(&fake.url(), Method::POST, "/v1/pages", &body))
            .await
            .unwrap();
        if res.status() == 502 {
            answered_502 += 1;
        }
    }
    assert!(
        answered_502 > 5,
        "the fault ratio was applied: {answered_502}"
    );
    let posts = fake
        .requests()
        .iter()
        .filter(|r| r.is(&Method::POST, "/v1/pages"))
        .count();
    assert_eq!(posts, writes, "no POST was repeated");
    assert_eq!(fake.page_count(), writes, "every page exists exactly once");
    let mut titles: Vec<_> = fake.pages().iter().filter_map(|p| p.title()).collect();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), writes, "no title appears twice");
}

#[tokio::test]
async fn page_creation_is_retried_on_429_and_with_an_idempotency_key() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .start()
        .await
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let svc = layer().layer(client);
    let body = serde_json::json!({
        "parent": {"database_id": bulwark_testkit::SEED_DATABASE_ID},
        "properties": {"Name": {"title": [{"text": {"content": "throttled"}}]}}
    })
    .to_string();

    // A 429 was not applied: retried for a POST too, after its Retry-After.
    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::RateLimited {
            retry_after_secs: 1,
        }],
    );
    let started = tokio::time::Instant::now();
    let res = svc
        .clone()
        .oneshot(request(&fake.url(), Method::POST, "/v1/pages", &body))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(fake.page_count(), 1);

    // A 502 on a POST carrying Idempotency-Key is retried.
    fake.faults().script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::Status(502)],
    );
    let mut req = request(&fake.url(), Method::POST, "/v1/pages", &body);
    req.headers_mut()
        .insert("idempotency-key", "k-1".parse().unwrap());
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(fake.page_count(), 2);
}

#[tokio::test]
async fn refused_connections_are_retried_then_returned_as_the_clients_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let layer = layer().max_retries(2);
    let err = layer
        .layer(client)
        .oneshot(request(
            &format!("http://127.0.0.1:{port}"),
            Method::POST,
            "/v1/pages",
            "{}",
        ))
        .await
        .unwrap_err();
    assert!(err.is_connect(), "the inner error type is kept: {err:?}");
    assert_eq!(layer.stats().attempts, 3);
}
