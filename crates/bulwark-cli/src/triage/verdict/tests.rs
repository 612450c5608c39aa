//! The decision tree, branch by branch, on hand-made observations.

use super::*;
use crate::triage::{
    observation::{CallObservation as Call, PageCheck, SchemaCheck, StatusObservation as Status},
    schema::{ActualSchema, ExpectedSchema},
};

fn page(indicator: &str) -> Status {
    Status::Reported {
        indicator: indicator.into(),
        description: "…".into(),
    }
}

fn ok() -> Call {
    Call::Ok {
        summary: "fine".into(),
    }
}

fn api(status: u16, code: &str) -> Call {
    Call::Api {
        status,
        code: code.into(),
        message: "m".into(),
        retry_after_secs: None,
        rate_limit_reason: None,
        request_id: Some("r-1".into()),
    }
}

fn unreachable() -> Call {
    Call::Unreachable {
        error: "tcp connect error: Connection refused".into(),
    }
}

fn obs(status: Status, me: Call, query: Call) -> Observations {
    Observations::new(
        Step::new("GET status", status),
        Step::new("GET /v1/users/me", me),
        Step::new("POST /v1/search", query),
    )
}

fn diagnose3(status: &Status, me: &Call, query: &Call) -> Diagnosis {
    diagnose(&obs(status.clone(), me.clone(), query.clone()))
}

fn with_page(mut o: Observations, id: &str, call: Call, in_trash: bool) -> Observations {
    o.pages.push(PageCheck {
        id: id.into(),
        step: Step::new(format!("GET /v1/pages/{id}"), call),
        in_trash,
    });
    o
}

fn with_schema(mut o: Observations, expected: &str, actual: &[(&str, &str)]) -> Observations {
    o.schema = Some(SchemaCheck {
        data_source_id: "ds_1".into(),
        expected: ExpectedSchema::parse(expected).unwrap(),
        step: Step::new("GET /v1/data_sources/ds_1", ok()),
        actual: Some(ActualSchema {
            database_id: Some("db_1".into()),
            properties: actual
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect(),
        }),
    });
    o
}

#[test]
fn healthy_when_everything_answers() {
    for status in [
        page("none"),
        page("minor"),
        Status::Unavailable { error: "x".into() },
    ] {
        let d = diagnose3(&status, &ok(), &ok());
        assert_eq!(d.verdict, Verdict::Healthy, "{status:?}");
        assert_eq!(d.verdict.exit_code(), 0);
        assert!(d.also.is_empty());
    }
    assert!(diagnose3(&page("minor"), &ok(), &ok())
        .action
        .contains("minor"));
    // A schema that matches and pages that are there.
    let o = with_schema(
        with_page(obs(page("none"), ok(), ok()), "p1", ok(), false),
        "Name:title,Status:select",
        &[("Status", "select"), ("Name", "title")],
    );
    let d = diagnose(&o);
    assert_eq!(d.verdict, Verdict::Healthy);
    assert_eq!(d.schema_change, None);
}

#[test]
fn outage_from_the_status_page_or_the_api() {
    let cases = [
        (page("major"), ok(), ok()),
        (page("critical"), ok(), ok()),
        (page("none"), api(503, "service_unavailable"), ok()),
        (page("none"), ok(), api(500, "internal_server_error")),
        (page("none"), api(529, "service_overload"), ok()),
        (
            page("none"),
            api(502, "bad_gateway"),
            api(502, "bad_gateway"),
        ),
        (
            page("none"),
            Call::Unexpected {
                status: 522,
                from_edge: true,
                snippet: "<html>".into(),
            },
            ok(),
        ),
        (page("none"), Call::Timeout, Call::Timeout),
        (
            page("none"),
            ok(),
            Call::Interrupted {
                error: "connection closed before message completed".into(),
            },
        ),
        // A 5xx outweighs what the status page has not noticed yet, and a 401 seen
        // alongside it (the API is failing; fix the token later).
        (
            Status::Unavailable { error: "x".into() },
            api(401, "unauthorized"),
            api(503, "service_unavailable"),
        ),
    ];
    for (status, me, query) in cases {
        let d = diagnose3(&status, &me, &query);
        assert_eq!(
            d.verdict,
            Verdict::NotionOutage,
            "{status:?} {me:?} {query:?}"
        );
        assert_eq!(d.verdict.exit_code(), 10);
        assert!(d.action.contains("serve stale"));
    }
}

