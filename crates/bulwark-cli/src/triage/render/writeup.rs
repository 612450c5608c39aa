//! The runbook's communication templates, filled from an [`Incident`]: the Slack message for
//! the team, the public status-page update, the postmortem draft.

use std::fmt::Write as _;

use time::OffsetDateTime;

use crate::triage::{
    incident::{Incident, IncidentStatus, Severity},
    render::iso8601,
    verdict::Verdict,
};

fn severity_label(incident: &Incident) -> String {
    incident.severity.map_or_else(
        || "none".to_owned(),
        |s| format!("{} ({})", s.as_str(), s.meaning()),
    )
}

fn emoji(incident: &Incident) -> &'static str {
    match (incident.status, incident.severity) {
        (IncidentStatus::Resolved | IncidentStatus::Operational, _) | (_, None) => {
            ":large_green_circle:"
        }
        (_, Some(Severity::Sev1)) => ":red_circle:",
        (_, Some(Severity::Sev2)) => ":large_orange_circle:",
        (_, Some(Severity::Sev3)) => ":large_yellow_circle:",
    }
}

/// The Slack message (mrkdwn) for the team channel; `--notify` posts it as `{"text": …}`.
#[must_use]
pub fn slack(incident: &Incident) -> String {
    let mut out = String::new();
    let sev = incident
        .severity
        .map_or_else(String::new, |s| format!("[{}] ", s.as_str()));
    let _ = writeln!(
        out,
        "{} *{sev}{}* — {}",
        emoji(incident),
        incident.title,
        incident.status.title()
    );
    let _ = writeln!(out, "*Status:* {}", incident.status.title());
    let _ = writeln!(out, "*Severity (suggested):* {}", severity_label(incident));
    if incident.impact.is_empty() {
        let _ = writeln!(out, "*Impact:* none seen by the checks");
    } else {
        let _ = writeln!(out, "*Impact:*");
        for line in &incident.impact {
            let _ = writeln!(out, "• {line}");
        }
    }
    let _ = writeln!(out, "*Root cause:* {}", incident.root_cause);
    let _ = writeln!(out, "*Evidence:* {}", incident.reason);
    for also in &incident.also {
        let _ = writeln!(out, "*Also seen:* {also}");
    }
    let _ = writeln!(out, "*Current action:* {}", incident.action);
    let _ = write!(
        out,
        "*Started:* {} · *Updated:* {}",
        iso8601(incident.started_at),
        iso8601(incident.updated_at)
    );
    if let Some(resolved) = incident.resolved_at {
        let _ = write!(out, " · *Resolved:* {}", iso8601(resolved));
    }
    let _ = write!(
        out,
        "\n*Checked:* {} (verdict `{}`, exit {}) by `bulwark triage`",
        incident.base_url, incident.verdict, incident.exit_code
    );
    out
}

/// What the public may be told caused it: no ids, URLs or internals.
const fn public_cause(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Healthy => "no problem",
        Verdict::NotionOutage => "an outage at Notion, our upstream provider",
        Verdict::TokenInvalid => "an expired credential for Notion",
        Verdict::RateLimited => "we are exceeding Notion's request rate limit",
        Verdict::Network => "a network problem between our servers and Notion",
        Verdict::PagesUnshared => "some Notion pages are no longer shared with our integration",
        Verdict::SchemaChanged => "a change to the structure of a Notion database we use",
        Verdict::IntegrationSide => "errors in the requests our integration sends to Notion",
    }
}

const fn public_action(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Healthy => "",
        Verdict::NotionOutage => {
            "We are following Notion's status page; changes will sync once Notion recovers."
        }
        Verdict::TokenInvalid => "We are replacing the credential.",
        Verdict::RateLimited => "We are slowing our requests down; syncing may be delayed.",
        Verdict::Network => "We are restoring connectivity.",
        Verdict::PagesUnshared => "We are restoring access to the pages.",
        Verdict::SchemaChanged => "We are updating our integration to the new structure.",
        Verdict::IntegrationSide => "We are working on a fix.",
    }
}

/// A public status-page update: title, status, impact level and a message without internal
/// details (no request ids, URLs or error bodies).
#[must_use]
pub fn statuspage(incident: &Incident) -> String {
    let message = match incident.status {
        IncidentStatus::Operational => {
            "All systems operational: our Notion integration is working normally.".to_owned()
        }
        IncidentStatus::Resolved | IncidentStatus::Monitoring => format!(
            "This incident has been resolved: syncing with Notion works again since {}. The \
             cause was {}.",
            iso8601(incident.resolved_at.unwrap_or(incident.updated_at)),
            public_cause(incident.verdict)
        ),
        IncidentStatus::Investigating => format!(
            "We are investigating {}. Some changes may not sync to or from Notion. We will \
             post an update within 30 minutes.",
            public_cause(incident.verdict)
        ),
        IncidentStatus::Identified => format!(
            "We have identified the cause of the problems syncing with Notion: {}. {} We will \
             post an update within 30 minutes.",
            public_cause(incident.verdict),
            public_action(incident.verdict)
        ),
    };
    let impact = incident
        .severity
        .filter(|_| {
            !matches!(
                incident.status,
                IncidentStatus::Resolved | IncidentStatus::Operational
            )
        })
        .map_or("none", Severity::statuspage_impact);
    let title = if incident.verdict == Verdict::Healthy {
        "Notion integration operational".to_owned()
    } else {
        format!("Problems syncing with Notion: {}", incident.title)
    };
    format!(
        "Title: {title}\nStatus: {}\nImpact: {impact}\nComponents: Notion integration\n\
         Posted: {}\n\n{message}\n",
        incident.status.title(),
        iso8601(incident.updated_at)
    )
}

