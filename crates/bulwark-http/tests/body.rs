//! `BufferBodyLayer` at, under and over its limit, with streaming bodies.

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use bulwark_http::{BodyTooLarge, BufferBodyLayer, BufferedBody};
use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// A streaming body of `chunks` chunks of `size` bytes that counts how many were read.
fn streaming(
    chunks: usize,
    size: usize,
    read: Arc<AtomicUsize>,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
    let it = (0..chunks).map(move |i| {
        read.fetch_add(1, Ordering::SeqCst);
        Ok(Frame::data(Bytes::from(vec![b'a' + (i % 26) as u8; size])))
    });
    StreamBody::new(stream::iter(it))
}

fn echo(
) -> impl Service<Request<BufferedBody>, Response = Response<BufferedBody>, Error = Infallible> + Clone
{
    service_fn(|req: Request<BufferedBody>| async move { Ok(Response::new(req.into_body())) })
}

#[tokio::test]
async fn under_the_limit_is_buffered() {
    let read = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(BufferBodyLayer::new(100))
        .service(echo());
    let res = svc
        .oneshot(Request::new(streaming(3, 10, read.clone())))
        .await
        .unwrap();
    assert_eq!(res.body().len(), 30);
    assert_eq!(&res.body().as_ref()[..10], &[b'a'; 10]);
    assert_eq!(read.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn exactly_at_the_limit_is_buffered() {
    let read = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(BufferBodyLayer::new(100))
        .service(echo());
    let res = svc
        .oneshot(Request::new(streaming(10, 10, read)))
        .await
        .unwrap();
    assert_eq!(res.body().len(), 100);
}

#[tokio::test]
async fn over_the_limit_stops_reading_and_fails() {
    let read = Arc::new(AtomicUsize::new(0));
    let called = Arc::new(AtomicUsize::new(0));
    let called2 = called.clone();
    let svc = ServiceBuilder::new()
        .layer(BufferBodyLayer::new(100))
        .service(service_fn(move |req: Request<BufferedBody>| {
            called2.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Infallible>(Response::new(req.into_body())) }
        }));
    let err = svc
        .oneshot(Request::new(streaming(1000, 10, read.clone())))
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<BodyTooLarge>(),
        Some(&BodyTooLarge::new(100))
    );
    // 11 chunks cross the limit; reading stopped there instead of draining 1000.
    assert_eq!(read.load(Ordering::SeqCst), 11);
    assert_eq!(
        called.load(Ordering::SeqCst),
        0,
        "the inner service is never called"
    );
}

#[tokio::test]
async fn declared_length_over_the_limit_reads_nothing() {
    let read = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(BufferBodyLayer::new(100))
        .service(echo());
    let req = Request::builder()
        .header("content-length", "5000")
        .body(streaming(500, 10, read.clone()))
        .unwrap();
    let err = svc.oneshot(req).await.unwrap_err();
    assert!(err.is::<BodyTooLarge>());
    assert_eq!(read.load(Ordering::SeqCst), 0);

    let svc = ServiceBuilder::new()
        .layer(BufferBodyLayer::new(4))
        .service(echo());
    let err = svc
        .oneshot(Request::new(http_body_util::Full::<Bytes>::from(
            "too long",
        )))
        .await
        .unwrap_err();
    assert!(err.is::<BodyTooLarge>(), "an exact size hint is enough");
}

#[tokio::test]
async fn body_errors_pass_through() {
    let svc = ServiceBuilder::new()
        .layer(BufferBodyLayer::new(100))
        .service(echo());
    let body = StreamBody::new(stream::iter(vec![Err::<Frame<Bytes>, _>(
        std::io::Error::other("reset"),
    )]));
    let err = svc.oneshot(Request::new(body)).await.unwrap_err();
    assert!(err.downcast_ref::<std::io::Error>().is_some());
}

#[tokio::test]
async fn buffered_body_replays_after_clone() {
    let body = BufferedBody::from(String::from("payload"));
    let copy = body.clone();
    assert_eq!(body.collect().await.unwrap().to_bytes(), "payload");
    assert_eq!(copy.collect().await.unwrap().to_bytes(), "payload");
    assert_eq!(BufferedBody::from(vec![1u8, 2]).as_ref(), &[1, 2]);
    assert_eq!(BufferedBody::from(Bytes::from_static(b"x")).len(), 1);
    assert!(BufferedBody::empty()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .is_empty());
}
