//! The fake Mark2Notion over real HTTP on loopback (hyper-util's client) and
//! in process (paused clock): usage headers, error shapes, the quota running
//! out and the calls wasted after it did.

use std::time::Duration;

use bulwark_testkit::mark2notion::{USAGE_CURRENT, USAGE_PLAN, USAGE_QUOTA, USAGE_REMAINING};
use bulwark_testkit::{FakeMark2Notion, InProcessMark2Notion};
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tower::ServiceExt;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Every exchange of these tests must finish within this.
const DEADLINE: Duration = Duration::from_secs(5);
const KEY: &str = "mk_test_key";
const QUOTA_BODY_1000: &str = r#"{"status":"error","message":"Usage quota exceeded for current billing period","data":{"current_usage":1000,"quota":1000,"plan":"free","requests_remaining":0}}"#;

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
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8")
    }

    /// `(current, quota, remaining, plan)` from the `X-Usage-*` headers.
    fn usage(&self) -> Option<(u64, u64, u64, String)> {
        let number =
            |name: &str| -> Option<u64> { self.headers.get(name)?.to_str().ok()?.parse().ok() };
        let plan = self.headers.get(USAGE_PLAN)?.to_str().ok()?.to_owned();
        Some((
            number(USAGE_CURRENT)?,
            number(USAGE_QUOTA)?,
            number(USAGE_REMAINING)?,
            plan,
        ))
    }
}

fn request(
    base: &str,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("x-api-key", key);
    }
    builder
        .body(Full::new(body.into()))
        .expect("a valid request")
}