#[test]
fn the_status_page_comes_first_and_a_401_is_kept_for_later() {
    // The runbook's order: a reported incident is Notion-side, whatever else answered; the
    // 401 is not lost.
    let d = diagnose3(
        &page("major"),
        &api(401, "unauthorized"),
        &api(401, "unauthorized"),
    );
    assert_eq!(d.verdict, Verdict::NotionOutage);
    assert_eq!(d.also.len(), 1, "{:?}", d.also);
    assert!(d.also[0].starts_with("token_invalid: GET /v1/users/me got 401"));
}

#[test]
fn token_invalid_on_401() {
    let d = diagnose3(
        &page("minor"),
        &api(401, "unauthorized"),
        &api(401, "unauthorized"),
    );
    assert_eq!(d.verdict, Verdict::TokenInvalid);
    assert_eq!(d.verdict.exit_code(), 11);
    assert!(d.action.contains("create a new integration secret"));
    assert!(d.action.contains("re-run OAuth"));
}

#[test]
fn rate_limited_shows_retry_after_and_reason() {
    let limited = Call::Api {
        status: 429,
        code: "rate_limited".into(),
        message: "slow down".into(),
        retry_after_secs: Some(42),
        rate_limit_reason: Some("public_api_space_request_rate_limit".into()),
        request_id: None,
    };
    let d = diagnose3(&page("none"), &limited, &limited);
    assert_eq!(d.verdict, Verdict::RateLimited);
    assert_eq!(d.verdict.exit_code(), 12);
    assert!(d.reason.contains("Retry-After 42 s"), "{}", d.reason);
    assert!(d.action.contains("42 s"), "{}", d.action);
    assert!(d.action.contains("public_api_space_request_rate_limit"));
    // Without a Retry-After it still says what it knows.
    let d = diagnose3(&page("none"), &ok(), &api(429, "rate_limited"));
    assert_eq!(d.verdict, Verdict::RateLimited);
    assert!(d.reason.contains("no Retry-After"));
    // A 429 comes before a page the 429 kept from being read.
    let o = with_page(
        obs(page("none"), ok(), ok()),
        "p1",
        api(429, "rate_limited"),
        false,
    );
    assert_eq!(diagnose(&o).verdict, Verdict::RateLimited);
}

#[test]
fn network_when_the_api_is_never_reached() {
    let down = Status::Unavailable {
        error: "dns".into(),
    };
    for (status, me, query) in [
        (down.clone(), unreachable(), unreachable()),
        // Unreachable outweighs a status page that reports an outage: we cannot tell.
        (page("major"), unreachable(), unreachable()),
        (page("none"), ok(), unreachable()),
        // A proxy's HTML page instead of Notion.
        (
            page("none"),
            Call::Unexpected {
                status: 407,
                from_edge: false,
                snippet: "<html>Proxy Authentication Required".into(),
            },
            ok(),
        ),
    ] {
        let d = diagnose3(&status, &me, &query);
        assert_eq!(d.verdict, Verdict::Network, "{me:?}");
        assert_eq!(d.verdict.exit_code(), 13);
        assert!(d.action.contains("check egress/proxy/DNS"));
    }
}

#[test]
fn pages_unshared_on_404_of_known_objects_or_the_trash() {
    let o = with_page(
        with_page(obs(page("none"), ok(), ok()), "p1", ok(), false),
        "p2",
        api(404, "object_not_found"),
        false,
    );
    let d = diagnose(&o);
    assert_eq!(d.verdict, Verdict::PagesUnshared);
    assert_eq!(d.verdict.exit_code(), 15);
    assert!(
        d.reason.contains("GET /v1/pages/p2 got 404"),
        "{}",
        d.reason
    );
    assert!(d.action.contains("Connections menu"));
    assert!(d.action.contains("check the trash"));

    let trashed = with_page(obs(page("none"), ok(), ok()), "p3", ok(), true);
    let d = diagnose(&trashed);
    assert_eq!(d.verdict, Verdict::PagesUnshared);
    assert!(d.reason.contains("page p3 is in the trash"));

    // The data source named with --data-source is an object that should exist too.
    let mut named = obs(page("none"), ok(), api(404, "object_not_found"));
    named.query_data_source = Some("ds_gone".into());
    assert_eq!(diagnose(&named).verdict, Verdict::PagesUnshared);
    // A 404 on a call about nothing in particular is not.
    let d = diagnose3(&page("none"), &ok(), &api(404, "object_not_found"));
    assert_eq!(d.verdict, Verdict::IntegrationSide);
}

