//! The Notion preset against FakeNotion over real loopback HTTP: Notion's own error bodies
//! classified row by row, 1 000 page creations under 502s/504s/429s with no page twice,
//! read-only POSTs retried and writes not, a 429 pausing the whole bucket, reads served stale
//! through a 20 s outage, and the client's pagination.
//!
//! Timing tests run on paused time: FakeNotion and the client share tokio's clock, so waits of
//! seconds take none.

use std::{collections::HashMap, time::Duration};

use bulwark::{
    cache::CacheStatus,
    http::{BufferedBody, Class, Classify},
    notion::{
        Client, Error, NotionBodyLayer, NotionClassifier, NotionError, NotionErrorCode,
        NotionLayer, UnexpectedResponse,
    },
};
use bulwark_testkit::{FakeNotion, Fault, Matcher, SEED_DATABASE_ID, SEED_DATA_SOURCE_ID};
use futures_util::TryStreamExt;
use http::{Method, Request, StatusCode};
use hyper_util::{client::legacy::Client as HyperClient, rt::TokioExecutor};
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};

const TOKEN: &str = "secret_preset";

fn client(fake: &FakeNotion) -> Client {
    Client::builder(TOKEN)
        .base_url(fake.url())
        .build()
        .expect("a valid client")
}

fn page_body(title: &str) -> Value {
    json!({
        "parent": {"database_id": SEED_DATABASE_ID},
        "properties": {"Name": {"title": [{"text": {"content": title}}]}}
    })
}

fn titles(fake: &FakeNotion) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for page in fake.pages() {
        if let Some(title) = page.title() {
            *counts.entry(title).or_default() += 1;
        }
    }
    counts
}

