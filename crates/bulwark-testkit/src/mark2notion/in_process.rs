//! [`InProcessMark2Notion`]: the fake without a socket, as a `tower::Service`.

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower_service::Service;

use super::handle::{self, Mark2NotionHandle};

/// The error type of [`InProcessMark2Notion`]'s service (it never fails).
type BoxError = Box<dyn Error + Send + Sync>;

/// Fake Mark2Notion in process: the same answers, quota, faults and call
/// log as [`FakeMark2Notion`](super::FakeMark2Notion)'s server (which runs
/// on this very core), for `http::Request`s directly. Made by
/// [`FakeMark2NotionBuilder::in_process`](super::FakeMark2NotionBuilder::in_process).
///
/// Any scheme and authority are accepted (only the method, path, `x-api-key`
/// and body matter); [`base_url`](Self::base_url) is a convenient one. Time
/// is `tokio::time`, so a paused runtime drives
/// [`reset_after`](super::FakeMark2NotionBuilder::reset_after).
///
/// # Clone
/// Clones share everything: usage, faults, calls.
///
/// # Example
/// ```
/// use bulwark_testkit::FakeMark2Notion;
/// use http_body_util::Full;
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let m2n = FakeMark2Notion::builder().quota(1).in_process();
/// let convert = || {
///     http::Request::post(format!("{}/api/convert", m2n.base_url()))
///         .header("x-api-key", "mk_test_key")
///         .body(Full::new(bytes::Bytes::from(r##"{"markdown":"# Hi"}"##)))
///         .unwrap()
/// };
/// assert_eq!(m2n.clone().oneshot(convert()).await.unwrap().status(), 200);
/// let refused = m2n.clone().oneshot(convert()).await.unwrap();
/// assert_eq!(refused.status(), 429);
/// assert_eq!(refused.headers()["x-usage-remaining"], "0");
/// assert_eq!(m2n.handle().calls_after_exhaustion(), 1);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct InProcessMark2Notion {
    pub(crate) handle: Mark2NotionHandle,
}

impl InProcessMark2Notion {
    /// `http://mark2notion.test`: a base URL for requests (`{base}/api/…`).
    #[must_use]
    pub fn base_url(&self) -> &'static str {
        "http://mark2notion.test"
    }

    /// The handle that observes and steers this fake.
    #[must_use]
    pub fn handle(&self) -> Mark2NotionHandle {
        self.handle.clone()
    }
}

impl<B> Service<Request<B>> for InProcessMark2Notion
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let handle = self.handle.clone();
        Box::pin(async move { Ok(handle::handle(&handle, request).await) })
    }
}
