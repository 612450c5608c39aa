//! Only the Notion API is forwarded (issue 12 §2): FakeNotion's control routes, dot-segment
//! tricks, prefix escapes, CONNECT and absolute-form targets for other hosts are answered by
//! the proxy itself, in Notion's error format, and never reach the upstream.

mod common;

use bulwark_cli::proxy::ProxyConfig;
use common::{fake, request, Raw, TestProxy};

/// Regression: `POST /_fake/outage {"on":true}` through the proxy switched FakeNotion's
/// outage on (its control API needs no token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_control_routes_are_never_forwarded() {
    let fake = fake().await;
    let proxy = TestProxy::start(ProxyConfig::new(&fake.url()).unwrap()).await;

    for target in [
        "/_fake/outage",
        "/_fake/outage/",
        "/_fake/reset",
        "/v1/../_fake/outage",
        "/v1/%2e%2e/_fake/outage",
        "/v1/%2E%2E/_fake/outage",
        "/v1/.%2e/_fake/outage",
        "/v1/users/../../_fake/outage",
        "//_fake/outage",
        "/v1/..%2f_fake/outage",
        "/v1/%2e%2e%2f_fake%2foutage",
    ] {
        let reply = request(proxy.addr, "POST", target, Some(r#"{"on":true}"#)).await;
        reply.assert_own_notion_error(400, "invalid_request_url");
        assert!(
            !fake.faults().is_outage(),
            "{target} reached the control API"
        );
    }
    // FakeNotion's own view, through its control route.
    let direct = request(fake.addr(), "GET", "/_fake/outage", None).await;
    assert_eq!(direct.json()["on"], false);
    assert!(fake.requests().is_empty(), "nothing was forwarded");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_paths_are_forwarded_normalised() {
    let fake = fake().await;
    let proxy = TestProxy::start(ProxyConfig::new(&fake.url()).unwrap()).await;

    for target in [
        "/v1/users/me",
        "/v1//users/./me",
        "/v1/pages/../users/me",
        "/v1/%2e/users/me",
    ] {
        let reply = request(proxy.addr, "GET", target, None).await;
        assert_eq!(reply.status, 200, "{target}: {}", reply.head);
        assert_eq!(reply.json()["object"], "user");
    }
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, vec!["/v1/users/me"; 4]);

    // Other paths get Notion's answer to an unknown URL, from the proxy.
    for target in ["/", "/v1", "/v2/users", "/api/v2/status.json", "*"] {
        let method = if target == "*" { "OPTIONS" } else { "GET" };
        request(proxy.addr, method, target, None)
            .await
            .assert_own_notion_error(400, "invalid_request_url");
    }
    assert_eq!(fake.requests().len(), 4);
    proxy.stop().await;
}

/// Regression: with an upstream that has a path prefix, `/../x` escaped it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_prefix_cannot_be_escaped() {
    let fake = fake().await;
    let upstream = format!("{}/notion/", fake.url());
    let proxy = TestProxy::start(ProxyConfig::new(&upstream).unwrap()).await;

    for target in [
        "/../x",
        "/v1/../../x",
        "/v1/../../_fake/outage",
        "/v1/%2e%2e/%2e%2e/_fake/outage",
        "/v1/users/../../../x",
    ] {
        request(proxy.addr, "POST", target, Some(r#"{"on":true}"#))
            .await
            .assert_own_notion_error(400, "invalid_request_url");
    }
    assert!(fake.requests().is_empty());
    assert!(!fake.faults().is_outage());

    // What is forwarded lands under the prefix (FakeNotion has no /notion/v1, so it refuses).
    let reply = request(proxy.addr, "GET", "/v1/users/./me?page_size=1", None).await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.header("x-notion-request-id").is_some(),
        "FakeNotion's own answer"
    );
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/notion/v1/users/me");
    assert_eq!(recorded[0].query.as_deref(), Some("page_size=1"));
    proxy.stop().await;
}

/// Regression: `CONNECT` was forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_refused() {
    let fake = fake().await;
    let proxy = TestProxy::start(ProxyConfig::new(&fake.url()).unwrap()).await;

    let mut raw = Raw::connect(proxy.addr).await;
    let target = fake.addr();
    raw.send(format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n").as_bytes())
        .await;
    raw.reply()
        .await
        .assert_own_notion_error(400, "invalid_request");
    // No tunnel: what follows is read as HTTP by the proxy, not passed to FakeNotion.
    raw.send(b"GET /_fake/outage HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    raw.reply()
        .await
        .assert_own_notion_error(400, "invalid_request_url");

    request(proxy.addr, "TRACE", "/v1/users/me", None)
        .await
        .assert_own_notion_error(400, "invalid_request");
    assert!(fake.requests().is_empty());
    proxy.stop().await;
}

/// Regression: absolute-form targets (`GET http://other-host/x`) were not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_for_another_host_is_refused() {
    let fake = fake().await;
    let proxy = TestProxy::start(ProxyConfig::new(&fake.url()).unwrap()).await;

    for target in [
        "http://other-host/v1/users/me".to_owned(),
        "http://other-host:1234/v1/users/me".to_owned(),
        format!("http://{}/v1/users/me", fake.addr()),
        format!("https://{}/v1/users/me", proxy.addr),
        format!("http://user:pw@{}/v1/users/me", proxy.addr),
    ] {
        request(proxy.addr, "GET", &target, None)
            .await
            .assert_own_notion_error(400, "invalid_request");
    }
    assert!(fake.requests().is_empty());

    // The proxy's own authority is served (RFC 9112 §3.2.2).
    for authority in [
        proxy.addr.to_string(),
        format!("localhost:{}", proxy.addr.port()),
    ] {
        let reply = request(
            proxy.addr,
            "GET",
            &format!("http://{authority}/v1/users/me"),
            None,
        )
        .await;
        assert_eq!(reply.status, 200, "{authority}: {}", reply.head);
    }
    assert_eq!(fake.requests().len(), 2);
    proxy.stop().await;
}