/// Each row of the preset's classification, from FakeNotion's real answers (status, headers
/// and Notion's error body), through `NotionBodyLayer` and `NotionClassifier`.
#[tokio::test]
async fn each_classifier_row_against_fakenotions_answers() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .start()
        .await
        .unwrap();
    let http = HyperClient::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let svc = NotionBodyLayer::default().layer(http);
    let transient = Class::Transient { retry_after: None };
    let rows: Vec<(Fault, Class, Option<NotionErrorCode>)> = vec![
        (Fault::Pass, Class::Success, None),
        (
            Fault::RateLimited {
                retry_after_secs: 3,
            },
            Class::Throttled {
                retry_after: Some(Duration::from_secs(3)),
            },
            Some(NotionErrorCode::RateLimited),
        ),
        (
            Fault::Status(529),
            Class::Throttled { retry_after: None },
            Some(NotionErrorCode::ServiceOverload),
        ),
        (
            Fault::Status(500),
            transient,
            Some(NotionErrorCode::InternalServerError),
        ),
        (
            Fault::Status(502),
            transient,
            Some(NotionErrorCode::BadGateway),
        ),
        (
            Fault::Status(503),
            transient,
            Some(NotionErrorCode::ServiceUnavailable),
        ),
        (
            Fault::Status(504),
            transient,
            Some(NotionErrorCode::GatewayTimeout),
        ),
        (
            Fault::Status(409),
            transient,
            Some(NotionErrorCode::ConflictError),
        ),
        (Fault::CloudflareHtml(502), transient, None),
        (Fault::CloudflareHtml(522), transient, None),
        (Fault::CloudflareHtml(524), transient, None),
        (
            Fault::Status(400),
            Class::Permanent,
            Some(NotionErrorCode::InvalidRequest),
        ),
        (
            Fault::Status(401),
            Class::Permanent,
            Some(NotionErrorCode::Unauthorized),
        ),
        (
            Fault::Status(403),
            Class::Permanent,
            Some(NotionErrorCode::RestrictedResource),
        ),
        (
            Fault::Status(404),
            Class::Permanent,
            Some(NotionErrorCode::ObjectNotFound),
        ),
    ];
    for (fault, want, code) in rows {
        fake.faults().script([fault.clone()]);
        let req = Request::get(format!("{}/v1/users/me", fake.url()))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("notion-version", "2025-09-03")
            .body(BufferedBody::empty())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(NotionClassifier.classify_response(&res), want, "{fault:?}");
        let parsed = res.extensions().get::<NotionError>();
        assert_eq!(parsed.map(|e| e.code.clone()), code, "{fault:?}");
        if let Some(err) = parsed {
            assert_eq!(err.status, res.status());
            assert!(err.request_id.is_some(), "{fault:?} carries a request id");
            assert!(!err.message.is_empty());
        }
        if matches!(fault, Fault::CloudflareHtml(_)) {
            let unexpected = res.extensions().get::<UnexpectedResponse>().unwrap();
            assert!(unexpected.from_edge, "{fault:?}");
        }
    }
    // A dropped connection is transient (may have been applied); a closed port unreachable.
    fake.faults().script([Fault::DropConnection]);
    let req = Request::get(format!("{}/v1/users/me", fake.url()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(BufferedBody::empty())
        .unwrap();
    let err = svc.clone().oneshot(req).await.unwrap_err();
    assert_eq!(NotionClassifier.classify_error(&*err), transient);

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let req = Request::get(format!("http://127.0.0.1:{port}/v1/users/me"))
        .body(BufferedBody::empty())
        .unwrap();
    let err = svc.oneshot(req).await.unwrap_err();
    assert_eq!(NotionClassifier.classify_error(&*err), Class::Unreachable);
}

/// 1 000 `POST /v1/pages` under 30 % 502s and 5 % 504s (both after the page was written) and
/// some 429s: no title is created twice, every 429 is retried, nothing else is.
#[tokio::test(start_paused = true)]
async fn a_thousand_page_creations_never_duplicate_and_retry_every_429() {
    let fake = FakeNotion::builder()
        .rate_limit(3, 3)
        .tokens([TOKEN])
        .start()
        .await
        .unwrap();
    // A seeded, reproducible fault sequence for the create route, longer than any run needs.
    let mut rng = fastrand::Rng::with_seed(7);
    let faults: Vec<Fault> = (0..3000)
        .map(|_| match rng.f64() {
            x if x < 0.30 => Fault::StatusAfterApply(502),
            x if x < 0.35 => Fault::StatusAfterApply(504),
            x if x < 0.38 => Fault::RateLimited {
                retry_after_secs: 1,
            },
            _ => Fault::Pass,
        })
        .collect();
    fake.faults()
        .script_for(Matcher::new(Method::POST, "/v1/pages"), faults);
    let notion = client(&fake);

    let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
    let mut breaker_waits = 0;
    for i in 0..1000 {
        let title = format!("Task {i}");
        // A caller that waits out an open breaker (never sent, so safe to send again).
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            assert!(attempts <= 20, "{title}: the breaker never let it through");
            match notion.post("pages", page_body(&title)).await {
                Ok(page) => {
                    assert_eq!(page["object"], "page");
                    break "created";
                }
                Err(Error::Api(err)) if err.message.starts_with("bulwark:") => {
                    assert_eq!(err.code, NotionErrorCode::ServiceUnavailable);
                    breaker_waits += 1;
                    tokio::time::sleep(err.retry_after.unwrap()).await;
                }
                // A 502/504 on a create is ambiguous: its type says it may have been applied.
                Err(Error::MaybeApplied(err)) => match err.notion().map(|e| &e.code) {
                    Some(NotionErrorCode::BadGateway) => break "502",
                    Some(NotionErrorCode::GatewayTimeout) => break "504",
                    other => panic!("unexpected {other:?} for {title}: {err}"),
                },
                Err(other) => panic!("unexpected error for {title}: {other}"),
            }
        };
        *outcomes.entry(outcome).or_default() += 1;
    }

    // Per title: requests FakeNotion received, and how many were answered 429.
    let mut sent: HashMap<String, (usize, usize)> = HashMap::new();
    for req in fake.requests() {
        if req.method != Method::POST || req.path != "/v1/pages" {
            continue;
        }
        let title = req.json().unwrap()["properties"]["Name"]["title"][0]["text"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        let entry = sent.entry(title).or_default();
        entry.0 += 1;
        entry.1 += usize::from(req.status == 429);
    }
    let created = titles(&fake);
    let total_429: usize = sent.values().map(|(_, t)| t).sum();
    assert!(total_429 > 10, "the script injected 429s: {total_429}");
    for (title, (requests, throttled)) in &sent {
        // Each 429 was retried once; no 502/504 was.
        assert_eq!(
            *requests,
            1 + throttled,
            "{title}: {requests} requests, {throttled} × 429"
        );
        assert!(
            created.get(title).copied().unwrap_or(0) <= 1,
            "{title} created twice"
        );
    }
    assert!(created.values().all(|n| *n == 1), "no page twice");
    assert_eq!(sent.len(), 1000, "{outcomes:?}");
    assert!(outcomes["created"] > 500, "{outcomes:?}");
    assert!(
        outcomes["502"] > 200 && outcomes["504"] > 20,
        "{outcomes:?}"
    );
    eprintln!("outcomes {outcomes:?}, {total_429} × 429 retried, {breaker_waits} waits for the open breaker");
    let stats = notion.layer().stats();
    assert_eq!(stats.retry.retries as usize, total_429);
    // FakeNotion's own 3/s limit never answered a 429 the script did not ask for.
    let scripted_or_not = fake.requests().iter().filter(|r| r.status == 429).count();
    assert_eq!(scripted_or_not, total_429);
}

/// A read-only POST (a data source query) is retried on 502; a page creation is not.
#[tokio::test(start_paused = true)]
async fn queries_are_retried_on_502_and_page_creation_is_not() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .seed_pages(3)
        .start()
        .await
        .unwrap();
    let query_path = format!("/v1/data_sources/{SEED_DATA_SOURCE_ID}/query");
    fake.faults()
        .script_for(
            Matcher::new(Method::POST, query_path.clone()),
            [Fault::Status(502), Fault::Status(502)],
        )
        .script_for(
            Matcher::new(Method::POST, "/v1/pages"),
            [Fault::StatusAfterApply(502)],
        );
    let notion = client(&fake);

    let rows = notion
        .post(&query_path, json!({"page_size": 10}))
        .await
        .unwrap();
    assert_eq!(rows["results"].as_array().unwrap().len(), 3);
    let calls = |path: &str| fake.requests().iter().filter(|r| r.path == path).count();
    assert_eq!(calls(&query_path), 3, "two 502s, then the answer");

    let err = notion.post("pages", page_body("Once")).await.unwrap_err();
    let notion_err = err.notion().unwrap();
    assert_eq!(notion_err.code, NotionErrorCode::BadGateway);
    assert_eq!(notion_err.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        calls("/v1/pages"),
        1,
        "a write is never repeated after a 502"
    );
    assert_eq!(titles(&fake).get("Once"), Some(&1));
}

