//! The preset's own metrics (the catalogue is `bulwark_http::metrics`): Notion error answers
//! by code and the duration of each request by outcome. Registered on the first request with
//! feature `metrics`; without it, nothing is recorded and nothing is kept per request.

use std::time::Duration;

use crate::error::NotionError;

/// How a preset request ended: the `outcome` label of the request duration, and the
/// `outcome` field of the `bulwark.request` span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A live 1xx–3xx answer.
    Ok,
    /// A stale copy (the upstream failed or was refused).
    Stale,
    /// A 4xx or 5xx answer.
    HttpError,
    /// Refused by a bulwark layer (open circuit, rate limit).
    Rejected,
    /// Any other error (timeout, connection, a local limit).
    Error,
}

impl Outcome {
    #[cfg(feature = "metrics")]
    pub(crate) const ALL: [Self; 5] = [
        Self::Ok,
        Self::Stale,
        Self::HttpError,
        Self::Rejected,
        Self::Error,
    ];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Stale => "stale",
            Self::HttpError => "http_error",
            Self::Rejected => "rejected",
            Self::Error => "error",
        }
    }
}

#[cfg(feature = "metrics")]
mod imp {
    use std::{borrow::Cow, time::Duration};

    use bulwark_http::metrics::{
        seconds, Handles, SharedString, NOTION_ERRORS_TOTAL, NOTION_REQUEST_DURATION_SECONDS,
    };
    use http::StatusCode;
    use metrics::{Histogram, Unit};

    use super::Outcome;
    use crate::error::{NotionError, CODES};

    pub(super) struct Registered {
        name: SharedString,
        duration: [Histogram; 5],
    }

    fn register(name: &SharedString) -> Registered {
        metrics::describe_counter!(
            NOTION_ERRORS_TOTAL,
            Unit::Count,
            "Notion error answers (every attempt's), by HTTP status and Notion error code."
        );
        metrics::describe_histogram!(
            NOTION_REQUEST_DURATION_SECONDS,
            Unit::Seconds,
            "Notion preset requests from the call to the answer (waits and retries included), by outcome."
        );
        Registered {
            name: name.clone(),
            duration: Outcome::ALL.map(|outcome| {
                metrics::histogram!(
                    NOTION_REQUEST_DURATION_SECONDS,
                    "name" => name.clone(),
                    "outcome" => outcome.as_str()
                )
            }),
        }
    }

    /// The preset's handles.
    pub(crate) struct Metrics(Handles<Registered>);

    impl std::fmt::Debug for Metrics {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }

    impl Metrics {
        pub(crate) fn new(name: Cow<'static, str>) -> Self {
            Self(Handles::new(name, register))
        }

        pub(crate) fn finished(&self, outcome: Outcome, elapsed: Duration) {
            self.0.get().duration[outcome as usize].record(seconds(elapsed));
        }

        /// One Notion error answer. Codes outside Notion's documented list are counted as
        /// `other`, so an upstream cannot grow the label set.
        pub(crate) fn error(&self, err: &NotionError) {
            let m = self.0.get();
            let code = CODES
                .iter()
                .find(|(_, c)| *c == err.code)
                .map_or("other", |(name, _)| *name);
            metrics::counter!(
                NOTION_ERRORS_TOTAL,
                "name" => m.name.clone(),
                "status" => status_label(err.status),
                "code" => code
            )
            .increment(1);
        }
    }

    fn status_label(status: StatusCode) -> SharedString {
        SharedString::from(status.as_str().to_owned())
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use std::{borrow::Cow, time::Duration};

    use super::Outcome;
    use crate::error::NotionError;

    /// Nothing: without feature `metrics` the preset records no metrics.
    #[derive(Debug)]
    pub(crate) struct Metrics;

    impl Metrics {
        pub(crate) fn new(_name: Cow<'static, str>) -> Self {
            Self
        }

        #[inline]
        pub(crate) fn finished(&self, _outcome: Outcome, _elapsed: Duration) {}

        #[inline]
        pub(crate) fn error(&self, _err: &NotionError) {}
    }
}

pub(crate) use imp::Metrics;

const _: fn(&Metrics, Outcome, Duration) = Metrics::finished;
const _: fn(&Metrics, &NotionError) = Metrics::error;
