//! `bulwark proxy --access-log` end to end (issue 16 §1): FakeNotion with scripted 502s and
//! 429s behind an in-process proxy; every request is one JSON line with the route template,
//! the upstream attempts FakeNotion counted, the cache outcome and the request id the client
//! saw, nothing secret; and `bulwark_cli::report` adds the file up.

mod common;

use std::{
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use bulwark_cli::{
    proxy::{AccessRecord, CacheOutcome, Proxy, ProxyConfig, StartError},
    report::Report,
};
use bulwark_testkit::{FakeNotion, Fault, Matcher, SEED_DATA_SOURCE_ID};
use common::{request, TestProxy};
use http::Method;
use serde_json::{json, Value};

/// A fresh path in the temporary directory (the file does not exist yet).
fn temp_path(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "bulwark-{name}-{}-{nanos}.jsonl",
        std::process::id()
    ))
}

/// Removes the file when the test ends, passed or not.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What the client saw of one request, and what its line must say.
#[derive(Debug)]
struct Sent {
    method: &'static str,
    route: &'static str,
    status: u16,
    request_id: Option<String>,
    request_bytes: u64,
    /// Requests FakeNotion received for it.
    upstream_calls: u32,
    cache: CacheOutcome,
    code: Option<String>,
    reconciled: Option<&'static str>,
}

