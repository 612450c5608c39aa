//! `TokenBucketLayer` against FakeNotion's 3 requests/second, and in an axum router.

use std::time::Duration;

use axum::{body::Body, routing::get, Router};
use bulwark::{
    bucket::{Rate, TokenBucketLayer},
    http::{BufferedBody, RejectionResponseLayer},
};
use bulwark_testkit::FakeNotion;
use http::{Request, StatusCode};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Layer, ServiceBuilder, ServiceExt};

fn read(base: &str) -> Request<BufferedBody> {
    Request::get(format!("{base}/v1/users/me"))
        .header("authorization", "Bearer secret")
        .header("notion-version", "2025-09-03")
        .body(BufferedBody::empty())
        .unwrap()
}

/// 60 requests as fast as they can go: with the layer at 3/s, FakeNotion (3/s, burst 3)
/// answers none of them 429; without it, most are refused. Paused time makes the client's
/// and FakeNotion's clocks one clock, so the comparison is exact.
#[tokio::test(start_paused = true)]
async fn sixty_requests_at_full_speed_get_no_429_with_the_layer() {
    let fake = FakeNotion::builder()
        .rate_limit(3, 3)
        .start()
        .await
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();

    // Without the layer.
    let tasks: Vec<_> = (0..60)
        .map(|_| tokio::spawn(client.request(read(&fake.url()))))
        .collect();
    let mut throttled = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().status() == StatusCode::TOO_MANY_REQUESTS {
            throttled += 1;
        }
    }
    assert!(
        throttled >= 50,
        "without the layer {throttled} of 60 were refused"
    );

    // Let FakeNotion's bucket refill, then the same burst through the layer.
    tokio::time::sleep(Duration::from_secs(5)).await;
    fake.clear_requests();
    let layer = TokenBucketLayer::new(Rate::per_second(3));
    let svc = layer.layer(client);
    let start = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..60)
        .map(|_| tokio::spawn(svc.clone().oneshot(read(&fake.url()))))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert!(fake.requests().iter().all(|r| r.status == 200));
    assert_eq!(fake.requests().len(), 60);
    // 3 at once, then 57 more at 3/s.
    assert_eq!(start.elapsed(), Duration::from_secs(19));
    assert_eq!(layer.stats().waited, 57);
}

/// A 429 with `Retry-After` from FakeNotion pauses the whole bucket.
#[tokio::test(start_paused = true)]
async fn a_notion_429_pauses_every_caller() {
    let fake = FakeNotion::builder().no_rate_limit().start().await.unwrap();
    fake.faults().script([bulwark_testkit::Fault::RateLimited {
        retry_after_secs: 2,
    }]);
    let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let layer = TokenBucketLayer::new(Rate::per_second(100));
    let svc = layer.layer(client);
    let start = tokio::time::Instant::now();
    assert_eq!(
        svc.clone()
            .oneshot(read(&fake.url()))
            .await
            .unwrap()
            .status(),
        429
    );
    let tasks: Vec<_> = (0..5)
        .map(|_| tokio::spawn(svc.clone().oneshot(read(&fake.url()))))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status(), 200);
    }
    let log = fake.requests();
    assert!(log[1..]
        .iter()
        .all(|r| r.at - start >= Duration::from_secs(2)));
    assert_eq!(layer.stats().paused, 1);
}

/// Reject mode on a server: 429 with `Retry-After` and RateLimit headers.
#[tokio::test(start_paused = true)]
async fn reject_mode_in_an_axum_router_answers_429_with_headers() {
    let limit = TokenBucketLayer::new(Rate::per_second(2))
        .max_wait(Duration::ZERO)
        .emit_headers(true);
    let app = Router::new().route("/", get(|| async { "hello" })).layer(
        ServiceBuilder::new()
            .layer(RejectionResponseLayer::new())
            .layer(limit),
    );
    let get_root = || Request::get("/").body(Body::empty()).unwrap();
    let ok = app.clone().oneshot(get_root()).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["ratelimit"], r#""default";r=1;t=1"#);
    assert_eq!(app.clone().oneshot(get_root()).await.unwrap().status(), 200);
    let refused = app.clone().oneshot(get_root()).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        refused.headers()["ratelimit-policy"],
        r#""default";q=2;w=1"#
    );
    assert_eq!(refused.headers()["ratelimit"], r#""default";r=0;t=1"#);
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(app.clone().oneshot(get_root()).await.unwrap().status(), 200);
}
