//! `bulwark fake-notion` as a user runs it, in a child process: it listens on the port it
//! chose, says where in its ready file and on stdout, and answers the Notion API.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::Value;
use tokio::{
    io::AsyncReadExt,
    process::{Child, Command},
    time::{timeout, Instant},
};

/// Every wait of these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

/// A scratch folder of this test's own, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("bulwark-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `bulwark fake-notion ARGS…` with stdout piped and stderr discarded.
fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .arg("fake-notion")
        .args(args)
        .env("BULWARK_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the bulwark binary starts")
}

/// Waits (bounded) for the ready file and returns its `url`.
async fn ready_url(child: &mut Child, path: &Path) -> String {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let json: Value = serde_json::from_str(&text).expect("the ready file is JSON");
            return json["url"].as_str().expect("a url").to_owned();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("bulwark fake-notion exited ({status}) before it was ready");
        }
        assert!(Instant::now() < deadline, "no ready file after {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_notion_on_port_0_answers_users_me() {
    let scratch = Scratch::new("fake-notion");
    let ready = scratch.0.join("ready.json");
    let mut child = spawn(&[
        "--port",
        "0",
        "--token",
        "secret_cli",
        "--ready-file",
        ready.to_str().unwrap(),
    ]);
    let url = ready_url(&mut child, &ready).await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(!url.ends_with(":0"), "{url}");

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let me = |token: &str| {
        http::Request::get(format!("{url}/v1/users/me"))
            .header("authorization", format!("Bearer {token}"))
            .header("notion-version", "2025-09-03")
            .body(Empty::new())
            .unwrap()
    };
    let res = timeout(BOUND, client.request(me("secret_cli")))
        .await
        .expect("answered in time")
        .expect("an answer");
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-notion-request-id"));
    let body = timeout(BOUND, res.into_body().collect())
        .await
        .expect("the body in time")
        .expect("the body")
        .to_bytes();
    let user: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(user["object"], "user");

    // --token took effect: another token is Notion's 401.
    let res = timeout(BOUND, client.request(me("someone_else")))
        .await
        .expect("answered in time")
        .expect("an answer");
    assert_eq!(res.status(), 401);

    // The URL is also the first line on stdout that is one.
    child.start_kill().expect("kill");
    let mut stdout = String::new();
    let mut pipe = child.stdout.take().expect("stdout");
    timeout(BOUND, pipe.read_to_string(&mut stdout))
        .await
        .expect("stdout closes in time")
        .expect("stdout");
    let _ = timeout(BOUND, child.wait()).await;
    assert!(stdout.lines().any(|line| line == url), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_fail_with_the_flag_named() {
    let child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["fake-notion", "--port", "0", "--failure-ratio", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the bulwark binary starts");
    let output = timeout(BOUND, child.wait_with_output())
        .await
        .expect("exits in time")
        .expect("exit status");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--failure-ratio"), "{stderr}");
}
