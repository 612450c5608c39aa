//! Body wrappers: [`TimedBody`] gives a request body a deadline, [`Tracked`] keeps a
//! connection marked busy until its response body is done.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bulwark_http::BoxError;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::proxy::conn::RequestGuard;

/// A request body did not arrive within the body-read timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyTimeout {
    /// The timeout that ran out.
    pub(crate) after: Duration,
}

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request body not received within {} ms",
            self.after.as_millis()
        )
    }
}

impl std::error::Error for BodyTimeout {}

pin_project! {
    /// A request body that fails with [`BodyTimeout`] once `deadline` passes before its end.
    pub(crate) struct TimedBody<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: Sleep,
        after: Duration,
    }
}

impl<B> TimedBody<B> {
    /// `inner`, which must be read completely within `after` from now.
    pub(crate) fn new(inner: B, after: Duration) -> Self {
        Self {
            inner,
            sleep: tokio::time::sleep_until(Instant::now() + after),
            after,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.sleep.poll(cx) {
                Poll::Ready(()) => {
                    Poll::Ready(Some(Err(BodyTimeout { after: *this.after }.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// A response body that holds its request's [`RequestGuard`] until it is dropped (hyper
    /// drops it once written), so the connection counts as busy until then.
    pub(crate) struct Tracked<B> {
        #[pin]
        inner: B,
        guard: RequestGuard,
    }
}

impl<B> Tracked<B> {
    pub(crate) const fn new(inner: B, guard: RequestGuard) -> Self {
        Self { inner, guard }
    }
}

impl<B: fmt::Debug> fmt::Debug for Tracked<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// A body whose client never sends a byte.
    struct Stalled;

    impl Body for Stalled {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<bytes::Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let body = TimedBody::new(Stalled, Duration::from_millis(500));
        let started = Instant::now();
        let err = body.collect().await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        assert_eq!(
            err.downcast_ref::<BodyTimeout>(),
            Some(&BodyTimeout {
                after: Duration::from_millis(500)
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_body_is_untouched() {
        let body = TimedBody::new(
            http_body_util::Full::new(bytes::Bytes::from_static(b"hi")),
            Duration::from_millis(1),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hi");
    }
}
