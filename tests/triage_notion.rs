//! The triage example's checks, end to end against FakeNotion: each fault FakeNotion can
//! stage is observed over real HTTP on loopback and gets the verdict (and exit code) the
//! runbook promises. The verdict function's own cases are unit tests in `examples/triage.rs`.

use std::time::Duration;

use bulwark_testkit::{FakeNotion, Fault, Matcher, StatusIndicator, SEED_DATA_SOURCE_ID};

#[allow(dead_code)]
#[path = "../examples/triage/checks.rs"]
mod checks;

use checks::{
    diagnose, CallObservation, Diagnosis, Observations, StatusObservation, Target, Verdict,
};

const TOKEN: &str = "secret_triage_test";

async fn fake() -> FakeNotion {
    FakeNotion::builder()
        .tokens([TOKEN])
        .start()
        .await
        .expect("FakeNotion starts")
}

fn target(fake: &FakeNotion) -> Target {
    Target {
        base_url: fake.url(),
        status_url: format!("{}/api/v2/status.json", fake.url()),
        token: TOKEN.to_owned(),
        data_source: None,
        step_timeout: Duration::from_secs(5),
    }
}

/// The `/v1/*` requests FakeNotion received (the status page is recorded too).
fn api_paths(fake: &FakeNotion) -> Vec<String> {
    fake.requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.starts_with("/v1/"))
        .collect()
}

async fn run(target: &Target) -> (Observations, Diagnosis) {
    let obs = checks::observe(target).await.expect("client builds");
    let diagnosis = diagnose(
        &obs.status.observation,
        &obs.me.observation,
        &obs.query.observation,
    );
    (obs, diagnosis)
}

#[tokio::test]
async fn healthy_fake_is_healthy() {
    let fake = fake().await;
    let (obs, d) = run(&target(&fake)).await;
    assert_eq!(
        obs.status.observation,
        StatusObservation::Reported {
            indicator: "none".into(),
            description: "All Systems Operational".into()
        }
    );
    assert!(matches!(obs.me.observation, CallObservation::Ok { .. }));
    assert!(matches!(obs.query.observation, CallObservation::Ok { .. }));
    assert_eq!((d.verdict, d.verdict.exit_code()), (Verdict::Healthy, 0));
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
    let (obs, d) = run(&t).await;
    assert!(matches!(obs.query.observation, CallObservation::Ok { .. }));
    assert_eq!(d.verdict, Verdict::Healthy);
    let last = fake.requests().pop().expect("recorded");
    assert_eq!(
        last.path,
        format!("/v1/data_sources/{SEED_DATA_SOURCE_ID}/query")
    );
}

#[tokio::test]
async fn outage_503s_and_a_major_status_page() {
    let fake = fake().await;
    fake.faults().outage(true);
    fake.set_status_indicator(StatusIndicator::Major);
    let (obs, d) = run(&target(&fake)).await;
    assert!(matches!(
        obs.status.observation,
        StatusObservation::Reported { ref indicator, .. } if indicator == "major"
    ));
    assert!(matches!(
        obs.me.observation,
        CallObservation::Api { status: 503, ref code, .. } if code == "service_unavailable"
    ));
    assert_eq!(
        (d.verdict, d.verdict.exit_code()),
        (Verdict::NotionOutage, 10)
    );
    assert_eq!(api_paths(&fake).len(), 2, "503s are not retried by triage");
}

#[tokio::test]
async fn outage_from_the_edge_html() {
    let fake = fake().await;
    fake.faults()
        .script([Fault::CloudflareHtml(522), Fault::CloudflareHtml(522)]);
    let (obs, d) = run(&target(&fake)).await;
    assert!(matches!(
        obs.me.observation,
        CallObservation::Unexpected {
            status: 522,
            from_edge: true,
            ..
        }
    ));
    assert_eq!(d.verdict, Verdict::NotionOutage);
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
    let (obs, d) = run(&t).await;
    assert_eq!(obs.me.observation, CallObservation::Timeout);
    assert!(
        obs.me.elapsed < Duration::from_secs(5),
        "bounded: {:?}",
        obs.me.elapsed
    );
    assert_eq!(d.verdict, Verdict::NotionOutage);
}

#[tokio::test]
async fn revoked_token_is_401() {
    let fake = fake().await;
    let mut t = target(&fake);
    t.token = "secret_revoked".to_owned();
    let (obs, d) = run(&t).await;
    assert!(matches!(
        obs.me.observation,
        CallObservation::Api { status: 401, ref code, .. } if code == "unauthorized"
    ));
    assert_eq!(
        (d.verdict, d.verdict.exit_code()),
        (Verdict::TokenInvalid, 11)
    );
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
    let (obs, d) = run(&target(&fake)).await;
    assert!(matches!(obs.me.observation, CallObservation::Ok { .. }));
    let CallObservation::Api {
        status: 429,
        retry_after_secs: Some(_),
        rate_limit_reason: Some(ref reason),
        ..
    } = obs.query.observation
    else {
        panic!("expected a 429, got {:?}", obs.query.observation);
    };
    assert_eq!(reason, "public_api_request_rate_limit");
    assert_eq!(
        (d.verdict, d.verdict.exit_code()),
        (Verdict::RateLimited, 12)
    );
    assert!(d.reason.contains("Retry-After"), "{}", d.reason);
}

#[tokio::test]
async fn network_on_a_closed_port() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let t = Target {
        base_url: format!("http://{closed}"),
        status_url: format!("http://{closed}/api/v2/status.json"),
        token: TOKEN.to_owned(),
        data_source: None,
        step_timeout: Duration::from_secs(5),
    };
    let (obs, d) = run(&t).await;
    assert!(matches!(
        obs.status.observation,
        StatusObservation::Unavailable { .. }
    ));
    assert!(
        matches!(obs.me.observation, CallObservation::Unreachable { .. }),
        "{:?}",
        obs.me.observation
    );
    assert_eq!((d.verdict, d.verdict.exit_code()), (Verdict::Network, 13));
}

#[tokio::test]
async fn restricted_query_is_integration_side() {
    let fake = fake().await;
    fake.faults()
        .script_for(Matcher::any_method("/v1/search"), [Fault::Status(403)]);
    let (obs, d) = run(&target(&fake)).await;
    assert!(matches!(obs.me.observation, CallObservation::Ok { .. }));
    assert!(matches!(
        obs.query.observation,
        CallObservation::Api { status: 403, ref code, .. } if code == "restricted_resource"
    ));
    assert_eq!(
        (d.verdict, d.verdict.exit_code()),
        (Verdict::IntegrationSide, 14)
    );
    assert!(d.action.contains("share the page/data source"));
}

#[tokio::test]
async fn unshared_data_source_is_integration_side() {
    let fake = fake().await;
    let mut t = target(&fake);
    t.data_source = Some("00000000-0000-4000-8000-000000000000".to_owned());
    let (obs, d) = run(&t).await;
    assert!(matches!(
        obs.query.observation,
        CallObservation::Api { status: 404, ref code, .. } if code == "object_not_found"
    ));
    assert_eq!(d.verdict, Verdict::IntegrationSide);
}
