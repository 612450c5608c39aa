//! What a preset run records through the `metrics` facade (feature `metrics`): labelled
//! counters, histograms and the breaker's gauge, each with its `name` label and its
//! description — asserted on `metrics-util`'s debugging recorder (in process, paused time).
//!
//! Each test installs the recorder for its own thread only (`set_default_local_recorder`);
//! `#[tokio::test]` runs everything, spawned tasks included, on that thread.

use std::time::Duration;

use bulwark_http::BufferedBody;
use bulwark_notion::NotionLayer;
use bulwark_testkit::{FakeNotion, Fault, InProcessNotion, Matcher};
use http::{Method, Request, StatusCode};
use metrics_util::{
    debugging::{DebugValue, DebuggingRecorder, Snapshotter},
    CompositeKey, MetricKind,
};
use tower::{Layer, ServiceExt};

const TOKEN: &str = "secret_metrics_8fKq2";

/// One recorded series: kind, name, labels (sorted), value.
#[derive(Debug)]
struct Series {
    kind: MetricKind,
    name: String,
    labels: Vec<(String, String)>,
    value: DebugValue,
    unit: Option<metrics::Unit>,
    description: Option<String>,
}

fn series(snapshotter: &Snapshotter) -> Vec<Series> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, unit, description, value): (CompositeKey, _, _, _)| {
            let mut labels: Vec<(String, String)> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            Series {
                kind: key.kind(),
                name: key.key().name().to_owned(),
                labels,
                value,
                unit,
                description: description.map(|d| d.to_string()),
            }
        })
        .collect()
}

/// The series named `name` whose labels include every `(key, value)` of `labels`.
fn find<'a>(all: &'a [Series], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Series> {
    all.iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .collect()
}

fn counter(all: &[Series], name: &str, labels: &[(&str, &str)]) -> u64 {
    find(all, name, labels)
        .iter()
        .map(|s| match s.value {
            DebugValue::Counter(n) => n,
            _ => panic!("{name} is not a counter: {s:?}"),
        })
        .sum()
}

fn samples(all: &[Series], name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    find(all, name, labels)
        .iter()
        .flat_map(|s| match &s.value {
            DebugValue::Histogram(v) => v.iter().map(|x| x.into_inner()).collect::<Vec<_>>(),
            _ => panic!("{name} is not a histogram: {s:?}"),
        })
        .collect()
}

fn gauge(all: &[Series], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    find(all, name, labels).first().map(|s| match s.value {
        DebugValue::Gauge(v) => v.into_inner(),
        _ => panic!("{name} is not a gauge: {s:?}"),
    })
}

fn get(fake: &InProcessNotion, path: &str) -> Request<BufferedBody> {
    Request::builder()
        .method(Method::GET)
        .uri(format!("{}{path}", fake.base_url()))
        .body(BufferedBody::default())
        .unwrap()
}

