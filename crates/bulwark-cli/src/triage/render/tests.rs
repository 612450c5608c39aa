//! Each format, from hand-made runs.

use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::*;
use crate::triage::{
    observation::{CallObservation as Call, Observations, SchemaCheck, StatusObservation, Step},
    schema::{ActualSchema, ExpectedSchema},
    verdict::diagnose,
};

/// 2025-11-30T08:00:00Z.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_764_489_600).unwrap()
}

fn step<T>(request: &str, secs: i64, observation: T) -> Step<T> {
    Step {
        request: request.into(),
        at: t0() + time::Duration::seconds(secs),
        elapsed: Duration::from_millis(12),
        observation,
    }
}

fn api(status: u16, code: &str) -> Call {
    Call::Api {
        status,
        code: code.into(),
        message: "m".into(),
        retry_after_secs: None,
        rate_limit_reason: None,
        request_id: Some("req-secret-id".into()),
    }
}

fn ok() -> Call {
    Call::Ok {
        summary: "fine".into(),
    }
}

fn run_of(obs: Observations) -> Run {
    let diagnosis = diagnose(&obs);
    Run {
        base_url: "https://api.notion.com".into(),
        started_at: t0(),
        finished_at: t0() + time::Duration::seconds(3),
        observations: obs,
        diagnosis,
    }
}

fn status(indicator: &str) -> Step<StatusObservation> {
    step(
        "GET https://status.notion.so/api/v2/status.json",
        0,
        StatusObservation::Reported {
            indicator: indicator.into(),
            description: "desc".into(),
        },
    )
}

fn outage() -> Run {
    run_of(Observations::new(
        status("major"),
        step("GET /v1/users/me", 1, api(503, "service_unavailable")),
        step("POST /v1/search", 2, ok()),
    ))
}

fn schema_changed() -> Run {
    let mut obs = Observations::new(
        status("none"),
        step("GET /v1/users/me", 1, ok()),
        step("POST /v1/data_sources/ds_1/query", 2, ok()),
    );
    obs.query_data_source = Some("ds_1".into());
    obs.schema = Some(SchemaCheck {
        data_source_id: "ds_1".into(),
        expected: ExpectedSchema::parse("Name:title,Status:select,Due:date").unwrap(),
        step: step("GET /v1/data_sources/ds_1", 2, ok()),
        actual: Some(ActualSchema {
            database_id: Some("db_1".into()),
            properties: [
                ("Name", "title"),
                ("Status", "multi_select"),
                ("Owner", "people"),
            ]
            .into_iter()
            .map(|(n, t)| (n.to_owned(), t.to_owned()))
            .collect(),
        }),
    });
    run_of(obs)
}

fn healthy() -> Run {
    run_of(Observations::new(
        status("none"),
        step("GET /v1/users/me", 1, ok()),
        step("POST /v1/search", 2, ok()),
    ))
}

#[test]
fn timestamps_are_iso_8601_utc() {
    assert_eq!(iso8601(t0()), "2025-11-30T08:00:00Z");
}

#[test]
fn text_lists_every_check_and_the_verdict() {
    let text = run(&schema_changed(), Format::Text, "real API");
    assert!(text
        .starts_with("Notion triage of https://api.notion.com (real API) at 2025-11-30T08:00:00Z"));
    assert!(text.contains("[4/4] GET /v1/data_sources/ds_1"), "{text}");
    assert!(text.contains("verdict: schema_changed (exit 16)"), "{text}");
    assert!(text.contains("missing: Due; new: Owner; re-typed: Status select → multi_select"));
}

