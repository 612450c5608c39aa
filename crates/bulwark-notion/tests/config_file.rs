//! Issue 17: `NotionConfig` read from TOML — field-path errors for bad syntax and bad values,
//! Notion's defaults kept for what a file leaves out, and a parsed file that really configures
//! the preset.

use std::sync::{
    atomic::{AtomicU32, Ordering},
    Arc,
};

use bulwark_http::{BoxError, BufferedBody};
use bulwark_notion::{NotionConfig, NotionLayer};
use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower::{service_fn, Layer, ServiceExt};

/// Parses `text`, reporting an error as `path: message`.
fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text))
        .map_err(|e| format!("{}: {}", e.path(), e.inner().message()))
}

/// The path `NotionLayer::from_config` reports for `text`.
fn semantic_error_path(text: &str) -> String {
    let config: NotionConfig = parse(text).unwrap();
    let err = NotionLayer::from_config(config).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!("`{}`: ", err.path())),
        "{err}"
    );
    err.path().to_owned()
}

#[test]
fn unknown_field_is_rejected_with_its_path() {
    let err = parse::<NotionConfig>("[breaker]\nfailure_ration = 0.5\n").unwrap_err();
    assert!(
        err.starts_with("breaker.failure_ration: unknown field"),
        "{err}"
    );
    let err = parse::<NotionConfig>("[retry.backoff]\nbsae = \"1s\"\n").unwrap_err();
    assert!(
        err.starts_with("retry.backoff.bsae: unknown field"),
        "{err}"
    );
    let err = parse::<NotionConfig>("token = \"secret_abc\"\n").unwrap_err();
    assert!(err.contains("unknown field `token`"), "{err}");
    assert!(
        err.contains("token_env"),
        "the message lists the fields: {err}"
    );
}

#[test]
fn bad_duration_is_reported_with_its_path() {
    let err = parse::<NotionConfig>("[retry]\nmax_retry_after = \"3 parsecs\"\n").unwrap_err();
    assert!(err.starts_with("retry.max_retry_after: "), "{err}");
    let err = parse::<NotionConfig>("[breaker]\nwindow = { time = \"3 parsecs\" }\n").unwrap_err();
    assert!(err.starts_with("breaker.window.time: "), "{err}");
    let err = parse::<NotionConfig>("attempt_timeout = 60\n").unwrap_err();
    assert!(err.starts_with("attempt_timeout: "), "{err}");
    let err = parse::<NotionConfig>("[bucket]\nrate = \"3 a second\"\n").unwrap_err();
    assert!(err.starts_with("bucket.rate: "), "{err}");
}

#[test]
fn semantic_errors_are_reported_with_their_paths() {
    assert_eq!(
        semantic_error_path("[breaker]\nfailure_ratio = 2.0\n"),
        "breaker.failure_ratio"
    );
    assert_eq!(semantic_error_path("[bucket]\nburst = 0\n"), "bucket.burst");
    assert_eq!(
        semantic_error_path("[cache]\nmax_entries = 0\n"),
        "cache.max_entries"
    );
    assert_eq!(
        semantic_error_path("[retry]\nbackoff = { base = \"1m\" }\n"),
        "retry.backoff",
        "a base above Notion's 30 s cap"
    );
    assert_eq!(
        semantic_error_path("attempt_timeout = \"0s\"\n"),
        "attempt_timeout"
    );
    assert_eq!(
        semantic_error_path("notion_version = \"\"\n"),
        "notion_version"
    );
    assert_eq!(
        semantic_error_path("token_env = \"BULWARK_TEST_CONFIG_FILE_UNSET_VARIABLE\"\n"),
        "token_env"
    );
}

#[test]
fn the_token_comes_from_the_named_variable() {
    // A name no other test uses; set once, never removed, so no test races on it.
    std::env::set_var("BULWARK_TEST_CONFIG_FILE_TOKEN", "secret_from_env");
    let config: NotionConfig = parse("token_env = \"BULWARK_TEST_CONFIG_FILE_TOKEN\"\n").unwrap();
    let builder = NotionLayer::builder().config(config).unwrap();
    let debug = format!("{builder:?}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(!debug.contains("secret_from_env"), "{debug}");
}

#[test]
fn missing_fields_keep_the_defaults() {
    let config: NotionConfig = parse("").unwrap();
    assert_eq!(config, NotionConfig::default());
    let from_file = NotionLayer::builder().config(config).unwrap();
    assert_eq!(
        format!("{from_file:?}"),
        format!("{:?}", NotionLayer::builder())
    );
    // A section that sets one value keeps Notion's others.
    let config: NotionConfig = parse("[retry]\nmax_retries = 3\n[cache]\n[bucket]\n").unwrap();
    let from_file = NotionLayer::builder().config(config).unwrap();
    assert_eq!(
        format!("{from_file:?}"),
        format!("{:?}", NotionLayer::builder())
    );
}

/// GETs a page through the preset built from `text`, against an upstream that always
/// answers 503; returns the upstream's calls.
async fn calls_against_failing_upstream(text: &str) -> u32 {
    let config: NotionConfig = parse(text).unwrap();
    let layer = NotionLayer::from_config(config).unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let svc = layer.layer(service_fn(move |_req: Request<BufferedBody>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            let body =
                r#"{"object":"error","status":503,"code":"service_unavailable","message":"down"}"#;
            Ok::<_, BoxError>(
                Response::builder()
                    .status(503)
                    .header("content-type", "application/json")
                    .body(BufferedBody::from(body))
                    .unwrap(),
            )
        }
    }));
    let req = Request::get("http://notion.test/v1/pages/abc")
        .header("authorization", "Bearer secret_a")
        .body(BufferedBody::default())
        .unwrap();
    let _ = svc.oneshot(req).await;
    calls.load(Ordering::SeqCst)
}

/// Breaker off (it would open after 5 failures in a row), short backoff, no cache; `retry`
/// goes into the `[retry]` table.
fn quiet(retry: &str) -> String {
    format!(
        "cache_enabled = false\n\
         [breaker]\nconsecutive_failures = 0\n\
         [retry]\n{retry}\n\
         [retry.backoff]\nkind = \"constant\"\nbase = \"10ms\"\n"
    )
}

#[tokio::test(start_paused = true)]
async fn a_parsed_file_configures_the_preset() {
    // Notion's default: 3 retries, 4 calls.
    assert_eq!(calls_against_failing_upstream(&quiet("")).await, 4);
    assert_eq!(
        calls_against_failing_upstream(&quiet("max_retries = 5")).await,
        6
    );
}
