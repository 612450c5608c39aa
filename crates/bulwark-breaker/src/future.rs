//! [`ResponseFuture`] of [`CircuitBreaker`](crate::CircuitBreaker).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};

use std::sync::Arc;

use bulwark_http::{BoxError, CircuitOpen, Class, Classify};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::shared::{Admission, Lane, Outcome};

/// An admitted call. Dropped before its outcome is recorded, it hands the call to
/// [`Core::abandon`](crate::shared::Core::abandon): a call that ran past the slow-call
/// threshold is a failure, one dropped sooner (or never sent) gives its probe permit back.
pub(crate) struct Admitted {
    /// This thread's lane: keeps the core alive without writing its reference count.
    pub(crate) core: Lane,
    pub(crate) admission: Admission,
    /// When the inner service was called (`None`: not yet, e.g. waiting for its readiness).
    pub(crate) started: Option<Instant>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if matches!(self.admission, Admission::Closed(_) | Admission::Probe(_)) {
            self.core.abandon(self.admission, self.started);
        }
    }
}

pin_project! {
    /// Response future of [`CircuitBreaker`](crate::CircuitBreaker).
    ///
    /// Dropped before the inner service answered, it is recorded by the
    /// [drop rule](crate::CircuitBreakerBuilder::slow_call_threshold): a failure if the call
    /// had run at least the slow-call threshold; otherwise nothing, and a half-open probe's
    /// permit goes back. Dropped while it waits for an open circuit
    /// ([`max_wait`](crate::CircuitBreakerBuilder::max_wait)) or for the inner service's
    /// readiness, it leaves nothing behind.
    ///
    /// # Panics
    /// Only as any `tokio::time` sleep does: a request that waits for an open circuit must be
    /// polled inside a Tokio runtime with the time driver enabled. The breaker itself never
    /// panics.
    pub struct ResponseFuture<S, ReqB, C>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        kind: Kind<S, ReqB>,
        admitted: Option<Admitted>,
        classify: C,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        Rejected { retry_after: Duration },
        // Waiting for the open circuit to let it through (boxed: the slow path only).
        Waiting { waiting: Box<Waiting<S, ReqB>> },
        // Admitted without the inner service's readiness (the circuit let it through after
        // `poll_ready` had seen it refusing): a clone is readied, then called.
        Readying { call: Box<PendingCall<S, ReqB>> },
        Inner { #[pin] future: S::Future },
    }
}

/// A clone of the inner service and the request it will be called with once ready.
pub(crate) struct PendingCall<S, ReqB> {
    pub(crate) inner: S,
    pub(crate) request: Option<Request<ReqB>>,
}

