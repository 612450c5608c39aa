//! What the layer tells you: per-retry events and cumulative counters.

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use bulwark_http::Class;
use tokio::time::Instant;

use crate::budget::BudgetState;

/// One retry about to happen, passed to [`RetryLayer::on_retry`](crate::RetryLayer::on_retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryEvent {
    /// The attempt that failed (1 for the original request).
    pub attempt: u32,
    /// Why it failed.
    pub class: Class,
    /// How long the layer waits before the next attempt.
    pub wait: Duration,
    /// `true` when the wait came from the server's `Retry-After`, `false` for backoff.
    pub from_retry_after: bool,
}

/// Why a failed result was returned to the caller instead of being retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUp {
    /// `max_retries` retries were made.
    MaxRetries,
    /// The retry budget is spent.
    BudgetExhausted,
    /// The server's `Retry-After` is longer than `max_retry_after`.
    RetryAfterTooLong,
    /// The next wait would cross `total_timeout`.
    Deadline,
    /// A `Transient` failure of a request that is not idempotent: it may have been applied.
    NotIdempotent,
    /// The upstream's quota is exhausted until a reset further away than `max_retry_after`
    /// (or none announced): every retry would be refused too.
    QuotaExhausted,
}

impl GiveUp {
    /// A stable name for logs and metric labels.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::MaxRetries => "max_retries",
            Self::BudgetExhausted => "budget_exhausted",
            Self::RetryAfterTooLong => "retry_after_too_long",
            Self::Deadline => "deadline",
            Self::NotIdempotent => "not_idempotent",
            Self::QuotaExhausted => "quota_exhausted",
        }
    }
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of a layer's counters (shared by all its clones).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct RetryStats {
    /// Calls made to the inner service, first attempts and retries (since the layer's budget
    /// was set).
    pub attempts: u64,
    /// Retries made.
    pub retries: u64,
    /// Retries refused because the budget was spent.
    pub budget_exhausted: u64,
    /// Failed results returned to the caller (any [`GiveUp`] reason).
    pub gave_up: u64,
    /// Retries the budget would allow right now.
    pub budget_remaining: f64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) retries: AtomicU64,
    pub(crate) budget_exhausted: AtomicU64,
    pub(crate) gave_up: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests are counted once, by the budget's deposit (one `fetch_add` per request).
    pub(crate) fn snapshot(&self, budget: &BudgetState) -> RetryStats {
        let retries = self.retries.load(Ordering::Relaxed);
        RetryStats {
            attempts: budget.requests() + retries,
            retries,
            budget_exhausted: self.budget_exhausted.load(Ordering::Relaxed),
            gave_up: self.gave_up.load(Ordering::Relaxed),
            budget_remaining: budget.remaining(Instant::now()),
        }
    }
}
