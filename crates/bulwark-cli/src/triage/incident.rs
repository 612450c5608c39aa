//! The facts an incident write-up needs — severity, status, impact, root-cause category,
//! current action, timestamps, timeline — from one [`Run`] or from a watch. Pure; the
//! templates are in [`render`](crate::triage::render).

use time::OffsetDateTime;

use crate::triage::{
    observation::{CallObservation, Observations},
    observe::Run,
    verdict::{Diagnosis, Verdict},
};

/// A severity suggestion; the incident commander decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Every call of the integration fails: nothing syncs.
    Sev1,
    /// A part is broken (some pages, some properties, Notion degraded).
    Sev2,
    /// Degraded with a workaround (slowed by the rate limit, one bad request).
    Sev3,
}

impl Severity {
    /// `SEV1`, `SEV2`, `SEV3`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sev1 => "SEV1",
            Self::Sev2 => "SEV2",
            Self::Sev3 => "SEV3",
        }
    }

    /// What the level means.
    #[must_use]
    pub const fn meaning(self) -> &'static str {
        match self {
            Self::Sev1 => "every call of the integration fails",
            Self::Sev2 => "part of the integration is broken or Notion is degraded",
            Self::Sev3 => "degraded, with a workaround",
        }
    }

    /// The status page's impact level for it.
    #[must_use]
    pub const fn statuspage_impact(self) -> &'static str {
        match self {
            Self::Sev1 => "critical",
            Self::Sev2 => "major",
            Self::Sev3 => "minor",
        }
    }
}

/// Where the incident stands, in Statuspage's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentStatus {
    /// Something fails and the cause is not pinned down.
    Investigating,
    /// The cause is known.
    Identified,
    /// It recovered; the fix is being watched.
    Monitoring,
    /// It failed and recovered.
    Resolved,
    /// Nothing failed.
    Operational,
}

impl IncidentStatus {
    /// `investigating`, `identified`, `monitoring`, `resolved`, `operational`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Investigating => "investigating",
            Self::Identified => "identified",
            Self::Monitoring => "monitoring",
            Self::Resolved => "resolved",
            Self::Operational => "operational",
        }
    }

    /// `Investigating`, …: for titles.
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            Self::Investigating => "Investigating",
            Self::Identified => "Identified",
            Self::Monitoring => "Monitoring",
            Self::Resolved => "Resolved",
            Self::Operational => "Operational",
        }
    }
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// When (UTC).
    pub at: OffsetDateTime,
    /// What happened.
    pub event: String,
}

/// Everything a write-up says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    /// A short title: `Notion API outage`.
    pub title: String,
    /// The verdict the write-up is about (the first failure's, for a watch).
    pub verdict: Verdict,
    /// The suggestion; `None` when nothing failed.
    pub severity: Option<Severity>,
    /// Where it stands.
    pub status: IncidentStatus,
    /// The root-cause category.
    pub root_cause: &'static str,
    /// The evidence behind the verdict.
    pub reason: String,
    /// What the checks saw fail, one line each; empty when nothing did.
    pub impact: Vec<String>,
    /// What to do now.
    pub action: String,
    /// Evidence of later branches of the runbook's tree.
    pub also: Vec<String>,
    /// The API checked.
    pub base_url: String,
    /// When the first failure was seen (or the run started, when nothing failed).
    pub started_at: OffsetDateTime,
    /// When the last check ended.
    pub updated_at: OffsetDateTime,
    /// When it recovered, for a watch that saw a recovery.
    pub resolved_at: Option<OffsetDateTime>,
    /// What happened, in order.
    pub timeline: Vec<TimelineEntry>,
    /// The exit code of the last check.
    pub exit_code: u8,
}

/// The title for a verdict.
#[must_use]
pub const fn title(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Healthy => "Notion integration healthy",
        Verdict::NotionOutage => "Notion API outage",
        Verdict::TokenInvalid => "Notion token invalid or revoked",
        Verdict::RateLimited => "Notion rate limit reached",
        Verdict::Network => "Notion API unreachable from our network",
        Verdict::IntegrationSide => "Notion integration requests failing",
        Verdict::PagesUnshared => "Notion pages no longer shared with the integration",
        Verdict::SchemaChanged => "Notion data source schema changed",
    }
}

