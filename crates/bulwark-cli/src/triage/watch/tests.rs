//! The watch's transitions, alert rule and write-up, on hand-made runs.

use time::OffsetDateTime;

use super::*;
use crate::triage::{
    observation::{CallObservation as Call, Observations, StatusObservation, Step},
    verdict::diagnose,
};

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_764_489_600 + secs).unwrap()
}

fn run(secs: i64, me: Call) -> Run {
    let obs = Observations::new(
        Step::new(
            "GET status",
            StatusObservation::Reported {
                indicator: "none".into(),
                description: "ok".into(),
            },
        ),
        Step::new("GET /v1/users/me", me),
        Step::new(
            "POST /v1/search",
            Call::Ok {
                summary: "ok".into(),
            },
        ),
    );
    let diagnosis = diagnose(&obs);
    Run {
        base_url: "http://fake".into(),
        started_at: at(secs),
        finished_at: at(secs),
        observations: obs,
        diagnosis,
    }
}

fn ok() -> Call {
    Call::Ok {
        summary: "ok".into(),
    }
}

fn down() -> Call {
    Call::Api {
        status: 503,
        code: "service_unavailable".into(),
        message: "m".into(),
        retry_after_secs: None,
        rate_limit_reason: None,
        request_id: None,
    }
}

fn revoked() -> Call {
    Call::Api {
        status: 401,
        code: "unauthorized".into(),
        message: "m".into(),
        retry_after_secs: None,
        rate_limit_reason: None,
        request_id: None,
    }
}

#[test]
fn only_transitions_are_printed_and_the_alert_rule_fires_once() {
    let mut state = WatchState::new(at(0), 3);
    let first = state.record(&run(0, ok()));
    assert!(first
        .transition
        .unwrap()
        .starts_with("2025-11-30T08:00:00Z  healthy (exit 0)"));
    assert!(first.alerts.is_empty());
    assert_eq!(state.record(&run(30, ok())), Update::default());

    let degraded = state.record(&run(60, down()));
    assert!(degraded
        .transition
        .unwrap()
        .starts_with("2025-11-30T08:01:00Z  healthy → notion_outage (exit 10)"));
    assert_eq!(degraded.alerts, [Alert::Degraded]);
    assert_eq!(state.record(&run(90, down())), Update::default());
    assert_eq!(
        state.record(&run(120, down())).alerts,
        [Alert::Sustained(3)]
    );
    assert_eq!(
        state.record(&run(150, down())),
        Update::default(),
        "once a streak"
    );
    assert_eq!(state.exit_code(), 10);

    let recovered = state.record(&run(180, ok()));
    assert!(recovered
        .transition
        .unwrap()
        .contains("notion_outage → healthy (exit 0)"));
    assert_eq!(recovered.alerts, [Alert::Recovered]);
    assert_eq!(state.exit_code(), 0);

    let incident = state.incident().unwrap();
    assert_eq!(incident.verdict, Verdict::NotionOutage);
    assert_eq!(incident.status, IncidentStatus::Resolved);
    assert_eq!(incident.started_at, at(60), "the first failure");
    assert_eq!(incident.resolved_at, Some(at(180)));
    assert!(incident.impact.contains(
        &"4 of 7 checks failed between 2025-11-30T08:00:00Z and 2025-11-30T08:03:00Z".to_owned()
    ));
    let events: Vec<&str> = incident.timeline.iter().map(|e| e.event.as_str()).collect();
    assert!(events[0].starts_with("first check: healthy"), "{events:?}");
    assert!(events[1].starts_with("degraded: healthy → notion_outage"));
    assert_eq!(events[2], "3 consecutive failed checks (alert rule)");
    assert!(events[3].starts_with("recovered: notion_outage → healthy"));
    assert!(incident
        .action
        .starts_with("recovered at 2025-11-30T08:03:00Z"));
}

#[test]
fn a_failing_start_alerts_and_verdict_changes_are_transitions() {
    let mut state = WatchState::new(at(0), 5);
    assert_eq!(state.record(&run(0, down())).alerts, [Alert::Degraded]);
    let changed = state.record(&run(30, revoked()));
    assert!(changed
        .transition
        .unwrap()
        .contains("notion_outage → token_invalid (exit 11)"));
    assert!(changed.alerts.is_empty(), "still degraded: no new alert");
    let incident = state.incident().unwrap();
    assert_eq!(incident.verdict, Verdict::NotionOutage, "what started it");
    assert_eq!(incident.status, IncidentStatus::Identified);
    assert_eq!(incident.exit_code, 11, "the last check's code");
    assert!(incident.also[0].starts_with("now token_invalid"));
    assert!(incident.action.contains("new integration secret"));
}

#[test]
fn alert_after_one_alerts_once_and_a_quiet_watch_is_operational() {
    let mut state = WatchState::new(at(0), 1);
    assert_eq!(state.record(&run(0, down())).alerts, [Alert::Degraded]);
    assert_eq!(state.record(&run(1, down())).alerts, []);

    let mut quiet = WatchState::new(at(0), 5);
    assert!(quiet.incident().is_none());
    quiet.record(&run(0, ok()));
    quiet.record(&run(30, ok()));
    quiet.note(at(40), "watch ended");
    let incident = quiet.incident().unwrap();
    assert_eq!(incident.status, IncidentStatus::Operational);
    assert_eq!(incident.severity, None);
    assert!(incident.reason.starts_with("2 checks from"));
    assert_eq!(incident.timeline.len(), 2);
}
