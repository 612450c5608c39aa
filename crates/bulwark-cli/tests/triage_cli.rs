//! `bulwark triage` as an operator or a script runs it, in a child process, against FakeNotion
//! on loopback: every verdict's exit code, every `--format`, `--notify` to a local webhook,
//! `--watch` with its transitions, alerts and postmortem. Never a real network: the status
//! page of a loopback `--base-url` is FakeNotion's own.

use std::{
    process::{Output, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use bulwark_testkit::{FakeNotion, StatusIndicator, SEED_DATA_SOURCE_ID};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpListener,
    process::Command,
    time::{timeout, Instant},
};

/// Every wait of a test is bounded by this.
const BOUND: Duration = Duration::from_secs(30);
const TOKEN: &str = "secret_triage_cli";

fn bulwark() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bulwark"));
    command
        .env_remove("NOTION_TOKEN")
        .env_remove("BULWARK_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn triage(args: &[&str]) -> Output {
    let mut command = bulwark();
    command.arg("triage").args(args);
    timeout(BOUND, command.output())
        .await
        .expect("triage ends in time")
        .expect("bulwark runs")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("an exit code, not a signal")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn fake() -> FakeNotion {
    FakeNotion::builder()
        .tokens([TOKEN])
        .seed_pages(1)
        .no_rate_limit()
        .start()
        .await
        .expect("FakeNotion starts")
}

/// `triage --base-url FAKE --token TOKEN ARGS…`.
async fn against(fake: &FakeNotion, args: &[&str]) -> Output {
    let url = fake.url();
    let mut all = vec!["--base-url", url.as_str(), "--token", TOKEN];
    all.extend_from_slice(args);
    triage(&all).await
}

/// A webhook on 127.0.0.1:0 that records every JSON body and answers `status`.
async fn webhook(status: u16) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let body = request.into_body().collect().await?.to_bytes();
                        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        seen.lock().unwrap().push(json);
                        let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, hyper::Error>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/services/T000/B000/XXX"), received)
}

#[tokio::test]
async fn every_simulated_verdict_has_its_exit_code() {
    for (simulate, verdict, exit) in [
        ("healthy", "healthy", 0),
        ("outage", "notion_outage", 10),
        ("revoked", "token_invalid", 11),
        ("rate-limited", "rate_limited", 12),
        ("network", "network", 13),
        ("restricted", "integration_side", 14),
        ("unshared", "pages_unshared", 15),
        ("schema-changed", "schema_changed", 16),
    ] {
        let output = triage(&["--simulate", simulate, "--timeout", "5s"]).await;
        let text = stdout(&output);
        assert_eq!(code(&output), exit, "{simulate}: {text}");
        assert!(
            text.contains(&format!("verdict: {verdict} (exit {exit})")),
            "{simulate}: {text}"
        );
        assert!(text.contains(&format!("--simulate {simulate}")), "{text}");
    }
}

#[tokio::test]
async fn verdicts_against_a_running_fake_notion() {
    let fake = fake().await;
    let output = against(&fake, &[]).await;
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/api/v2/status.json", "/v1/users/me", "/v1/search"],
        "the status page of a loopback API is its own"
    );

    // Unshared pages: one shared, one unknown.
    let shared = fake.pages()[0].id.clone();
    let output = against(
        &fake,
        &[
            "--page",
            &shared,
            "--page",
            "00000000-0000-4000-8000-0000000000aa",
        ],
    )
    .await;
    assert_eq!(code(&output), 15, "{}", stdout(&output));
    assert!(stdout(&output).contains("Connections menu"));

    // The token.
    let url = fake.url();
    let output = triage(&["--base-url", &url, "--token", "secret_revoked"]).await;
    assert_eq!(code(&output), 11);
    // NOTION_TOKEN works as well as --token.
    let mut command = bulwark();
    command
        .args(["triage", "--base-url", &url])
        .env("NOTION_TOKEN", TOKEN);
    let output = timeout(BOUND, command.output()).await.unwrap().unwrap();
    assert_eq!(code(&output), 0, "{}", stdout(&output));

    // An outage, from the API and the status page.
    fake.faults().outage(true);
    fake.set_status_indicator(StatusIndicator::Major);
    let output = against(&fake, &[]).await;
    assert_eq!(code(&output), 10);
}

