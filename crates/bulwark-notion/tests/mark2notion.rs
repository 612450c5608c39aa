//! The Mark2Notion preset against its fake (in process, paused time): a used-up monthly quota
//! is never retried, never opens the breaker, and later requests fail locally at once with
//! `QuotaExhausted`, until the quota comes back; the low-allowance warning fires once.

use std::time::Duration;

use bulwark_http::{BoxError, BufferedBody, QuotaExhausted};
use bulwark_notion::mark2notion::{Mark2NotionError, Mark2NotionLayer};
use bulwark_testkit::{CapturedLogs, FakeMark2Notion, InProcessMark2Notion};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

const KEY: &str = "mk_test_key";

fn convert(fake: &InProcessMark2Notion) -> Request<BufferedBody> {
    Request::post(format!("{}/api/convert", fake.base_url()))
        .header("content-type", "application/json")
        .body(BufferedBody::from(
            r##"{"markdown":"# Title\n\nSome text"}"##,
        ))
        .unwrap()
}

/// One request through the preset: its status, or the error.
async fn send(
    layer: &Mark2NotionLayer,
    fake: &InProcessMark2Notion,
) -> Result<(StatusCode, Vec<u8>, http::HeaderMap), BoxError> {
    let res = layer.layer(fake.clone()).oneshot(convert(fake)).await?;
    let (parts, body) = res.into_parts();
    let body = body.collect().await?.to_bytes().to_vec();
    Ok((parts.status, body, parts.headers))
}

#[tokio::test(start_paused = true)]
async fn a_used_up_quota_costs_one_call_and_no_waiting() {
    let fake = FakeMark2Notion::builder()
        .api_keys([KEY])
        .quota(5)
        .in_process();
    let handle = fake.handle();
    let layer = Mark2NotionLayer::builder().api_key(KEY).build().unwrap();

    for _ in 0..5 {
        let (status, _, _) = send(&layer, &fake).await.unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(handle.usage().remaining(), 0);

    // The call that reveals it: answered as it is (not retried), with the typed body. (After
    // a pause, so the bucket's 3/s costs no wait either.)
    tokio::time::advance(Duration::from_secs(2)).await;
    let started = Instant::now();
    let (status, body, headers) = send(&layer, &fake).await.unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(started.elapsed(), Duration::ZERO, "not retried, no backoff");
    let err = Mark2NotionError::from_body(status, &headers, &body);
    assert!(err.is_quota_exhausted(), "{err}");
    assert_eq!(err.usage().unwrap().plan.as_deref(), Some("free"));
    assert_eq!(handle.calls_after_exhaustion(), 1);
    assert_eq!(handle.calls().len(), 6);

    // Everything after: refused locally, at once, with the typed rejection.
    for _ in 0..20 {
        let started = Instant::now();
        let err = send(&layer, &fake).await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::ZERO);
        let exhausted = err
            .downcast_ref::<QuotaExhausted>()
            .unwrap_or_else(|| panic!("not QuotaExhausted: {err}"));
        assert_eq!(exhausted.resets_in, None, "a billing-period quota");
        assert!(exhausted.retry_after > Duration::from_secs(3500));
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(handle.calls_after_exhaustion(), 1, "no call wasted");
    assert_eq!(handle.calls().len(), 6);
    assert_eq!(layer.bucket().stats().rejected, 20);

    // The next billing period: the hourly recheck lets one call through, it succeeds, and
    // the lock is gone.
    handle.reset_usage();
    tokio::time::advance(Duration::from_secs(3600)).await;
    let (status, _, _) = send(&layer, &fake).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&layer, &fake).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(handle.calls().len(), 8);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_stays_closed_and_a_recheck_that_finds_it_still_used_up_relocks() {
    let fake = FakeMark2Notion::builder()
        .api_keys([KEY])
        .quota(1)
        .used(1)
        .in_process();
    let handle = fake.handle();
    let layer = Mark2NotionLayer::builder()
        .api_key(KEY)
        .breaker(|b| b.consecutive_failures(1))
        .bucket(|b| b.quota_recheck(Duration::from_secs(60)))
        .build()
        .unwrap();
    let (status, _, _) = send(&layer, &fake).await.unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Two more minutes: rechecks at 60 s and 120 s, each one call, each re-locking.
    for _ in 0..=120 {
        let _ = send(&layer, &fake).await;
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(
        handle.calls_after_exhaustion(),
        3,
        "{:?}",
        handle.calls().len()
    );
    assert_eq!(
        layer.breaker().state(),
        bulwark_breaker::BreakerState::Closed,
        "one failure would open it; the quota 429s are not failures"
    );
    // A 500 right after: the breaker (one failure opens it) was not opened by the 429s.
    handle.reset_usage();
    tokio::time::advance(Duration::from_secs(60)).await;
    let (status, _, _) = send(&layer, &fake).await.unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "the breaker never opened on a quota 429"
    );
}

#[tokio::test(start_paused = true)]
async fn the_low_allowance_warning_fires_once_per_crossing() {
    let fake = FakeMark2Notion::builder()
        .api_keys([KEY])
        .quota(100)
        .used(85)
        .in_process();
    let layer = Mark2NotionLayer::builder().api_key(KEY).build().unwrap();
    let logs = CapturedLogs::default();
    {
        let _guard = logs.capture_all();
        // 85 → 95 used: remaining falls under 10 at the 91st call; warned once.
        for _ in 0..10 {
            let (status, _, _) = send(&layer, &fake).await.unwrap();
            assert_eq!(status, StatusCode::OK);
        }
    }
    let text = logs.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("upstream allowance low"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(
        warnings[0].contains("plan=\"free\"") || warnings[0].contains("plan=free"),
        "{}",
        warnings[0]
    );
    assert!(!text.contains(KEY), "the API key leaked: {text}");
}

#[tokio::test(start_paused = true)]
async fn writes_are_not_repeated_and_auth_errors_are_not_retried() {
    let fake = FakeMark2Notion::builder().api_keys([KEY]).in_process();
    let handle = fake.handle();
    // A wrong key: 403, permanent, one call.
    let wrong = Mark2NotionLayer::builder()
        .api_key("mk_wrong")
        .build()
        .unwrap();
    let (status, body, headers) = send(&wrong, &fake).await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!Mark2NotionError::from_body(status, &headers, &body).is_quota_exhausted());
    assert_eq!(handle.calls().len(), 1);
    // An append that fails with a 500 may have been applied: never sent again.
    handle.fail_next(1);
    let layer = Mark2NotionLayer::builder().api_key(KEY).build().unwrap();
    let append = Request::post(format!("{}/api/append", fake.base_url()))
        .body(BufferedBody::from(
            r#"{"markdown":"x","notionToken":"secret_n","pageId":"p1"}"#,
        ))
        .unwrap();
    let res = layer.layer(fake.clone()).oneshot(append).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(handle.calls().len(), 2);
    // A convert (pure) that fails with a 500 is retried.
    handle.fail_next(1);
    let (status, _, _) = send(&layer, &fake).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(handle.calls().len(), 4);
}
