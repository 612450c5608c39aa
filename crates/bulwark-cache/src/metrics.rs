//! The cache's metrics (the catalogue is `bulwark_http::metrics`): registered on an
//! instance's first request with feature `metrics`, nothing at all without it.

use std::time::Duration;

/// Why a stale copy was served: the `reason` label of `bulwark_cache_age_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StaleReason {
    /// Served at once while a revalidation runs (`stale-while-revalidate`).
    Revalidating,
    /// The upstream answered with a failure or an error (`stale-if-error`).
    UpstreamFailed,
    /// An inner layer refused the call (an open circuit, a rate limit).
    RefusedLocally,
    /// The identical call this one waited for failed.
    CoalescedFailed,
}

impl StaleReason {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Revalidating => "revalidating",
            Self::UpstreamFailed => "upstream_failed",
            Self::RefusedLocally => "refused_locally",
            Self::CoalescedFailed => "coalesced_failed",
        }
    }
}

#[cfg(feature = "metrics")]
mod imp {
    use std::{borrow::Cow, time::Duration};

    use bulwark_http::metrics::{
        requests_total, seconds, Handles, SharedString, CACHE_AGE_SECONDS, CACHE_STORES_TOTAL,
    };
    use metrics::{Counter, Histogram, Unit};

    use super::StaleReason;

    const REASONS: [StaleReason; 4] = [
        StaleReason::Revalidating,
        StaleReason::UpstreamFailed,
        StaleReason::RefusedLocally,
        StaleReason::CoalescedFailed,
    ];

    pub(super) struct Registered {
        fresh: Counter,
        stale: Counter,
        miss: Counter,
        bypass: Counter,
        stores: Counter,
        age: [Histogram; 4],
    }

    fn register(name: &SharedString) -> Registered {
        metrics::describe_histogram!(
            CACHE_AGE_SECONDS,
            Unit::Seconds,
            "Age of the stale answers served, by why a stale answer was served."
        );
        metrics::describe_counter!(
            CACHE_STORES_TOTAL,
            Unit::Count,
            "Responses stored by the stale cache."
        );
        Registered {
            fresh: requests_total("cache", name, "fresh"),
            stale: requests_total("cache", name, "stale"),
            miss: requests_total("cache", name, "miss"),
            bypass: requests_total("cache", name, "bypass"),
            stores: metrics::counter!(CACHE_STORES_TOTAL, "name" => name.clone()),
            age: REASONS.map(|reason| {
                metrics::histogram!(CACHE_AGE_SECONDS, "name" => name.clone(), "reason" => reason.as_str())
            }),
        }
    }

    pub(crate) struct Metrics(Handles<Registered>);

    impl Metrics {
        pub(crate) fn new(name: Cow<'static, str>) -> Self {
            Self(Handles::new(name, register))
        }

        pub(crate) fn name(&self) -> &str {
            self.0.name()
        }

        #[inline]
        pub(crate) fn fresh(&self) {
            self.0.get().fresh.increment(1);
        }

        #[inline]
        pub(crate) fn miss(&self) {
            self.0.get().miss.increment(1);
        }

        #[inline]
        pub(crate) fn bypass(&self) {
            self.0.get().bypass.increment(1);
        }

        #[inline]
        pub(crate) fn stored(&self) {
            self.0.get().stores.increment(1);
        }

        /// A stale copy of `age` served. Only one served while revalidating is a request
        /// outcome of its own (`stale`); the others answer a `miss` whose call failed.
        pub(crate) fn stale(&self, reason: StaleReason, age: Duration) {
            let m = self.0.get();
            if reason == StaleReason::Revalidating {
                m.stale.increment(1);
            }
            m.age[reason as usize].record(seconds(age));
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use std::{borrow::Cow, time::Duration};

    use super::StaleReason;

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
        pub(crate) fn fresh(&self) {}

        #[inline]
        pub(crate) fn miss(&self) {}

        #[inline]
        pub(crate) fn bypass(&self) {}

        #[inline]
        pub(crate) fn stored(&self) {}

        #[inline]
        pub(crate) fn stale(&self, _reason: StaleReason, _age: Duration) {}
    }
}

pub(crate) use imp::Metrics;

const _: fn(&Metrics, StaleReason, Duration) = Metrics::stale;
