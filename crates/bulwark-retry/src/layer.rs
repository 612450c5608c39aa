//! [`RetryLayer`] and its setters.

use std::{fmt, sync::Arc, time::Duration};

use bulwark_http::{Classify, HttpClassifier, Idempotency};
use http::{Method, Uri};
use tokio::time::Instant;
use tower_layer::Layer;

use crate::{
    backoff::Backoff,
    budget::{BudgetState, RetryBudget},
    event::{Counters, RetryEvent, RetryStats},
    service::Retry,
};

pub(crate) type OnRetry = Arc<dyn Fn(&RetryEvent) + Send + Sync>;

/// Everything a retry decision needs; shared by the layer's services and futures.
pub(crate) struct Policy<C> {
    pub(crate) max_retries: u32,
    pub(crate) backoff: Backoff,
    pub(crate) max_retry_after: Duration,
    pub(crate) total_timeout: Option<Duration>,
    pub(crate) idempotency: Idempotency,
    pub(crate) classify: C,
    pub(crate) on_retry: Option<OnRetry>,
    pub(crate) budget: Arc<BudgetState>,
    pub(crate) counters: Arc<Counters>,
}

/// Retries requests whose attempts were classified as retryable (see the [crate docs](crate)).
///
/// # Clone
/// The retry budget and the counters live in an `Arc` owned by the layer: every service the
/// layer makes, and every clone of those, spends the same budget and counts in the same
/// [`stats`](Self::stats).
#[must_use]
pub struct RetryLayer<C = HttpClassifier> {
    max_retries: u32,
    backoff: Backoff,
    max_retry_after: Duration,
    total_timeout: Option<Duration>,
    idempotency: Idempotency,
    classify: C,
    on_retry: Option<OnRetry>,
    budget: Arc<BudgetState>,
    counters: Arc<Counters>,
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryLayer {
    /// A layer with the defaults listed on each setter, classifying with [`HttpClassifier`].
    pub fn new() -> Self {
        Self {
            max_retries: 3,
            backoff: Backoff::default(),
            max_retry_after: Duration::from_secs(60),
            total_timeout: None,
            idempotency: Idempotency::rfc9110(),
            classify: HttpClassifier,
            on_retry: None,
            budget: Arc::new(BudgetState::new(RetryBudget::default(), Instant::now())),
            counters: Arc::default(),
        }
    }
}

impl<C> RetryLayer<C> {
    /// At most this many retries per request, so at most `max_retries + 1` calls.
    /// Defaults to 3.
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// The wait between attempts when the server sent no `Retry-After`. Defaults to
    /// `Backoff::exponential(200 ms)`, capped at 20 s, with full jitter:
    /// `U(0, min(20 s, 200 ms · 2ⁿ))`.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The longest server `Retry-After` the layer waits for. Defaults to 60 s.
    ///
    /// A `Retry-After` up to this is waited for in full (plus a jitter of at most 10 %, capped
    /// at 1 s); a longer one is not waited for: the response is returned as it is, so an
    /// outer cache or the caller decides.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The retry budget shared by every clone of this layer. Defaults to
    /// `RetryBudget::new(Duration::from_secs(10), 10, 0.2)`. Setting it starts a fresh budget.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Arc::new(BudgetState::new(budget, Instant::now()));
        self
    }

    /// Also treats requests for which `predicate(method, uri)` holds as idempotent, so their
    /// `Transient` failures are retried. Defaults to RFC 9110's idempotent methods and any
    /// request carrying an `Idempotency-Key` header.
    pub fn idempotent_when<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&Method, &Uri) -> bool + Send + Sync + 'static,
    {
        self.idempotency = self.idempotency.allow(predicate);
        self
    }

    /// Replaces the idempotency rule as a whole. Defaults to [`Idempotency::rfc9110`].
    pub fn idempotency(mut self, idempotency: Idempotency) -> Self {
        self.idempotency = idempotency;
        self
    }

    /// A deadline over all attempts and waits, measured from the call: a wait that would
    /// cross it is not started and the last result is returned. Defaults to none.
    ///
    /// It does not cut an attempt short: put a `tower::timeout` layer inside for that.
    pub fn total_timeout(mut self, timeout: Duration) -> Self {
        self.total_timeout = Some(timeout);
        self
    }

    /// Classifies attempts with `classify`. Defaults to [`HttpClassifier`].
    pub fn classify<C2: Classify>(self, classify: C2) -> RetryLayer<C2> {
        RetryLayer {
            max_retries: self.max_retries,
            backoff: self.backoff,
            max_retry_after: self.max_retry_after,
            total_timeout: self.total_timeout,
            idempotency: self.idempotency,
            classify,
            on_retry: self.on_retry,
            budget: self.budget,
            counters: self.counters,
        }
    }

    /// Calls `f` before each retry's wait. Defaults to none (a `tracing` event is always
    /// emitted at `debug`).
    pub fn on_retry<F>(mut self, f: F) -> Self
    where
        F: Fn(&RetryEvent) + Send + Sync + 'static,
    {
        self.on_retry = Some(Arc::new(f));
        self
    }

    /// A snapshot of the counters shared by every service this layer made.
    #[must_use]
    pub fn stats(&self) -> RetryStats {
        self.counters.snapshot(&self.budget)
    }
}

impl<C: Clone> Clone for RetryLayer<C> {
    fn clone(&self) -> Self {
        Self {
            max_retries: self.max_retries,
            backoff: self.backoff,
            max_retry_after: self.max_retry_after,
            total_timeout: self.total_timeout,
            idempotency: self.idempotency.clone(),
            classify: self.classify.clone(),
            on_retry: self.on_retry.clone(),
            budget: Arc::clone(&self.budget),
            counters: Arc::clone(&self.counters),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for RetryLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("max_retries", &self.max_retries)
            .field("backoff", &self.backoff)
            .field("max_retry_after", &self.max_retry_after)
            .field("total_timeout", &self.total_timeout)
            .field("idempotency", &self.idempotency)
            .field("classify", &self.classify)
            .field("on_retry", &self.on_retry.as_ref().map(|_| "Fn"))
            .finish_non_exhaustive()
    }
}

impl<S, C: Clone> Layer<S> for RetryLayer<C> {
    type Service = Retry<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_policy(
            inner,
            Arc::new(Policy {
                max_retries: self.max_retries,
                backoff: self.backoff,
                max_retry_after: self.max_retry_after,
                total_timeout: self.total_timeout,
                idempotency: self.idempotency.clone(),
                classify: self.classify.clone(),
                on_retry: self.on_retry.clone(),
                budget: Arc::clone(&self.budget),
                counters: Arc::clone(&self.counters),
            }),
        )
    }
}