#[tokio::test]
async fn schema_drift_from_a_flag_or_a_file() {
    let fake = fake().await;
    fake.set_schema([("Name", "title"), ("Status", "select"), ("Due", "date")]);
    let spec = "Name:title,Status:select,Due:date";
    let output = against(
        &fake,
        &[
            "--data-source",
            SEED_DATA_SOURCE_ID,
            "--expect-properties",
            spec,
        ],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stdout(&output));

    fake.set_schema([
        ("Name", "title"),
        ("Status", "multi_select"),
        ("Owner", "people"),
    ]);
    let output = against(
        &fake,
        &[
            "--data-source",
            SEED_DATA_SOURCE_ID,
            "--expect-properties",
            spec,
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(code(&output), 16, "{}", stdout(&output));
    let doc: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(doc["verdict"], "schema_changed");
    let event = &doc["events"][0];
    assert_eq!(event["event"], "schema_change_detected");
    assert_eq!(event["database_id"], "db_1");
    assert_eq!(event["missing_properties"], serde_json::json!(["Due"]));
    assert_eq!(event["new_properties"], serde_json::json!(["Owner"]));
    assert_eq!(event["retyped_properties"][0]["actual"], "multi_select");

    // The same expectation as a file: {"Name": "title", …}.
    let dir = std::env::temp_dir().join(format!("bulwark-triage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("schema.json");
    std::fs::write(
        &file,
        r#"{"Name": "title", "Status": "multi_select", "Owner": "people"}"#,
    )
    .unwrap();
    let path = file.to_string_lossy().into_owned();
    let output = against(
        &fake,
        &["--data-source", SEED_DATA_SOURCE_ID, "--schema", &path],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    std::fs::write(&file, r#"{"Name": "title", "Status": "select"}"#).unwrap();
    let output = against(
        &fake,
        &["--data-source", SEED_DATA_SOURCE_ID, "--schema", &path],
    )
    .await;
    assert_eq!(code(&output), 16, "{}", stdout(&output));
    assert!(stdout(&output).contains("new: Owner; re-typed: Status select → multi_select"));
    std::fs::write(&file, "not json").unwrap();
    let output = against(
        &fake,
        &["--data-source", SEED_DATA_SOURCE_ID, "--schema", &path],
    )
    .await;
    assert_eq!(code(&output), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn every_format_renders_the_evidence() {
    let fake = fake().await;
    fake.faults().outage(true);
    fake.set_status_indicator(StatusIndicator::Major);

    let text = stdout(&against(&fake, &["--format", "text"]).await);
    assert!(text.contains("[2/3] GET /v1/users/me"), "{text}");
    assert!(text.contains("verdict: notion_outage (exit 10)"));

    let output = against(&fake, &["--format", "json"]).await;
    assert_eq!(code(&output), 10);
    let doc: Value = serde_json::from_slice(&output.stdout).expect("JSON, and nothing else");
    assert_eq!(doc["verdict"], "notion_outage");
    assert_eq!(doc["exit_code"], 10);
    assert_eq!(doc["steps"][1]["result"]["status"], 503);
    assert_eq!(doc["incident"]["severity"], "SEV1");
    assert!(doc["started_at"].as_str().unwrap().ends_with('Z'));
    // --json is --format json.
    let short: Value = serde_json::from_slice(&against(&fake, &["--json"]).await.stdout).unwrap();
    assert_eq!(short["verdict"], "notion_outage");

    let slack = stdout(&against(&fake, &["--format", "slack"]).await);
    for needle in [
        "*[SEV1] Notion API outage*",
        "*Status:* Identified",
        "*Impact:*",
        "*Current action:*",
        "*Started:* 20",
    ] {
        assert!(slack.contains(needle), "{needle:?} not in {slack}");
    }

    let statuspage = stdout(&against(&fake, &["--format", "statuspage"]).await);
    assert!(
        statuspage.contains("Status: Identified\nImpact: critical"),
        "{statuspage}"
    );
    assert!(
        !statuspage.contains("/v1/"),
        "nothing internal: {statuspage}"
    );

    let postmortem = stdout(&against(&fake, &["--format", "postmortem"]).await);
    for needle in [
        "# Postmortem draft: Notion API outage",
        "## Timeline (UTC)",
        "| verdict notion_outage (exit 10) |",
        "## Action items",
    ] {
        assert!(
            postmortem.contains(needle),
            "{needle:?} not in {postmortem}"
        );
    }
}

#[tokio::test]
async fn notify_posts_the_slack_message_to_the_webhook() {
    let fake = fake().await;
    fake.faults().outage(true);
    let (hook, received) = webhook(200).await;
    let slack = stdout(&against(&fake, &["--format", "slack"]).await);
    let output = against(&fake, &["--notify", &hook]).await;
    assert_eq!(code(&output), 10, "the verdict's code, notified or not");
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let text = got[0]["text"].as_str().expect("{\"text\": …}");
    assert!(
        text.starts_with(":red_circle: *[SEV1] Notion API outage*"),
        "{text}"
    );
    // Same template as --format slack (the request ids and times differ).
    assert_eq!(text.lines().next(), slack.lines().next());

    // A webhook that refuses: said on stderr, the exit code is still the verdict's.
    let (refusing, _) = webhook(500).await;
    let output = against(&fake, &["--notify", &refusing]).await;
    assert_eq!(code(&output), 10);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HTTP 500"), "{stderr}");
}

/// Reads the child's stdout line by line until `needle`, bounded.
async fn wait_for_line<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
    seen: &mut Vec<String>,
    needle: &str,
) {
    let deadline = Instant::now() + BOUND;
    while !seen.iter().any(|l| l.contains(needle)) {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {seen:#?}"))
            .expect("stdout readable")
            .unwrap_or_else(|| panic!("stdout ended before {needle:?}: {seen:#?}"));
        seen.push(line);
    }
}

async fn wait_for_hooks(received: &Mutex<Vec<Value>>, n: usize) {
    let deadline = Instant::now() + BOUND;
    while received.lock().unwrap().len() < n {
        assert!(
            Instant::now() < deadline,
            "{} notifications",
            received.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn watch_prints_transitions_alerts_and_a_postmortem_on_ctrl_c() {
    let fake = fake().await;
    let (hook, received) = webhook(200).await;
    let url = fake.url();
    let mut child = bulwark()
        .args([
            "triage",
            "--base-url",
            &url,
            "--token",
            TOKEN,
            "--watch",
            "100ms",
            "--for",
            "60s",
            "--alert-after",
            "3",
            "--notify",
            &hook,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bulwark starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();

    wait_for_line(&mut lines, &mut seen, "Z  healthy (exit 0)").await;
    fake.faults().outage(true);
    wait_for_line(&mut lines, &mut seen, "healthy → notion_outage (exit 10)").await;
    // The transition, then the alert rule's third consecutive failure.
    wait_for_hooks(&received, 2).await;
    fake.faults().outage(false);
    wait_for_line(&mut lines, &mut seen, "notion_outage → healthy (exit 0)").await;
    wait_for_hooks(&received, 3).await;

    // Ctrl-C: the postmortem draft with the observed timeline, then the last verdict's code.
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status();
    assert!(killed.is_ok_and(|s| s.success()));
    let mut rest = String::new();
    while let Ok(Some(line)) = timeout(BOUND, lines.next_line())
        .await
        .expect("output ends")
    {
        rest.push_str(&line);
        rest.push('\n');
    }
    let status = timeout(BOUND, child.wait()).await.expect("exits").unwrap();
    assert_eq!(status.code(), Some(0), "recovered: {rest}");

    let transitions: Vec<&String> = seen.iter().filter(|l| l.contains(" (exit ")).collect();
    assert_eq!(
        transitions.len(),
        3,
        "only transitions are printed: {seen:#?}"
    );
    for needle in [
        "# Postmortem draft: Notion API outage",
        "| Status | Resolved |",
        "degraded: healthy → notion_outage",
        "3 consecutive failed checks (alert rule)",
        "recovered: notion_outage → healthy",
        "webhook notified",
        "watch ended (stopped (Ctrl-C))",
    ] {
        assert!(rest.contains(needle), "{needle:?} not in:\n{rest}");
    }

    let hooks = received.lock().unwrap().clone();
    let texts: Vec<&str> = hooks.iter().filter_map(|h| h["text"].as_str()).collect();
    assert!(
        texts[0].starts_with(":rotating_light: Notion integration degraded"),
        "{texts:?}"
    );
    assert!(texts[1].starts_with(":rotating_light: 3 consecutive failed checks"));
    assert!(texts[2].starts_with(":white_check_mark: Notion integration recovered"));
    assert!(texts[2].contains("— Resolved"));
}

#[tokio::test]
async fn watch_for_ends_by_itself_with_the_chosen_format() {
    let fake = fake().await;
    fake.faults().outage(true);
    let started = Instant::now();
    let output = against(
        &fake,
        &["--watch", "100ms", "--for", "700ms", "--format", "json"],
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(code(&output), 10, "the last verdict");
    let text = stdout(&output);
    let (transitions, json) = text
        .split_once("\n\n")
        .expect("transitions, then the write-up");
    assert_eq!(
        transitions
            .lines()
            .filter(|l| l.contains(" (exit "))
            .count(),
        1,
        "one verdict, printed once: {transitions}"
    );
    let doc: Value = serde_json::from_str(json).expect("the incident as JSON");
    assert_eq!(doc["verdict"], "notion_outage");
    assert_eq!(doc["status"], "identified");
    let events = doc["timeline"].as_array().unwrap();
    assert!(events[0]["event"]
        .as_str()
        .unwrap()
        .starts_with("first check: notion_outage"));
    assert!(events.last().unwrap()["event"]
        .as_str()
        .unwrap()
        .starts_with("watch ended (--for elapsed)"));
}

#[tokio::test]
async fn usage_errors_exit_2_and_help_has_examples() {
    for args in [
        &["--base-url", "https://notion.invalid"][..], // no token (asked before any call)
        &["--timeout", "0s"],
        &["--page", "a/b"],
        &["--expect-properties", "Name:title"], // needs --data-source
        &["--for", "1m"],                       // needs --watch
        &["--format", "yaml"],
    ] {
        let output = triage(args).await;
        assert_eq!(
            code(&output),
            2,
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let help = stdout(&triage(&["--help"]).await);
    for needle in [
        "Examples:",
        "--simulate outage",
        "--expect-properties \"Name:title,Status:select,Due:date\"",
        "--watch 30s --for 1h",
        "--notify https://hooks.slack.com/services/",
        "15  pages_unshared",
        "16  schema_changed",
    ] {
        assert!(help.contains(needle), "{needle:?} not in --help:\n{help}");
    }
    let top = stdout(
        &timeout(BOUND, bulwark().arg("--help").output())
            .await
            .unwrap()
            .unwrap(),
    );
    assert!(top.contains("triage"), "{top}");
}

/// The issue's acceptance run: `bulwark fake-notion` in the background, then
/// `bulwark triage --base-url http://127.0.0.1:PORT --format postmortem` with no token and no
/// network (the status page of a loopback API is its own).
#[tokio::test]
async fn fake_notion_then_triage_postmortem() {
    let dir = std::env::temp_dir().join(format!("bulwark-triage-ready-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ready = dir.join("fake.json");
    let _ = std::fs::remove_file(&ready);
    let mut server = bulwark()
        .args(["fake-notion", "--port", "0", "--ready-file"])
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bulwark fake-notion starts");
    let deadline = Instant::now() + BOUND;
    let url = loop {
        if let Some(url) = std::fs::read_to_string(&ready)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|doc| doc["url"].as_str().map(str::to_owned))
        {
            break url;
        }
        assert!(Instant::now() < deadline, "no ready file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let output = triage(&["--base-url", &url, "--format", "postmortem"]).await;
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    let text = stdout(&output);
    assert_eq!(
        code(&output),
        0,
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.starts_with("# Postmortem draft: Notion integration healthy"),
        "{text}"
    );
    assert!(
        text.contains(&format!("GET {url}/api/v2/status.json")),
        "{text}"
    );
    assert!(text.contains("none — All Systems Operational"), "{text}");
}