#[test]
fn restricted_pages_have_their_own_advice() {
    let o = with_page(
        obs(page("none"), ok(), ok()),
        "p1",
        api(403, "restricted_resource"),
        false,
    );
    let d = diagnose(&o);
    assert_eq!(d.verdict, Verdict::IntegrationSide);
    assert_eq!(d.action, RESTRICTED_ACTION);
    assert!(d.action.contains("Capabilities"));
}

#[test]
fn schema_changed_lists_the_differences() {
    let o = with_schema(
        obs(page("none"), ok(), api(400, "validation_error")),
        "Name:title,Status:select,Due:date",
        &[
            ("Name", "title"),
            ("Status", "multi_select"),
            ("Owner", "people"),
        ],
    );
    let d = diagnose(&o);
    assert_eq!(d.verdict, Verdict::SchemaChanged);
    assert_eq!(d.verdict.exit_code(), 16);
    assert!(d.reason.contains("missing: Due"), "{}", d.reason);
    assert!(d.reason.contains("new: Owner"));
    assert!(d.reason.contains("Status select → multi_select"));
    assert!(d.reason.contains("400 validation_error"));
    let change = d.schema_change.expect("the event");
    assert_eq!(change.database_id, "db_1");
    assert_eq!(change.diff.missing, ["Due"]);
    // The 400 that the schema explains is not reported twice as integration-side… but it
    // is kept as later evidence.
    assert!(d.also.iter().any(|a| a.starts_with("integration_side")));
}

#[test]
fn schema_change_ranks_after_unshared_and_before_integration_side() {
    let changed = with_schema(
        obs(page("none"), ok(), ok()),
        "Name:title,Due:date",
        &[("Name", "title")],
    );
    let unshared = with_page(changed.clone(), "p1", api(404, "object_not_found"), false);
    let d = diagnose(&unshared);
    assert_eq!(d.verdict, Verdict::PagesUnshared);
    assert!(d.also[0].starts_with("schema_changed"), "{:?}", d.also);
    assert!(
        d.schema_change.is_some(),
        "the event is carried whatever the verdict"
    );
    let restricted = with_page(changed, "p1", api(403, "restricted_resource"), false);
    assert_eq!(diagnose(&restricted).verdict, Verdict::SchemaChanged);
}

#[test]
fn a_validation_error_without_a_schema_suggests_comparing_one() {
    let d = diagnose3(&page("none"), &ok(), &api(400, "validation_error"));
    assert_eq!(d.verdict, Verdict::IntegrationSide);
    assert!(d.action.contains("--expect-properties"), "{}", d.action);
}

#[test]
fn integration_side_for_access_and_request_errors() {
    for (query, hint) in [
        (api(403, "restricted_resource"), "Connections"),
        (api(404, "object_not_found"), "share the page/data source"),
        (
            api(400, "validation_error"),
            "fix the request/Notion-Version",
        ),
        (
            api(400, "missing_version"),
            "fix the request/Notion-Version",
        ),
        (
            Call::InvalidRequest {
                error: "bad uri".into(),
            },
            "fix the request",
        ),
    ] {
        let d = diagnose3(&page("none"), &ok(), &query);
        assert_eq!(d.verdict, Verdict::IntegrationSide, "{query:?}");
        assert_eq!(d.verdict.exit_code(), 14);
        assert!(d.action.contains(hint), "{query:?}: {}", d.action);
    }
}

#[test]
fn exit_codes_are_distinct_and_documented() {
    let codes: Vec<u8> = Verdict::ALL.iter().map(|v| v.exit_code()).collect();
    assert_eq!(codes, [0, 10, 11, 12, 13, 14, 15, 16]);
    let names: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
    assert_eq!(
        names,
        [
            "healthy",
            "notion_outage",
            "token_invalid",
            "rate_limited",
            "network",
            "integration_side",
            "pages_unshared",
            "schema_changed",
        ]
    );
    // The crate README's table lists every verdict with its code.
    let readme = include_str!("../../../README.md");
    for v in Verdict::ALL {
        let row = format!("| `{}` | {} |", v.as_str(), v.exit_code());
        assert!(readme.contains(&row), "README lacks {row}");
    }
}
