//! [`CacheBody`]: a stored body, or the live one (possibly with a prefix already read).

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bulwark_http::{BoxError, BufferedBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The response body of [`StaleCache`](crate::StaleCache): a body held in memory (stored,
    /// or collected to be stored), or the upstream's own body streamed through (too large to
    /// cache, or not cacheable) after any prefix already read while deciding.
    pub struct CacheBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = CacheBodyProj]
    enum Inner<B> {
        Buffered { body: BufferedBody },
        Live { prefix: Option<Bytes>, #[pin] rest: B },
    }
}

impl<B> fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Buffered { body } => f.debug_tuple("Buffered").field(body).finish(),
            Inner::Live { .. } => f.write_str("Live"),
        }
    }
}

impl<B> CacheBody<B> {
    pub(crate) fn buffered(bytes: Bytes) -> Self {
        Self {
            inner: Inner::Buffered {
                body: BufferedBody::from(bytes),
            },
        }
    }

    pub(crate) fn live(prefix: Option<Bytes>, rest: B) -> Self {
        Self {
            inner: Inner::Live { prefix, rest },
        }
    }
}

impl<B> Body for CacheBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().inner.project() {
            CacheBodyProj::Buffered { body } => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(|never| match never {}))),
            CacheBodyProj::Live { prefix, rest } => {
                if let Some(bytes) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                rest.poll_frame(cx)
                    .map(|f| f.map(|f| f.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Buffered { body } => body.is_end_stream(),
            Inner::Live { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Buffered { body } => body.size_hint(),
            Inner::Live { prefix, rest } => {
                let extra = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + extra);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + extra);
                }
                hint
            }
        }
    }
}
