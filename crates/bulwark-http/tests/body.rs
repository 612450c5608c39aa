//! `BufferBodyLayer` at, under and over its limit, with streaming bodies.

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bulwark_http::{BodyTooLarge, BufferBodyLayer, BufferedBody};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;
use tokio_test::{assert_pending, assert_ready_ok};
use tower::{limit::ConcurrencyLimitLayer, service_fn, Service, ServiceBuilder, ServiceExt};

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

type ChannelBody = StreamBody<stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

/// A body fed through a channel: it ends when the sender is dropped.
fn channel_body() -> (mpsc::Sender<Bytes>, ChannelBody) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let stream = stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(Frame::data(data))))
    });
    (tx, StreamBody::new(stream.boxed()))
}

/// Issue 15: `BufferBodyLayer` readied the inner service in `poll_ready` and handed that
/// readied service to the future that then read the body, so the permit of a
/// `ConcurrencyLimitLayer(1)` below was held while a client trickled its body: a second
/// request, body complete, waited behind the first one's stalled upload.
#[tokio::test(start_paused = true)]
async fn a_stalled_body_holds_no_concurrency_permit_below() {
    let mut svc = ServiceBuilder::new()
        .layer(BufferBodyLayer::new(1024))
        .layer(ConcurrencyLimitLayer::new(1))
        .service(echo());

    let (slow_tx, slow_body) = channel_body();
    slow_tx.send(Bytes::from_static(b"par")).await.unwrap();
    let mut slow = tokio_test::task::spawn(
        ServiceExt::<Request<ChannelBody>>::ready(&mut svc)
            .await
            .unwrap()
            .call(Request::new(slow_body)),
    );
    assert_pending!(slow.poll(), "the first body has not ended");

    let (quick_tx, quick_body) = channel_body();
    quick_tx.send(Bytes::from_static(b"whole")).await.unwrap();
    drop(quick_tx);
    let quick = tokio::time::timeout(Duration::from_secs(5), async {
        ServiceExt::<Request<ChannelBody>>::ready(&mut svc)
            .await?
            .call(Request::new(quick_body))
            .await
    })
    .await
    .expect("the second request waited behind the first one's stalled body");
    assert_eq!(quick.unwrap().body().as_ref(), b"whole");
    assert_pending!(slow.poll(), "the first body still has not ended");

    // The first request completes once its body does, taking the permit only then.
    slow_tx.send(Bytes::from_static(b"tial")).await.unwrap();
    drop(slow_tx);
    let res = assert_ready_ok!(slow.poll());
    assert_eq!(res.body().as_ref(), b"partial");
}

/// An error from the inner service's readiness, now checked after the body is read, is the
/// request's error.
#[tokio::test]
async fn inner_readiness_errors_fail_the_request() {
    #[derive(Clone)]
    struct Broken;
    impl Service<Request<BufferedBody>> for Broken {
        type Response = Response<BufferedBody>;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
        fn poll_ready(
            &mut self,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Err(std::io::Error::other("broken")))
        }
        fn call(&mut self, _req: Request<BufferedBody>) -> Self::Future {
            unreachable!("never ready")
        }
    }
    let svc = ServiceBuilder::new()
        .layer(BufferBodyLayer::new(100))
        .service(Broken);
    let err = svc
        .oneshot(Request::new(http_body_util::Full::<Bytes>::from("x")))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "broken");
}
