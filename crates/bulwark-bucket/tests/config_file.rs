//! Issue 17: `TokenBucketConfig` read from TOML — field-path errors, defaults kept, and a
//! parsed file that really configures the bucket.

use std::time::Duration;

use bulwark_bucket::{Rate, RateLimited, TokenBucketConfig, TokenBucketLayer};
use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower::{service_fn, Layer, Service, ServiceExt};

/// Parses `text`, reporting an error as `path: message`.
fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text))
        .map_err(|e| format!("{}: {}", e.path(), e.inner().message()))
}

#[test]
fn unknown_field_is_rejected_with_its_path() {
    let err = parse::<TokenBucketConfig>("rate = \"3/s\"\nbrust = 3\n").unwrap_err();
    assert!(err.contains("unknown field `brust`"), "{err}");
    let err = parse::<TokenBucketConfig>("rate = { count = 3, period = \"1s\" }\n").unwrap_err();
    assert!(err.starts_with("rate"), "{err}");
    assert!(err.contains("unknown field `period`"), "{err}");
}

#[test]
fn bad_rate_and_duration_are_reported_with_their_paths() {
    let err = parse::<TokenBucketConfig>("max_wait = \"3 parsecs\"\n").unwrap_err();
    assert!(err.starts_with("max_wait: "), "{err}");
    let err = parse::<TokenBucketConfig>("rate = \"3/parsec\"\n").unwrap_err();
    assert!(err.starts_with("rate: "), "{err}");
    assert!(err.contains("parsec"), "{err}");
    let err = parse::<TokenBucketConfig>("rate = \"three per second\"\n").unwrap_err();
    assert!(err.starts_with("rate: "), "{err}");
}

#[test]
fn rates_are_written_as_people_write_them() {
    for (text, rate) in [
        ("rate = \"3/s\"", Rate::per_second(3)),
        ("rate = \"100/m\"", Rate::per_minute(100)),
        ("rate = \"5/h\"", Rate::new(5, Duration::from_secs(3600))),
        (
            "rate = \"10/250ms\"",
            Rate::new(10, Duration::from_millis(250)),
        ),
        (
            "rate = { count = 3, per = \"2s\" }",
            Rate::new(3, Duration::from_secs(2)),
        ),
    ] {
        let config: TokenBucketConfig = parse(text).unwrap();
        assert_eq!(config.rate.map(Rate::from), Some(rate), "{text}");
    }
}

#[test]
fn semantic_error_names_the_setting() {
    let config: TokenBucketConfig = parse("rate = \"3/s\"\nburst = 0\n").unwrap();
    assert_eq!(
        TokenBucketLayer::from_config(config).unwrap_err().field(),
        "burst"
    );
    let config: TokenBucketConfig = parse("burst = 3\n").unwrap();
    assert_eq!(
        TokenBucketLayer::from_config(config).unwrap_err().field(),
        "rate"
    );
}

/// Sends three requests at once; returns how many were refused locally.
async fn refused_of_three(layer: TokenBucketLayer) -> usize {
    let mut svc = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(Response::new(()))
    }));
    let mut refused = 0;
    for _ in 0..3 {
        match svc.ready().await.unwrap().call(Request::new(())).await {
            Ok(_) => {}
            Err(err) => {
                assert!(err.downcast_ref::<RateLimited>().is_some(), "{err}");
                refused += 1;
            }
        }
    }
    refused
}

#[tokio::test(start_paused = true)]
async fn missing_fields_keep_the_defaults() {
    let config: TokenBucketConfig = parse("rate = \"1/s\"\n").unwrap();
    assert_eq!(config.burst, None);
    assert_eq!(config.max_wait, None);
    assert_eq!(config.emit_headers, None);
    let layer = TokenBucketLayer::from_config(config).unwrap();
    // The default max_wait (30 s) waits rather than refuses.
    let start = tokio::time::Instant::now();
    assert_eq!(refused_of_three(layer).await, 0);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_parsed_file_configures_the_bucket() {
    let config: TokenBucketConfig =
        parse("rate = \"1/s\"\nburst = 2\nmax_wait = \"0s\"\n").unwrap();
    let layer = TokenBucketLayer::from_config(config).unwrap();
    assert_eq!(refused_of_three(layer).await, 1);
}
