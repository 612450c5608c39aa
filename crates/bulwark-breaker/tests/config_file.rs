//! Issue 17: `CircuitBreakerConfig` read from TOML — field-path errors, defaults kept, and a
//! parsed file that really configures the breaker.

use bulwark_breaker::{BreakerState, CircuitBreakerConfig, CircuitBreakerLayer, WindowConfig};
use http::{Request, Response};
use serde::de::DeserializeOwned;
use std::time::Duration;
use tower::{service_fn, Layer, Service, ServiceExt};

/// Parses `text`, reporting an error as `path: message`.
fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text))
        .map_err(|e| format!("{}: {}", e.path(), e.inner().message()))
}

#[test]
fn unknown_field_is_rejected_with_its_path() {
    let err = parse::<CircuitBreakerConfig>("failure_ration = 0.5\n").unwrap_err();
    assert!(err.contains("unknown field `failure_ration`"), "{err}");
    let err = parse::<CircuitBreakerConfig>("window = { calls = 10 }\n").unwrap_err();
    assert!(err.starts_with("window: unknown variant `calls`"), "{err}");
}

#[test]
fn bad_duration_is_reported_with_its_path() {
    let err = parse::<CircuitBreakerConfig>("break_duration = \"3 parsecs\"\n").unwrap_err();
    assert!(err.starts_with("break_duration: "), "{err}");
    let err = parse::<CircuitBreakerConfig>("window = { time = \"3 parsecs\" }\n").unwrap_err();
    assert!(err.starts_with("window.time: "), "{err}");
}

#[test]
fn semantic_error_names_the_setting() {
    let config: CircuitBreakerConfig = parse("failure_ratio = 2.0\n").unwrap();
    let err = CircuitBreakerLayer::from_config(config).unwrap_err();
    assert_eq!(err.field(), "failure_ratio");
    let config: CircuitBreakerConfig = parse("slow_call_ratio = 0.5\n").unwrap();
    let err = CircuitBreakerLayer::from_config(config).unwrap_err();
    assert_eq!(err.field(), "slow_call_ratio");
}

#[test]
fn missing_fields_keep_the_defaults() {
    let config: CircuitBreakerConfig = parse("").unwrap();
    assert_eq!(config, CircuitBreakerConfig::default());
    let from_file = CircuitBreakerLayer::from_config(config).unwrap();
    assert_eq!(
        format!("{:?}", from_file.handle().state()),
        format!("{:?}", CircuitBreakerLayer::new().handle().state())
    );
    let config: CircuitBreakerConfig = parse("window = { count = 50 }\n").unwrap();
    assert_eq!(config.window, Some(WindowConfig::Count(50)));
}

#[tokio::test(start_paused = true)]
async fn a_parsed_file_configures_the_breaker() {
    let config: CircuitBreakerConfig =
        parse("consecutive_failures = 2\nbreak_duration = \"10s\"\n").unwrap();
    let layer = CircuitBreakerLayer::from_config(config).unwrap();
    let mut svc = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(Response::builder().status(503).body(()).unwrap())
    }));
    for _ in 0..2 {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
    }
    match layer.handle().state() {
        BreakerState::Open { .. } => {}
        other => panic!("two failures in a row should open it, got {other:?}"),
    }
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    let open = err.downcast_ref::<bulwark_breaker::CircuitOpen>().unwrap();
    assert!(open.retry_after <= Duration::from_secs(10), "{open:?}");
}
