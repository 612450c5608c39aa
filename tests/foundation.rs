//! The foundation against a real FakeNotion over real HTTP: what a hyper-util client sees and
//! how `HttpClassifier` classifies it.

use std::time::Duration;

use bulwark::http::{BoxError, Class, Classify, HttpClassifier};
use bulwark_testkit::{FakeNotion, Fault};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{ServiceBuilder, ServiceExt};

fn me(base: &str) -> Request<Full<Bytes>> {
    Request::get(format!("{base}/v1/users/me"))
        .header("authorization", "Bearer secret")
        .header("notion-version", "2025-09-03")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn dropped_connection_is_an_error_that_classifies_transient() {
    let fake = FakeNotion::builder().no_rate_limit().start().await.unwrap();
    fake.faults().script([Fault::DropConnection]);
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let err = client.request(me(&fake.url())).await.unwrap_err();
    assert!(
        !err.is_connect(),
        "the connection was made, then dropped: {err:?}"
    );
    assert_eq!(
        HttpClassifier.classify_error(&err),
        Class::Transient { retry_after: None }
    );
    let boxed: BoxError = err.into();
    assert_eq!(
        HttpClassifier.classify_error(&*boxed),
        Class::Transient { retry_after: None }
    );
    // The next request is served normally.
    let ok = client.request(me(&fake.url())).await.unwrap();
    assert_eq!(HttpClassifier.classify_response(&ok), Class::Success);
}

#[tokio::test]
async fn each_fakenotion_failure_classifies_as_designed() {
    let fake = FakeNotion::builder().no_rate_limit().start().await.unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = ServiceBuilder::new()
        .timeout(Duration::from_millis(500))
        .service(client)
        .map_err(BoxError::from);
    let cases = [
        (Fault::Pass, Class::Success),
        (Fault::Status(500), Class::Transient { retry_after: None }),
        (Fault::Status(502), Class::Transient { retry_after: None }),
        (Fault::Status(503), Class::Transient { retry_after: None }),
        (Fault::Status(504), Class::Transient { retry_after: None }),
        (Fault::Status(529), Class::Throttled { retry_after: None }),
        (
            Fault::RateLimited {
                retry_after_secs: 3,
            },
            Class::Throttled {
                retry_after: Some(Duration::from_secs(3)),
            },
        ),
        (
            Fault::CloudflareHtml(502),
            Class::Transient { retry_after: None },
        ),
        (Fault::Status(400), Class::Permanent),
        (Fault::Status(404), Class::Permanent),
        (
            Fault::Delay(Duration::from_secs(5)),
            Class::Transient { retry_after: None },
        ),
        (
            Fault::DropConnection,
            Class::Transient { retry_after: None },
        ),
    ];
    for (fault, expected) in cases {
        let label = format!("{fault:?}");
        fake.faults().script([fault]);
        let result = svc.clone().oneshot(me(&fake.url())).await;
        let class = HttpClassifier.classify_result(&result);
        // A 429 from FakeNotion carries Retry-After; the scripted 529 does not promise one.
        let class = match (class, expected) {
            (Class::Throttled { .. }, Class::Throttled { retry_after: None }) => expected,
            _ => class,
        };
        assert_eq!(class, expected, "{label}");
    }
}

#[tokio::test]
async fn refused_connection_to_a_closed_port_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let err = client
        .request(me(&format!("http://127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert_eq!(HttpClassifier.classify_error(&err), Class::Unreachable);
}
