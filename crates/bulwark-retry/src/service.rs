//! [`Retry`], the service made by [`RetryLayer`](crate::RetryLayer).

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use bulwark_http::{AsStdError, Classify, HttpClassifier};
use http::{Request, Response};
use tokio::time::Instant;
use tower_service::Service;

use crate::{event::RetryStats, future::ResponseFuture, policy::Policy};

/// Retries a request while its attempts are classified as retryable.
///
/// Made by [`RetryLayer`](crate::RetryLayer); see the [crate docs](crate) for the rules.
pub struct Retry<S, C = HttpClassifier> {
    inner: S,
    policy: Arc<Policy<C>>,
}

impl<S> Retry<S> {
    /// Wraps `inner` with [`RetryLayer::new`](crate::RetryLayer::new)'s defaults (and a
    /// budget of its own).
    pub fn new(inner: S) -> Self {
        Self::from_policy(inner, Arc::new(Policy::new()))
    }
}

impl<S, C> Retry<S, C> {
    pub(crate) fn from_policy(inner: S, policy: Arc<Policy<C>>) -> Self {
        Self { inner, policy }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// A snapshot of the counters shared with the layer and its other services.
    #[must_use]
    pub fn stats(&self) -> RetryStats {
        self.policy.stats()
    }
}

impl<S: Clone, C> Clone for Retry<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            policy: Arc::clone(&self.policy),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for Retry<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("max_retries", &self.policy.max_retries)
            .finish_non_exhaustive()
    }
}

impl<S, C, B, ResB> Service<Request<B>> for Retry<S, C>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: AsStdError,
    C: Classify,
    B: Clone,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let policy = Arc::clone(&self.policy);
        // One relaxed `fetch_add`: also the layer's request count.
        policy.budget.deposit();
        let template = (policy.max_retries > 0).then(|| req.clone());
        // Idempotency only matters after a `Transient` failure: while a copy of the request is
        // kept, the future decides it then, from the copy, so a success never pays for it.
        let idempotent = template
            .is_none()
            .then(|| policy.idempotency.is_idempotent(&req));
        // The readied service goes into the future for the retries; a clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = inner.call(req);
        // A deadline past what the clock can represent (`Duration::MAX`) is no deadline.
        let deadline = policy
            .total_timeout
            .and_then(|t| Instant::now().checked_add(t));
        ResponseFuture::new(future, inner, template, policy, idempotent, deadline)
    }
}
