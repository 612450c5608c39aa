//! Issue 17: `StaleCacheConfig` read from TOML — field-path errors, defaults kept, and a
//! parsed file that really configures the cache.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use bulwark_cache::{StaleCacheConfig, StaleCacheLayer};
use bulwark_http::{BoxError, BufferedBody};
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
    let err = parse::<StaleCacheConfig>("stale_if_eror = \"5m\"\n").unwrap_err();
    assert!(err.contains("unknown field `stale_if_eror`"), "{err}");
}

#[test]
fn bad_duration_is_reported_with_its_path() {
    let err = parse::<StaleCacheConfig>("fresh_for = \"3 parsecs\"\n").unwrap_err();
    assert!(err.starts_with("fresh_for: "), "{err}");
    let err = parse::<StaleCacheConfig>("max_entries = -1\n").unwrap_err();
    assert!(err.starts_with("max_entries: "), "{err}");
}

#[test]
fn semantic_error_names_the_setting() {
    let config: StaleCacheConfig = parse("max_entries = 0\n").unwrap();
    let err = StaleCacheLayer::<_, BufferedBody>::from_config(config).unwrap_err();
    assert_eq!(err.field(), "max_entries");
}

/// GETs `/` twice, one second apart; returns the upstream's calls.
async fn upstream_calls_for_two_gets(layer: StaleCacheLayer) -> u32 {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let mut svc = layer.layer(service_fn(move |_req: Request<BufferedBody>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>(Response::new(BufferedBody::from("ok"))) }
    }));
    for _ in 0..2 {
        let req = Request::get("http://example.com/")
            .body(BufferedBody::default())
            .unwrap();
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), 200);
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    calls.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn missing_fields_keep_the_defaults() {
    let config: StaleCacheConfig = parse("").unwrap();
    assert_eq!(config, StaleCacheConfig::default());
    // The default `fresh_for` is 0: every request goes to the upstream.
    let layer = StaleCacheLayer::from_config(config).unwrap();
    assert_eq!(upstream_calls_for_two_gets(layer).await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_parsed_file_configures_the_cache() {
    let config: StaleCacheConfig = parse("fresh_for = \"10s\"\nstale_if_error = \"5m\"\n").unwrap();
    let layer = StaleCacheLayer::from_config(config).unwrap();
    assert_eq!(upstream_calls_for_two_gets(layer).await, 1);
}