async fn read(
    response: http::Response<impl http_body::Body<Data = Bytes, Error = impl std::fmt::Debug>>,
) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// One exchange with the server over loopback, bounded by [`DEADLINE`].
async fn send(
    c: &HttpClient,
    fake: &FakeMark2Notion,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> Reply {
    let request = request(&fake.url(), method, path, key, body.to_owned());
    let exchange = async { read(c.request(request).await.expect("an HTTP answer")).await };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("answered in time")
}

async fn convert(c: &HttpClient, fake: &FakeMark2Notion, markdown: &str) -> Reply {
    let body = json!({ "markdown": markdown }).to_string();
    send(c, fake, Method::POST, "/api/convert", Some(KEY), &body).await
}

/// One exchange with the in-process service.
async fn call(m2n: &InProcessMark2Notion, path: &str, key: Option<&str>, body: &str) -> Reply {
    let request = request(m2n.base_url(), Method::POST, path, key, body.to_owned());
    read(m2n.clone().oneshot(request).await.expect("never fails")).await
}

#[tokio::test]
async fn successes_count_down_in_the_usage_headers() {
    let fake = FakeMark2Notion::builder()
        .quota(3)
        .start()
        .await
        .expect("start");
    let c = client();
    for n in 1..=3u64 {
        let reply = convert(&c, &fake, "# Title\n\nA paragraph\n- an item").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.usage(), Some((n, 3, 3 - n, "free".to_owned())));
        assert_eq!(
            reply.headers["content-type"],
            "application/json; charset=utf-8"
        );
        let body = reply.json();
        assert_eq!(body["status"], "success");
        let kinds: Vec<&str> = body["data"]["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .filter_map(|b| b["type"].as_str())
            .collect();
        assert_eq!(kinds, ["heading_1", "paragraph", "bulleted_list_item"]);
        assert_eq!(
            body["data"]["blocks"][1]["paragraph"]["rich_text"][0]["plain_text"],
            "A paragraph"
        );
    }
    let usage = fake.handle().usage();
    assert_eq!((usage.current, usage.quota, usage.remaining()), (3, 3, 0));
    assert_eq!(fake.handle().calls_after_exhaustion(), 0);
    fake.shutdown().await;
}

#[tokio::test]
async fn append_answers_a_block_id_and_a_request_count() {
    let fake = FakeMark2Notion::builder().start().await.expect("start");
    let c = client();
    let markdown: String = (0..150).map(|i| format!("line {i}\n")).collect();
    let body =
        json!({"markdown": markdown, "notionToken": "secret_x", "pageId": "abc", "after": "def"})
            .to_string();
    let reply = send(&c, &fake, Method::POST, "/api/append", Some(KEY), &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["status"], "success");
    assert_eq!(
        body["data"]["requestCount"], 2,
        "150 blocks take two Notion requests"
    );
    let id = body["data"]["lastBlockId"].as_str().expect("an id");
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
    assert_eq!(reply.usage(), Some((1, 1000, 999, "free".to_owned())));
    fake.shutdown().await;
}

#[tokio::test]
async fn missing_and_invalid_keys_have_their_bodies() {
    let fake = FakeMark2Notion::builder()
        .api_keys(["mk_a", "mk_b"])
        .used(7)
        .plan("pro")
        .start()
        .await
        .expect("start");
    let c = client();
    let body = r#"{"markdown":"x"}"#;

    let missing = send(&c, &fake, Method::POST, "/api/convert", None, body).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.text(),
        r#"{"status":"error","message":"Missing x-api-key"}"#
    );
    assert_eq!(
        missing.usage(),
        None,
        "no key, no account: no X-Usage-* headers"
    );
    let empty = send(&c, &fake, Method::POST, "/api/convert", Some(""), body).await;
    assert_eq!(empty.status, 401);

    let invalid = send(&c, &fake, Method::POST, "/api/convert", Some(KEY), body).await;
    assert_eq!(invalid.status, 403);
    assert_eq!(
        invalid.text(),
        r#"{"status":"error","message":"Invalid API key"}"#
    );
    assert_eq!(invalid.usage(), Some((7, 1000, 993, "pro".to_owned())));

    for key in ["mk_a", "mk_b"] {
        let ok = send(&c, &fake, Method::POST, "/api/convert", Some(key), body).await;
        assert_eq!(ok.status, 200, "{key}");
    }
    assert_eq!(
        fake.handle().usage().current,
        9,
        "both keys share one account"
    );
    let calls = fake.handle().calls();
    assert_eq!(calls.len(), 5);
    assert_eq!(calls[0].api_key, None);
    assert_eq!(calls[1].api_key, None, "an empty key counts as none");
    assert_eq!(calls[2].api_key.as_deref(), Some(KEY));
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        [401, 401, 403, 200, 200]
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn bad_requests_fail_per_field_and_cost_nothing() {
    let fake = FakeMark2Notion::builder().start().await.expect("start");
    let c = client();
    let cases: [(&str, &str, Value); 6] = [
        (
            "/api/convert",
            "{}",
            json!({"markdown": "Missing or invalid markdown content"}),
        ),
        (
            "/api/convert",
            r#"{"markdown": 42}"#,
            json!({"markdown": "Missing or invalid markdown content"}),
        ),
        ("/api/convert", "not json", json!({"body": "Invalid JSON"})),
        ("/api/append", "", json!({"body": "Invalid JSON"})),
        (
            "/api/append",
            "{}",
            json!({
                "markdown": "Missing or invalid markdown content",
                "notionToken": "Missing or invalid notionToken",
                "pageId": "Missing or invalid pageId",
            }),
        ),
        (
            "/api/append",
            r##"{"markdown": "# x", "notionToken": "t"}"##,
            json!({"pageId": "Missing or invalid pageId"}),
        ),
    ];
    for (path, body, data) in cases {
        let reply = send(&c, &fake, Method::POST, path, Some(KEY), body).await;
        assert_eq!(reply.status, 400, "{path} {body}");
        assert_eq!(
            reply.json(),
            json!({"status": "fail", "data": data}),
            "{path} {body}"
        );
        assert_eq!(
            reply.usage(),
            Some((0, 1000, 1000, "free".to_owned())),
            "{path} {body}"
        );
    }

    for (method, path) in [
        (Method::POST, "/api/nope"),
        (Method::GET, "/api/convert"),
        (Method::POST, "/"),
    ] {
        let reply = send(&c, &fake, method, path, Some(KEY), "{}").await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.text(), r#"{"status":"error","message":"Not found"}"#);
        assert!(reply.usage().is_some());
    }

    let big = format!(
        r#"{{"markdown":"{}"}}"#,
        "a".repeat(bulwark_testkit::mark2notion::MAX_BODY)
    );
    let reply = send(&c, &fake, Method::POST, "/api/convert", Some(KEY), &big).await;
    assert_eq!(reply.status, 413);
    assert_eq!(
        reply.json(),
        json!({"status": "fail", "data": {"body": "Request body too large"}})
    );
    assert_eq!(fake.handle().usage().current, 0);
    fake.shutdown().await;
}

#[tokio::test]
async fn the_quota_runs_out_with_the_exact_429_and_wasted_calls_are_counted() {
    let fake = FakeMark2Notion::builder()
        .used(998)
        .start()
        .await
        .expect("start");
    let c = client();
    assert_eq!(
        convert(&c, &fake, "a").await.usage(),
        Some((999, 1000, 1, "free".to_owned()))
    );
    assert_eq!(
        convert(&c, &fake, "b").await.usage(),
        Some((1000, 1000, 0, "free".to_owned()))
    );
    assert_eq!(
        fake.handle().calls_after_exhaustion(),
        0,
        "the last allowed call is no waste"
    );

    for wasted in 1..=3u64 {
        let reply = convert(&c, &fake, "c").await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.text(), QUOTA_BODY_1000);
        assert_eq!(reply.usage(), Some((1000, 1000, 0, "free".to_owned())));
        assert!(
            reply.headers.get("retry-after").is_none(),
            "it resets next month"
        );
        assert_eq!(fake.handle().calls_after_exhaustion(), wasted);
    }
    // A bad key or a bad body after exhaustion is a wasted call too.
    let reply = send(
        &c,
        &fake,
        Method::POST,
        "/api/convert",
        Some("mk_other"),
        "{}",
    )
    .await;
    assert_eq!(reply.status, 403);
    let reply = send(&c, &fake, Method::POST, "/api/append", Some(KEY), "{}").await;
    assert_eq!(reply.status, 429, "the quota is checked before the fields");
    assert_eq!(fake.handle().calls_after_exhaustion(), 5);
    let flags: Vec<bool> = fake
        .handle()
        .calls()
        .iter()
        .map(|c| c.after_exhaustion)
        .collect();
    assert_eq!(flags, [false, false, true, true, true, true, true]);

    // Over the quota (a plan downgrade): the body reports the real numbers.
    fake.handle().set_used(1200).set_quota(1100);
    let reply = convert(&c, &fake, "d").await;
    assert_eq!(
        reply.json(),
        json!({"status": "error", "message": "Usage quota exceeded for current billing period",
               "data": {"current_usage": 1200, "quota": 1100, "plan": "free", "requests_remaining": 0}})
    );

    fake.handle().set_quota(1000).reset_usage();
    let reply = convert(&c, &fake, "e").await;
    assert_eq!(reply.status, 200, "a new billing period restores service");
    assert_eq!(reply.usage(), Some((1, 1000, 999, "free".to_owned())));
    assert_eq!(
        fake.handle().calls_after_exhaustion(),
        6,
        "reset_usage keeps the count"
    );
    fake.handle().clear_calls();
    assert_eq!(fake.handle().calls_after_exhaustion(), 0);
    assert!(fake.handle().calls().is_empty());
    fake.shutdown().await;
}

