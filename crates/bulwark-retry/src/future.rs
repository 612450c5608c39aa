//! [`ResponseFuture`]: one request's attempts, waits and readiness checks.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use bulwark_http::{AsStdError, Class, Classify};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::{
    backoff::retry_after_wait,
    budget::BudgetState,
    event::{Counters, GiveUp, RetryEvent},
    policy::Policy,
};

pin_project! {
    /// Response future of [`Retry`](crate::Retry).
    ///
    /// Dropping it at any point — during an attempt or a wait — sends nothing further; a
    /// retry it was waiting to send goes back to the retry budget.
    pub struct ResponseFuture<S, B, C>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future>,
        service: S,
        request: Option<Request<B>>,
        policy: Arc<Policy<C>>,
        attempt: u32,
        // `None` until needed: decided from `request`, at the latest before it is taken.
        idempotent: Option<bool>,
        deadline: Option<Instant>,
        previous_wait: Duration,
        // The retry booked in the budget for the wait in progress, refunded if it is never
        // sent.
        booked: Option<Booked>,
    }
}

/// A retry spent from the budget but not sent yet: given back when dropped unsent.
struct Booked {
    budget: Arc<BudgetState>,
    slot: u64,
}

impl Booked {
    /// The retry is being sent: it stays spent (slot 0 refunds nothing).
    fn sent(mut self) {
        self.slot = 0;
    }
}

impl Drop for Booked {
    fn drop(&mut self) {
        self.budget.refund(self.slot);
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Attempt { #[pin] future: F },
        Waiting { #[pin] sleep: Sleep },
        Readying,
    }
}

impl<S, B, C> fmt::Debug for ResponseFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempt", &self.attempt)
            .field("idempotent", &self.idempotent)
            .finish_non_exhaustive()
    }
}

impl<S, B, C> ResponseFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    pub(crate) fn new(
        future: S::Future,
        service: S,
        request: Option<Request<B>>,
        policy: Arc<Policy<C>>,
        idempotent: Option<bool>,
        deadline: Option<Instant>,
    ) -> Self {
        Self {
            state: State::Attempt { future },
            service,
            request,
            policy,
            attempt: 1,
            idempotent,
            deadline,
            previous_wait: Duration::ZERO,
            booked: None,
        }
    }
}

/// Whether the request may be repeated after a `Transient` failure, decided once, from the
/// kept copy of the request.
fn is_idempotent<B, C>(
    cached: &mut Option<bool>,
    request: Option<&Request<B>>,
    policy: &Policy<C>,
) -> bool {
    *cached.get_or_insert_with(|| {
        request.is_some_and(|request| policy.idempotency.is_idempotent(request))
    })
}

/// Decides what to do after an attempt: `Ok(wait)` to retry after `wait`, `Err(None)` to
/// return the result as it is, `Err(Some(reason))` to give up on a failure.
///
/// `idempotent` is only called for a `Transient` failure.
fn decide<C>(
    policy: &Policy<C>,
    class: Class,
    attempt: u32,
    idempotent: impl FnOnce() -> bool,
    deadline: Option<Instant>,
    previous_wait: Duration,
) -> Result<(Duration, bool, u64), Option<GiveUp>> {
    match class {
        Class::Success | Class::Permanent | Class::Rejected { .. } => return Err(None),
        Class::Transient { .. } if !idempotent() => return Err(Some(GiveUp::NotIdempotent)),
        Class::Throttled { .. } | Class::Unreachable | Class::Transient { .. } => {}
        // A quota that comes back within the longest wait this layer accepts is waited for,
        // like a `Retry-After`; one further away (or never announced) is not worth a retry.
        Class::QuotaExhausted {
            resets_in: Some(resets_in),
        } if resets_in <= policy.max_retry_after => {}
        Class::QuotaExhausted { .. } => return Err(Some(GiveUp::QuotaExhausted)),
        // A class added to `bulwark-http` later: not retried, like `Permanent` (see `Class`).
        _ => return Err(None),
    }
    if attempt > policy.max_retries {
        return Err(Some(GiveUp::MaxRetries));
    }
    let (wait, from_retry_after) = match class.retry_after() {
        Some(retry_after) if retry_after > policy.max_retry_after => {
            return Err(Some(GiveUp::RetryAfterTooLong));
        }
        Some(retry_after) => (retry_after_wait(retry_after, fastrand::f64()), true),
        None => (
            policy
                .backoff
                .delay(attempt - 1, previous_wait, fastrand::f64()),
            false,
        ),
    };
    let now = Instant::now();
    // A wait no clock can represent the end of (`Duration::MAX`) crosses every deadline.
    if deadline.is_some_and(|deadline| now.checked_add(wait).is_none_or(|end| end > deadline)) {
        return Err(Some(GiveUp::Deadline));
    }
    let Some(slot) = policy.budget.try_withdraw(now) else {
        Counters::bump(&policy.counters.budget_exhausted);
        return Err(Some(GiveUp::BudgetExhausted));
    };
    Ok((wait, from_retry_after, slot))
}

