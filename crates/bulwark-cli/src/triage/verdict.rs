//! The runbook's decision tree: [`Observations`] in, a [`Diagnosis`] out. Pure: no I/O, no
//! clock.
//!
//! The tree is walked in the runbook's order and the first branch with evidence wins; the
//! evidence of later branches is kept in [`Diagnosis::also`] (a 401 seen during an outage is
//! still worth fixing once Notion is back):
//!
//! 0. a call never reached the API, or something else than Notion answered below 500 (a
//!    proxy's or captive portal's page) → `network`: the tree cannot be walked from here;
//! 1. the status page reports a `major`/`critical` incident, or a call got 5xx/529 (JSON or
//!    the edge's HTML), timed out after connecting, or was cut off → `notion_outage`;
//! 2. 401 → `token_invalid`;
//! 3. 429 → `rate_limited`;
//! 4. 404 `object_not_found` on an object that should exist (`--page`, `--data-source`), or
//!    such a page in the trash → `pages_unshared`;
//! 5. the data source's schema differs from the expected one (`--expect-properties`,
//!    `--schema`) → `schema_changed`;
//! 6. any other 4xx (403 `restricted_resource`, 400 `validation_error`, …) or a request that
//!    could not be built → `integration_side`;
//! 7. otherwise `healthy` (a `minor` indicator or an unreadable status page is mentioned).

use crate::triage::{
    observation::{CallObservation, Observations, StatusObservation, Step},
    schema::{compare, SchemaDiff},
};

/// The runbook's conclusion. Each has its own exit code, stable across releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Everything answers.
    Healthy,
    /// Notion is down or degraded.
    NotionOutage,
    /// The token is expired or revoked.
    TokenInvalid,
    /// Notion refuses for the rate limit.
    RateLimited,
    /// The API cannot be reached from here.
    Network,
    /// The integration's access or its requests are wrong.
    IntegrationSide,
    /// Pages (or a data source) that should exist answer 404: no longer shared, or trashed.
    PagesUnshared,
    /// The data source's properties are not the expected ones.
    SchemaChanged,
}

impl Verdict {
    /// Every verdict, in exit-code order.
    pub const ALL: [Self; 8] = [
        Self::Healthy,
        Self::NotionOutage,
        Self::TokenInvalid,
        Self::RateLimited,
        Self::Network,
        Self::IntegrationSide,
        Self::PagesUnshared,
        Self::SchemaChanged,
    ];

    /// The verdict's name, as printed and in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::NotionOutage => "notion_outage",
            Self::TokenInvalid => "token_invalid",
            Self::RateLimited => "rate_limited",
            Self::Network => "network",
            Self::IntegrationSide => "integration_side",
            Self::PagesUnshared => "pages_unshared",
            Self::SchemaChanged => "schema_changed",
        }
    }

    /// The process exit code for this verdict (0, then 10–16; 1 is triage's own failure,
    /// 2 a usage error).
    #[must_use]
    pub const fn exit_code(self) -> u8 {
        match self {
            Self::Healthy => 0,
            Self::NotionOutage => 10,
            Self::TokenInvalid => 11,
            Self::RateLimited => 12,
            Self::Network => 13,
            Self::IntegrationSide => 14,
            Self::PagesUnshared => 15,
            Self::SchemaChanged => 16,
        }
    }

    /// Whether this is anything but `healthy`.
    #[must_use]
    pub const fn is_failure(self) -> bool {
        !matches!(self, Self::Healthy)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `schema_changed` found: the runbook's `schema_change_detected` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChange {
    /// The data source checked.
    pub data_source_id: String,
    /// Its database (`parent.database_id`), else the data source id.
    pub database_id: String,
    /// The differences.
    pub diff: SchemaDiff,
}

/// A verdict with its reason and the action to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// The conclusion.
    pub verdict: Verdict,
    /// The evidence, in one sentence.
    pub reason: String,
    /// What to do.
    pub action: String,
    /// Evidence of later branches of the tree (`token_invalid: GET /v1/users/me got 401 …`).
    pub also: Vec<String>,
    /// The schema comparison, when it found a difference (whatever the verdict).
    pub schema_change: Option<SchemaChange>,
}

/// One branch's evidence.
struct Finding {
    verdict: Verdict,
    reason: String,
    action: String,
}

impl Finding {
    fn new(verdict: Verdict, reason: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            verdict,
            reason: reason.into(),
            action: action.into(),
        }
    }
}

/// The action for `notion_outage`.
pub const OUTAGE_ACTION: &str = "Notion is down or degraded: do not retry in a loop; serve \
     stale data (bulwark's cache) and let the circuit breaker fail fast; watch the status page \
     and check again in a few minutes";
