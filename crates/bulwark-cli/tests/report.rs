//! `bulwark report FILE [--json]` as a user runs it (issue 16 §1): tables or one JSON
//! document on stdout, bad lines counted and skipped, exit 0; a missing file is exit 1 with
//! its path on stderr.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use tokio::{io::AsyncWriteExt, process::Command, time::timeout};

/// Every run of the binary is bounded by this.
const BOUND: Duration = Duration::from_secs(30);

const LOG: &str = r#"{"ts":"2026-11-30T07:50:01.123Z","method":"GET","route":"/v1/pages/{id}","request_bytes":0,"status":200,"duration_ms":40,"attempts":1,"cache":"live","request_id":"r1"}
{"ts":"2026-11-30T07:59:59.999Z","method":"POST","route":"/v1/data_sources/{id}/query","request_bytes":300,"status":429,"duration_ms":1500,"attempts":4,"cache":"live","code":"rate_limited"}
garbage
{"ts":"2026-11-30T08:00:00.000Z","method":"PATCH","route":"/v1/blocks/{id}/children","request_bytes":150000,"status":502,"duration_ms":9000,"attempts":1,"cache":"none","code":"bad_gateway"}
"#;

struct Output {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("bulwark runs");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await.unwrap();
    }
    let out = timeout(BOUND, child.wait_with_output())
        .await
        .expect("bulwark report finishes in time")
        .unwrap();
    Output {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A log file in the temporary directory, removed on drop.
struct TempLog(PathBuf);

impl TempLog {
    fn new(text: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "bulwark-report-{}-{nanos}.jsonl",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn json_output_is_one_document() {
    let log = TempLog::new(LOG);
    let out = run(&["report", log.path(), "--json"], None).await;
    assert!(out.ok, "{}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(json["records"], 3);
    assert_eq!(json["bad_lines"], 1);
    assert_eq!(json["bad_line_examples"][0]["line"], 3);
    assert_eq!(json["totals"]["status_429"], 1);
    assert_eq!(json["totals"]["status_5xx"], 1);
    let hours: Vec<(&str, u64)> = json["by_hour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["hour"].as_str().unwrap(), h["requests"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        hours,
        vec![("2026-11-30T07:00:00Z", 2), ("2026-11-30T08:00:00Z", 1)]
    );
    assert_eq!(json["by_hour"][0]["share_429"], 0.5);
    assert_eq!(json["by_size"][3]["requests"], 1);
    assert_eq!(json["by_size"][3]["share_5xx"], 1.0);
}

#[tokio::test]
async fn text_output_has_the_tables() {
    let log = TempLog::new(LOG);
    let out = run(&["report", log.path()], None).await;
    assert!(out.ok, "{}", out.stderr);
    for needle in [
        "records     3\n",
        "bad lines   1 skipped\n  line 3: ",
        "errors      2 (66.7%)   429: 1 (33.3%)   5xx: 1 (33.3%)",
        "By hour (UTC)",
        "  2026-11-30 07:00",
        "By route (most errors first)",
        "/v1/blocks/{id}/children",
        "Errors by status and code",
        "rate_limited",
        "By request size (large bulk requests last)",
    ] {
        assert!(out.stdout.contains(needle), "{needle:?} in\n{}", out.stdout);
    }
}

#[tokio::test]
async fn a_dash_reads_stdin() {
    let out = run(&["report", "-", "--json"], Some(LOG)).await;
    assert!(out.ok, "{}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["records"], 3);
}

#[tokio::test]
async fn a_missing_file_is_an_error() {
    let out = run(&["report", "/nonexistent-bulwark/access.jsonl"], None).await;
    assert!(!out.ok);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("/nonexistent-bulwark/access.jsonl"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[tokio::test]
async fn help_has_examples() {
    let out = run(&["report", "--help"], None).await;
    assert!(out.ok);
    assert!(out.stdout.contains("Examples:"), "{}", out.stdout);
    assert!(out.stdout.contains("--json"), "{}", out.stdout);
    let out = run(&["proxy", "--help"], None).await;
    assert!(out.stdout.contains("--access-log <FILE>"), "{}", out.stdout);
    assert!(out.stdout.contains("bulwark report"), "{}", out.stdout);
}
