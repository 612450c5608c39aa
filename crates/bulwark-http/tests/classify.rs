//! The classification table of DESIGN.md, row by row, for responses and for errors.

use std::{error::Error as StdError, fmt, io, time::Duration};

use bulwark_http::{
    BodyTooLarge, BoxError, CircuitOpen, Class, Classify, HttpClassifier, RateLimited,
};
use http::Response;

fn class_of_status(status: u16, retry_after: Option<&str>) -> Class {
    let mut res = Response::builder().status(status);
    if let Some(v) = retry_after {
        res = res.header("retry-after", v);
    }
    HttpClassifier.classify_response(&res.body(()).unwrap())
}

fn class_of_error(err: &BoxError) -> Class {
    HttpClassifier.classify_error(&**err)
}

/// An application error that wraps another, as client libraries do.
#[derive(Debug)]
struct Wrapper(BoxError);

impl fmt::Display for Wrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapped")
    }
}

impl StdError for Wrapper {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}

#[test]
fn row_success_2xx_3xx() {
    for s in [200, 201, 204, 301, 302, 304] {
        assert_eq!(class_of_status(s, None), Class::Success, "{s}");
    }
}

#[test]
fn row_throttled_429_529_with_retry_after() {
    assert_eq!(
        class_of_status(429, Some("7")),
        Class::Throttled {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(
        class_of_status(529, None),
        Class::Throttled { retry_after: None }
    );
    // Garbage Retry-After is ignored, not an error.
    assert_eq!(
        class_of_status(429, Some("soon")),
        Class::Throttled { retry_after: None }
    );
}

#[test]
fn row_transient_5xx_408() {
    for s in [500, 502, 503, 504, 408] {
        assert_eq!(
            class_of_status(s, None),
            Class::Transient { retry_after: None },
            "{s}"
        );
    }
    assert_eq!(
        class_of_status(503, Some("1.5")),
        Class::Transient {
            retry_after: Some(Duration::from_secs(2))
        }
    );
}

#[test]
fn row_permanent_other_4xx() {
    for s in [400, 401, 403, 404, 405, 409, 410, 413, 422] {
        assert_eq!(class_of_status(s, None), Class::Permanent, "{s}");
    }
}

#[test]
fn row_rejected_local_refusals_even_when_wrapped() {
    let open: BoxError = CircuitOpen::new(Duration::from_secs(4)).into();
    assert_eq!(
        class_of_error(&open),
        Class::Rejected {
            retry_after: Some(Duration::from_secs(4))
        }
    );
    let limited: BoxError = Box::new(Wrapper(RateLimited::new(Duration::from_millis(300)).into()));
    assert_eq!(
        class_of_error(&limited),
        Class::Rejected {
            retry_after: Some(Duration::from_millis(300))
        }
    );
}

#[test]
fn row_permanent_body_too_large() {
    let err: BoxError = Box::new(Wrapper(BodyTooLarge::new(10).into()));
    assert_eq!(class_of_error(&err), Class::Permanent);
}

#[test]
fn io_errors_by_kind() {
    let io = |kind| -> BoxError { Box::new(Wrapper(io::Error::from(kind).into())) };
    assert_eq!(
        class_of_error(&io(io::ErrorKind::ConnectionRefused)),
        Class::Unreachable
    );
    for kind in [
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::BrokenPipe,
        io::ErrorKind::ConnectionAborted,
    ] {
        assert_eq!(
            class_of_error(&io(kind)),
            Class::Transient { retry_after: None },
            "{kind:?}"
        );
    }
}

#[test]
fn unknown_errors_are_transient() {
    let err: BoxError = "something odd".into();
    assert_eq!(class_of_error(&err), Class::Transient { retry_after: None });
}

#[tokio::test]
async fn tower_timeout_elapsed_is_transient() {
    use tower::{service_fn, ServiceBuilder, ServiceExt};
    let svc = ServiceBuilder::new()
        .timeout(Duration::from_millis(1))
        .service(service_fn(|_: ()| async {
            std::future::pending::<()>().await;
            Ok::<_, BoxError>(())
        }));
    let err = svc.oneshot(()).await.unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>());
    assert_eq!(class_of_error(&err), Class::Transient { retry_after: None });
}

#[tokio::test]
async fn tokio_timeout_elapsed_is_transient() {
    let err = tokio::time::timeout(Duration::from_millis(1), std::future::pending::<()>())
        .await
        .unwrap_err();
    let err: BoxError = err.into();
    assert_eq!(class_of_error(&err), Class::Transient { retry_after: None });
}

/// A real refused connection: bind a loopback port, close it, connect with hyper-util.
#[tokio::test]
async fn refused_connection_through_hyper_util_is_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri: http::Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
    let err = client.get(uri).await.unwrap_err();
    assert!(err.is_connect());
    // As the concrete client error …
    assert_eq!(HttpClassifier.classify_error(&err), Class::Unreachable);
    // … and boxed, as layers see it.
    let boxed: BoxError = err.into();
    assert_eq!(class_of_error(&boxed), Class::Unreachable);
}
