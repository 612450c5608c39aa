//! [`CircuitBreaker`], the service made by [`CircuitBreakerLayer`](crate::CircuitBreakerLayer).

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bulwark_http::{BoxError, Classify, HttpClassifier};
use http::{Request, Response};
use tokio::time::Instant;
use tower_service::Service;

use crate::{
    future::{next_try, Admitted, ResponseFuture, Waiting},
    handle::BreakerHandle,
    shared::{Admission, Shared},
};

/// Per-request override of [`max_wait`](crate::CircuitBreakerBuilder::max_wait): how long this
/// request may wait for an open circuit to let it through (`Duration::ZERO`: fail at once).
/// Put it in the request's extensions.
///
/// ```
/// use std::time::Duration;
/// use bulwark_breaker::CircuitWait;
///
/// let mut req = http::Request::post("https://api.example/v1/pages").body(()).unwrap();
/// // A batch job's write would rather arrive late than fail while the upstream recovers.
/// req.extensions_mut().insert(CircuitWait(Duration::from_secs(20)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitWait(pub Duration);

/// Stands in for an endless wait (`Duration::MAX` does not fit an `Instant`).
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Fails fast with [`CircuitOpen`](bulwark_http::CircuitOpen) while the upstream is failing.
///
/// `poll_ready` only forwards the inner service's readiness; an open circuit rejects in the
/// response future, without calling the inner service.
pub struct CircuitBreaker<S, C = HttpClassifier> {
    inner: S,
    shared: Arc<Shared>,
    classify: C,
}

impl<S> CircuitBreaker<S> {
    /// Wraps `inner` with a new breaker with the default settings.
    pub fn new(inner: S) -> Self {
        tower_layer::Layer::layer(&crate::CircuitBreakerLayer::new(), inner)
    }
}

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared>, classify: C) -> Self {
        Self {
            inner,
            shared,
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
            core: Arc::clone(&self.shared.core),
        }
    }
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            classify: self.classify.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", &self.shared.core)
            .finish_non_exhaustive()
    }
}

impl<S, C, ReqB, ResB> Service<Request<ReqB>> for CircuitBreaker<S, C>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    C: Classify,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqB, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let core = &self.shared.core;
        let admission = core.admit();
        let admitted = match admission {
            Admission::Reject(retry_after) => {
                let wait = req
                    .extensions()
                    .get::<CircuitWait>()
                    .map_or(core.config.max_wait, |w| w.0);
                let now = Instant::now();
                let deadline = now.checked_add(wait).unwrap_or(now + FOREVER);
                if let Some(first) =
                    next_try(now, retry_after, deadline).filter(|_| !wait.is_zero())
                {
                    // Wait for the circuit on a clone: the readied service stays here, and the
                    // clone takes its readiness only once admitted.
                    let waiting = Waiting {
                        sleep: Box::pin(tokio::time::sleep_until(first)),
                        request: Some(req),
                        inner: self.inner.clone(),
                        deadline,
                        core: self.shared.lane(),
                        admitted: false,
                    };
                    return ResponseFuture::waiting(waiting, self.classify.clone());
                }
                return ResponseFuture::rejected(retry_after, self.classify.clone());
            }
            Admission::Pass => None,
            Admission::Closed(_) | Admission::Probe(_) => Some(Admitted {
                core: self.shared.lane(),
                admission,
                started: core.times_calls().then(Instant::now),
            }),
        };
        ResponseFuture::inner(self.inner.call(req), admitted, self.classify.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{Request, Response};
    use tower::{service_fn, Layer, Service};

    use crate::CircuitBreakerLayer;

    #[test]
    fn a_call_outlives_its_layer_and_service() {
        let layer = CircuitBreakerLayer::new();
        let handle = layer.handle();
        let mut svc = layer.layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
        let fut = svc.call(Request::new(()));
        drop(svc);
        drop(layer);
        // The future's lane keeps the core alive: the outcome is still recorded.
        let res = tokio_test::block_on(fut).expect("a 200");
        assert_eq!(res.status(), 200);
        assert_eq!(handle.metrics().calls, 1);
    }

    #[test]
    fn calls_from_many_threads_share_one_breaker() {
        let layer = CircuitBreakerLayer::new();
        let svc = layer.layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let mut svc = svc.clone();
                scope.spawn(move || {
                    for _ in 0..100 {
                        tokio_test::block_on(svc.call(Request::new(()))).expect("a 200");
                    }
                });
            }
        });
        assert_eq!(layer.handle().metrics().calls, 400);
    }
}
