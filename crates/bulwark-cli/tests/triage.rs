//! `bulwark_cli::triage` end to end against FakeNotion on loopback: each fault FakeNotion can
//! stage is observed over real HTTP and gets the verdict (and exit code) the runbook
//! promises. The decision tree's own cases are unit tests in `src/triage/verdict/tests.rs`.

use std::time::Duration;

use bulwark_cli::triage::{
    observation::{CallObservation, StatusObservation},
    observe::{Checker, Run, Target},
    render::{self, Format},
    schema::ExpectedSchema,
    verdict::{Verdict, RESTRICTED_ACTION, UNSHARED_ACTION},
};
use bulwark_notion::Client;
use bulwark_testkit::{FakeNotion, Fault, Matcher, StatusIndicator, SEED_DATA_SOURCE_ID};
use serde_json::json;

const TOKEN: &str = "secret_triage_test";

async fn fake() -> FakeNotion {
    FakeNotion::builder()
        .tokens([TOKEN])
        .seed_pages(2)
        .start()
        .await
        .expect("FakeNotion starts")
}

/// Without a rate limit: for tests whose set-up calls would spend the token's budget.
async fn fake_unlimited() -> FakeNotion {
    FakeNotion::builder()
        .tokens([TOKEN])
        .seed_pages(2)
        .no_rate_limit()
        .start()
        .await
        .expect("FakeNotion starts")
}

fn target(fake: &FakeNotion) -> Target {
    let mut target = Target::new(fake.url(), TOKEN);
    target.status_url = format!("{}/api/v2/status.json", fake.url());
    target.step_timeout = Duration::from_secs(5);
    target
}

/// The `/v1/*` requests FakeNotion received (the status page is recorded too).
fn api_paths(fake: &FakeNotion) -> Vec<String> {
    fake.requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.starts_with("/v1/"))
        .collect()
}

async fn run(target: Target) -> Run {
    Checker::new(target).expect("the clients build").run().await
}

fn verdict(run: &Run) -> (Verdict, u8) {
    (run.diagnosis.verdict, run.diagnosis.verdict.exit_code())
}

/// A client of the fake, for the set-up the runbook's scenarios need.
fn client(fake: &FakeNotion) -> Client {
    Client::builder(TOKEN)
        .base_url(fake.url())
        .build()
        .expect("a client")
}

#[tokio::test]
async fn healthy_fake_is_healthy() {
    let fake = fake().await;
    let run = run(target(&fake)).await;
    assert_eq!(
        run.observations.status.observation,
        StatusObservation::Reported {
            indicator: "none".into(),
            description: "All Systems Operational".into()
        }
    );
    assert!(run.observations.me.observation.is_ok());
    assert!(run.observations.query.observation.is_ok());
    assert_eq!(verdict(&run), (Verdict::Healthy, 0));
    assert!(run.started_at <= run.finished_at);
    assert_eq!(
        api_paths(&fake),
        ["/v1/users/me", "/v1/search"],
        "no retries, one call each"
    );
}

#[tokio::test]
async fn data_source_query_is_timed() {
    let fake = fake().await;
    let mut t = target(&fake);
    t.data_source = Some(SEED_DATA_SOURCE_ID.to_owned());
    let run = run(t).await;
    assert!(run.observations.query.observation.is_ok());
    assert_eq!(run.diagnosis.verdict, Verdict::Healthy);
    assert_eq!(
        api_paths(&fake).last().map(String::as_str),
        Some(format!("/v1/data_sources/{SEED_DATA_SOURCE_ID}/query").as_str())
    );
}

#[tokio::test]
async fn outage_503s_and_a_major_status_page() {
    let fake = fake().await;
    fake.faults().outage(true);
    fake.set_status_indicator(StatusIndicator::Major);
    let run = run(target(&fake)).await;
    assert!(run.observations.status.observation.reports_incident());
    assert_eq!(
        run.observations.me.observation.api_error(),
        Some((503, "service_unavailable"))
    );
    assert_eq!(verdict(&run), (Verdict::NotionOutage, 10));
    assert_eq!(api_paths(&fake).len(), 2, "503s are not retried by triage");
}

#[tokio::test]
async fn outage_from_the_status_page_alone() {
    let fake = fake().await;
    fake.set_status_indicator(StatusIndicator::Critical);
    let run = run(target(&fake)).await;
    assert_eq!(verdict(&run), (Verdict::NotionOutage, 10));
    assert!(run.diagnosis.reason.contains("the calls went through"));
}

#[tokio::test]
async fn outage_from_the_edge_html() {
    let fake = fake().await;
    fake.faults()
        .script([Fault::CloudflareHtml(522), Fault::CloudflareHtml(522)]);
    let run = run(target(&fake)).await;
    assert!(matches!(
        run.observations.me.observation,
        CallObservation::Unexpected {
            status: 522,
            from_edge: true,
            ..
        }
    ));
    assert_eq!(run.diagnosis.verdict, Verdict::NotionOutage);
}