/// The action for `pages_unshared`.
pub const UNSHARED_ACTION: &str = "re-share the pages with the integration through the \
     Connections menu (••• → Connections → add the integration, on the page or a parent); \
     check the trash and restore what was deleted; check the ids";
/// The action for a 403 `restricted_resource`.
pub const RESTRICTED_ACTION: &str = "the integration can see the object but may not do this: \
     give it the capability it needs (integration settings → Capabilities: read, update or \
     insert content) or share the page/data source with it again (••• → Connections)";

/// The verdict from what the checks saw, walking the runbook's tree (see the module docs).
#[must_use]
pub fn diagnose(obs: &Observations) -> Diagnosis {
    let status_note = status_note(&obs.status.observation);
    let schema_change = schema_change(obs);
    let findings: Vec<Finding> = [
        network(obs, &status_note),
        outage(obs, &status_note),
        token(obs),
        rate_limited(obs),
        unshared(obs),
        schema_changed(schema_change.as_ref(), obs),
        integration_side(obs, &status_note),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut findings = findings.into_iter();
    let Some(first) = findings.next() else {
        return healthy(&obs.status.observation, &status_note);
    };
    Diagnosis {
        verdict: first.verdict,
        reason: first.reason,
        action: first.action,
        also: findings
            .map(|f| format!("{}: {}", f.verdict, f.reason))
            .collect(),
        schema_change,
    }
}

fn status_note(status: &StatusObservation) -> String {
    match status {
        StatusObservation::Reported {
            indicator,
            description,
        } => format!("status page: {indicator} ({description})"),
        StatusObservation::Unavailable { .. } => "status page unreadable".to_owned(),
    }
}

fn api_calls(obs: &Observations) -> impl Iterator<Item = (&Step<CallObservation>, bool)> {
    obs.calls().into_iter()
}

/// 0. Never reached Notion.
fn network(obs: &Observations, status_note: &str) -> Option<Finding> {
    api_calls(obs).find_map(|(step, _)| match &step.observation {
        CallObservation::Unreachable { error } => Some(Finding::new(
            Verdict::Network,
            format!(
                "{} never reached the API: {error}; {status_note}",
                step.request
            ),
            "check egress/proxy/DNS (firewall rules, HTTPS_PROXY, resolver, TLS interception) \
             from this host; Notion itself may be fine",
        )),
        CallObservation::Unexpected {
            status, snippet, ..
        } if *status < 500 => Some(Finding::new(
            Verdict::Network,
            format!(
                "{} got {status} that is not the Notion API's answer ({snippet:.80}); \
                 {status_note}",
                step.request
            ),
            "check egress/proxy/DNS: a proxy, captive portal or edge block answers instead of \
             Notion",
        )),
        _ => None,
    })
}

/// 1. Notion (or its edge) failing, or the status page admitting it.
fn outage(obs: &Observations, status_note: &str) -> Option<Finding> {
    let from_api = api_calls(obs).find_map(|(step, _)| {
        let name = &step.request;
        match &step.observation {
            CallObservation::Api { status, code, .. } if *status >= 500 => {
                Some(format!("{name} got {status} {code}"))
            }
            CallObservation::Unexpected {
                status, from_edge, ..
            } if *status >= 500 => Some(format!(
                "{name} got {status} {}",
                if *from_edge {
                    "from Notion's edge proxy (HTML, cf-ray, no x-notion-request-id)"
                } else {
                    "that is not Notion's JSON"
                }
            )),
            CallObservation::Timeout => Some(format!("{name} timed out")),
            CallObservation::Interrupted { error } => {
                Some(format!("{name} was cut off mid-request: {error}"))
            }
            _ => None,
        }
    });
    let reason = match from_api {
        Some(evidence) => format!("{evidence}; {status_note}"),
        None if obs.status.observation.reports_incident() => {
            format!("{status_note}; the calls went through this time")
        }
        None => return None,
    };
    Some(Finding::new(Verdict::NotionOutage, reason, OUTAGE_ACTION))
}

/// 2. 401.
fn token(obs: &Observations) -> Option<Finding> {
    api_calls(obs).find_map(|(step, _)| match step.observation.api_error() {
        Some((401, code)) => Some(Finding::new(
            Verdict::TokenInvalid,
            format!("{} got 401 {code}", step.request),
            "token expired or revoked: create a new integration secret / re-run OAuth, then \
             update NOTION_TOKEN",
        )),
        _ => None,
    })
}

/// 3. 429.
fn rate_limited(obs: &Observations) -> Option<Finding> {
    api_calls(obs).find_map(|(step, _)| match &step.observation {
        CallObservation::Api {
            status: 429,
            retry_after_secs,
            rate_limit_reason,
            ..
        } => {
            let wait = retry_after_secs.map_or_else(
                || "no Retry-After".to_owned(),
                |s| format!("Retry-After {s} s"),
            );
            let reason = rate_limit_reason.as_deref().unwrap_or("not given");
            Some(Finding::new(
                Verdict::RateLimited,
                format!(
                    "{} got 429 rate_limited ({wait}, rate_limit_reason {reason})",
                    step.request
                ),
                format!(
                    "wait {} before calling again (rate_limit_reason {reason}); then stay under \
                     ~3 requests/s per integration: one token bucket per token, shared by every \
                     process (bulwark's bucket with the Redis store)",
                    retry_after_secs
                        .map_or_else(|| "a few seconds".to_owned(), |s| format!("{s} s"))
                ),
            ))
        }
        _ => None,
    })
}

/// 4. Objects that should exist are not found, or are in the trash.
fn unshared(obs: &Observations) -> Option<Finding> {
    let mut gone: Vec<String> = api_calls(obs)
        .filter(|(step, known)| {
            *known && step.observation.api_error() == Some((404, "object_not_found"))
        })
        .map(|(step, _)| format!("{} got 404 object_not_found", step.request))
        .collect();
    gone.extend(
        obs.pages
            .iter()
            .filter(|p| p.in_trash)
            .map(|p| format!("page {} is in the trash", p.id)),
    );
    if gone.is_empty() {
        return None;
    }
    Some(Finding::new(
        Verdict::PagesUnshared,
        gone.join("; "),
        UNSHARED_ACTION,
    ))
}

fn schema_change(obs: &Observations) -> Option<SchemaChange> {
    let check = obs.schema.as_ref()?;
    let actual = check.actual.as_ref()?;
    let diff = compare(&check.expected, actual);
    (!diff.is_empty()).then(|| SchemaChange {
        data_source_id: check.data_source_id.clone(),
        database_id: actual
            .database_id
            .clone()
            .unwrap_or_else(|| check.data_source_id.clone()),
        diff,
    })
}

/// 5. The schema moved.
fn schema_changed(change: Option<&SchemaChange>, obs: &Observations) -> Option<Finding> {
    let change = change?;
    let validation = api_calls(obs)
        .find(|(step, _)| step.observation.api_error() == Some((400, "validation_error")))
        .map(|(step, _)| format!("; {} got 400 validation_error", step.request))
        .unwrap_or_default();
    Some(Finding::new(
        Verdict::SchemaChanged,
        format!(
            "data source {} changed: {}{validation}",
            change.data_source_id,
            change.diff.summary()
        ),
        "the data source's properties were renamed, removed, added or re-typed in Notion: \
         update the integration's property names/types (or restore the properties), then \
         update the expected schema",
    ))
}

/// 6. Access or request problems.
fn integration_side(obs: &Observations, status_note: &str) -> Option<Finding> {
    api_calls(obs).find_map(|(step, known)| match &step.observation {
        // Earlier branches' evidence: 401, 429, 5xx, a known object's 404.
        CallObservation::Api {
            status: 401 | 429 | 500..,
            ..
        } => None,
        CallObservation::Api {
            status: 404, code, ..
        } if known && code == "object_not_found" => None,
        CallObservation::Api { status, code, .. } => {
            let action = match (*status, code.as_str()) {
                (403, _) | (_, "restricted_resource") => RESTRICTED_ACTION,
                (404, _) | (_, "object_not_found") => {
                    "share the page/data source with the integration (••• → Connections), or \
                     check the id"
                }
                (400, "missing_version") => "fix the request/Notion-Version header",
                (400, "validation_error") => {
                    "fix the request/Notion-Version (validation); if a data source's schema \
                     may have changed, compare it: --data-source ID --expect-properties \
                     \"Name:title,…\""
                }
                _ => "fix the request/Notion-Version (unsupported or invalid request)",
            };
            Some(Finding::new(
                Verdict::IntegrationSide,
                format!("{} got {status} {code}; {status_note}", step.request),
                action,
            ))
        }
        CallObservation::InvalidRequest { error } => Some(Finding::new(
            Verdict::IntegrationSide,
            format!("{} could not be built: {error}", step.request),
            "fix the request (the data source or page id)",
        )),
        _ => None,
    })
}

/// 7. Nothing wrong.
fn healthy(status: &StatusObservation, status_note: &str) -> Diagnosis {
    let action = match status {
        StatusObservation::Reported { indicator, .. } if indicator != "none" => {
            "nothing to do now; the status page reports a minor incident: watch it"
        }
        StatusObservation::Unavailable { .. } => {
            "nothing to do: the API answers (the status page could not be read)"
        }
        StatusObservation::Reported { .. } => "nothing to do",
    };
    Diagnosis {
        verdict: Verdict::Healthy,
        reason: format!("the token works and every check answers; {status_note}"),
        action: action.to_owned(),
        also: Vec::new(),
        schema_change: None,
    }
}

#[cfg(test)]
mod tests;
