//! Issue 17: `RetryConfig` read from TOML — field-path errors, defaults kept, and a parsed
//! file that really configures the layer.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use bulwark_retry::{Backoff, RetryConfig, RetryLayer};
use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower::{service_fn, Layer, ServiceExt};

/// Parses `text`, reporting an error as `path: message`.
fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text))
        .map_err(|e| format!("{}: {}", e.path(), e.inner().message()))
}

/// Sends one GET through `layer` to an upstream that always answers 503; returns the calls.
async fn calls_against_failing_upstream(layer: RetryLayer) -> u32 {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let svc = layer.layer(service_fn(move |_req: Request<String>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            Ok::<_, std::convert::Infallible>(Response::builder().status(503).body(()).unwrap())
        }
    }));
    let res = svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(res.status(), 503);
    calls.load(Ordering::SeqCst)
}

#[test]
fn unknown_field_is_rejected_with_its_path() {
    let err = parse::<RetryConfig>("[backoff]\nbase = \"1s\"\nbsae = \"2s\"\n").unwrap_err();
    assert!(
        err.starts_with("backoff.bsae: unknown field `bsae`"),
        "{err}"
    );
    let err = parse::<RetryConfig>("max_retrys = 5\n").unwrap_err();
    assert!(err.contains("unknown field `max_retrys`"), "{err}");
}

#[test]
fn bad_duration_is_reported_with_its_path() {
    let err = parse::<RetryConfig>("max_retry_after = \"3 parsecs\"\n").unwrap_err();
    assert!(err.starts_with("max_retry_after: "), "{err}");
    assert!(err.contains("parsecs"), "{err}");
    let err = parse::<RetryConfig>("backoff = { kind = \"linear\" }\n").unwrap_err();
    assert!(
        err.starts_with("backoff.kind: unknown variant `linear`"),
        "{err}"
    );
}

#[test]
fn semantic_error_names_the_setting() {
    let config: RetryConfig = parse("backoff = { base = \"5s\", max_delay = \"1s\" }\n").unwrap();
    let err = RetryLayer::from_config(config).unwrap_err();
    assert_eq!(err.field(), "backoff");
    let config: RetryConfig = parse("total_timeout = \"0s\"\n").unwrap();
    assert_eq!(
        RetryLayer::from_config(config).unwrap_err().field(),
        "total_timeout"
    );
}

#[test]
fn durations_are_written_as_people_write_them() {
    let config: RetryConfig = parse(
        "max_retry_after = \"5m\"\ntotal_timeout = \"1m 30s\"\n\
         backoff = { kind = \"constant\", base = \"250ms\", jitter = \"equal\" }\n",
    )
    .unwrap();
    assert_eq!(config.max_retry_after, Some(Duration::from_secs(300)));
    assert_eq!(config.total_timeout, Some(Duration::from_secs(90)));
    let backoff = config.backoff.unwrap().to_backoff(Backoff::default());
    assert_eq!(backoff.base(), Duration::from_millis(250));
    assert_eq!(backoff.cap(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn missing_fields_keep_the_defaults() {
    let config: RetryConfig = parse("").unwrap();
    assert_eq!(config, RetryConfig::default());
    // The default is 3 retries: 4 calls.
    let layer = RetryLayer::from_config(config).unwrap();
    assert_eq!(calls_against_failing_upstream(layer).await, 4);
    // A backoff section with only a base keeps the default cap.
    let config: RetryConfig = parse("backoff = { base = \"1s\" }\n").unwrap();
    let backoff = config.backoff.unwrap().to_backoff(Backoff::default());
    assert_eq!(backoff.cap(), Backoff::default().cap());
}

#[tokio::test(start_paused = true)]
async fn a_parsed_file_configures_the_layer() {
    let config: RetryConfig =
        parse("max_retries = 5\nbackoff = { kind = \"constant\", base = \"10ms\" }\n").unwrap();
    let layer = RetryLayer::from_config(config).unwrap();
    assert_eq!(calls_against_failing_upstream(layer).await, 6);
}