#[tokio::test]
async fn outage_when_connected_but_no_answer_in_time() {
    let fake = fake().await;
    fake.faults().script([
        Fault::Delay(Duration::from_secs(30)),
        Fault::Delay(Duration::from_secs(30)),
    ]);
    let mut t = target(&fake);
    t.step_timeout = Duration::from_millis(300);
    let run = run(t).await;
    assert_eq!(run.observations.me.observation, CallObservation::Timeout);
    assert!(
        run.observations.me.elapsed < Duration::from_secs(5),
        "bounded: {:?}",
        run.observations.me.elapsed
    );
    assert_eq!(run.diagnosis.verdict, Verdict::NotionOutage);
}

#[tokio::test]
async fn revoked_token_is_401() {
    let fake = fake().await;
    let mut t = target(&fake);
    t.token = "secret_revoked".to_owned();
    let run = run(t).await;
    assert_eq!(
        run.observations.me.observation.api_error(),
        Some((401, "unauthorized"))
    );
    assert_eq!(verdict(&run), (Verdict::TokenInvalid, 11));
}

#[tokio::test]
async fn rate_limited_by_the_real_per_token_limit() {
    // One request a second, no burst: the first check spends the token, the next is a real
    // 429 from FakeNotion's bucket with Retry-After and rate_limit_reason.
    let fake = FakeNotion::builder()
        .tokens([TOKEN])
        .rate_limit(1, 1)
        .start()
        .await
        .expect("FakeNotion starts");
    let run = run(target(&fake)).await;
    assert!(run.observations.me.observation.is_ok());
    let CallObservation::Api {
        status: 429,
        retry_after_secs: Some(_),
        rate_limit_reason: Some(ref reason),
        ..
    } = run.observations.query.observation
    else {
        panic!(
            "expected a 429, got {:?}",
            run.observations.query.observation
        );
    };
    assert_eq!(reason, "public_api_request_rate_limit");
    assert_eq!(verdict(&run), (Verdict::RateLimited, 12));
    assert!(run.diagnosis.reason.contains("Retry-After"));
}

#[tokio::test]
async fn network_on_a_closed_port() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut t = Target::new(format!("http://{closed}"), TOKEN);
    t.status_url = format!("http://{closed}/api/v2/status.json");
    t.step_timeout = Duration::from_secs(5);
    let run = run(t).await;
    assert!(matches!(
        run.observations.status.observation,
        StatusObservation::Unavailable { .. }
    ));
    assert!(
        matches!(
            run.observations.me.observation,
            CallObservation::Unreachable { .. }
        ),
        "{:?}",
        run.observations.me.observation
    );
    assert_eq!(verdict(&run), (Verdict::Network, 13));
}

#[tokio::test]
async fn restricted_query_is_integration_side() {
    let fake = fake().await;
    fake.faults()
        .script_for(Matcher::any_method("/v1/search"), [Fault::Status(403)]);
    let run = run(target(&fake)).await;
    assert!(run.observations.me.observation.is_ok());
    assert_eq!(
        run.observations.query.observation.api_error(),
        Some((403, "restricted_resource"))
    );
    assert_eq!(verdict(&run), (Verdict::IntegrationSide, 14));
    assert_eq!(run.diagnosis.action, RESTRICTED_ACTION);
}

#[tokio::test]
async fn a_restricted_page_has_its_own_advice() {
    let fake = fake().await;
    let id = fake.pages()[0].id.clone();
    fake.faults().script_for(
        Matcher::any_method(format!("/v1/pages/{id}")),
        [Fault::Status(403)],
    );
    let mut t = target(&fake);
    t.pages = vec![id];
    let run = run(t).await;
    assert_eq!(verdict(&run), (Verdict::IntegrationSide, 14));
    assert_eq!(run.diagnosis.action, RESTRICTED_ACTION);
}

#[tokio::test]
async fn a_validation_error_is_integration_side() {
    let fake = fake().await;
    fake.faults()
        .script_for(Matcher::any_method("/v1/search"), [Fault::Status(400)]);
    let run = run(target(&fake)).await;
    assert_eq!(
        run.observations
            .query
            .observation
            .api_error()
            .map(|(s, _)| s),
        Some(400)
    );
    assert_eq!(verdict(&run), (Verdict::IntegrationSide, 14));
}

#[tokio::test]
async fn an_unknown_data_source_is_unshared() {
    let fake = fake().await;
    let mut t = target(&fake);
    t.data_source = Some("00000000-0000-4000-8000-000000000000".to_owned());
    let run = run(t).await;
    assert_eq!(
        run.observations.query.observation.api_error(),
        Some((404, "object_not_found"))
    );
    assert_eq!(verdict(&run), (Verdict::PagesUnshared, 15));
}

