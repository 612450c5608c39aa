//! [`InProcessNotion`]: FakeNotion without a socket, as a `tower::Service`.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower_service::Service;

use crate::fault::FaultHandle;
use crate::lock;
use crate::record::RecordedRequest;
use crate::server::{self, Shared};
use crate::status::StatusIndicator;
use crate::store::Page;

/// The error type of [`InProcessNotion`]'s service.
pub(crate) type BoxError = Box<dyn Error + Send + Sync>;

/// FakeNotion in process: the same API, rate limit, faults, page store and
/// request log as the TCP server (which runs on this very core), answering
/// `http::Request`s directly. Made by [`FakeNotionBuilder::in_process`](crate::FakeNotionBuilder::in_process).
///
/// Any scheme and authority are accepted (only the path and query matter);
/// [`base_url`](Self::base_url) is a convenient one. A
/// [`Fault::DropConnection`](crate::Fault::DropConnection) becomes an
/// [`io::Error`] of kind `ConnectionReset`, as a client would see it.
/// Time is `tokio::time` throughout, so a paused runtime drives it.
///
/// # Clone
/// Clones share everything: pages, log, faults, rate-limit buckets.
///
/// # Example
/// ```
/// use bulwark_testkit::FakeNotion;
/// use http_body_util::Full;
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let notion = FakeNotion::builder().rate_limit(3, 3).in_process();
/// let me = || {
///     http::Request::get(format!("{}/v1/users/me", notion.base_url()))
///         .header("authorization", "Bearer secret")
///         .header("notion-version", "2025-09-03")
///         .body(Full::new(bytes::Bytes::new()))
///         .unwrap()
/// };
/// for _ in 0..3 {
///     assert_eq!(notion.clone().oneshot(me()).await.unwrap().status(), 200);
/// }
/// // The burst is spent: 429 with Retry-After, in virtual time.
/// let res = notion.clone().oneshot(me()).await.unwrap();
/// assert_eq!(res.status(), 429);
/// tokio::time::advance(std::time::Duration::from_secs(1)).await;
/// assert_eq!(notion.clone().oneshot(me()).await.unwrap().status(), 200);
/// assert_eq!(notion.requests().len(), 5);
/// # }
/// ```
#[derive(Clone)]
pub struct InProcessNotion {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for InProcessNotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessNotion")
            .field("faults", &self.shared.faults)
            .finish_non_exhaustive()
    }
}

impl InProcessNotion {
    /// `http://fake-notion.test`: a base URL for requests (`{base}/v1/…`).
    #[must_use]
    pub fn base_url(&self) -> &'static str {
        "http://fake-notion.test"
    }

    /// Every request received so far, in arrival order, including refused,
    /// faulted and dropped ones.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).snapshot()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Every page that exists (seeded and created), in creation order.
    pub fn pages(&self) -> Vec<Page> {
        lock(&self.shared.store).pages().to_vec()
    }

    /// How many pages exist (seeded and created).
    pub fn page_count(&self) -> usize {
        lock(&self.shared.store).pages().len()
    }

    /// The page with this id (hyphenated form), if it exists.
    pub fn page(&self, id: &str) -> Option<Page> {
        lock(&self.shared.store).page(id).cloned()
    }

    /// How many blocks exist (appended or created with pages).
    pub fn block_count(&self) -> usize {
        lock(&self.shared.store).block_count()
    }

    /// The handle that controls faults.
    pub fn faults(&self) -> FaultHandle {
        self.shared.faults.clone()
    }

    /// Sets what `GET /api/v2/status.json` reports, with Statuspage's usual
    /// description for the indicator.
    pub fn set_status_indicator(&self, indicator: StatusIndicator) {
        self.set_status(indicator, indicator.description());
    }

    /// Sets what `GET /api/v2/status.json` reports.
    pub fn set_status(&self, indicator: StatusIndicator, description: impl Into<String>) {
        lock(&self.shared.status).set(indicator, description.into());
    }

    /// What `GET /api/v2/status.json` reports now.
    pub fn status_indicator(&self) -> StatusIndicator {
        lock(&self.shared.status).indicator()
    }

    /// Replaces the schema of the data source
    /// [`SEED_DATA_SOURCE_ID`](crate::SEED_DATA_SOURCE_ID) with `(name, type)` pairs, e.g.
    /// `[("Name", "title"), ("Status", "select")]`, each with an empty configuration. Keep
    /// one `title`. `PATCH /v1/data_sources/{id}` changes it the way Notion does.
    pub fn set_schema<I, N, T>(&self, properties: I)
    where
        I: IntoIterator<Item = (N, T)>,
        N: Into<String>,
        T: Into<String>,
    {
        let properties = properties
            .into_iter()
            .map(|(name, kind)| (name.into(), kind.into()))
            .collect();
        lock(&self.shared.store).set_schema(properties);
    }

    /// The data source's schema now, as `GET /v1/data_sources/{id}` renders its
    /// `properties`: `{"Name": {"id": "title", "name": "Name", "type": "title", "title": {}}}`
    /// at first.
    pub fn schema(&self) -> serde_json::Value {
        lock(&self.shared.store).properties()
    }
}

impl<B> Service<Request<B>> for InProcessNotion
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
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            server::handle(shared, request).await.map_err(|dropped| {
                Box::new(io::Error::new(io::ErrorKind::ConnectionReset, dropped)) as BoxError
            })
        })
    }
}