impl<S, B, C, ResB> Future for ResponseFuture<S, B, C>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: AsStdError,
    C: Classify,
    B: Clone,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Attempt { future } => {
                    let result = ready!(future.poll(cx));
                    let policy = &**this.policy;
                    let class = policy.classify.classify_result(&result);
                    tracing::trace!(
                        target: "bulwark_retry",
                        attempt = *this.attempt,
                        class = class.as_str(),
                        "attempt answered"
                    );
                    // Without a kept request, `attempt > max_retries`: `decide` gives up.
                    let (cached, request) = (&mut *this.idempotent, this.request.as_ref());
                    let decision = decide(
                        policy,
                        class,
                        *this.attempt,
                        || is_idempotent(cached, request, policy),
                        *this.deadline,
                        *this.previous_wait,
                    );
                    let (wait, from_retry_after, slot) = match decision {
                        Ok(retry) => retry,
                        Err(None) => {
                            policy.metrics.finished(class);
                            record_attempts(*this.attempt);
                            return Poll::Ready(result);
                        }
                        Err(Some(reason)) => {
                            give_up(policy, class, *this.attempt, reason);
                            record_attempts(*this.attempt);
                            return Poll::Ready(result);
                        }
                    };
                    drop(result);
                    Counters::bump(&policy.counters.retries);
                    let event = RetryEvent {
                        attempt: *this.attempt,
                        class,
                        wait,
                        from_retry_after,
                    };
                    tracing::debug!(
                        target: "bulwark_retry",
                        attempt = event.attempt,
                        class = class.as_str(),
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        from_retry_after,
                        wait_reason = if from_retry_after { "retry_after" } else { "backoff" },
                        "retrying"
                    );
                    policy.metrics.retry(class, wait, from_retry_after);
                    if let Some(on_retry) = &policy.on_retry {
                        on_retry(&event);
                    }
                    *this.previous_wait = wait;
                    *this.booked = Some(Booked {
                        budget: Arc::clone(&policy.budget),
                        slot,
                    });
                    this.state.set(State::Waiting {
                        sleep: tokio::time::sleep(wait),
                    });
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    ready!(this.service.poll_ready(cx))?;
                    // Saturates: with `max_retries(u32::MAX)` the count stops at the top
                    // instead of overflowing (the budget or the deadline ends such runs).
                    *this.attempt = this.attempt.saturating_add(1);
                    // Keep a copy only while another retry is still possible.
                    let request = if *this.attempt > this.policy.max_retries {
                        // The last copy goes: decide idempotency while it is still here.
                        is_idempotent(this.idempotent, this.request.as_ref(), this.policy);
                        this.request.take()
                    } else {
                        this.request.clone()
                    };
                    let Some(request) = request else {
                        unreachable!("a retry is only scheduled while the request is kept")
                    };
                    if let Some(booked) = this.booked.take() {
                        booked.sent();
                    }
                    let future = this.service.call(request);
                    this.state.set(State::Attempt { future });
                }
            }
        }
    }
}

/// Records how many attempts a request took on the current span's `attempts` field — the
/// request's span when a caller opened one with that field (the Notion preset's
/// `bulwark.request`); a no-op otherwise, and free without a subscriber.
fn record_attempts(attempts: u32) {
    // The span is `INFO`: with no subscriber at that level, not even a thread-local look-up.
    if tracing::level_enabled!(tracing::Level::INFO) {
        tracing::Span::current().record("attempts", attempts);
    }
}

fn give_up<C>(policy: &Policy<C>, class: Class, attempt: u32, reason: GiveUp) {
    Counters::bump(&policy.counters.gave_up);
    tracing::debug!(
        target: "bulwark_retry",
        attempt,
        class = class.as_str(),
        reason = reason.as_str(),
        "giving up"
    );
    policy.metrics.gave_up(reason);
}