/// Sends one request through the proxy, FakeNotion's log cleared first, and records it.
#[allow(clippy::too_many_arguments)]
async fn send(
    proxy: &TestProxy,
    fake: &FakeNotion,
    sent: &mut Vec<Sent>,
    method: &'static str,
    target: &str,
    body: Option<&str>,
    route: &'static str,
    cache: CacheOutcome,
) -> common::Reply {
    fake.clear_requests();
    let reply = request(proxy.addr, method, target, body).await;
    let code = reply
        .header("content-type")
        .filter(|t| t.starts_with("application/json") && reply.status >= 400)
        .and_then(|_| reply.json()["code"].as_str().map(str::to_owned));
    sent.push(Sent {
        method,
        route,
        status: reply.status,
        request_id: reply.header("x-notion-request-id"),
        request_bytes: body.map_or(0, |b| b.len() as u64),
        upstream_calls: u32::try_from(fake.requests().len()).unwrap(),
        cache,
        code,
        reconciled: None,
    });
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_one_line_and_the_report_adds_it_up() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .seed_pages(2)
        .start()
        .await
        .expect("FakeNotion starts");
    let pages = fake.pages();
    let (p1, p2) = (pages[0].id.clone(), pages[1].id.clone());
    let path = temp_path("access");
    let _cleanup = Cleanup(path.clone());
    assert!(!path.exists());
    let config = ProxyConfig::new(&fake.url())
        .unwrap()
        .max_retries(1)
        .access_log(&path);
    let proxy = TestProxy::start(config).await;
    let faults = fake.faults();
    let mut sent = Vec::new();
    let live = CacheOutcome::Live;

    // Enough successes first that the breaker never opens on the failures below.
    for _ in 0..8 {
        let r = send(
            &proxy,
            &fake,
            &mut sent,
            "GET",
            "/v1/users/me",
            None,
            "/v1/users/me",
            live,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.head);
    }
    let page1 = format!("/v1/pages/{p1}");
    let r = send(
        &proxy,
        &fake,
        &mut sent,
        "GET",
        &page1,
        None,
        "/v1/pages/{id}",
        live,
    )
    .await;
    assert_eq!(r.status, 200);
    // A 502, retried: 200 after two upstream calls.
    faults.script_for(Matcher::new(Method::GET, &page1), [Fault::Status(502)]);
    let r = send(
        &proxy,
        &fake,
        &mut sent,
        "GET",
        &page1,
        None,
        "/v1/pages/{id}",
        live,
    )
    .await;
    assert_eq!(r.status, 200);
    // Two 502s, no stored copy: the client gets the 502.
    let page2 = format!("/v1/pages/{p2}");
    faults.script_for(
        Matcher::new(Method::GET, &page2),
        [Fault::Status(502), Fault::Status(502)],
    );
    let r = send(
        &proxy,
        &fake,
        &mut sent,
        "GET",
        &page2,
        None,
        "/v1/pages/{id}",
        live,
    )
    .await;
    assert_eq!(r.status, 502);
    // Two 502s with a stored copy: the stale copy answers.
    faults.script_for(
        Matcher::new(Method::GET, &page1),
        [Fault::Status(502), Fault::Status(502)],
    );
    let r = send(
        &proxy,
        &fake,
        &mut sent,
        "GET",
        &page1,
        None,
        "/v1/pages/{id}",
        CacheOutcome::Stale,
    )
    .await;
    assert_eq!(r.status, 200);
    // Query values never reach the log.
    send(
        &proxy,
        &fake,
        &mut sent,
        "GET",
        "/v1/users?page_size=5&start_cursor=SeCrEtCuRsOr",
        None,
        "/v1/users",
        live,
    )
    .await;
    // A read-only POST with a body, then one throttled twice (another body: no stored copy).
    let query = format!("/v1/data_sources/{SEED_DATA_SOURCE_ID}/query");
    let r = send(
        &proxy,
        &fake,
        &mut sent,
        "POST",
        &query,
        Some(r#"{"page_size":10}"#),
        "/v1/data_sources/{id}/query",
        live,
    )
    .await;
    assert_eq!(r.status, 200);
    let throttled = Fault::RateLimited {
        retry_after_secs: 0,
    };
    faults.script_for(
        Matcher::new(Method::POST, &query),
        [throttled.clone(), throttled],
    );
    let r = send(
        &proxy,
        &fake,
        &mut sent,
        "POST",
        &query,
        Some(r#"{"page_size":5}"#),
        "/v1/data_sources/{id}/query",
        live,
    )
    .await;
    assert_eq!(r.status, 429);
    // A create, then one that lands and still answers 502: marked, never repeated.
    let create = format!(
        r#"{{"parent":{{"data_source_id":"{SEED_DATA_SOURCE_ID}"}},"properties":{{"Name":{{"title":[{{"text":{{"content":"PrIvAtE title"}}}}]}}}}}}"#
    );
    let r = send(
        &proxy,
        &fake,
        &mut sent,
        "POST",
        "/v1/pages",
        Some(&create),
        "/v1/pages",
        CacheOutcome::None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    faults.script_for(
        Matcher::new(Method::POST, "/v1/pages"),
        [Fault::StatusAfterApply(502)],
    );
    let r = send(
        &proxy,
        &fake,
        &mut sent,
        "POST",
        "/v1/pages",
        Some(&create),
        "/v1/pages",
        CacheOutcome::None,
    )
    .await;
    assert_eq!(r.status, 502);
    assert_eq!(
        r.header("bulwark-reconciled").as_deref(),
        Some("may-have-been-applied")
    );
    sent.last_mut().unwrap().reconciled = Some("may-have-been-applied");
    // Cloudflare's edge 502s: HTML, no request id.
    let children = format!("/v1/blocks/{p1}/children");
    faults.script_for(
        Matcher::new(Method::GET, &children),
        [Fault::CloudflareHtml(502), Fault::CloudflareHtml(502)],
    );
    let r = send(
        &proxy,
        &fake,
        &mut sent,
        "GET",
        &children,
        None,
        "/v1/blocks/{id}/children",
        live,
    )
    .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-notion-request-id"), None);
    // A large bulk append (over 100 KiB).
    let block = json!({"object": "block", "type": "paragraph", "paragraph": {"rich_text": [{"type": "text", "text": {"content": "x".repeat(1500)}}]}});
    let append = json!({ "children": vec![block; 100] }).to_string();
    assert!(append.len() > 100 * 1024);
    send(
        &proxy,
        &fake,
        &mut sent,
        "PATCH",
        &children,
        Some(&append),
        "/v1/blocks/{id}/children",
        CacheOutcome::None,
    )
    .await;
    // Not the Notion API: the proxy answers itself, nothing goes upstream.
    let r = send(
        &proxy,
        &fake,
        &mut sent,
        "GET",
        "/_fake/outage",
        None,
        "-",
        CacheOutcome::None,
    )
    .await;
    assert_eq!(r.status, 400);

    assert_eq!(proxy.handle.stats().access_log_dropped, 0);
    proxy.stop().await;

    // Every request is one line, in order, with the right fields.
    let text = std::fs::read_to_string(&path).expect("the access log exists");
    for secret in [
        "secret_test",
        "SeCrEtCuRsOr",
        "start_cursor",
        "PrIvAtE",
        &p1,
        &p2,
        "xxxxxxxx",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} in the access log:\n{text}"
        );
    }
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), sent.len(), "{text}");
    let mut previous = None;
    for (line, sent) in lines.iter().zip(&sent) {
        check_line(line, sent);
        let record = AccessRecord::parse(line).unwrap();
        assert!(previous.is_none_or(|p| p <= record.ts), "{line}");
        previous = Some(record.ts);
    }
    // Spot checks of what the scripts made.
    let record = |i: usize| AccessRecord::parse(lines[i]).unwrap();
    assert_eq!(
        (record(9).status, record(9).attempts),
        (200, 2),
        "retried 502"
    );
    assert_eq!(record(11).cache, CacheOutcome::Stale, "stale copy");
    assert_eq!(record(14).code.as_deref(), Some("rate_limited"));
    assert_eq!(record(14).attempts, 2);
    assert_eq!(
        record(16).reconciled.as_deref(),
        Some("may-have-been-applied")
    );
    assert_eq!(
        (record(17).request_id.as_deref(), record(17).attempts),
        (None, 2),
        "edge 502"
    );
    assert!(record(18).request_bytes > 100 * 1024);
    assert_eq!((record(19).route.as_str(), record(19).attempts), ("-", 0));
    assert_eq!(record(19).code.as_deref(), Some("invalid_request_url"));

    // The report adds it up.
    let report = Report::from_path(&path).unwrap();
    assert_eq!(report.bad_lines(), 0);
    assert_eq!(report.records(), sent.len() as u64);
    let mut statuses = std::collections::BTreeMap::new();
    let mut routes = std::collections::BTreeMap::new();
    for s in &sent {
        *statuses.entry((s.status, s.code.clone())).or_insert(0) += 1;
        *routes
            .entry((s.method.to_owned(), s.route.to_owned()))
            .or_insert(0) += 1;
    }
    let by_status: std::collections::BTreeMap<_, _> = report
        .by_status()
        .map(|(status, code, n)| ((status, code.map(str::to_owned)), n))
        .collect();
    assert_eq!(by_status, statuses);
    let by_route: std::collections::BTreeMap<_, _> = report
        .by_route()
        .map(|(m, r, c)| ((m.to_owned(), r.to_owned()), c.requests))
        .collect();
    assert_eq!(by_route, routes);
    assert_eq!(
        by_route[&("GET".to_owned(), "/v1/pages/{id}".to_owned())],
        4
    );
    let t = report.totals();
    assert_eq!(t.status_429, 1);
    assert_eq!(
        t.status_5xx,
        sent.iter().filter(|s| s.status >= 500).count() as u64
    );
    assert_eq!(
        t.errors,
        sent.iter().filter(|s| s.status >= 400).count() as u64
    );
    let calls: u64 = sent.iter().map(|s| u64::from(s.upstream_calls)).sum();
    assert_eq!(report.attempts().0, calls);
    assert_eq!(report.cache(CacheOutcome::Stale), 1);
    assert_eq!(report.reconciled(), 1);
    let json = report.to_json();
    assert_eq!(json["by_size"][3]["requests"], 1, "{json}");
    assert!(!json["by_hour"].as_array().unwrap().is_empty(), "{json}");
}

