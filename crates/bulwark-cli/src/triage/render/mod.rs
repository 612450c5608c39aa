//! The outputs: one [`Run`] or an [`Incident`] as text, JSON, a Slack message, a status-page
//! update or a postmortem draft. Pure: strings in, strings out; timestamps ISO 8601 UTC.

mod json;
mod text;
mod writeup;

use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::triage::{incident::Incident, observe::Run};

pub use json::{incident_json, run_json, schema_change_event};
pub use text::run_text;
pub use writeup::{postmortem, slack, statuspage};

/// What `--format` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The checks, the verdict, why and what to do.
    Text,
    /// One JSON document (the checks, the verdict, the incident, the events).
    Json,
    /// The Slack message `--notify` posts (mrkdwn).
    Slack,
    /// A public status-page update (no internal details).
    Statuspage,
    /// A postmortem draft in Markdown.
    Postmortem,
}

impl Format {
    /// The flag's value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
            Self::Slack => "slack",
            Self::Statuspage => "statuspage",
            Self::Postmortem => "postmortem",
        }
    }
}

/// One run in `format`; `mode` says what was checked (`real API`, `embedded FakeNotion`).
#[must_use]
pub fn run(run: &Run, format: Format, mode: &str) -> String {
    match format {
        Format::Text => run_text(run, mode),
        Format::Json => pretty(&run_json(run, mode)),
        other => incident(&Incident::from_run(run), other),
    }
}

/// An incident (a watch's) in `format`: `text` is the postmortem draft.
#[must_use]
pub fn incident(incident: &Incident, format: Format) -> String {
    match format {
        Format::Json => pretty(&incident_json(incident)),
        Format::Slack => slack(incident),
        Format::Statuspage => statuspage(incident),
        Format::Text | Format::Postmortem => postmortem(incident),
    }
}

/// `2026-11-30T07:48:20Z`.
#[must_use]
pub fn iso8601(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests;
