//! [`Policy`]: everything a retry decision needs. [`RetryLayer`](crate::RetryLayer)'s setters
//! fill it in; each [`Retry`](crate::Retry) service and each of its response futures reads it
//! through one `Arc`.

use std::{fmt, sync::Arc, time::Duration};

use bulwark_http::{HttpClassifier, Idempotency};
use tokio::time::Instant;

use crate::{
    backoff::Backoff,
    budget::{BudgetState, RetryBudget},
    event::{Counters, RetryEvent, RetryStats},
    metrics::Metrics,
};

pub(crate) type OnRetry = Arc<dyn Fn(&RetryEvent) + Send + Sync>;

/// The layer's settings and its shared state (the budget and the counters, each in an `Arc`:
/// a clone of a policy spends the same budget and counts in the same counters).
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
    /// The instance's metric handles (its `name` label).
    pub(crate) metrics: Arc<Metrics>,
}

impl Policy<HttpClassifier> {
    /// The defaults that [`RetryLayer`](crate::RetryLayer)'s setters document, with a fresh
    /// budget and fresh counters.
    pub(crate) fn new() -> Self {
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
            metrics: Arc::new(Metrics::new(bulwark_http::DEFAULT_NAME.into())),
        }
    }
}

impl<C> Policy<C> {
    /// The same policy (and shared state) with another classifier.
    pub(crate) fn classify<C2>(self, classify: C2) -> Policy<C2> {
        Policy {
            max_retries: self.max_retries,
            backoff: self.backoff,
            max_retry_after: self.max_retry_after,
            total_timeout: self.total_timeout,
            idempotency: self.idempotency,
            classify,
            on_retry: self.on_retry,
            budget: self.budget,
            counters: self.counters,
            metrics: self.metrics,
        }
    }

    /// A snapshot of the shared counters.
    pub(crate) fn stats(&self) -> RetryStats {
        self.counters.snapshot(&self.budget)
    }
}

impl<C: Clone> Clone for Policy<C> {
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
            metrics: Arc::clone(&self.metrics),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for Policy<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.metrics.name())
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