async fn send(layer: &NotionLayer, fake: &InProcessNotion, path: &str) -> StatusCode {
    layer
        .layer(fake.clone())
        .oneshot(get(fake, path))
        .await
        .map(|res| res.status())
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

#[tokio::test(start_paused = true)]
async fn a_preset_run_records_labelled_counters_histograms_and_the_breaker_state() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .seed_pages(2)
        .in_process();
    let page = format!("/v1/pages/{}", fake.pages()[0].id);
    let other = format!("/v1/pages/{}", fake.pages()[1].id);
    let layer = NotionLayer::builder()
        .name("notion-main")
        .token(TOKEN)
        .breaker(|b| b.consecutive_failures(3).minimum_calls(1_000))
        .build()
        .unwrap();

    // A read answered at once (and stored).
    assert_eq!(send(&layer, &fake, &page).await, StatusCode::OK);
    // A 502 then a 429 (Retry-After: 1), then the answer: two retries.
    fake.faults().script_for(
        Matcher::new(Method::GET, "/v1/pages/"),
        [Fault::Status(502), Fault::Status(429)],
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(send(&layer, &fake, &page).await, StatusCode::OK);
    // An outage: the breaker opens, the stored copy answers (stale).
    fake.faults().outage(true);
    for _ in 0..3 {
        assert_eq!(send(&layer, &fake, &page).await, StatusCode::OK);
    }
    fake.faults().outage(false);
    // A 403, answered as it is.
    fake.faults().script_for(
        Matcher::new(Method::GET, "/v1/pages/"),
        [Fault::Status(403)],
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(send(&layer, &fake, &other).await, StatusCode::FORBIDDEN);

    let all = series(&snapshotter);
    let name = ("name", "notion-main");
    let dump = || format!("{all:#?}");

    // Every series carries the instance name; none the token.
    assert!(!all.is_empty());
    for s in &all {
        assert!(
            s.labels.contains(&("name".into(), "notion-main".into())),
            "{s:?}"
        );
        assert!(!format!("{s:?}").contains(TOKEN));
    }

    // bulwark_requests_total, per layer and outcome.
    let requests = |layer: &str, outcome: &str| {
        counter(
            &all,
            "bulwark_requests_total",
            &[name, ("layer", layer), ("outcome", outcome)],
        )
    };
    assert!(requests("retry", "success") >= 2, "{}", dump());
    assert!(requests("retry", "failure") >= 1, "the 403: {}", dump());
    assert!(requests("bucket", "admitted") >= 4, "{}", dump());
    assert!(requests("breaker", "permitted") >= 4, "{}", dump());
    assert!(requests("cache", "miss") >= 2, "{}", dump());

    // Retries by class (the 502, then the outage's 503s), and their waits by reason.
    assert!(
        counter(
            &all,
            "bulwark_retry_attempts_total",
            &[name, ("class", "transient")]
        ) >= 1,
        "{}",
        dump()
    );
    assert_eq!(
        counter(
            &all,
            "bulwark_retry_attempts_total",
            &[name, ("class", "throttled")]
        ),
        1,
        "{}",
        dump()
    );
    let waits = samples(
        &all,
        "bulwark_retry_wait_seconds",
        &[name, ("reason", "retry_after")],
    );
    assert_eq!(waits.len(), 1, "{}", dump());
    assert!(waits[0] >= 1.0, "Retry-After: 1 → {waits:?}");
    // The 429 paused the bucket.
    assert!(
        counter(&all, "bulwark_bucket_paused_total", &[name]) >= 1,
        "{}",
        dump()
    );

    // The breaker opened during the outage (and its gauge says where it is now).
    assert!(
        counter(
            &all,
            "bulwark_breaker_transitions_total",
            &[name, ("to", "open")]
        ) >= 1,
        "{}",
        dump()
    );
    assert!(
        gauge(&all, "bulwark_breaker_state", &[name]).is_some(),
        "{}",
        dump()
    );

    // The cache stored the page and served it stale, with its age.
    assert!(
        counter(&all, "bulwark_cache_stores_total", &[name]) >= 1,
        "{}",
        dump()
    );
    let ages: Vec<f64> = ["upstream_failed", "refused_locally", "coalesced_failed"]
        .iter()
        .flat_map(|reason| {
            samples(
                &all,
                "bulwark_cache_age_seconds",
                &[name, ("reason", reason)],
            )
        })
        .collect();
    assert!(!ages.is_empty(), "{}", dump());
    assert!(ages.iter().all(|age| *age >= 0.0));

    // Notion errors by status and code.
    assert_eq!(
        counter(
            &all,
            "bulwark_notion_errors_total",
            &[name, ("status", "429"), ("code", "rate_limited")]
        ),
        1,
        "{}",
        dump()
    );
    assert_eq!(
        counter(
            &all,
            "bulwark_notion_errors_total",
            &[name, ("status", "403"), ("code", "restricted_resource")]
        ),
        1,
        "{}",
        dump()
    );

    // Request durations by outcome: the retried read waited for its Retry-After.
    let ok = samples(
        &all,
        "bulwark_notion_request_duration_seconds",
        &[name, ("outcome", "ok")],
    );
    assert_eq!(ok.len(), 2, "{}", dump());
    assert!(ok.iter().any(|d| *d >= 1.0), "{ok:?}");
    let stale = samples(
        &all,
        "bulwark_notion_request_duration_seconds",
        &[name, ("outcome", "stale")],
    );
    assert!(!stale.is_empty(), "{}", dump());
    let http_error = samples(
        &all,
        "bulwark_notion_request_duration_seconds",
        &[name, ("outcome", "http_error")],
    );
    assert_eq!(http_error.len(), 1, "{}", dump());

    // Described, with units: a dashboard tool shows what each one means.
    for (metric, kind, unit) in [
        (
            "bulwark_requests_total",
            MetricKind::Counter,
            Some(metrics::Unit::Count),
        ),
        (
            "bulwark_retry_wait_seconds",
            MetricKind::Histogram,
            Some(metrics::Unit::Seconds),
        ),
        (
            "bulwark_cache_age_seconds",
            MetricKind::Histogram,
            Some(metrics::Unit::Seconds),
        ),
        ("bulwark_breaker_state", MetricKind::Gauge, None),
        (
            "bulwark_notion_request_duration_seconds",
            MetricKind::Histogram,
            Some(metrics::Unit::Seconds),
        ),
    ] {
        let found = find(&all, metric, &[]);
        assert!(!found.is_empty(), "{metric} missing: {}", dump());
        for s in found {
            assert_eq!(s.kind, kind, "{s:?}");
            assert_eq!(s.unit, unit, "{s:?}");
            assert!(
                s.description.as_deref().is_some_and(|d| !d.is_empty()),
                "{s:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn two_presets_keep_separate_series() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let fake = FakeNotion::builder()
        .no_rate_limit()
        .tokens([TOKEN])
        .seed_pages(1)
        .in_process();
    let page = format!("/v1/pages/{}", fake.pages()[0].id);
    let breaker = |b: bulwark_notion::NotionBreaker| b.consecutive_failures(2).minimum_calls(1_000);
    let a = NotionLayer::builder()
        .name("integration-a")
        .token(TOKEN)
        .breaker(breaker)
        .build()
        .unwrap();
    let b = NotionLayer::builder()
        .name("integration-b")
        .token(TOKEN)
        .breaker(breaker)
        .without_cache()
        .build()
        .unwrap();
    // `a` sees the upstream fail until its breaker opens; `b` only sees it answer.
    fake.faults().outage(true);
    for _ in 0..3 {
        let _ = send(&a, &fake, &page).await;
    }
    fake.faults().outage(false);
    assert_eq!(send(&b, &fake, &page).await, StatusCode::OK);

    let all = series(&snapshotter);
    let state_a = gauge(&all, "bulwark_breaker_state", &[("name", "integration-a")]);
    let state_b = gauge(&all, "bulwark_breaker_state", &[("name", "integration-b")]);
    assert_eq!(state_a, Some(1.0), "a's breaker is open: {all:#?}");
    assert_eq!(state_b, Some(0.0), "b's breaker is closed: {all:#?}");
    assert_eq!(
        counter(
            &all,
            "bulwark_requests_total",
            &[
                ("name", "integration-b"),
                ("layer", "retry"),
                ("outcome", "success")
            ]
        ),
        1
    );
    assert_eq!(
        counter(
            &all,
            "bulwark_requests_total",
            &[
                ("name", "integration-a"),
                ("layer", "retry"),
                ("outcome", "success")
            ]
        ),
        0
    );
    // `b` has no cache: no cache series under its name.
    assert!(find(
        &all,
        "bulwark_requests_total",
        &[("name", "integration-b"), ("layer", "cache")]
    )
    .iter()
    .all(|s| matches!(s.value, DebugValue::Counter(0))));
}

#[tokio::test(start_paused = true)]
async fn a_layer_used_alone_records_under_its_own_name() {
    use bulwark_retry::RetryLayer;
    use tower::service_fn;

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let svc = {
        let calls = calls.clone();
        service_fn(move |_req: Request<BufferedBody>| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                let status = if n == 0 { 503 } else { 200 };
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder().status(status).body(()).unwrap(),
                )
            }
        })
    };
    let retry = RetryLayer::new().name("billing").layer(svc);
    let res = retry
        .oneshot(
            Request::get("http://127.0.0.1/x")
                .body(BufferedBody::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let all = series(&snapshotter);
    assert_eq!(
        counter(
            &all,
            "bulwark_requests_total",
            &[
                ("name", "billing"),
                ("layer", "retry"),
                ("outcome", "success")
            ]
        ),
        1
    );
    assert_eq!(
        counter(
            &all,
            "bulwark_retry_attempts_total",
            &[("name", "billing"), ("class", "transient")]
        ),
        1
    );
    assert_eq!(
        samples(
            &all,
            "bulwark_retry_wait_seconds",
            &[("name", "billing"), ("reason", "backoff")]
        )
        .len(),
        1
    );
}