impl<S, ReqB> PendingCall<S, ReqB>
where
    S: Service<Request<ReqB>>,
    S::Error: Into<BoxError>,
{
    /// Takes the inner service's readiness, then calls it, stamping the admitted call's start.
    fn poll_call(
        &mut self,
        admitted: &mut Option<Admitted>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<S::Future, BoxError>> {
        if let Err(error) = ready!(self.inner.poll_ready(cx)) {
            // Never sent: the probe permit, if any, goes back with `admitted`.
            admitted.take();
            return Poll::Ready(Err(error.into()));
        }
        let Some(request) = self.request.take() else {
            return Poll::Ready(Err("polled after completion".into()));
        };
        if let Some(admitted) = admitted.as_mut() {
            admitted.started = Some(Instant::now());
        }
        Poll::Ready(Ok(self.inner.call(request)))
    }
}

/// A request waiting for an open circuit.
pub(crate) struct Waiting<S, ReqB> {
    /// Created on the first poll (so `call` works outside a runtime), then reset.
    pub(crate) sleep: Option<Pin<Box<Sleep>>>,
    /// When to ask the circuit again.
    pub(crate) wake_at: Instant,
    pub(crate) call: PendingCall<S, ReqB>,
    pub(crate) deadline: Instant,
    pub(crate) core: Lane,
    /// Admitted: now waiting for the inner service's readiness.
    pub(crate) admitted: bool,
}

/// While half-open with every probe permit taken, how often a waiter asks again.
const HALF_OPEN_POLL: Duration = Duration::from_millis(100);

impl<S, ReqB, C> fmt::Debug for ResponseFuture<S, ReqB, C>
where
    S: Service<Request<ReqB>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, ReqB, C> ResponseFuture<S, ReqB, C>
where
    S: Service<Request<ReqB>>,
{
    pub(crate) fn rejected(retry_after: Duration, classify: C) -> Self {
        Self {
            kind: Kind::Rejected { retry_after },
            admitted: None,
            classify,
        }
    }

    pub(crate) fn inner(future: S::Future, admitted: Option<Admitted>, classify: C) -> Self {
        Self {
            kind: Kind::Inner { future },
            admitted,
            classify,
        }
    }

    pub(crate) fn readying(
        call: PendingCall<S, ReqB>,
        admitted: Option<Admitted>,
        classify: C,
    ) -> Self {
        Self {
            kind: Kind::Readying {
                call: Box::new(call),
            },
            admitted,
            classify,
        }
    }

    pub(crate) fn waiting(waiting: Waiting<S, ReqB>, classify: C) -> Self {
        Self {
            kind: Kind::Waiting {
                waiting: Box::new(waiting),
            },
            admitted: None,
            classify,
        }
    }
}

/// When a waiter refused with `retry_after` should ask again, if before its deadline.
pub(crate) fn next_try(now: Instant, retry_after: Duration, deadline: Instant) -> Option<Instant> {
    let next = now.checked_add(retry_after.max(HALF_OPEN_POLL))?;
    (next <= deadline).then_some(next)
}

fn outcome(class: Class, count_throttled: bool, is_error: bool) -> Outcome {
    match class {
        Class::Success => Outcome::Success,
        // A 4xx says the upstream is healthy; a local error (body too large) says nothing.
        Class::Permanent if is_error => Outcome::Ignored,
        Class::Permanent => Outcome::Success,
        Class::Transient { .. } | Class::Unreachable => Outcome::Failure,
        Class::Throttled { .. } if count_throttled => Outcome::Failure,
        Class::Throttled { .. } | Class::Rejected { .. } => Outcome::Ignored,
        // An exhausted quota is the upstream answering, healthily, that this caller is done
        // until a reset: opening the circuit would fail everyone else fast for nothing.
        Class::QuotaExhausted { .. } => Outcome::Ignored,
        // A class added to `bulwark-http` later says nothing we know about the upstream's
        // health: neither a failure nor, unlike a 4xx, a success (see `Class`).
        _ => Outcome::Ignored,
    }
}

impl<S, ReqB, C, B> Future for ResponseFuture<S, ReqB, C>
where
    S: Service<Request<ReqB>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    C: Classify,
{
    type Output = Result<Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let future = match this.kind.as_mut().project() {
                KindProj::Rejected { retry_after } => {
                    return Poll::Ready(Err(CircuitOpen::new(*retry_after).into()));
                }
                KindProj::Waiting { waiting } => {
                    let waiting = &mut **waiting;
                    if !waiting.admitted {
                        let wake_at = waiting.wake_at;
                        let sleep = waiting
                            .sleep
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(wake_at)));
                        ready!(sleep.as_mut().poll(cx));
                        let core = &waiting.core;
                        match core.admit() {
                            Admission::Reject(retry_after) => {
                                match next_try(Instant::now(), retry_after, waiting.deadline) {
                                    Some(next) => {
                                        waiting.wake_at = next;
                                        sleep.as_mut().reset(next);
                                        continue;
                                    }
                                    None => {
                                        core.metrics.rejected();
                                        return Poll::Ready(Err(
                                            CircuitOpen::new(retry_after).into()
                                        ));
                                    }
                                }
                            }
                            Admission::Pass => {}
                            admission @ (Admission::Closed(_) | Admission::Probe(_)) => {
                                *this.admitted = Some(Admitted {
                                    core: Arc::clone(core),
                                    admission,
                                    started: None,
                                });
                            }
                        }
                        core.metrics.waited();
                        waiting.admitted = true;
                    }
                    // Admitted: only now take the inner service's readiness (a permit of a
                    // `ConcurrencyLimit` below is not held while waiting for the circuit).
                    ready!(waiting.call.poll_call(this.admitted, cx))?
                }
                KindProj::Readying { call } => ready!(call.poll_call(this.admitted, cx))?,
                KindProj::Inner { future } => {
                    let result = ready!(future.poll(cx)).map_err(Into::into);
                    if let Some(mut admitted) = this.admitted.take() {
                        let count_throttled = admitted.core.config.count_throttled;
                        let outcome = match &result {
                            Ok(res) => outcome(
                                this.classify.classify_response(res),
                                count_throttled,
                                false,
                            ),
                            Err(err) => {
                                outcome(this.classify.classify_error(&**err), count_throttled, true)
                            }
                        };
                        admitted
                            .core
                            .complete(admitted.admission, outcome, admitted.started);
                        // The outcome is recorded: the permit is not given back on drop.
                        admitted.admission = Admission::Pass;
                    }
                    return Poll::Ready(result);
                }
            };
            this.kind.set(Kind::Inner { future });
        }
    }
}
