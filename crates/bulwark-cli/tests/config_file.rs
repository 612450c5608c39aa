//! Issue 17 §2: `bulwark proxy --config FILE` — a parsed file really configures the proxy's
//! preset, and the binary refuses a bad file naming the value's path.

mod common;

use std::process::Stdio;

use bulwark_cli::proxy::{cli::ProxyFlags, config_file::ConfigFile, ProxyConfig};
use common::{fake, request, TestProxy, BOUND};
use tokio::{process::Command, time::timeout};

/// No retries but one, a short backoff, breaker and cache off: every upstream call counts.
const ONE_RETRY: &str = r#"
[notion]
cache_enabled = false

[notion.retry]
max_retries = 1
backoff = { kind = "constant", base = "10ms" }

[notion.breaker]
consecutive_failures = 0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_configures_the_proxy_preset() {
    let fake = fake().await;
    fake.faults().outage(true);
    let flags: ProxyFlags = {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            flags: ProxyFlags,
        }
        <Cli as clap::Parser>::parse_from(["bulwark"]).flags
    };
    let config = ConfigFile::parse(ONE_RETRY)
        .unwrap()
        .apply(ProxyConfig::new(&fake.url()).unwrap(), &flags);
    let proxy = TestProxy::start(config).await;

    let reply = timeout(BOUND, request(proxy.addr, "GET", "/v1/users/me", None))
        .await
        .expect("answers in time");
    assert_eq!(reply.status, 503, "{}", reply.head);
    let calls = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/users/me")
        .count();
    assert_eq!(
        calls, 2,
        "max_retries = 1 from the file: one call and one retry"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulwark_proxy_refuses_a_bad_file_naming_the_path() {
    let path =
        std::env::temp_dir().join(format!("bulwark-config-test-{}.toml", std::process::id()));
    std::fs::write(&path, "[notion.breaker]\nfailure_ratio = 2.0\n").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args([
            "proxy",
            "--upstream",
            "http://127.0.0.1:7777",
            "--port",
            "0",
            "--config",
        ])
        .arg(&path)
        .env_remove("NOTION_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the bulwark binary starts");
    let output = timeout(BOUND, child.wait_with_output())
        .await
        .expect("exits in time")
        .expect("output");
    std::fs::remove_file(&path).ok();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("notion.breaker.failure_ratio"), "{text}");
}
