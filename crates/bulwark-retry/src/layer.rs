//! [`RetryLayer`] and its setters.

use std::{fmt, sync::Arc, time::Duration};

use bulwark_http::{Classify, HttpClassifier, Idempotency};
use http::{Method, Uri};
use tokio::time::Instant;
use tower_layer::Layer;

use crate::{
    backoff::Backoff,
    budget::{BudgetState, RetryBudget},
    event::{RetryEvent, RetryStats},
    policy::Policy,
    service::Retry,
};

/// Retries requests whose attempts were classified as retryable (see the [crate docs](crate)).
///
/// # Clone
/// The retry budget and the counters live in an `Arc` owned by the layer: every service the
/// layer makes, and every clone of those, spends the same budget and counts in the same
/// [`stats`](Self::stats).
#[must_use]
pub struct RetryLayer<C = HttpClassifier> {
    policy: Policy<C>,
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
            policy: Policy::new(),
        }
    }
}

impl<C> RetryLayer<C> {
    /// At most this many retries per request, so at most `max_retries + 1` calls.
    /// Defaults to 3.
    ///
    /// `0` never retries; `u32::MAX` leaves the bound to the budget, `total_timeout` and
    /// `max_retry_after`.
    ///
    /// # Panics
    /// Never, for any value.
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.policy.max_retries = max_retries;
        self
    }

    /// The wait between attempts when the server sent no `Retry-After`. Defaults to
    /// `Backoff::exponential(200 ms)`, capped at 20 s, with full jitter:
    /// `U(0, min(20 s, 200 ms · 2ⁿ))`.
    ///
    /// Any [`Backoff`] is valid: waits saturate at `Duration::MAX`, a wait that long is
    /// "forever" (it ends no sooner than tokio's far future, and under a `total_timeout` it is
    /// not started: the last result is returned at once).
    ///
    /// # Panics
    /// Never, for any value.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.policy.backoff = backoff;
        self
    }

    /// The longest server `Retry-After` the layer waits for. Defaults to 60 s.
    ///
    /// A `Retry-After` up to this is waited for in full (plus a jitter of at most 10 %, capped
    /// at 1 s); a longer one is not waited for: the response is returned as it is, so an
    /// outer cache or the caller decides.
    ///
    /// `Duration::ZERO` waits only for `Retry-After: 0`; `Duration::MAX` waits for any value
    /// (the parser already refuses more than [`MAX_RETRY_AFTER`](bulwark_http::MAX_RETRY_AFTER),
    /// one year; a classifier of your own may give longer, and the wait saturates).
    ///
    /// # Panics
    /// Never, for any value.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.policy.max_retry_after = max;
        self
    }

    /// The retry budget shared by every clone of this layer. Defaults to
    /// `RetryBudget::new(Duration::from_secs(10), 10, 0.2)`. Setting it starts a fresh budget.
    ///
    /// Out-of-range numbers (a NaN or negative ratio, a window under 1 s) are refused by
    /// [`RetryBudget::new`], which returns an error instead.
    ///
    /// # Panics
    /// Never.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.policy.budget = Arc::new(BudgetState::new(budget, Instant::now()));
        self
    }

    /// Also treats requests for which `predicate(method, uri)` holds as idempotent, so their
    /// `Transient` failures are retried. Defaults to RFC 9110's idempotent methods and any
    /// request carrying an `Idempotency-Key` header.
    ///
    /// # Panics
    /// Only if `predicate` does: it runs inside the response future's `poll`.
    pub fn idempotent_when<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&Method, &Uri) -> bool + Send + Sync + 'static,
    {
        self.policy.idempotency = self.policy.idempotency.allow(predicate);
        self
    }

    /// Replaces the idempotency rule as a whole. Defaults to [`Idempotency::rfc9110`].
    pub fn idempotency(mut self, idempotency: Idempotency) -> Self {
        self.policy.idempotency = idempotency;
        self
    }

    /// A deadline over all attempts and waits, measured from the call: a wait that would
    /// cross it is not started and the last result is returned. Defaults to none.
    ///
    /// It does not cut an attempt short: put a `tower::timeout` layer inside for that.
    ///
    /// `Duration::ZERO` allows only waits of zero; a deadline beyond what the clock can
    /// represent (`Duration::MAX`) is no deadline.
    ///
    /// # Panics
    /// Never, for any value (before issue 15, `Duration::MAX` panicked on the first call).
    pub fn total_timeout(mut self, timeout: Duration) -> Self {
        self.policy.total_timeout = Some(timeout);
        self
    }

    /// Checks the settings the way every bulwark layer does: the first one that cannot do
    /// what it says, by name. The layer works with any settings (nothing panics, nothing is
    /// clamped silently into something else); this tells you when one is pointless.
    ///
    /// # Errors
    /// [`InvalidConfig`](bulwark_http::InvalidConfig) naming `total_timeout` when it is zero
    /// (no retry could ever wait), or `backoff` when its cap is below its base (every wait
    /// would be the cap).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bulwark_retry::{Backoff, RetryLayer};
    ///
    /// assert!(RetryLayer::new().validate().is_ok());
    /// let odd = RetryLayer::new().backoff(Backoff::exponential(Duration::from_secs(5)).max_delay(Duration::from_secs(1)));
    /// assert_eq!(odd.validate().unwrap_err().field(), "backoff");
    /// ```
    pub fn validate(&self) -> Result<(), bulwark_http::InvalidConfig> {
        if self.policy.total_timeout == Some(Duration::ZERO) {
            return Err(bulwark_http::InvalidConfig::new(
                "total_timeout",
                "zero leaves no time for any retry; use max_retries(0) to turn retries off",
            ));
        }
        if self.policy.backoff.cap() < self.policy.backoff.base() {
            return Err(bulwark_http::InvalidConfig::new(
                "backoff",
                "max_delay is below the base delay: every wait would be max_delay",
            ));
        }
        Ok(())
    }

    /// Classifies attempts with `classify`. Defaults to [`HttpClassifier`].
    pub fn classify<C2: Classify>(self, classify: C2) -> RetryLayer<C2> {
        RetryLayer {
            policy: self.policy.classify(classify),
        }
    }

    /// The instance name: the `name` label of this layer's metrics (feature `metrics`, see
    /// [`bulwark_http::metrics`]), so that two retry layers in one process keep separate
    /// series. Defaults to `"default"`.
    ///
    /// ```
    /// let layer = bulwark_retry::RetryLayer::new().name("billing-api");
    /// assert!(format!("{layer:?}").contains("billing-api"));
    /// ```
    pub fn name(mut self, name: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.policy.metrics = Arc::new(crate::metrics::Metrics::new(name.into()));
        self
    }

    /// Calls `f` before each retry's wait. Defaults to none (a `tracing` event is always
    /// emitted at `debug`).
    ///
    /// # Panics
    /// Only if `f` does: it runs inside the response future's `poll`.
    pub fn on_retry<F>(mut self, f: F) -> Self
    where
        F: Fn(&RetryEvent) + Send + Sync + 'static,
    {
        self.policy.on_retry = Some(Arc::new(f));
        self
    }

    /// A snapshot of the counters shared by every service this layer made.
    #[must_use]
    pub fn stats(&self) -> RetryStats {
        self.policy.stats()
    }
}

impl<C: Clone> Clone for RetryLayer<C> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for RetryLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.policy;
        f.debug_struct("RetryLayer")
            .field("name", &p.metrics.name())
            .field("max_retries", &p.max_retries)
            .field("backoff", &p.backoff)
            .field("max_retry_after", &p.max_retry_after)
            .field("total_timeout", &p.total_timeout)
            .field("idempotency", &p.idempotency)
            .field("classify", &p.classify)
            .field("on_retry", &p.on_retry.as_ref().map(|_| "Fn"))
            .finish_non_exhaustive()
    }
}

impl<S, C: Clone> Layer<S> for RetryLayer<C> {
    type Service = Retry<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_policy(inner, Arc::new(self.policy.clone()))
    }
}
