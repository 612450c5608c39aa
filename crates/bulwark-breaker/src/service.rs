//! [`CircuitBreaker`], the service made by [`CircuitBreakerLayer`](crate::CircuitBreakerLayer).

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use bulwark_http::{BoxError, Classify, HttpClassifier};
use http::{Request, Response};
use tokio::time::Instant;
use tower_service::Service;

use crate::{
    future::{Admitted, ResponseFuture},
    handle::BreakerHandle,
    shared::{Admission, Core},
};

/// Fails fast with [`CircuitOpen`](bulwark_http::CircuitOpen) while the upstream is failing.
///
/// `poll_ready` only forwards the inner service's readiness; an open circuit rejects in the
/// response future, without calling the inner service.
pub struct CircuitBreaker<S, C = HttpClassifier> {
    inner: S,
    core: Arc<Core>,
    classify: C,
}

impl<S> CircuitBreaker<S> {
    /// Wraps `inner` with a new breaker with the default settings.
    pub fn new(inner: S) -> Self {
        tower_layer::Layer::layer(&crate::CircuitBreakerLayer::new(), inner)
    }
}

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn from_parts(inner: S, core: Arc<Core>, classify: C) -> Self {
        Self {
            inner,
            core,
            classify,
        }
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

    /// The shared breaker's state, controls and metrics.
    #[must_use]
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            core: Arc::clone(&self.core),
        }
    }
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            core: Arc::clone(&self.core),
            classify: self.classify.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", &self.core)
            .finish_non_exhaustive()
    }
}

impl<S, C, ReqB, ResB> Service<Request<ReqB>> for CircuitBreaker<S, C>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    C: Classify,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let admission = self.core.admit();
        let admitted = match admission {
            Admission::Reject(retry_after) => {
                return ResponseFuture::rejected(retry_after, self.classify.clone());
            }
            Admission::Pass => None,
            Admission::Closed(_) | Admission::Probe(_) => Some(Admitted {
                core: Arc::clone(&self.core),
                admission,
                started: self.core.times_calls().then(Instant::now),
            }),
        };
        ResponseFuture::inner(self.inner.call(req), admitted, self.classify.clone())
    }
}
