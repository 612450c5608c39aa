//! `StaleCacheLayer` against FakeNotion through a 20 s outage.

use std::time::Duration;

use bulwark::{
    cache::{CacheStatus, StaleCacheLayer},
    http::BufferedBody,
};
use bulwark_testkit::FakeNotion;
use http::Request;
use http_body_util::BodyExt;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Layer, ServiceExt};

fn read(base: &str, path: &str) -> Request<BufferedBody> {
    Request::get(format!("{base}{path}"))
        .header("authorization", "Bearer secret")
        .header("notion-version", "2025-09-03")
        .body(BufferedBody::empty())
        .unwrap()
}

/// Every key read before the outage is answered — stale and marked — all through it.
#[tokio::test(start_paused = true)]
async fn reads_are_answered_stale_through_a_20_second_outage() {
    let fake = FakeNotion::builder()
        .no_rate_limit()
        .seed_pages(5)
        .start()
        .await
        .unwrap();
    let ids: Vec<String> = fake.pages().iter().map(|p| p.id.clone()).collect();
    let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let cache = StaleCacheLayer::new();
    let svc = cache.layer(client);
    let mut live = Vec::new();
    for id in &ids {
        let res = svc
            .clone()
            .oneshot(read(&fake.url(), &format!("/v1/pages/{id}")))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        live.push(res.into_body().collect().await.unwrap().to_bytes());
    }
    fake.faults().outage(true);
    let mut answered = 0;
    for second in 0..20u64 {
        for (id, first) in ids.iter().zip(&live) {
            let res = svc
                .clone()
                .oneshot(read(&fake.url(), &format!("/v1/pages/{id}")))
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "second {second}");
            let Some(CacheStatus::Stale { age }) = res.extensions().get::<CacheStatus>().copied()
            else {
                panic!("not marked stale");
            };
            assert_eq!(age, Duration::from_secs(second));
            assert_eq!(
                res.headers()["cache-status"],
                "bulwark; fwd=stale; fwd-status=503"
            );
            assert_eq!(&res.into_body().collect().await.unwrap().to_bytes(), first);
            answered += 1;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(answered, 100);
    fake.faults().outage(false);
    let res = svc
        .clone()
        .oneshot(read(&fake.url(), &format!("/v1/pages/{}", ids[0])))
        .await
        .unwrap();
    assert_eq!(
        res.extensions().get::<CacheStatus>(),
        Some(&CacheStatus::Live)
    );
    // A key never read before the outage has nothing to fall back on.
    fake.faults().outage(true);
    let res = svc
        .clone()
        .oneshot(read(&fake.url(), "/v1/users/me"))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
}
