//! The bucket's metrics (the catalogue is `bulwark_http::metrics`): registered on an
//! instance's first request with feature `metrics`, nothing at all without it.

#[cfg(feature = "metrics")]
mod imp {
    use std::borrow::Cow;

    use bulwark_http::metrics::{
        requests_total, Handles, SharedString, BUCKET_PAUSED_TOTAL, BUCKET_WAIT_SECONDS,
        QUOTA_REMAINING_RATIO,
    };
    use metrics::{Counter, Gauge, Histogram, Unit};

    pub(super) struct Registered {
        admitted: Counter,
        rejected: Counter,
        exhausted: Counter,
        quota_share: Gauge,
        paused: Counter,
        wait: Histogram,
    }

    fn register(name: &SharedString) -> Registered {
        metrics::describe_histogram!(
            BUCKET_WAIT_SECONDS,
            Unit::Seconds,
            "How long a request was queued for a token of the rate limiter."
        );
        metrics::describe_counter!(
            BUCKET_PAUSED_TOTAL,
            Unit::Count,
            "Pauses of the rate limiter by an upstream 429 with Retry-After."
        );
        metrics::describe_gauge!(
            QUOTA_REMAINING_RATIO,
            "The upstream's advertised allowance left, as a share of its limit (0 to 1), from its usage headers."
        );
        Registered {
            admitted: requests_total("bucket", name, "admitted"),
            rejected: requests_total("bucket", name, "rejected"),
            exhausted: requests_total("bucket", name, "quota_exhausted"),
            quota_share: metrics::gauge!(QUOTA_REMAINING_RATIO, "name" => name.clone()),
            paused: metrics::counter!(BUCKET_PAUSED_TOTAL, "name" => name.clone()),
            wait: metrics::histogram!(BUCKET_WAIT_SECONDS, "name" => name.clone()),
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
        pub(crate) fn admitted(&self) {
            self.0.get().admitted.increment(1);
        }

        pub(crate) fn rejected(&self) {
            self.0.get().rejected.increment(1);
        }

        pub(crate) fn paused(&self) {
            self.0.get().paused.increment(1);
        }

        pub(crate) fn exhausted(&self) {
            self.0.get().exhausted.increment(1);
        }

        pub(crate) fn quota_share(&self, share: f64) {
            self.0.get().quota_share.set(share);
        }

        /// A request queued for `wait_ns` nanoseconds.
        pub(crate) fn queued(&self, wait_ns: u64) {
            #[allow(clippy::cast_precision_loss)] // seconds as a sample: precision to spare
            self.0.get().wait.record(wait_ns as f64 / 1e9);
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
        pub(crate) fn admitted(&self) {}

        #[inline]
        pub(crate) fn rejected(&self) {}

        #[inline]
        pub(crate) fn paused(&self) {}

        #[inline]
        pub(crate) fn exhausted(&self) {}

        #[inline]
        pub(crate) fn quota_share(&self, _share: f64) {}

        #[inline]
        pub(crate) fn queued(&self, _wait_ns: u64) {}
    }
}

pub(crate) use imp::Metrics;
