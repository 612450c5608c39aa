//! What callers get back when a request fails: the upstream's own errors unchanged (a refused
//! connect stays a `reqwest::Error`, a later middleware's error stays itself), bulwark's
//! refusals found by `rejection`, and a stack used outside the middleware sends nothing.

use std::fmt;

use bulwark_breaker::CircuitBreakerLayer;
use bulwark_http::BufferedBody;
use bulwark_reqwest::{BulwarkMiddleware, Detached, Upstream};
use bulwark_testkit::FakeNotion;
use http::Extensions;
use reqwest_middleware::{ClientBuilder, Middleware, Next};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::test]
async fn a_refused_connect_comes_back_as_reqwests_own_error() {
    // A port nothing listens on: bound, then closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let stack = ServiceBuilder::new().layer(CircuitBreakerLayer::new());
    let client = ClientBuilder::new(reqwest::Client::builder().no_proxy().build().unwrap())
        .with(BulwarkMiddleware::new(stack))
        .build();

    let err = client
        .get(format!("http://{addr}/v1/users/me"))
        .send()
        .await
        .unwrap_err();
    match &err {
        reqwest_middleware::Error::Reqwest(e) => assert!(e.is_connect(), "{e:?}"),
        other => panic!("not reqwest's error: {other:?}"),
    }
    assert_eq!(bulwark_reqwest::rejection(&err), None);
}

#[derive(Debug)]
struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused by a later middleware")
    }
}

impl std::error::Error for Refused {}

struct RefuseAll;

#[async_trait::async_trait]
impl Middleware for RefuseAll {
    async fn handle(
        &self,
        _req: reqwest::Request,
        _extensions: &mut Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Err(reqwest_middleware::Error::middleware(Refused))
    }
}

#[tokio::test]
async fn a_later_middlewares_error_comes_back_unchanged() {
    let fake = FakeNotion::builder().no_rate_limit().start().await.unwrap();
    let client = ClientBuilder::new(reqwest::Client::builder().no_proxy().build().unwrap())
        .with(BulwarkMiddleware::new(
            ServiceBuilder::new().layer(CircuitBreakerLayer::new()),
        ))
        .with(RefuseAll)
        .build();

    let err = client
        .get(format!("{}/v1/users/me", fake.url()))
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(inner) = &err else {
        panic!("{err:?}");
    };
    assert!(inner.downcast_ref::<Refused>().is_some(), "{inner:?}");
    assert_eq!(bulwark_reqwest::rejection(&err), None);
    assert!(fake.requests().is_empty(), "nothing reached FakeNotion");
}

#[tokio::test]
async fn a_stack_called_outside_the_middleware_sends_nothing() {
    let req = http::Request::get("http://127.0.0.1:9/v1/users/me")
        .body(BufferedBody::empty())
        .unwrap();
    let err = Upstream::new().oneshot(req).await.unwrap_err();
    assert!(err.is::<Detached>(), "{err:?}");
}

/// A timeout inside the stack abandons the attempt in flight and is found as a rejection.
#[tokio::test(start_paused = true)]
async fn a_timeout_inside_the_stack_abandons_the_attempt() {
    use std::time::Duration;

    let fake = FakeNotion::builder()
        .no_rate_limit()
        .latency(Duration::from_secs(5))
        .start()
        .await
        .unwrap();
    let stack =
        ServiceBuilder::new().layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(1)));
    let client = ClientBuilder::new(reqwest::Client::builder().no_proxy().build().unwrap())
        .with(BulwarkMiddleware::new(stack))
        .build();

    let started = tokio::time::Instant::now();
    let err = client
        .get(format!("{}/v1/users/me", fake.url()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        bulwark_reqwest::rejection(&err),
        Some(bulwark_http::Rejection::Timeout),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not the 5 s answer"
    );
}
