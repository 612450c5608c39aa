//! The Notion preset inside a reqwest client (`reqwest-middleware`) against FakeNotion over
//! real loopback HTTP: a GET retried after 502s, a 429 pausing the whole bucket, a read served
//! stale through an outage, the breaker opening with a rejection callers can find, and a
//! read-only POST's body sent again on retry.
//!
//! Timing tests run on paused time: FakeNotion and the client share tokio's clock, so the
//! preset's backoffs and `Retry-After` waits take none.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bulwark_http::{CircuitOpen, Rejection};
use bulwark_notion::NotionLayer;
use bulwark_reqwest::BulwarkMiddleware;
use bulwark_testkit::{FakeNotion, Fault};
use http::Extensions;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};

const TOKEN: &str = "secret_reqwest";

async fn fake(pages: usize) -> FakeNotion {
    FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .seed_pages(pages)
        .start()
        .await
        .expect("FakeNotion starts on loopback")
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a plain HTTP client")
}

fn client(layer: &NotionLayer) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest_client())
        .with(BulwarkMiddleware::new(layer.clone()))
        .build()
}

/// Counts what reaches the middlewares registered after bulwark.
#[derive(Clone, Default)]
struct CountAttempts(Arc<AtomicUsize>);

#[async_trait::async_trait]
impl Middleware for CountAttempts {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        self.0.fetch_add(1, Ordering::SeqCst);
        next.run(req, extensions).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_get_is_retried_after_scripted_502s_and_each_attempt_goes_down_the_chain() {
    let fake = fake(0).await;
    fake.faults()
        .script([Fault::Status(502), Fault::Status(502)]);
    let layer = NotionLayer::builder().token(TOKEN).build().unwrap();
    let attempts = CountAttempts::default();
    let client = ClientBuilder::new(reqwest_client())
        .with(BulwarkMiddleware::new(layer.clone()))
        .with(attempts.clone())
        .build();

    let url = format!("{}/v1/users/me", fake.url());
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.url().as_str(), url);
    let user: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(user["object"], "user");

    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [502, 502, 200]);
    assert!(fake
        .requests()
        .iter()
        .all(|r| r.token.as_deref() == Some(TOKEN)));
    assert_eq!(layer.stats().retry.retries, 2);
    assert_eq!(attempts.0.load(Ordering::SeqCst), 3, "one per attempt");
}

/// A 429 with `Retry-After: 2` on one request holds back every request of the client for 2 s.
#[tokio::test(start_paused = true)]
async fn a_429_retry_after_pauses_the_whole_bucket() {
    let fake = fake(1).await;
    fake.faults().script([Fault::RateLimited {
        retry_after_secs: 2,
    }]);
    let layer = NotionLayer::builder().token(TOKEN).build().unwrap();
    let client = client(&layer);
    let base = fake.url();

    let first = client.get(format!("{base}/v1/users/me")).send();
    let (first, ()) = tokio::join!(first, async {
        // Let the first request take its 429, then five more callers arrive.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let others: Vec<_> = (0..5)
            .map(|i| {
                let client = client.clone();
                let url = format!("{base}/v1/users?page_size={}", i + 1);
                tokio::spawn(async move { client.get(url).send().await })
            })
            .collect();
        for other in others {
            assert_eq!(other.await.unwrap().unwrap().status(), 200);
        }
    });
    assert_eq!(first.unwrap().status(), 200);

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
    assert!(layer.stats().bucket.paused >= 1);
}

#[tokio::test(start_paused = true)]
async fn a_read_is_served_stale_from_the_cache_during_an_outage() {
    let fake = fake(1).await;
    let id = fake.pages()[0].id.clone();
    let layer = NotionLayer::builder().token(TOKEN).build().unwrap();
    let client = client(&layer);
    let url = format!("{}/v1/pages/{id}", fake.url());

    let live = client.get(&url).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let live = live.bytes().await.unwrap();

    fake.faults().outage(true);
    let stale = client.get(&url).send().await.unwrap();
    assert_eq!(stale.status(), 200);
    let cache_status = stale.headers()["cache-status"].to_str().unwrap().to_owned();
    assert!(
        cache_status.contains("fwd=stale") || cache_status.contains("hit"),
        "{cache_status}"
    );
    assert_eq!(
        stale.bytes().await.unwrap(),
        live,
        "the same JSON as before"
    );
    assert_eq!(layer.stats().cache.stale_served, 1);
    assert!(
        fake.requests().iter().any(|r| r.status == 503),
        "Notion was down"
    );
    fake.faults().outage(false);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_during_an_outage_and_its_rejection_is_found() {
    let fake = fake(1).await;
    let id = fake.pages()[0].id.clone();
    let layer = NotionLayer::builder().token(TOKEN).build().unwrap();
    let client = client(&layer);
    let url = format!("{}/v1/pages/{id}", fake.url());

    fake.faults().outage(true);
    let mut rejected = None;
    // 4 attempts per request, 5 consecutive failures open the breaker: the 2nd or 3rd
    // request is refused unsent.
    for _ in 0..10 {
        match client.get(&url).send().await {
            Ok(res) => assert_eq!(res.status(), 503, "Notion's outage answer"),
            Err(err) => {
                rejected = Some(err);
                break;
            }
        }
    }
    let err = rejected.expect("the breaker opened within 10 requests");
    let Some(Rejection::CircuitOpen(open)) = bulwark_reqwest::rejection(&err) else {
        panic!("not a CircuitOpen: {err:?}");
    };
    assert!(open.retry_after <= Duration::from_secs(5), "{open:?}");
    // The same through anyhow's chain, as the error module documents.
    let reqwest_middleware::Error::Middleware(inner) = &err else {
        panic!("a rejection is a middleware error: {err:?}");
    };
    assert!(inner
        .chain()
        .any(|e| e.downcast_ref::<CircuitOpen>().is_some()));
    assert!(layer.stats().breaker.opens >= 1);
    assert!(layer.stats().breaker.rejections >= 1);
    fake.faults().outage(false);
}

/// `POST /v1/search` is read-only, so the preset retries it — with its JSON body each time.
#[tokio::test(start_paused = true)]
async fn a_read_only_posts_body_is_sent_again_on_retry() {
    let fake = fake(2).await;
    fake.faults().script([Fault::Status(502)]);
    let layer = NotionLayer::builder()
        .token(TOKEN)
        .without_cache()
        .build()
        .unwrap();
    let client = client(&layer);

    let res = client
        .post(format!("{}/v1/search", fake.url()))
        .header("content-type", "application/json")
        .body(r#"{"page_size": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let requests = fake.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [502, 200]);
    for req in &requests {
        assert_eq!(req.path, "/v1/search");
        assert_eq!(
            &req.body[..],
            br#"{"page_size": 1}"#,
            "the same body both times"
        );
    }
    assert_eq!(layer.stats().retry.retries, 1);
}

/// Other clients built from the same layer share its state, and so do the client's clones.
#[tokio::test(start_paused = true)]
async fn every_request_of_the_client_shares_one_breaker() {
    let fake = fake(0).await;
    let layer = NotionLayer::builder().token(TOKEN).build().unwrap();
    let client = client(&layer);
    let url = format!("{}/v1/users/me", fake.url());
    for _ in 0..3 {
        let client = client.clone();
        assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    }
    assert_eq!(layer.stats().breaker.calls, 3);
    assert_eq!(layer.stats().retry.attempts, 3);
}
