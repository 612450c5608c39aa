//! `RejectionResponseLayer` inside a real axum `Router`.

use std::{
    convert::Infallible,
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, routing::get, Router};
use bulwark_http::{
    BodyTooLarge, BoxError, BufferedBody, CircuitOpen, QuotaPolicy, RateLimited, Rejection,
    RejectionResponseLayer,
};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// A stand-in for a bulwark layer: fails requests according to their `x-fail` header.
#[derive(Clone)]
struct FailLayer;

impl<S> Layer<S> for FailLayer {
    type Service = Fail<S>;
    fn layer(&self, inner: S) -> Fail<S> {
        Fail(inner)
    }
}

#[derive(Clone)]
struct Fail<S>(S);

impl<S> Service<Request<Body>> for Fail<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = futures_util::future::BoxFuture<'static, Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let fail = req
            .headers()
            .get("x-fail")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let fut = self.0.call(req);
        Box::pin(async move {
            let err: BoxError = match fail.as_deref() {
                None => return fut.await.map_err(Into::into),
                Some("open") => CircuitOpen::new(Duration::from_millis(2500)).into(),
                Some("rate") => RateLimited::new(Duration::from_millis(400))
                    .with_policy(QuotaPolicy {
                        quota: 3,
                        window: Duration::from_secs(1),
                    })
                    .into(),
                Some("large") => BodyTooLarge::new(1024).into(),
                Some("refused") => {
                    std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into()
                }
                Some(_) => "secret internal detail".into(),
            };
            Err(err)
        })
    }
}

fn app() -> Router {
    Router::new().route("/", get(|| async { "hello" })).layer(
        ServiceBuilder::new()
            .layer(RejectionResponseLayer::new())
            .layer(FailLayer),
    )
}

async fn send(fail: Option<&str>) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get("/");
    if let Some(f) = fail {
        req = req.header("x-fail", f);
    }
    let res = app()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (parts.status, parts.headers, body)
}

#[tokio::test]
async fn passes_success_through() {
    let (status, _, body) = send(None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello");
}

#[tokio::test]
async fn circuit_open_is_503_with_retry_after_rounded_up() {
    let (status, headers, body) = send(Some("open")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "3");
    assert!(body.contains("circuit_open"), "{body}");
}

#[tokio::test]
async fn rate_limited_is_429_with_ratelimit_headers() {
    let (status, headers, body) = send(Some("rate")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(headers["ratelimit-policy"], r#""default";q=3;w=1"#);
    assert_eq!(headers["ratelimit"], r#""default";r=0;t=1"#);
    assert_eq!(headers["content-type"], "application/json");
    assert!(body.contains("rate_limited"), "{body}");
}

#[tokio::test]
async fn body_too_large_is_413() {
    let (status, headers, _) = send(Some("large")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(headers.get("retry-after").is_none());
}

#[tokio::test]
async fn upstream_failure_is_502_and_other_errors_500_without_internals() {
    let (status, _, body) = send(Some("refused")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(!body.contains("refused"), "{body}");
    let (status, _, body) = send(Some("other")).await;
    // An unexplained error may come from the upstream: 502, never its text.
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(!body.contains("secret"), "{body}");
}

#[tokio::test]
async fn custom_renderer() {
    let layer = RejectionResponseLayer::new().render_with(|r: &Rejection| {
        let mut res = Response::new(BufferedBody::from(format!(
            "custom {}",
            r.status().as_u16()
        )));
        *res.status_mut() = r.status();
        r.insert_headers(res.headers_mut());
        res
    });
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(|_: ()| async {
            Err::<Response<BufferedBody>, _>(CircuitOpen::new(Duration::from_secs(9)))
        }));
    let res = svc.oneshot(()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "9");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "custom 503");
}

#[test]
fn internal_for_permanent_errors() {
    #[derive(Debug)]
    struct Plain;
    impl std::fmt::Display for Plain {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("plain")
        }
    }
    impl std::error::Error for Plain {}
    assert_eq!(
        Rejection::from_error(&Plain).status(),
        StatusCode::BAD_GATEWAY
    );
    let large = BodyTooLarge::new(1);
    assert_eq!(
        Rejection::from_error(&large),
        Rejection::BodyTooLarge(large)
    );
}

/// Issue 15: a server's own handler timeout — tower's `TimeoutLayer` *inside* the rejection
/// layer, its `Elapsed` error — was answered 502 Bad Gateway, blaming an upstream there may not
/// be. It is 503 Service Unavailable, without a `Retry-After` (nobody knows when it will be
/// faster).
#[tokio::test(start_paused = true)]
async fn handler_timeout_inside_the_rejection_layer_is_503_not_502() {
    let svc = ServiceBuilder::new()
        .layer(RejectionResponseLayer::new())
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(10)))
        .service(tower::service_fn(|_req: Request<()>| {
            std::future::pending::<Result<Response<BufferedBody>, Infallible>>()
        }));
    let start = tokio::time::Instant::now();
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(10));
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_none());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("\"error\":\"timeout\""),
        "{body:?}"
    );

    // The same for `tokio::time::timeout`'s error, boxed by a handler.
    let elapsed = tokio::time::timeout(Duration::ZERO, std::future::pending::<()>())
        .await
        .unwrap_err();
    assert_eq!(Rejection::from_error(&elapsed), Rejection::Timeout);
    let boxed: BoxError = Box::new(elapsed);
    assert_eq!(Rejection::from_error(&*boxed).status(), 503);
}
