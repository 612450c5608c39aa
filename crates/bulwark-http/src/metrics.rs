//! The metrics every bulwark layer records through the [`metrics`] facade (feature `metrics`
//! of each layer crate), so that a dashboard can be built on them.
//!
//! Every metric carries a `name` label — the instance name set with the layer's `name(..)`
//! setter ([`DEFAULT_NAME`] when unset; the Notion preset names its layers `notion`) — so two
//! breakers, buckets or caches in one process never overwrite each other's series.
//!
//! | metric | kind | labels | what it counts |
//! |---|---|---|---|
//! | [`REQUESTS_TOTAL`] | counter | `layer`, `name`, `outcome` | requests through a layer, by what it did with them (below) |
//! | [`RETRY_ATTEMPTS_TOTAL`] | counter | `name`, `class` | retries sent, by the class of the attempt that caused them |
//! | [`RETRY_GAVE_UP_TOTAL`] | counter | `name`, `reason` | requests whose failure was retryable but not retried |
//! | [`RETRY_WAIT_SECONDS`] | histogram | `name`, `reason` | waits before a retry (`backoff` or `retry_after`) |
//! | [`BREAKER_STATE`] | gauge | `name` | `0` closed, `1` open, `2` half-open |
//! | [`BREAKER_TRANSITIONS_TOTAL`] | counter | `name`, `to` | state changes, by the state entered |
//! | [`BREAKER_ABANDONED_TOTAL`] | counter | `name` | calls dropped past the slow-call threshold (failures) |
//! | [`BUCKET_WAIT_SECONDS`] | histogram | `name` | how long admitted requests waited for a token |
//! | [`BUCKET_PAUSED_TOTAL`] | counter | `name` | pauses of the bucket by an upstream 429 |
//! | [`QUOTA_REMAINING_RATIO`] | gauge | `name` | the upstream's advertised allowance left, 0 to 1 (its usage headers) |
//! | [`CACHE_AGE_SECONDS`] | histogram | `name` | age of the stale answers served |
//! | [`CACHE_STORES_TOTAL`] | counter | `name` | responses stored for later stale answers |
//! | [`NOTION_ERRORS_TOTAL`] | counter | `name`, `status`, `code` | Notion error answers, by Notion's `code` |
//! | [`NOTION_REQUEST_DURATION_SECONDS`] | histogram | `name`, `outcome` | a preset request, from the call to its answer |
//!
//! `outcome` of [`REQUESTS_TOTAL`] per `layer`:
//! - `retry`: `success` (the final answer was a success), `failure` (a failure no retry could
//!   help: permanent or rejected), `gave_up` (a retryable failure returned: the retries, the
//!   budget or the deadline ran out, or a write that may have been applied — the reason is in
//!   [`RETRY_GAVE_UP_TOTAL`]);
//! - `breaker`: `permitted`, `rejected` (the circuit was open);
//! - `bucket`: `admitted` (let through, at once or after a wait — the waits are in
//!   [`BUCKET_WAIT_SECONDS`]), `rejected` (no token within `max_wait`), `quota_exhausted`
//!   (refused locally: the upstream's quota is used up);
//! - `cache`: `fresh` (answered from the cache), `miss` (sent upstream), `stale` (a stale
//!   answer for a failed or refused call), `bypass` (not a cached method).
//!
//! Handles are registered, and the metrics described, on an instance's first request, with
//! the recorder installed then: install the recorder (e.g. `metrics-exporter-prometheus`)
//! before the first request, as with any `metrics` user.
//!
//! Histograms record seconds as `f64`; for Prometheus, give `*_seconds` buckets to the
//! exporter (`PrometheusBuilder::set_buckets_for_metric`) or they render as summaries.

use std::{borrow::Cow, fmt, sync::OnceLock};

pub use metrics::SharedString;

pub use crate::DEFAULT_NAME;