fn action_items(verdict: Verdict) -> &'static [&'static str] {
    match verdict {
        Verdict::Healthy => &[],
        Verdict::NotionOutage => &[
            "Check that stale data was served (bulwark's cache) and the breaker opened, from \
             the proxy's access log (`bulwark report`)",
            "Subscribe the on-call channel to status.notion.so",
        ],
        Verdict::TokenInvalid => &[
            "Rotate the integration token and keep it in the secret store",
            "Alert on the first 401 instead of the first complaint",
        ],
        Verdict::RateLimited => &[
            "Share one token bucket between every process using the token (bulwark's Redis \
             store)",
            "Review the request volume per workspace",
        ],
        Verdict::Network => &[
            "Monitor egress to api.notion.com from every host",
            "Document the proxy/DNS settings the integration needs",
        ],
        Verdict::PagesUnshared => &[
            "Re-share the pages and list which pages the integration needs",
            "Alert on 404 object_not_found for pages that should exist (`bulwark triage \
             --page ID`)",
        ],
        Verdict::SchemaChanged => &[
            "Update the integration's property mapping (names and types)",
            "Run `bulwark triage --data-source ID --expect-properties …` on a schedule",
        ],
        Verdict::IntegrationSide => &[
            "Fix the failing request and add a regression test",
            "Check the Notion-Version the integration sends",
        ],
    }
}

fn duration(from: OffsetDateTime, to: OffsetDateTime) -> String {
    let secs = (to - from).whole_seconds().max(0);
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// A postmortem draft in Markdown: summary, impact, the timeline, root cause, resolution,
/// action items, and the questions only people can answer.
#[must_use]
pub fn postmortem(incident: &Incident) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Postmortem draft: {}\n", incident.title);
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| Status | {} |", incident.status.title());
    let _ = writeln!(
        out,
        "| Severity (suggested) | {} |",
        severity_label(incident)
    );
    let _ = writeln!(out, "| Root cause category | {} |", incident.root_cause);
    let _ = writeln!(out, "| Started | {} |", iso8601(incident.started_at));
    let end = incident.resolved_at.unwrap_or(incident.updated_at);
    match incident.resolved_at {
        Some(at) => {
            let _ = writeln!(out, "| Resolved | {} |", iso8601(at));
        }
        None if incident.verdict == Verdict::Healthy => {}
        None => {
            let _ = writeln!(
                out,
                "| Resolved | not yet (last check {}) |",
                iso8601(incident.updated_at)
            );
        }
    }
    let _ = writeln!(out, "| Duration | {} |", duration(incident.started_at, end));
    let _ = writeln!(out, "| Checked | {} |", incident.base_url);
    let _ = writeln!(
        out,
        "\n## Summary\n\n{}: {}.",
        incident.title, incident.reason
    );
    let _ = writeln!(out, "\n## Impact\n");
    if incident.impact.is_empty() {
        let _ = writeln!(out, "None seen by the checks.");
    }
    for line in &incident.impact {
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(out, "- Users affected: _to fill in_");
    let _ = writeln!(out, "\n## Timeline (UTC)\n\n| time | event |\n|---|---|");
    for entry in &incident.timeline {
        let _ = writeln!(
            out,
            "| {} | {} |",
            iso8601(entry.at),
            entry.event.replace('|', "\\|")
        );
    }
    let _ = writeln!(
        out,
        "\n## Root cause\n\n{}.\n\nEvidence: {}",
        incident.root_cause, incident.reason
    );
    for also in &incident.also {
        let _ = writeln!(out, "\nAlso seen: {also}");
    }
    let _ = writeln!(
        out,
        "\n## Resolution and current action\n\n{}",
        incident.action
    );
    let _ = writeln!(out, "\n## Action items\n");
    for item in action_items(incident.verdict) {
        let _ = writeln!(out, "- [ ] {item}");
    }
    let _ = writeln!(
        out,
        "- [ ] Keep `bulwark triage --watch` running during the next incident"
    );
    let _ = writeln!(
        out,
        "\n## Lessons learned\n\n- What went well: _to fill in_\n- What went wrong: _to fill \
         in_\n- Where we got lucky: _to fill in_"
    );
    let _ = writeln!(
        out,
        "\n_Drafted by `bulwark triage` at {}; check every line before publishing._",
        iso8601(incident.updated_at)
    );
    out
}