/// A 429 with `Retry-After: 2` on one request holds back every request of that token for 2 s.
#[tokio::test(start_paused = true)]
async fn a_429_retry_after_pauses_the_whole_bucket() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .seed_pages(1)
        .start()
        .await
        .unwrap();
    fake.faults().script([Fault::RateLimited {
        retry_after_secs: 2,
    }]);
    let notion = client(&fake);
    let first = notion.get("users/me", json!({}));
    let (first, ()) = tokio::join!(first, async {
        // Let the first request take its 429, then five more callers arrive.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let others: Vec<_> = (0..5)
            .map(|i| {
                let notion = notion.clone();
                tokio::spawn(async move { notion.get("users", json!({"page_size": i + 1})).await })
            })
            .collect();
        for other in others {
            other.await.unwrap().unwrap();
        }
    });
    first.unwrap();
    let requests = fake.requests();
    let throttled = requests.iter().find(|r| r.status == 429).unwrap().at;
    for req in requests.iter().filter(|r| r.status != 429) {
        assert!(
            req.at >= throttled + Duration::from_secs(2),
            "{} sent {:?} after the 429",
            req.path,
            req.at - throttled
        );
    }
    assert_eq!(requests.len(), 7, "the 429, its retry and five others");
    assert!(client_stats_paused(&notion) >= 1);
}

fn client_stats_paused(client: &Client) -> u64 {
    client.layer().stats().bucket.paused
}

