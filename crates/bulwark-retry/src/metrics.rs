//! The retry layer's metrics (the catalogue is [`bulwark_http::metrics`]): registered on an
//! instance's first request with feature `metrics`, nothing at all without it.

use std::time::Duration;

use bulwark_http::Class;

use crate::event::GiveUp;

#[cfg(feature = "metrics")]
mod imp {
    use std::time::Duration;

    use bulwark_http::{
        metrics::{
            requests_total, seconds, Handles, SharedString, RETRY_ATTEMPTS_TOTAL,
            RETRY_GAVE_UP_TOTAL, RETRY_WAIT_SECONDS,
        },
        Class,
    };
    use metrics::{Counter, Histogram, Unit};

    use crate::event::GiveUp;

    const REASONS: [GiveUp; 6] = [
        GiveUp::MaxRetries,
        GiveUp::BudgetExhausted,
        GiveUp::RetryAfterTooLong,
        GiveUp::Deadline,
        GiveUp::NotIdempotent,
        GiveUp::QuotaExhausted,
    ];
    /// The classes a retry is ever caused by (the default table's retryable ones), in
    /// [`class_index`] order; a custom classifier's others are registered when they occur.
    const RETRIED: [&str; 3] = ["throttled", "unreachable", "transient"];

    pub(super) struct Registered {
        name: SharedString,
        success: Counter,
        failure: Counter,
        gave_up_request: Counter,
        gave_up: [Counter; 6],
        attempts: [Counter; 3],
        wait_backoff: Histogram,
        wait_retry_after: Histogram,
    }

    fn register(name: &SharedString) -> Registered {
        metrics::describe_counter!(
            RETRY_ATTEMPTS_TOTAL,
            Unit::Count,
            "Retries sent, by the class of the attempt that caused them."
        );
        metrics::describe_counter!(
            RETRY_GAVE_UP_TOTAL,
            Unit::Count,
            "Retryable failures that were not retried, by reason."
        );
        metrics::describe_histogram!(
            RETRY_WAIT_SECONDS,
            Unit::Seconds,
            "Waits before a retry: backoff or the server's Retry-After."
        );
        let wait = |reason: &'static str| metrics::histogram!(RETRY_WAIT_SECONDS, "name" => name.clone(), "reason" => reason);
        Registered {
            name: name.clone(),
            success: requests_total("retry", name, "success"),
            failure: requests_total("retry", name, "failure"),
            gave_up_request: requests_total("retry", name, "gave_up"),
            gave_up: REASONS.map(|reason| {
                metrics::counter!(RETRY_GAVE_UP_TOTAL, "name" => name.clone(), "reason" => reason.as_str())
            }),
            attempts: RETRIED.map(|class| {
                metrics::counter!(RETRY_ATTEMPTS_TOTAL, "name" => name.clone(), "class" => class)
            }),
            wait_backoff: wait("backoff"),
            wait_retry_after: wait("retry_after"),
        }
    }

    fn class_index(class: Class) -> Option<usize> {
        match class {
            Class::Throttled { .. } => Some(0),
            Class::Unreachable => Some(1),
            Class::Transient { .. } => Some(2),
            _ => None,
        }
    }

    pub(crate) struct Metrics(Handles<Registered>);

    impl Metrics {
        pub(crate) fn new(name: std::borrow::Cow<'static, str>) -> Self {
            Self(Handles::new(name, register))
        }

        pub(crate) fn name(&self) -> &str {
            self.0.name()
        }

        pub(crate) fn finished(&self, class: Class) {
            let m = self.0.get();
            if class == Class::Success {
                m.success.increment(1);
            } else {
                m.failure.increment(1);
            }
        }

        pub(crate) fn gave_up(&self, reason: GiveUp) {
            let m = self.0.get();
            m.gave_up_request.increment(1);
            m.gave_up[reason as usize].increment(1);
        }

        pub(crate) fn retry(&self, class: Class, wait: Duration, from_retry_after: bool) {
            let m = self.0.get();
            match class_index(class) {
                Some(i) => m.attempts[i].increment(1),
                None => metrics::counter!(
                    RETRY_ATTEMPTS_TOTAL, "name" => m.name.clone(), "class" => class.as_str()
                )
                .increment(1),
            }
            let histogram = if from_retry_after {
                &m.wait_retry_after
            } else {
                &m.wait_backoff
            };
            histogram.record(seconds(wait));
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use std::{borrow::Cow, time::Duration};

    use bulwark_http::Class;

    use crate::event::GiveUp;

    /// Only the name, for `Debug`: without feature `metrics` nothing is recorded.
    pub(crate) struct Metrics(Cow<'static, str>);

    impl Metrics {
        pub(crate) fn new(name: Cow<'static, str>) -> Self {
            Self(name)
        }

        pub(crate) fn name(&self) -> &str {
            &self.0
        }

        #[inline]
        pub(crate) fn finished(&self, _class: Class) {}

        #[inline]
        pub(crate) fn gave_up(&self, _reason: GiveUp) {}

        #[inline]
        pub(crate) fn retry(&self, _class: Class, _wait: Duration, _from_retry_after: bool) {}
    }
}

pub(crate) use imp::Metrics;

// Keep the signatures of both variants in step.
const _: fn(&Metrics, Class, Duration, bool) = Metrics::retry;
const _: fn(&Metrics, GiveUp) = Metrics::gave_up;