/// The root-cause category for a verdict.
#[must_use]
pub const fn root_cause(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Healthy => "none",
        Verdict::NotionOutage => "Notion-side: the Notion API is down or degraded",
        Verdict::TokenInvalid => "credentials: the integration token is expired or revoked",
        Verdict::RateLimited => "rate limit: Notion refuses for the request rate",
        Verdict::Network => "network: the Notion API is not reachable from this host",
        Verdict::IntegrationSide => "integration-side: the integration's requests or access",
        Verdict::PagesUnshared => "access: pages or data sources no longer shared, or trashed",
        Verdict::SchemaChanged => "schema change: the data source's properties changed",
    }
}

/// The severity to suggest for a diagnosis.
#[must_use]
pub fn severity(diagnosis: &Diagnosis, obs: &Observations) -> Option<Severity> {
    let all_failed = obs
        .calls()
        .iter()
        .all(|(step, _)| !step.observation.is_ok());
    match diagnosis.verdict {
        Verdict::Healthy => None,
        Verdict::TokenInvalid | Verdict::Network => Some(Severity::Sev1),
        Verdict::NotionOutage if all_failed => Some(Severity::Sev1),
        Verdict::NotionOutage | Verdict::PagesUnshared | Verdict::SchemaChanged => {
            Some(Severity::Sev2)
        }
        Verdict::RateLimited | Verdict::IntegrationSide => Some(Severity::Sev3),
    }
}

/// The status for a verdict still failing.
#[must_use]
pub const fn failing_status(verdict: Verdict) -> IncidentStatus {
    match verdict {
        Verdict::Healthy => IncidentStatus::Operational,
        Verdict::IntegrationSide => IncidentStatus::Investigating,
        _ => IncidentStatus::Identified,
    }
}

/// What the checks saw fail, one line each.
#[must_use]
pub fn impact(run: &Run) -> Vec<String> {
    let obs = &run.observations;
    let mut lines: Vec<String> = obs
        .calls()
        .into_iter()
        .filter(|(step, _)| !matches!(step.observation, CallObservation::Ok { .. }))
        .map(|(step, _)| format!("{}: {}", step.request, step.observation.describe()))
        .collect();
    lines.extend(
        obs.pages
            .iter()
            .filter(|p| p.in_trash)
            .map(|p| format!("page {} is in the trash", p.id)),
    );
    if let Some(change) = &run.diagnosis.schema_change {
        lines.push(format!(
            "data source {} schema: {}",
            change.data_source_id,
            change.diff.summary()
        ));
    }
    if obs.status.observation.reports_incident() {
        lines.push(format!(
            "status page: {}",
            obs.status.observation.describe()
        ));
    }
    lines
}

/// The checks of one run, as timeline entries.
#[must_use]
pub fn run_timeline(run: &Run) -> Vec<TimelineEntry> {
    let obs = &run.observations;
    let ms = |d: std::time::Duration| d.as_millis();
    let mut entries = vec![TimelineEntry {
        at: obs.status.at,
        event: format!(
            "{} ({} ms): {}",
            obs.status.request,
            ms(obs.status.elapsed),
            obs.status.observation.describe()
        ),
    }];
    entries.extend(obs.calls().into_iter().map(|(step, _)| TimelineEntry {
        at: step.at,
        event: format!(
            "{} ({} ms): {}",
            step.request,
            ms(step.elapsed),
            step.observation.describe()
        ),
    }));
    entries.push(TimelineEntry {
        at: run.finished_at,
        event: format!(
            "verdict {} (exit {})",
            run.diagnosis.verdict,
            run.diagnosis.verdict.exit_code()
        ),
    });
    entries
}

impl Incident {
    /// The write-up of one run.
    #[must_use]
    pub fn from_run(run: &Run) -> Self {
        let d = &run.diagnosis;
        Self {
            title: title(d.verdict).to_owned(),
            verdict: d.verdict,
            severity: severity(d, &run.observations),
            status: failing_status(d.verdict),
            root_cause: root_cause(d.verdict),
            reason: d.reason.clone(),
            impact: impact(run),
            action: d.action.clone(),
            also: d.also.clone(),
            base_url: run.base_url.clone(),
            started_at: run.started_at,
            updated_at: run.finished_at,
            resolved_at: None,
            timeline: run_timeline(run),
            exit_code: d.verdict.exit_code(),
        }
    }
}