/// Reads made before a 20 s outage keep being answered — the same JSON, marked stale — for the
/// whole outage; a page never read before it fails with Notion's 503.
#[tokio::test(start_paused = true)]
async fn reads_are_served_stale_through_a_20_second_outage() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .seed_pages(4)
        .start()
        .await
        .unwrap();
    let ids: Vec<String> = fake.pages().iter().map(|p| p.id.clone()).collect();
    let layer = NotionLayer::builder().token(TOKEN).build().unwrap();
    let http = HyperClient::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let svc = layer.layer(http);
    let get = |path: String| {
        let svc = svc.clone();
        let url = format!("{}{path}", fake.url());
        async move {
            let res = match svc
                .oneshot(Request::get(url).body(BufferedBody::empty()).unwrap())
                .await
            {
                Ok(res) => res,
                Err(err) => return Err(err),
            };
            let status = res.status();
            let cache = res.extensions().get::<CacheStatus>().copied();
            let header = res
                .headers()
                .get("cache-status")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            Ok((status, cache, header, body))
        }
    };
    let mut before = HashMap::new();
    for id in &ids[..3] {
        let (status, cache, _, body) = get(format!("/v1/pages/{id}")).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(cache, Some(CacheStatus::Live));
        before.insert(id.clone(), body);
    }

    fake.faults().outage(true);
    let start = tokio::time::Instant::now();
    let mut stale = 0;
    while start.elapsed() < Duration::from_secs(20) {
        for id in &ids[..3] {
            let (status, cache, header, body) = get(format!("/v1/pages/{id}")).await.unwrap();
            assert_eq!(status, 200, "{id} at {:?}", start.elapsed());
            assert!(
                matches!(cache, Some(CacheStatus::Stale { .. })),
                "{cache:?}"
            );
            // Asked and failed (`fwd=stale`, the 503 Notion gave), or refused unsent by the
            // open breaker (`hit`, negative ttl): RFC 9211 either way.
            let header = header.unwrap();
            assert!(
                header == "bulwark; fwd=stale; fwd-status=503"
                    || header.starts_with("bulwark; hit; ttl=-"),
                "{header}"
            );
            assert_eq!(body, before[id]);
            stale += 1;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(stale >= 15, "{stale} stale answers");
    // Never read before: Notion's 503 while the breaker is closed, `CircuitOpen` once it
    // opened (the client and the proxy render that as 503 `service_unavailable` too).
    match get(format!("/v1/pages/{}", ids[3])).await {
        Ok((status, _, _, body)) => {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["code"], "service_unavailable");
        }
        Err(err) => assert!(err.is::<bulwark::http::CircuitOpen>(), "{err}"),
    }
    let stats = layer.stats();
    assert!(
        stats.breaker.opens >= 1,
        "the breaker opened during the outage"
    );
    assert_eq!(stats.cache.stale_served, stale);

    fake.faults().outage(false);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (status, cache, _, _) = get(format!("/v1/pages/{}", ids[0])).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(cache, Some(CacheStatus::Live), "back to live answers");
}

/// The client follows `next_cursor` over 250 rows: three POSTed query pages, no row twice.
#[tokio::test]
async fn the_client_paginates_over_250_rows() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .seed_pages(250)
        .start()
        .await
        .unwrap();
    let notion = client(&fake);
    let rows: Vec<Value> = notion
        .paginate(
            &format!("data_sources/{SEED_DATA_SOURCE_ID}/query"),
            json!({"page_size": 100}),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 250);
    let mut ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 250, "no row twice");
    let queries: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/query"))
        .collect();
    assert_eq!(queries.len(), 3);
    assert!(queries[0].json().unwrap().get("start_cursor").is_none());
    assert!(queries[1].json().unwrap()["start_cursor"].is_string());
    // Every request carried the preset's headers.
    for req in &queries {
        assert_eq!(req.headers["notion-version"], "2025-09-03");
        assert!(req.headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("bulwark-notion/"));
        assert_eq!(req.token.as_deref(), Some(TOKEN));
    }

    // A GET list paginates through the query string.
    let users: Vec<Value> = notion
        .paginate("users", json!({"page_size": 1}))
        .try_collect()
        .await
        .unwrap();
    assert!(!users.is_empty());
}

/// Notion's errors reach the client parsed; a 404 is not retried.
#[tokio::test]
async fn the_client_returns_notion_errors() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .start()
        .await
        .unwrap();
    let notion = client(&fake);
    let err = notion
        .get("pages/00000000-0000-0000-0000-000000000000", json!({}))
        .await
        .unwrap_err();
    let err = err.notion().expect("a Notion error");
    assert_eq!(err.code, NotionErrorCode::ObjectNotFound);
    assert_eq!(err.status, 404);
    assert!(err.request_id.is_some());
    assert_eq!(fake.requests().len(), 1);

    let wrong = Client::builder("secret_wrong")
        .base_url(fake.url())
        .build()
        .unwrap();
    let err = wrong.get("users/me", json!({})).await.unwrap_err();
    assert_eq!(err.notion().unwrap().code, NotionErrorCode::Unauthorized);

    assert_eq!(
        Client::builder(TOKEN)
            .base_url("ftp://x")
            .build()
            .unwrap_err()
            .field(),
        "base_url"
    );
    assert_eq!(Client::new("").unwrap_err().field(), "token");
    assert_eq!(
        Client::builder(TOKEN)
            .connect_timeout(Duration::ZERO)
            .build()
            .unwrap_err()
            .field(),
        "connect_timeout"
    );
}

