//! Issue 15: `RetryLayer` over hyper-util's legacy `Client` compiles with only
//! `bulwark-retry` (feature `hyper-util`), and classifies the client's errors: a refused
//! connection is `Unreachable`, retried for any method, and returned unchanged at the end.
//!
//! No network: the client talks to a loopback port nobody listens on.

use std::time::Duration;

use bulwark_http::{BufferedBody, Class};
use bulwark_retry::{Backoff, RetryEvent, RetryLayer};
use http::Request;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{ServiceBuilder, ServiceExt};

/// A loopback address with no listener: bound, then closed.
async fn closed_port() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn retry_layer_over_hyper_util_client_retries_a_refused_connection() {
    let addr = closed_port().await;
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::<RetryEvent>::new()));
    let seen = events.clone();
    let layer = RetryLayer::new()
        .max_retries(2)
        // Zero waits: the test never sleeps on the wall clock.
        .backoff(Backoff::constant(Duration::ZERO))
        .on_retry(move |event| seen.lock().unwrap().push(*event));
    let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let svc = ServiceBuilder::new().layer(layer.clone()).service(client);

    // A POST: a refused connection never reached the upstream, so even it is retried.
    let req = Request::post(format!("http://{addr}/v1/pages"))
        .body(BufferedBody::from("{}"))
        .unwrap();
    let err = svc.oneshot(req).await.unwrap_err();

    // The client's own error type, unchanged.
    let err: &hyper_util::client::legacy::Error = &err;
    assert!(err.is_connect(), "{err:?}");
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.class == Class::Unreachable));
    assert_eq!(layer.stats().attempts, 3);
}