/// Requests through a layer by outcome: counter, labels `layer`, `name`, `outcome`.
pub const REQUESTS_TOTAL: &str = "bulwark_requests_total";
/// Retries sent, by the class that caused them: counter, labels `name`, `class`.
pub const RETRY_ATTEMPTS_TOTAL: &str = "bulwark_retry_attempts_total";
/// Retryable failures not retried, by reason: counter, labels `name`, `reason`.
pub const RETRY_GAVE_UP_TOTAL: &str = "bulwark_retry_gave_up_total";
/// Waits before retries in seconds: histogram, labels `name`, `reason`.
pub const RETRY_WAIT_SECONDS: &str = "bulwark_retry_wait_seconds";
/// The breaker's state (`0` closed, `1` open, `2` half-open): gauge, label `name`.
pub const BREAKER_STATE: &str = "bulwark_breaker_state";
/// Breaker state changes by the state entered: counter, labels `name`, `to`.
pub const BREAKER_TRANSITIONS_TOTAL: &str = "bulwark_breaker_transitions_total";
/// Calls dropped past the breaker's slow-call threshold: counter, label `name`.
pub const BREAKER_ABANDONED_TOTAL: &str = "bulwark_breaker_abandoned_total";
/// Token waits of admitted requests in seconds: histogram, label `name`.
pub const BUCKET_WAIT_SECONDS: &str = "bulwark_bucket_wait_seconds";
/// Pauses of the bucket by an upstream 429: counter, label `name`.
pub const BUCKET_PAUSED_TOTAL: &str = "bulwark_bucket_paused_total";
/// The upstream's advertised allowance left as a share of its limit: gauge, label `name`.
pub const QUOTA_REMAINING_RATIO: &str = "bulwark_quota_remaining_ratio";
/// Age of the stale answers served in seconds: histogram, label `name`.
pub const CACHE_AGE_SECONDS: &str = "bulwark_cache_age_seconds";
/// Responses stored for stale answers: counter, label `name`.
pub const CACHE_STORES_TOTAL: &str = "bulwark_cache_stores_total";
/// Notion error answers: counter, labels `name`, `status`, `code`.
pub const NOTION_ERRORS_TOTAL: &str = "bulwark_notion_errors_total";
/// Preset requests from call to answer in seconds: histogram, labels `name`, `outcome`.
pub const NOTION_REQUEST_DURATION_SECONDS: &str = "bulwark_notion_request_duration_seconds";

/// A layer instance's metric handles, registered on first use.
///
/// Layers keep one in their shared state; [`get`](Self::get) registers the handles with
/// `register` (given the instance name) the first time and returns them after that: one
/// atomic load per request.
pub struct Handles<T> {
    name: SharedString,
    cell: OnceLock<T>,
    register: fn(&SharedString) -> T,
}

impl<T> Handles<T> {
    /// Handles for the instance `name`, made by `register` on first use.
    pub fn new(name: impl Into<Cow<'static, str>>, register: fn(&SharedString) -> T) -> Self {
        let name: Cow<'static, str> = name.into();
        Self {
            name: SharedString::from(name),
            cell: OnceLock::new(),
            register,
        }
    }

    /// The handles, registered now if this is the first use.
    #[inline]
    pub fn get(&self) -> &T {
        self.cell.get_or_init(|| (self.register)(&self.name))
    }

    /// The instance name (the `name` label).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<T> fmt::Debug for Handles<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handles")
            .field("name", &&*self.name)
            .field("registered", &self.cell.get().is_some())
            .finish()
    }
}

/// The `bulwark_requests_total` counter of `layer`'s instance `name` for `outcome` (described
/// on the way).
pub fn requests_total(
    layer: &'static str,
    name: &SharedString,
    outcome: &'static str,
) -> metrics::Counter {
    metrics::describe_counter!(
        REQUESTS_TOTAL,
        metrics::Unit::Count,
        "Requests through a bulwark layer, by what the layer did with them."
    );
    metrics::counter!(REQUESTS_TOTAL, "layer" => layer, "name" => name.clone(), "outcome" => outcome)
}

/// Seconds of `d` as a histogram sample.
#[inline]
pub fn seconds(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_register_once_with_the_instance_name() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        fn register(name: &SharedString) -> String {
            CALLS.fetch_add(1, Ordering::Relaxed);
            format!("registered {name}")
        }
        let handles = Handles::new("billing", register);
        assert_eq!(handles.name(), "billing");
        assert!(format!("{handles:?}").contains("registered: false"));
        assert_eq!(handles.get(), "registered billing");
        assert_eq!(handles.get(), "registered billing");
        assert_eq!(CALLS.load(Ordering::Relaxed), 1);
    }
}
