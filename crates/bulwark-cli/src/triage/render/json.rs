//! `--format json`: one document for scripts, with the runbook's `schema_change_detected`
//! event.

use std::time::Duration;

use serde_json::{json, Value};

use crate::triage::{
    incident::Incident,
    observation::{CallObservation, StatusObservation, Step},
    observe::Run,
    render::iso8601,
    verdict::SchemaChange,
};

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn status_json(obs: &StatusObservation) -> Value {
    match obs {
        StatusObservation::Reported {
            indicator,
            description,
        } => json!({ "ok": true, "indicator": indicator, "description": description }),
        StatusObservation::Unavailable { error } => json!({ "ok": false, "error": error }),
    }
}

fn call_json(obs: &CallObservation) -> Value {
    match obs {
        CallObservation::Ok { summary } => json!({ "ok": true, "status": 200, "summary": summary }),
        CallObservation::Api {
            status,
            code,
            message,
            retry_after_secs,
            rate_limit_reason,
            request_id,
        } => json!({
            "ok": false,
            "status": status,
            "code": code,
            "message": message,
            "retry_after_secs": retry_after_secs,
            "rate_limit_reason": rate_limit_reason,
            "request_id": request_id,
        }),
        CallObservation::Unexpected {
            status,
            from_edge,
            snippet,
        } => json!({
            "ok": false, "status": status, "error": "unexpected_response",
            "from_edge": from_edge, "snippet": snippet,
        }),
        CallObservation::Timeout => json!({ "ok": false, "error": "timeout" }),
        CallObservation::Unreachable { error } => {
            json!({ "ok": false, "error": "unreachable", "detail": error })
        }
        CallObservation::Interrupted { error } => {
            json!({ "ok": false, "error": "interrupted", "detail": error })
        }
        CallObservation::InvalidRequest { error } => {
            json!({ "ok": false, "error": "invalid_request", "detail": error })
        }
    }
}

fn step_json<T>(name: &str, step: &Step<T>, result: Value) -> Value {
    json!({
        "step": name,
        "request": step.request,
        "at": iso8601(step.at),
        "duration_ms": duration_ms(step.elapsed),
        "result": result,
    })
}

/// The runbook's `schema_change_detected` event: `database_id`, `missing_properties`,
/// `new_properties`, plus `retyped_properties` and `data_source_id`.
#[must_use]
pub fn schema_change_event(change: &SchemaChange, detected_at: time::OffsetDateTime) -> Value {
    let retyped: Vec<Value> = change
        .diff
        .retyped
        .iter()
        .map(|r| json!({"name": r.name, "expected": r.expected, "actual": r.actual}))
        .collect();
    json!({
        "event": "schema_change_detected",
        "database_id": change.database_id,
        "data_source_id": change.data_source_id,
        "missing_properties": change.diff.missing,
        "new_properties": change.diff.new,
        "retyped_properties": retyped,
        "detected_at": iso8601(detected_at),
    })
}

/// An incident: the write-up's facts and its timeline.
#[must_use]
pub fn incident_json(incident: &Incident) -> Value {
    let timeline: Vec<Value> = incident
        .timeline
        .iter()
        .map(|e| json!({"at": iso8601(e.at), "event": e.event}))
        .collect();
    json!({
        "title": incident.title,
        "verdict": incident.verdict.as_str(),
        "exit_code": incident.exit_code,
        "severity": incident.severity.map(|s| s.as_str()),
        "status": incident.status.as_str(),
        "root_cause": incident.root_cause,
        "reason": incident.reason,
        "impact": incident.impact,
        "action": incident.action,
        "also": incident.also,
        "base_url": incident.base_url,
        "started_at": iso8601(incident.started_at),
        "updated_at": iso8601(incident.updated_at),
        "resolved_at": incident.resolved_at.map(iso8601),
        "timeline": timeline,
    })
}

/// One run: every step, the verdict, the incident and the events.
#[must_use]
pub fn run_json(run: &Run, mode: &str) -> Value {
    let obs = &run.observations;
    let mut steps = vec![
        step_json(
            "status_page",
            &obs.status,
            status_json(&obs.status.observation),
        ),
        step_json("token", &obs.me, call_json(&obs.me.observation)),
        step_json("query", &obs.query, call_json(&obs.query.observation)),
    ];
    if let Some(schema) = &obs.schema {
        let mut step = step_json("schema", &schema.step, call_json(&schema.step.observation));
        step["data_source_id"] = json!(schema.data_source_id);
        step["expected"] = schema
            .expected
            .properties()
            .iter()
            .map(|(n, t)| (n.clone(), json!(t)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        step["actual"] = schema.actual.as_ref().map_or(Value::Null, |a| {
            a.properties
                .iter()
                .map(|(n, t)| (n.clone(), json!(t)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        });
        steps.push(step);
    }
    for page in &obs.pages {
        let mut step = step_json("page", &page.step, call_json(&page.step.observation));
        step["page_id"] = json!(page.id);
        step["in_trash"] = json!(page.in_trash);
        steps.push(step);
    }
    let d = &run.diagnosis;
    let events: Vec<Value> = d
        .schema_change
        .iter()
        .map(|change| schema_change_event(change, run.finished_at))
        .collect();
    json!({
        "base_url": run.base_url,
        "mode": mode,
        "started_at": iso8601(run.started_at),
        "finished_at": iso8601(run.finished_at),
        "steps": steps,
        "verdict": d.verdict.as_str(),
        "exit_code": d.verdict.exit_code(),
        "reason": d.reason,
        "action": d.action,
        "also": d.also,
        "incident": incident_json(&Incident::from_run(run)),
        "events": events,
    })
}
