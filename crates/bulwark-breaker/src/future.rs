//! [`ResponseFuture`] of [`CircuitBreaker`](crate::CircuitBreaker).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};

use bulwark_http::{BoxError, CircuitOpen, Class, Classify};
use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::shared::{Admission, Lane, Outcome};

/// An admitted call; gives a probe permit back if dropped before its outcome is known.
pub(crate) struct Admitted {
    /// This thread's lane: keeps the core alive without writing its reference count.
    pub(crate) core: Lane,
    pub(crate) admission: Admission,
    pub(crate) started: Option<Instant>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Admission::Probe(generation) = self.admission {
            self.core.release_probe(generation);
        }
    }
}

pin_project! {
    /// Response future of [`CircuitBreaker`](crate::CircuitBreaker).
    ///
    /// Dropping it while it is a half-open probe gives the probe permit back.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F>,
        admitted: Option<Admitted>,
        classify: C,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Rejected { retry_after: Duration },
        Inner { #[pin] future: F },
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn rejected(retry_after: Duration, classify: C) -> Self {
        Self {
            kind: Kind::Rejected { retry_after },
            admitted: None,
            classify,
        }
    }

    pub(crate) fn inner(future: F, admitted: Option<Admitted>, classify: C) -> Self {
        Self {
            kind: Kind::Inner { future },
            admitted,
            classify,
        }
    }
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
        // A class added to `bulwark-http` later says nothing we know about the upstream's
        // health: neither a failure nor, unlike a 4xx, a success (see `Class`).
        _ => Outcome::Ignored,
    }
}

impl<F, C, B, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    C: Classify,
{
    type Output = Result<Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Rejected { retry_after } => {
                Poll::Ready(Err(CircuitOpen::new(*retry_after).into()))
            }
            KindProj::Inner { future } => {
                let result = ready!(future.poll(cx)).map_err(Into::into);
                if let Some(mut admitted) = this.admitted.take() {
                    let count_throttled = admitted.core.config.count_throttled;
                    let outcome = match &result {
                        Ok(res) => {
                            outcome(this.classify.classify_response(res), count_throttled, false)
                        }
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
                Poll::Ready(result)
            }
        }
    }
}
