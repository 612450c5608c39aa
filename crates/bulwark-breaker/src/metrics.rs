//! The breaker's metrics (the catalogue is `bulwark_http::metrics`): registered on an
//! instance's first request with feature `metrics`, nothing at all without it.

#[cfg(feature = "metrics")]
mod imp {
    use std::borrow::Cow;

    use bulwark_http::metrics::{
        requests_total, Handles, SharedString, BREAKER_ABANDONED_TOTAL, BREAKER_STATE,
        BREAKER_TRANSITIONS_TOTAL,
    };
    use metrics::{Counter, Gauge, Unit};

    use crate::handle::BreakerState;

    pub(super) struct Registered {
        name: SharedString,
        permitted: Counter,
        waited: Counter,
        rejected: Counter,
        state: Gauge,
    }

    fn register(name: &SharedString) -> Registered {
        metrics::describe_gauge!(
            BREAKER_STATE,
            "The circuit breaker's state: 0 closed (or disabled), 1 open (or forced open), 2 half-open."
        );
        metrics::describe_counter!(
            BREAKER_TRANSITIONS_TOTAL,
            Unit::Count,
            "Circuit breaker state changes, by the state entered."
        );
        metrics::describe_counter!(
            BREAKER_ABANDONED_TOTAL,
            Unit::Count,
            "Calls dropped past the breaker's slow-call threshold, counted as failures."
        );
        let state = metrics::gauge!(BREAKER_STATE, "name" => name.clone());
        // A breaker starts closed; a transition sets the gauge after registering.
        state.set(0.0);
        Registered {
            name: name.clone(),
            permitted: requests_total("breaker", name, "permitted"),
            waited: requests_total("breaker", name, "waited"),
            rejected: requests_total("breaker", name, "rejected"),
            state,
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
        pub(crate) fn permitted(&self) {
            self.0.get().permitted.increment(1);
        }

        pub(crate) fn waited(&self) {
            self.0.get().waited.increment(1);
        }

        pub(crate) fn rejected(&self) {
            self.0.get().rejected.increment(1);
        }

        pub(crate) fn abandoned(&self) {
            let m = self.0.get();
            metrics::counter!(BREAKER_ABANDONED_TOTAL, "name" => m.name.clone()).increment(1);
        }

        pub(crate) fn transitioned(&self, to: BreakerState) {
            let m = self.0.get();
            let value = match to {
                BreakerState::Closed | BreakerState::Disabled => 0.0,
                BreakerState::Open { .. } | BreakerState::ForcedOpen => 1.0,
                BreakerState::HalfOpen => 2.0,
            };
            m.state.set(value);
            metrics::counter!(
                BREAKER_TRANSITIONS_TOTAL, "name" => m.name.clone(), "to" => to.as_str()
            )
            .increment(1);
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use std::borrow::Cow;

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
        pub(crate) fn permitted(&self) {}

        #[inline]
        pub(crate) fn waited(&self) {}

        #[inline]
        pub(crate) fn rejected(&self) {}

        #[inline]
        pub(crate) fn abandoned(&self) {}

        #[inline]
        pub(crate) fn transitioned(&self, _to: crate::handle::BreakerState) {}
    }
}

pub(crate) use imp::Metrics;
