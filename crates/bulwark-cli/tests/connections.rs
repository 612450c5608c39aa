//! Connection hygiene (issue 12 §3), in process with millisecond timeouts: half-sent heads and
//! idle connections are closed, a full table of stalled connections makes room for working
//! ones, and a table of busy ones answers `503` at once.

mod common;

use std::time::Duration;

use bulwark_cli::proxy::ProxyConfig;
use common::{fake, request, Raw, TestProxy, BOUND};
use tokio::time::{timeout, Instant};

const GET_ME: &[u8] =
    b"GET /v1/users/me HTTP/1.1\r\nhost: x\r\nauthorization: Bearer secret_test\r\n\r\n";

/// Regression: half-sent requests stayed open forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_head_is_closed_after_the_header_read_timeout() {
    let fake = fake().await;
    let header_timeout = Duration::from_millis(300);
    let config = ProxyConfig::new(&fake.url())
        .unwrap()
        .header_read_timeout(header_timeout)
        .idle_timeout(Duration::from_millis(200));
    let proxy = TestProxy::start(config).await;

    let started = Instant::now();
    let mut raw = Raw::connect(proxy.addr).await;
    raw.send(b"GET /v1/users/me HTT").await;
    let closed = raw.closed().await;
    let elapsed = started.elapsed();
    assert_eq!(closed, Some(0), "closed without an answer");
    assert!(elapsed >= header_timeout, "closed after {elapsed:?}");
    assert!(
        elapsed < header_timeout + Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
    assert!(fake.requests().is_empty());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let fake = fake().await;
    let idle = Duration::from_millis(300);
    let config = ProxyConfig::new(&fake.url())
        .unwrap()
        .header_read_timeout(Duration::from_secs(10))
        .idle_timeout(idle);
    let proxy = TestProxy::start(config).await;

    let mut raw = Raw::connect(proxy.addr).await;
    raw.send(GET_ME).await;
    let reply = raw.reply().await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("keep-alive").as_deref(), Some("timeout=1"));
    let answered = Instant::now();
    assert_eq!(raw.closed().await, Some(0));
    let elapsed = answered.elapsed();
    assert!(
        elapsed + Duration::from_millis(50) >= idle,
        "closed after {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
    proxy.stop().await;
}

/// Stalled connections fill the table; a working client still gets through at once, because
/// the connection idle the longest gives way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_make_room_for_working_ones() {
    let fake = fake().await;
    let config = ProxyConfig::new(&fake.url()).unwrap().max_connections(8);
    let proxy = TestProxy::start(config).await;

    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut raw = Raw::connect(proxy.addr).await;
        raw.send(b"GET /v1/us").await;
        stalled.push(raw);
    }
    let started = Instant::now();
    let reply = request(proxy.addr, "GET", "/v1/users/me", None).await;
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() < Duration::from_secs(5));

    // The oldest stalled connections were closed, the newest are still open.
    assert_eq!(stalled[0].closed().await, Some(0));
    let stats = proxy.handle.stats();
    assert!(stats.open_connections <= 8, "{stats:?}");
    assert!(stats.evicted >= 13, "{stats:?}");
    assert_eq!(stats.refused, 0, "{stats:?}");
    proxy.stop().await;
}

/// When every slot has a request in flight, a new connection is answered `503` at once and
/// the busy ones carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_busy_connections_answers_503() {
    let fake = fake().await;
    let config = ProxyConfig::new(&fake.url())
        .unwrap()
        .max_connections(2)
        .body_read_timeout(Duration::from_secs(10));
    let proxy = TestProxy::start(config).await;

    // Two requests in flight: heads sent, bodies still coming.
    let head = "POST /v1/search HTTP/1.1\r\nhost: x\r\nauthorization: Bearer secret_test\r\nnotion-version: 2025-09-03\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n";
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut raw = Raw::connect(proxy.addr).await;
        raw.send(head.as_bytes()).await;
        busy.push(raw);
    }
    // Both heads reached the service (a bounded wait for the table to show them busy).
    let deadline = Instant::now() + BOUND;
    while proxy.handle.stats().busy_connections < 2 {
        assert!(Instant::now() < deadline, "{:?}", proxy.handle.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reply = request(proxy.addr, "GET", "/v1/users/me", None).await;
    reply.assert_own_notion_error(503, "service_unavailable");
    assert_eq!(reply.header("retry-after").as_deref(), Some("1"));
    assert!(proxy.handle.stats().refused >= 1);

    // The busy ones finish normally.
    for raw in &mut busy {
        raw.send(b"{}").await;
        let reply = timeout(BOUND, raw.reply()).await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.head);
    }
    proxy.stop().await;
}

/// A shutdown lets the request in flight finish, closes idle connections at once and stops
/// accepting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight() {
    let fake = fake().await;
    let proxy = TestProxy::start(ProxyConfig::new(&fake.url()).unwrap()).await;
    let addr = proxy.addr;

    let mut idle = Raw::connect(addr).await;
    idle.send(b"GET /v1/us").await;
    let mut busy = Raw::connect(addr).await;
    busy.send(b"POST /v1/search HTTP/1.1\r\nhost: x\r\nauthorization: Bearer secret_test\r\nnotion-version: 2025-09-03\r\ncontent-length: 2\r\n\r\n")
        .await;
    let deadline = Instant::now() + BOUND;
    while proxy.handle.stats().busy_connections < 1 {
        assert!(Instant::now() < deadline, "{:?}", proxy.handle.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    proxy.handle.shutdown();
    assert_eq!(
        idle.closed().await,
        Some(0),
        "the idle connection is closed at once"
    );
    busy.send(b"{}").await;
    let reply = busy.reply().await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    proxy.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}
