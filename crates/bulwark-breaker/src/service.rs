//! [`CircuitBreaker`], the service made by [`CircuitBreakerLayer`](crate::CircuitBreakerLayer).

use std::{
    fmt,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use bulwark_http::{BoxError, Classify, HttpClassifier};
use http::{Request, Response};
use tokio::time::Instant;
use tower_service::Service;

use crate::{
    future::{next_try, Admitted, PendingCall, ResponseFuture, Waiting},
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
/// While the circuit is closed, `poll_ready` forwards the inner service's readiness (the
/// usual Tower back-pressure). While it is open, forced open or half-open, `poll_ready` is
/// ready at once **without polling the inner service**, and `call` refuses in the response
/// future: a request that will be refused never takes (or holds) the inner service's
/// readiness — a `ConcurrencyLimit` permit, a `Buffer` slot — so a saturated inner service
/// cannot make fail-fast wait. A request the circuit lets through after all (the break
/// ended, a probe permit was free) readies a clone of the inner service in its future.
/// A readiness taken while closed is given back if the circuit opens before `call`.
///
/// A caller already waiting on the inner service's readiness when the circuit opens is not
/// woken by the breaker; it sees the open circuit the next time it is polled.
pub struct CircuitBreaker<S, C = HttpClassifier> {
    inner: S,
    shared: Arc<Shared>,
    classify: C,
    /// What `inner` may hold since its last call.
    readiness: Readiness,
}

/// Whether the inner service was polled for readiness since it was last called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readiness {
    /// Not polled: it holds nothing.
    Untouched,
    /// Polled, not ready yet: it may be queued for a permit.
    Polled,
    /// Ready: it may hold a permit, spent by the next `call`.
    Ready,
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
            readiness: Readiness::Untouched,
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
            readiness: Readiness::Untouched,
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
        if self.shared.core.may_refuse() {
            // Fail fast means fast: no waiting for (or holding) the inner service's readiness
            // on behalf of a request that will most likely be refused. One let through after
            // all readies a clone in its response future.
            self.release_inner();
            return Poll::Ready(Ok(()));
        }
        self.readiness = Readiness::Polled;
        ready!(self.inner.poll_ready(cx)).map_err(Into::into)?;
        self.readiness = Readiness::Ready;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let admission = self.shared.core.admit();
        if let Admission::Reject(retry_after) = admission {
            return self.refuse(req, retry_after);
        }
        self.shared.core.metrics.permitted();
        let admitted = match admission {
            Admission::Reject(_) | Admission::Pass => None,
            Admission::Closed(_) | Admission::Probe(_) => Some(Admitted {
                core: self.shared.lane(),
                admission,
                started: None,
            }),
        };
        if self.readiness == Readiness::Ready {
            self.readiness = Readiness::Untouched;
            let mut admitted = admitted;
            if let Some(admitted) = admitted.as_mut() {
                admitted.started = Some(Instant::now());
            }
            return ResponseFuture::inner(self.inner.call(req), admitted, self.classify.clone());
        }
        // Admitted, but `poll_ready` saw the circuit refusing and left the inner service
        // alone (or `call` came without `poll_ready`): a clone is readied in the future.
        let call = PendingCall {
            inner: self.inner.clone(),
            request: Some(req),
        };
        self.release_inner();
        ResponseFuture::readying(call, admitted, self.classify.clone())
    }
}

impl<S: Clone, C: Clone> CircuitBreaker<S, C> {
    /// Gives back whatever the inner service took in `poll_ready` (a permit, a queue place):
    /// the polled service is dropped for an untouched clone.
    fn release_inner(&mut self) {
        if self.readiness != Readiness::Untouched {
            self.inner = self.inner.clone();
            self.readiness = Readiness::Untouched;
        }
    }

    /// A request the circuit refused: it fails at once, or waits for the circuit (up to its
    /// `max_wait` / [`CircuitWait`]) on a clone that takes the inner service's readiness only
    /// once admitted.
    fn refuse<ReqB>(
        &mut self,
        req: Request<ReqB>,
        retry_after: Duration,
    ) -> ResponseFuture<S, ReqB, C>
    where
        S: Service<Request<ReqB>>,
    {
        self.release_inner();
        let core = &self.shared.core;
        let wait = req
            .extensions()
            .get::<CircuitWait>()
            .map_or(core.config.max_wait, |w| w.0);
        if wait.is_zero() {
            core.metrics.rejected();
            return ResponseFuture::rejected(retry_after, self.classify.clone());
        }
        let now = Instant::now();
        // `Duration::MAX` does not fit an `Instant`: wait "forever" (a century), saturating.
        let deadline = now
            .checked_add(wait)
            .or_else(|| now.checked_add(FOREVER))
            .unwrap_or(now);
        let Some(wake_at) = next_try(now, retry_after, deadline) else {
            core.metrics.rejected();
            return ResponseFuture::rejected(retry_after, self.classify.clone());
        };
        tracing::debug!(
            target: "bulwark_breaker",
            retry_after_ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
            max_wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "circuit open: waiting for it"
        );
        let waiting = Waiting {
            sleep: None,
            wake_at,
            call: PendingCall {
                inner: self.inner.clone(),
                request: Some(req),
            },
            deadline,
            core: self.shared.lane(),
            admitted: false,
        };
        ResponseFuture::waiting(waiting, self.classify.clone())
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