/// GET lists paginate through the query string: 250 blocks appended to a page (100 at a time,
/// never retried: an append is not idempotent), read back in three pages.
#[tokio::test]
async fn the_client_paginates_block_children_with_get() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .seed_pages(1)
        .start()
        .await
        .unwrap();
    let page = fake.pages()[0].id.clone();
    let notion = client(&fake);
    for chunk in 0..3 {
        let blocks: Vec<Value> = (0..100)
            .map(|i| chunk * 100 + i)
            .take_while(|n| *n < 250)
            .map(|n| {
                json!({"object": "block", "type": "paragraph",
                       "paragraph": {"rich_text": [{"type": "text", "text": {"content": format!("line {n}")}}]}})
            })
            .collect();
        notion
            .patch(
                &format!("blocks/{page}/children"),
                json!({"children": blocks}),
            )
            .await
            .unwrap();
    }
    let blocks: Vec<Value> = notion
        .paginate(
            &format!("blocks/{page}/children"),
            json!({"page_size": 100}),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(blocks.len(), 250);
    assert_eq!(
        blocks[249]["paragraph"]["rich_text"][0]["text"]["content"],
        "line 249"
    );
    let reads: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::GET && r.path.ends_with("/children"))
        .collect();
    assert_eq!(reads.len(), 3);
    assert!(!reads[0].query.as_deref().unwrap().contains("start_cursor"));
    assert!(reads[1].query.as_deref().unwrap().contains("start_cursor="));

    // Paths carry no query string of their own; a non-list endpoint is an error, not silence.
    assert!(matches!(
        notion.get("users/me?x=1", json!({})).await,
        Err(Error::InvalidRequest(_))
    ));
    let mut not_a_list = Box::pin(notion.paginate("users/me", json!({})));
    assert!(matches!(
        futures_util::StreamExt::next(&mut not_a_list).await,
        Some(Err(Error::InvalidRequest(_)))
    ));
}

/// The cache keys on `Notion-Version` even when a closure replaces the vary headers, and
/// `.without_cache()` really serves nothing stale.
#[tokio::test(start_paused = true)]
async fn cache_keys_hold_the_notion_version_and_without_cache_serves_nothing_stale() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .seed_pages(1)
        .start()
        .await
        .unwrap();
    let url = format!("{}/v1/pages/{}", fake.url(), fake.pages()[0].id);
    let http = HyperClient::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let read = |svc: bulwark::notion::Notion<_>, version: &'static str| {
        let req = Request::get(url.clone())
            .header("notion-version", version)
            .body(BufferedBody::empty())
            .unwrap();
        async move { svc.oneshot(req).await.map(|res| res.status()) }
    };

    let layer = NotionLayer::builder()
        .token(TOKEN)
        .cache(|c| c.vary_headers([http::header::ACCEPT_LANGUAGE]))
        .retry(|r| r.max_retries(0))
        .build()
        .unwrap();
    let svc = layer.layer(http.clone());
    assert_eq!(read(svc.clone(), "2022-06-28").await.unwrap(), 200);
    fake.faults().outage(true);
    // Another version's copy is not served: Notion's 503 passes through.
    assert_eq!(read(svc.clone(), "2025-09-03").await.unwrap(), 503);
    assert_eq!(read(svc.clone(), "2022-06-28").await.unwrap(), 200);
    assert_eq!(layer.stats().cache.stale_served, 1);

    fake.faults().outage(false);
    let off = NotionLayer::builder()
        .token(TOKEN)
        .without_cache()
        .retry(|r| r.max_retries(0))
        .build()
        .unwrap();
    let svc = off.layer(http);
    assert_eq!(read(svc.clone(), "2025-09-03").await.unwrap(), 200);
    fake.faults().outage(true);
    assert_eq!(read(svc, "2025-09-03").await.unwrap(), 503);
    assert_eq!(off.stats().cache.stores, 0);
}
