//! What the checks saw, as plain values: no I/O, no clock. [`observe`](crate::triage::observe)
//! makes them; [`diagnose`](crate::triage::verdict::diagnose) and the renderers read them.

use std::time::Duration;

use time::OffsetDateTime;

use crate::triage::schema::{ActualSchema, ExpectedSchema};

/// What the status page said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusObservation {
    /// `{"status":{"indicator":…,"description":…}}`.
    Reported {
        /// `none`, `minor`, `major` or `critical` (or whatever Statuspage invents next).
        indicator: String,
        /// Statuspage's sentence, e.g. `All Systems Operational`.
        description: String,
    },
    /// No usable answer (unreachable, timeout, not Statuspage's JSON).
    Unavailable {
        /// What went wrong.
        error: String,
    },
}

impl StatusObservation {
    /// Whether the status page reports an incident that matters: `major` or `critical`.
    #[must_use]
    pub fn reports_incident(&self) -> bool {
        matches!(self, Self::Reported { indicator, .. } if indicator == "major" || indicator == "critical")
    }

    /// One line for people.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Reported {
                indicator,
                description,
            } => format!("{indicator} — {description}"),
            Self::Unavailable { error } => format!("unavailable: {error}"),
        }
    }
}

/// What one API call gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallObservation {
    /// A 2xx JSON answer.
    Ok {
        /// A one-line summary of the answer.
        summary: String,
    },
    /// Notion's JSON error body.
    Api {
        /// The HTTP status.
        status: u16,
        /// Notion's `code`.
        code: String,
        /// Notion's `message`.
        message: String,
        /// `Retry-After`, in whole seconds.
        retry_after_secs: Option<u64>,
        /// `additional_data.rate_limit_reason`.
        rate_limit_reason: Option<String>,
        /// The request id, for Notion's support.
        request_id: Option<String>,
    },
    /// An answer that is not Notion's JSON (an edge proxy's HTML page, a corporate proxy).
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// `cf-ray` without `x-notion-request-id`: Notion's edge answered, not the API.
        from_edge: bool,
        /// The start of the body.
        snippet: String,
    },
    /// Connected (or tried to), but no answer within the step's bound.
    Timeout,
    /// Never reached the API: connect refused, DNS, TLS handshake, connect timeout.
    Unreachable {
        /// The error chain.
        error: String,
    },
    /// The connection broke mid-request (reset, closed before the answer).
    Interrupted {
        /// The error chain.
        error: String,
    },
    /// The request could not be built (an id that is not valid in a URL).
    InvalidRequest {
        /// Why.
        error: String,
    },
}

impl CallObservation {
    /// Whether the call got a 2xx answer.
    #[must_use]
    pub const fn is_ok(&self) -> bool {
        matches!(self, Self::Ok { .. })
    }

    /// Notion's status and code, when it answered with its error JSON.
    #[must_use]
    pub fn api_error(&self) -> Option<(u16, &str)> {
        match self {
            Self::Api { status, code, .. } => Some((*status, code.as_str())),
            _ => None,
        }
    }

    /// One line for people: `401 unauthorized: API token is invalid. [request id …]`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Ok { summary } => format!("200 OK: {summary}"),
            Self::Api {
                status,
                code,
                message,
                retry_after_secs,
                rate_limit_reason,
                request_id,
            } => {
                let mut text = format!("{status} {code}: {message}");
                if let Some(secs) = retry_after_secs {
                    text.push_str(&format!(" [Retry-After {secs} s]"));
                }
                if let Some(reason) = rate_limit_reason {
                    text.push_str(&format!(" [rate_limit_reason {reason}]"));
                }
                if let Some(id) = request_id {
                    text.push_str(&format!(" [request id {id}]"));
                }
                text
            }
            Self::Unexpected {
                status,
                from_edge,
                snippet,
            } => format!(
                "{status} from {}: {snippet:.80}",
                if *from_edge {
                    "Notion's edge proxy"
                } else {
                    "not the Notion API"
                }
            ),
            Self::Timeout => "timed out".to_owned(),
            Self::Unreachable { error } => format!("unreachable: {error}"),
            Self::Interrupted { error } => format!("cut off: {error}"),
            Self::InvalidRequest { error } => format!("invalid request: {error}"),
        }
    }
}

/// One check: what was asked, when, how long it took and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<T> {
    /// The request, e.g. `GET /v1/users/me`.
    pub request: String,
    /// When the step started (UTC).
    pub at: OffsetDateTime,
    /// How long the step took.
    pub elapsed: Duration,
    /// What was seen.
    pub observation: T,
}

impl<T> Step<T> {
    /// A step that took no time at the Unix epoch: for tests and hand-made observations.
    #[must_use]
    pub fn new(request: impl Into<String>, observation: T) -> Self {
        Self {
            request: request.into(),
            at: OffsetDateTime::UNIX_EPOCH,
            elapsed: Duration::ZERO,
            observation,
        }
    }
}

/// `GET /v1/pages/{id}` of a page that should exist (`--page`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCheck {
    /// The page id as given.
    pub id: String,
    /// The call.
    pub step: Step<CallObservation>,
    /// The page answered with `in_trash: true` (or `archived: true`).
    pub in_trash: bool,
}

/// `GET /v1/data_sources/{id}` and the schema it should have (`--expect-properties`,
/// `--schema`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaCheck {
    /// The data source id as given.
    pub data_source_id: String,
    /// The schema the integration relies on.
    pub expected: ExpectedSchema,
    /// The call.
    pub step: Step<CallObservation>,
    /// The schema the data source has, when the call answered one.
    pub actual: Option<ActualSchema>,
}

/// Everything one triage run saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observations {
    /// The status page.
    pub status: Step<StatusObservation>,
    /// `GET /v1/users/me`: the token.
    pub me: Step<CallObservation>,
    /// One query's latency: `POST /v1/search` or `POST /v1/data_sources/{id}/query`.
    pub query: Step<CallObservation>,
    /// The data source the query named (`--data-source`): an object that should exist.
    pub query_data_source: Option<String>,
    /// The schema comparison, with `--expect-properties` or `--schema`.
    pub schema: Option<SchemaCheck>,
    /// The pages that should exist (`--page`).
    pub pages: Vec<PageCheck>,
}

impl Observations {
    /// The three checks every run makes; no schema, no pages.
    #[must_use]
    pub const fn new(
        status: Step<StatusObservation>,
        me: Step<CallObservation>,
        query: Step<CallObservation>,
    ) -> Self {
        Self {
            status,
            me,
            query,
            query_data_source: None,
            schema: None,
            pages: Vec::new(),
        }
    }

    /// Every API call in the order made, with whether it was about an object the operator
    /// said exists (a named data source, a page).
    #[must_use]
    pub fn calls(&self) -> Vec<(&Step<CallObservation>, bool)> {
        let mut calls = vec![
            (&self.me, false),
            (&self.query, self.query_data_source.is_some()),
        ];
        if let Some(schema) = &self.schema {
            calls.push((&schema.step, true));
        }
        calls.extend(self.pages.iter().map(|page| (&page.step, true)));
        calls
    }
}
