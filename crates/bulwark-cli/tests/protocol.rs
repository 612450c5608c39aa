//! Bad input is the client's fault and says so in Notion's format (issue 12 §4): malformed or
//! oversized bodies, heads and URIs are answered `4xx` Notion errors — never the `503` the
//! SDKs would retry, never hyper's empty-bodied answers.

mod common;

use std::time::Duration;

use bulwark_cli::proxy::ProxyConfig;
use common::{fake, Raw, TestProxy};

const HEAD: &str = "host: x\r\nauthorization: Bearer secret_test\r\nnotion-version: 2025-09-03\r\n";

/// Regression: a malformed chunked body was answered `503 service_unavailable` "Notion did
/// not answer".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_body_is_a_400() {
    let fake = fake().await;
    let proxy = TestProxy::start(ProxyConfig::new(&fake.url()).unwrap()).await;

    let mut raw = Raw::connect(proxy.addr).await;
    raw.send(
        format!("POST /v1/search HTTP/1.1\r\n{HEAD}transfer-encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n")
            .as_bytes(),
    )
    .await;
    let reply = raw.reply().await;
    reply.assert_own_notion_error(400, "invalid_request");
    assert_eq!(reply.header("connection").as_deref(), Some("close"));
    assert!(fake.requests().is_empty());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_too_large_is_a_413() {
    let fake = fake().await;
    let config = ProxyConfig::new(&fake.url()).unwrap().max_body_bytes(1024);
    let proxy = TestProxy::start(config).await;

    // Declared too large: refused before reading.
    let mut raw = Raw::connect(proxy.addr).await;
    raw.send(format!("POST /v1/pages HTTP/1.1\r\n{HEAD}content-length: 4096\r\n\r\n").as_bytes())
        .await;
    raw.reply()
        .await
        .assert_own_notion_error(413, "validation_error");

    // Chunked, found out while reading.
    let mut raw = Raw::connect(proxy.addr).await;
    let chunk = "x".repeat(2000);
    raw.send(
        format!(
            "POST /v1/pages HTTP/1.1\r\n{HEAD}transfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
            chunk.len()
        )
        .as_bytes(),
    )
    .await;
    raw.reply()
        .await
        .assert_own_notion_error(413, "validation_error");
    assert!(fake.requests().is_empty());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_a_408() {
    let fake = fake().await;
    let config = ProxyConfig::new(&fake.url())
        .unwrap()
        .body_read_timeout(Duration::from_millis(300));
    let proxy = TestProxy::start(config).await;

    let mut raw = Raw::connect(proxy.addr).await;
    raw.send(
        format!("POST /v1/pages HTTP/1.1\r\n{HEAD}content-length: 100\r\n\r\n{{\"par").as_bytes(),
    )
    .await;
    let reply = raw.reply().await;
    reply.assert_own_notion_error(408, "invalid_request");
    assert_eq!(raw.closed().await, Some(0), "closed after the answer");
    assert!(fake.requests().is_empty());
    proxy.stop().await;
}

/// hyper answers a head over its limit with an empty `431`; the proxy's answer replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_too_large_are_a_notion_431() {
    let fake = fake().await;
    let config = ProxyConfig::new(&fake.url())
        .unwrap()
        .max_header_bytes(8 * 1024);
    let proxy = TestProxy::start(config).await;

    // One huge header, then many fields: both past hyper's limits.
    for extra in [
        format!("x-big: {}\r\n", "a".repeat(16 * 1024)),
        (0..120)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>(),
    ] {
        let mut raw = Raw::connect(proxy.addr).await;
        raw.send(format!("GET /v1/users/me HTTP/1.1\r\n{HEAD}{extra}\r\n").as_bytes())
            .await;
        let reply = raw.reply().await;
        reply.assert_own_notion_error(431, "invalid_request");
        assert_eq!(reply.header("connection").as_deref(), Some("close"));
    }
    assert!(fake.requests().is_empty());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_uri_is_a_notion_414() {
    let fake = fake().await;
    let config = ProxyConfig::new(&fake.url()).unwrap().max_uri_bytes(2048);
    let proxy = TestProxy::start(config).await;

    let mut raw = Raw::connect(proxy.addr).await;
    let target = format!("/v1/users?start_cursor={}", "c".repeat(4096));
    raw.send(format!("GET {target} HTTP/1.1\r\n{HEAD}\r\n").as_bytes())
        .await;
    raw.reply()
        .await
        .assert_own_notion_error(414, "invalid_request");
    // The connection stays usable: the head was read whole.
    raw.send(format!("GET /v1/users/me HTTP/1.1\r\n{HEAD}\r\n").as_bytes())
        .await;
    assert_eq!(raw.reply().await.status, 200);
    assert_eq!(fake.requests().len(), 1);
    proxy.stop().await;
}

/// hyper answers an unparsable head with an empty `400`; the proxy's answer replaces it, on a
/// fresh connection and on a kept-alive one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparsable_head_is_a_notion_400() {
    let fake = fake().await;
    let proxy = TestProxy::start(ProxyConfig::new(&fake.url()).unwrap()).await;

    for garbage in [
        "GARBAGE\r\n\r\n".to_owned(),
        "GET /v1/users/me HTTP/1.1\r\nbad header line\r\n\r\n".to_owned(),
        format!("POST /v1/search HTTP/1.1\r\n{HEAD}content-length: nope\r\n\r\n"),
        "GET /v1/users me HTTP/1.1\r\n\r\n".to_owned(),
    ] {
        let mut raw = Raw::connect(proxy.addr).await;
        raw.send(garbage.as_bytes()).await;
        let reply = raw.reply().await;
        reply.assert_own_notion_error(400, "invalid_request");
        assert_eq!(reply.header("connection").as_deref(), Some("close"));
    }

    // After a good request on the same connection.
    let mut raw = Raw::connect(proxy.addr).await;
    raw.send(format!("GET /v1/users/me HTTP/1.1\r\n{HEAD}\r\n").as_bytes())
        .await;
    assert_eq!(raw.reply().await.status, 200);
    raw.send(b"GARBAGE\r\n\r\n").await;
    raw.reply()
        .await
        .assert_own_notion_error(400, "invalid_request");
    assert_eq!(fake.requests().len(), 1);
    proxy.stop().await;
}