#[test]
fn json_carries_the_schema_change_detected_event() {
    let doc: Value = serde_json::from_str(&run(&schema_changed(), Format::Json, "m")).unwrap();
    assert_eq!(doc["verdict"], "schema_changed");
    assert_eq!(doc["exit_code"], 16);
    assert_eq!(doc["steps"][3]["step"], "schema");
    assert_eq!(doc["steps"][3]["expected"]["Due"], "date");
    assert_eq!(doc["steps"][3]["actual"]["Status"], "multi_select");
    let event = &doc["events"][0];
    assert_eq!(event["event"], "schema_change_detected");
    assert_eq!(event["database_id"], "db_1");
    assert_eq!(event["data_source_id"], "ds_1");
    assert_eq!(event["missing_properties"], serde_json::json!(["Due"]));
    assert_eq!(event["new_properties"], serde_json::json!(["Owner"]));
    assert_eq!(
        event["retyped_properties"],
        serde_json::json!([{"name": "Status", "expected": "select", "actual": "multi_select"}])
    );
    assert_eq!(event["detected_at"], "2025-11-30T08:00:03Z");
    assert_eq!(doc["incident"]["severity"], "SEV2");
    assert_eq!(doc["incident"]["status"], "identified");
    assert_eq!(doc["steps"][0]["at"], "2025-11-30T08:00:00Z");
    let healthy: Value = serde_json::from_str(&run(&healthy(), Format::Json, "m")).unwrap();
    assert_eq!(healthy["events"], serde_json::json!([]));
    assert_eq!(healthy["incident"]["severity"], Value::Null);
}

#[test]
fn slack_has_the_template_fields() {
    let text = run(&outage(), Format::Slack, "m");
    for needle in [
        ":large_orange_circle: *[SEV2] Notion API outage* — Identified",
        "*Status:* Identified",
        "*Severity (suggested):* SEV2",
        "*Impact:*\n• GET /v1/users/me: 503 service_unavailable",
        "• status page: major — desc",
        "*Root cause:* Notion-side",
        "*Current action:* Notion is down or degraded",
        "*Started:* 2025-11-30T08:00:00Z · *Updated:* 2025-11-30T08:00:03Z",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    let fine = run(&healthy(), Format::Slack, "m");
    assert!(fine.starts_with(":large_green_circle: *Notion integration healthy* — Operational"));
    assert!(fine.contains("*Impact:* none seen by the checks"));
}

#[test]
fn statuspage_says_nothing_internal() {
    let text = run(&outage(), Format::Statuspage, "m");
    assert!(
        text.contains("Status: Identified\nImpact: major\n"),
        "{text}"
    );
    assert!(text.contains("an outage at Notion"));
    assert!(text.contains("Posted: 2025-11-30T08:00:03Z"));
    for secret in ["req-secret-id", "/v1/", "api.notion.com", "503"] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    let fine = run(&healthy(), Format::Statuspage, "m");
    assert!(fine.contains("Impact: none"));
    assert!(fine.contains("All systems operational"));
}

#[test]
fn postmortem_has_the_timeline_and_action_items() {
    let text = run(&schema_changed(), Format::Postmortem, "m");
    for needle in [
        "# Postmortem draft: Notion data source schema changed",
        "| Status | Identified |",
        "| Severity (suggested) | SEV2",
        "| Started | 2025-11-30T08:00:00Z |",
        "| Resolved | not yet (last check 2025-11-30T08:00:03Z) |",
        "## Timeline (UTC)",
        "| 2025-11-30T08:00:01Z | GET /v1/users/me (12 ms): 200 OK: fine |",
        "| 2025-11-30T08:00:03Z | verdict schema_changed (exit 16) |",
        "## Root cause\n\nschema change",
        "- [ ] Update the integration's property mapping",
        "## Lessons learned",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

#[test]
fn an_incident_renders_in_every_format() {
    let incident = Incident::from_run(&outage());
    assert_eq!(
        super::incident(&incident, Format::Text),
        postmortem(&incident)
    );
    let doc: Value = serde_json::from_str(&super::incident(&incident, Format::Json)).unwrap();
    assert_eq!(doc["verdict"], "notion_outage");
    assert_eq!(doc["timeline"][0]["at"], "2025-11-30T08:00:00Z");
    assert_eq!(super::incident(&incident, Format::Slack), slack(&incident));
    assert_eq!(
        super::incident(&incident, Format::Statuspage),
        statuspage(&incident)
    );
}