#[tokio::test]
async fn pages_unshared_on_404_and_in_the_trash() {
    let fake = fake_unlimited().await;
    let shared = fake.pages()[0].id.clone();
    let mut t = target(&fake);
    t.pages = vec![
        shared.clone(),
        "11111111-2222-4333-8444-555555555555".to_owned(),
    ];
    let run = run(t.clone()).await;
    assert!(run.observations.pages[0].step.observation.is_ok());
    assert_eq!(
        run.observations.pages[1].step.observation.api_error(),
        Some((404, "object_not_found"))
    );
    assert_eq!(verdict(&run), (Verdict::PagesUnshared, 15));
    assert_eq!(run.diagnosis.action, UNSHARED_ACTION);
    assert!(run.diagnosis.action.contains("Connections menu"));
    assert!(run.diagnosis.action.contains("check the trash"));

    // A page moved to the trash answers 200 with in_trash: still pages_unshared.
    client(&fake)
        .patch(&format!("pages/{shared}"), json!({"in_trash": true}))
        .await
        .expect("trashed");
    t.pages = vec![shared.clone()];
    let run = self::run(t).await;
    assert!(run.observations.pages[0].in_trash);
    assert_eq!(verdict(&run), (Verdict::PagesUnshared, 15));
    assert!(run
        .diagnosis
        .reason
        .contains(&format!("page {shared} is in the trash")));
}

fn expecting(fake: &FakeNotion, spec: &str) -> Target {
    let mut t = target(fake);
    t.data_source = Some(SEED_DATA_SOURCE_ID.to_owned());
    t.expected_schema = Some(ExpectedSchema::parse(spec).expect("a schema"));
    t
}

#[tokio::test]
async fn schema_changed_after_a_patch_of_the_data_source() {
    let fake = fake_unlimited().await;
    let spec = "Name:title,Status:select,Due:date";
    // The schema the integration was built against…
    client(&fake)
        .patch(
            &format!("data_sources/{SEED_DATA_SOURCE_ID}"),
            json!({"properties": {"Status": {"select": {}}, "Due": {"date": {}}}}),
        )
        .await
        .expect("schema set");
    let run = run(expecting(&fake, spec)).await;
    assert_eq!(
        verdict(&run),
        (Verdict::Healthy, 0),
        "{}",
        run.diagnosis.reason
    );

    // …then someone edits the database in Notion: Due removed, Status re-typed, Owner added.
    client(&fake)
        .patch(
            &format!("data_sources/{SEED_DATA_SOURCE_ID}"),
            json!({"properties": {
                "Due": null,
                "Status": {"multi_select": {}},
                "Owner": {"people": {}},
            }}),
        )
        .await
        .expect("schema changed");
    let run = self::run(expecting(&fake, spec)).await;
    assert_eq!(verdict(&run), (Verdict::SchemaChanged, 16));
    let change = run.diagnosis.schema_change.clone().expect("the event");
    assert_eq!(change.database_id, "db_1");
    assert_eq!(change.diff.missing, ["Due"]);
    assert_eq!(change.diff.new, ["Owner"]);
    assert_eq!(change.diff.retyped[0].actual, "multi_select");
    assert_eq!(
        api_paths(&fake).last().map(String::as_str),
        Some(format!("/v1/data_sources/{SEED_DATA_SOURCE_ID}").as_str())
    );

    let doc: serde_json::Value =
        serde_json::from_str(&render::run(&run, Format::Json, "test")).expect("JSON");
    let event = &doc["events"][0];
    assert_eq!(event["event"], "schema_change_detected");
    assert_eq!(event["database_id"], "db_1");
    assert_eq!(event["missing_properties"], json!(["Due"]));
    assert_eq!(event["new_properties"], json!(["Owner"]));
    assert_eq!(event["retyped_properties"][0]["name"], "Status");
}

#[tokio::test]
async fn schema_changed_with_set_schema_and_a_rename() {
    let fake = fake().await;
    fake.set_schema([("Name", "title"), ("Stage", "status")]);
    let run = run(expecting(&fake, "Name:title,Status:status")).await;
    assert_eq!(verdict(&run), (Verdict::SchemaChanged, 16));
    let change = run.diagnosis.schema_change.expect("the event");
    // A rename is a missing property and a new one.
    assert_eq!(
        (change.diff.missing, change.diff.new),
        (vec!["Status".to_owned()], vec!["Stage".to_owned()])
    );
}

#[tokio::test]
async fn a_full_run_is_bounded() {
    // Every step against a server that never answers: each ends at its timeout.
    let fake = fake().await;
    fake.faults().latency(Duration::from_secs(60));
    let mut t = expecting(&fake, "Name:title");
    t.pages = vec!["p1".into(), "p2".into()];
    t.step_timeout = Duration::from_millis(300);
    let started = tokio::time::Instant::now();
    let run = run(t).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "{took:?} for 6 steps of 300 ms"
    );
    assert_eq!(run.diagnosis.verdict, Verdict::NotionOutage);
    assert!(matches!(
        run.observations.status.observation,
        StatusObservation::Unavailable { .. }
    ));
}