/// One line against what the client saw.
fn check_line(line: &str, sent: &Sent) {
    let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in &keys {
        assert!(
            [
                "ts",
                "method",
                "route",
                "request_bytes",
                "status",
                "duration_ms",
                "attempts",
                "cache",
                "request_id",
                "code",
                "reconciled"
            ]
            .contains(key),
            "unexpected field {key}: {line}"
        );
    }
    assert!(line.starts_with(r#"{"ts":""#), "{line}");
    let ts = value["ts"].as_str().unwrap();
    assert_eq!((ts.len(), &ts[19..20], &ts[23..]), (24, ".", "Z"), "{line}");
    let record = AccessRecord::parse(line).unwrap();
    assert_eq!(record.method, sent.method, "{line}");
    assert_eq!(record.route, sent.route, "{line}");
    assert_eq!(record.status, sent.status, "{line}");
    assert_eq!(record.request_id, sent.request_id, "{line}");
    assert_eq!(record.request_bytes, sent.request_bytes, "{line}");
    assert_eq!(record.attempts, sent.upstream_calls, "{line}");
    assert_eq!(record.cache, sent.cache, "{line}");
    assert_eq!(record.code, sent.code, "{line}");
    assert_eq!(record.reconciled.as_deref(), sent.reconciled, "{line}");
}

/// The file is appended to, not replaced; and what is not a record is the report's bad line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_appended_to() {
    let fake = common::fake().await;
    let path = temp_path("append");
    let _cleanup = Cleanup(path.clone());
    std::fs::write(&path, "an earlier line\n").unwrap();
    let proxy = TestProxy::start(ProxyConfig::new(&fake.url()).unwrap().access_log(&path)).await;
    let reply = request(proxy.addr, "GET", "/v1/users/me", None).await;
    assert_eq!(reply.status, 200);
    proxy.stop().await;
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], "an earlier line");
    assert_eq!(AccessRecord::parse(lines[1]).unwrap().route, "/v1/users/me");
    let report = Report::from_path(&path).unwrap();
    assert_eq!((report.records(), report.bad_lines()), (1, 1));
}

#[tokio::test]
async fn a_log_that_cannot_be_opened_stops_the_start() {
    let path = Path::new("/nonexistent-bulwark-dir/access.jsonl");
    let config = ProxyConfig::new("http://127.0.0.1:9")
        .unwrap()
        .bind("127.0.0.1:0".parse().unwrap())
        .access_log(path);
    let error = Proxy::bind(config).await.unwrap_err();
    assert!(matches!(error, StartError::AccessLog(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("/nonexistent-bulwark-dir/access.jsonl"),
        "{error}"
    );
}

#[test]
fn the_flag_sets_the_config() {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: bulwark_cli::proxy::cli::ProxyArgs,
    }
    let cli = Cli::parse_from([
        "bulwark",
        "--upstream",
        "http://127.0.0.1:7777",
        "--access-log",
        "/tmp/a.jsonl",
    ]);
    let config = cli.args.flags.config(&cli.args.upstream, None).unwrap();
    assert_eq!(config.access_log_path(), Some(Path::new("/tmp/a.jsonl")));
    let cli = Cli::parse_from(["bulwark", "--upstream", "http://127.0.0.1:7777"]);
    assert_eq!(
        cli.args
            .flags
            .config(&cli.args.upstream, None)
            .unwrap()
            .access_log_path(),
        None
    );
}
