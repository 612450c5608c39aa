//! `naive`: the retry loop the seeds wrote by hand.
//!
//! 429 and every 5xx are retried for any method (a `POST /v1/pages` too), up to 3 times, after
//! 1 s, 2 s and 4 s; `Retry-After` is not read; transport errors are not retried.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use bulwark_http::BoxError;
use http::StatusCode;
use tower::{Service, ServiceExt};

use super::{BoxFuture, Req, Res, Stack};

/// Retries after the first attempt.
const MAX_RETRIES: u32 = 3;

/// The naive retry loop over `inner`.
#[derive(Clone)]
pub(crate) struct Naive {
    inner: Stack,
}

impl Naive {
    pub(crate) fn new(inner: Stack) -> Self {
        Self { inner }
    }
}

/// What the loop retries: 429 and every 5xx.
fn retried(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

impl Service<Req> for Naive {
    type Response = Res;
    type Error = BoxError;
    type Future = BoxFuture<Result<Res, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each attempt waits for the inner service's readiness on its own clone.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let mut retries = 0;
            loop {
                let res = inner.ready().await?.call(req.clone()).await?;
                if retries == MAX_RETRIES || !retried(res.status()) {
                    return Ok(res);
                }
                tokio::time::sleep(Duration::from_secs(1 << retries)).await;
                retries += 1;
            }
        })
    }
}