#[tokio::test]
async fn injected_500s_and_the_outage_are_not_counted() {
    let fake = FakeMark2Notion::builder()
        .quota(5)
        .start()
        .await
        .expect("start");
    let c = client();
    let handle = fake.handle();
    handle.fail_next(2);
    assert_eq!(
        send(&c, &fake, Method::POST, "/api/convert", None, "{}")
            .await
            .status,
        401,
        "auth first"
    );
    for left in [1, 0] {
        let reply = convert(&c, &fake, "x").await;
        assert_eq!(reply.status, 500);
        assert_eq!(
            reply.text(),
            r#"{"status":"error","message":"Internal server error"}"#
        );
        assert_eq!(reply.usage(), Some((0, 5, 5, "free".to_owned())));
        assert_eq!(handle.pending_failures(), left);
    }
    assert_eq!(
        convert(&c, &fake, "x").await.usage(),
        Some((1, 5, 4, "free".to_owned()))
    );

    handle.outage(true);
    assert!(handle.is_outage());
    let reply = convert(&c, &fake, "x").await;
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.text(),
        r#"{"status":"error","message":"Service unavailable"}"#
    );
    assert_eq!(reply.usage(), Some((1, 5, 4, "free".to_owned())));
    handle.outage(false);
    assert_eq!(convert(&c, &fake, "x").await.status, 200);
    assert_eq!(handle.usage().current, 2);
    assert_eq!(handle.calls().len(), 6);
    fake.shutdown().await;
}

#[tokio::test]
async fn concurrent_calls_never_overshoot_the_quota() {
    let fake = FakeMark2Notion::builder()
        .quota(10)
        .start()
        .await
        .expect("start");
    let c = client();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let c = c.clone();
        let request = request(
            &fake.url(),
            Method::POST,
            "/api/convert",
            Some(KEY),
            r#"{"markdown":"x"}"#,
        );
        tasks.spawn(async move {
            let exchange = async {
                read(c.request(request).await.expect("an answer"))
                    .await
                    .status
            };
            tokio::time::timeout(DEADLINE, exchange)
                .await
                .expect("answered in time")
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.expect("the task ran"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 20);
    assert_eq!(fake.handle().usage().current, 10);
    fake.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let fake = FakeMark2Notion::builder().start().await.expect("start");
    let addr = fake.addr();
    assert_eq!(fake.url(), format!("http://{addr}"));
    tokio::time::timeout(DEADLINE, fake.shutdown())
        .await
        .expect("stopped in time");
    let connect = tokio::time::timeout(DEADLINE, tokio::net::TcpStream::connect(addr)).await;
    assert!(matches!(connect, Ok(Err(_))), "{connect:?}");
}

#[tokio::test(start_paused = true)]
async fn in_process_the_quota_runs_out_and_a_new_period_comes_with_the_clock() {
    let m2n = FakeMark2Notion::builder()
        .quota(2)
        .plan("starter")
        .reset_after(Some(Duration::from_secs(30 * 24 * 3600)))
        .in_process();
    let body = r#"{"markdown":"hello"}"#;
    assert_eq!(
        call(&m2n, "/api/convert", Some(KEY), body).await.status,
        200
    );
    tokio::time::advance(Duration::from_secs(24 * 3600)).await;
    assert_eq!(
        call(&m2n, "/api/convert", Some(KEY), body).await.status,
        200
    );
    let refused = call(&m2n, "/api/convert", Some(KEY), body).await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.json()["data"],
        json!({"current_usage": 2, "quota": 2, "plan": "starter", "requests_remaining": 0})
    );
    assert_eq!(refused.usage(), Some((2, 2, 0, "starter".to_owned())));
    assert_eq!(m2n.handle().calls_after_exhaustion(), 1);

    // 30 days after the first call, a new month.
    tokio::time::advance(Duration::from_secs(29 * 24 * 3600)).await;
    let reply = call(&m2n, "/api/convert", Some(KEY), body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.usage(), Some((1, 2, 1, "starter".to_owned())));
    assert_eq!(m2n.handle().calls().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn in_process_without_reset_after_the_quota_stays_spent() {
    let m2n = FakeMark2Notion::builder().quota(1).in_process();
    let body = r#"{"markdown":"hello"}"#;
    assert_eq!(
        call(&m2n, "/api/convert", Some(KEY), body).await.status,
        200
    );
    tokio::time::advance(Duration::from_secs(400 * 24 * 3600)).await;
    let reply = call(&m2n, "/api/convert", Some(KEY), body).await;
    assert_eq!(reply.status, 429);
    m2n.handle().reset_usage();
    assert_eq!(
        call(&m2n, "/api/convert", Some(KEY), body).await.status,
        200
    );
    m2n.handle().fail_next(1);
    assert_eq!(
        call(&m2n, "/api/convert", Some(KEY), body).await.status,
        500
    );
    assert_eq!(m2n.handle().usage().current, 1);
}
