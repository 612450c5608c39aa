//! The `bulwark proxy` binary as an operator runs it, in a child process: it survives 2,000
//! stalled connections under `ulimit -n 1024` (issue 12 §3), and its logs hold no query
//! values and no credentials (§5).

mod common;

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{fake, request, BOUND};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
    time::{timeout, Instant},
};

/// A `bulwark proxy` child process and everything it printed (stdout and stderr).
struct ProxyProcess {
    child: Child,
    output: Arc<Mutex<String>>,
    addr: SocketAddr,
}

impl ProxyProcess {
    /// Runs `bulwark proxy ARGS…`, with at most `nofile` open files when given, and waits for
    /// it to listen.
    async fn start(args: &[&str], nofile: Option<u32>) -> Self {
        let (mut child, output) = spawn(args, nofile);
        let deadline = Instant::now() + BOUND;
        let addr = loop {
            if let Some(addr) = listening_addr(&output.lock().unwrap()) {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("bulwark exited ({status}): {}", output.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "not listening: {}",
                output.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Self {
            child,
            output,
            addr,
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits (bounded) until the output holds `needle`.
    async fn wait_for_output(&self, needle: &str) -> String {
        let deadline = Instant::now() + BOUND;
        loop {
            let output = self.output();
            if output.contains(needle) {
                return output;
            }
            assert!(Instant::now() < deadline, "no {needle:?} in: {output}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Open file descriptors of the process (Linux).
    fn open_fds(&self) -> Option<usize> {
        let pid = self.child.id()?;
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()
            .map(Iterator::count)
    }

    async fn stop(mut self) -> String {
        let _ = self.child.start_kill();
        let _ = timeout(BOUND, self.child.wait()).await;
        // Let the output readers reach the end of the pipes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.output()
    }
}

/// Spawns the binary (under `sh -c 'ulimit -n N; exec …'` when `nofile` is given), collecting
/// its stdout and stderr.
fn spawn(args: &[&str], nofile: Option<u32>) -> (Child, Arc<Mutex<String>>) {
    let bin = env!("CARGO_BIN_EXE_bulwark");
    let mut command = match nofile {
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(bin);
            c
        }
        None => Command::new(bin),
    };
    command
        .arg("proxy")
        .args(args)
        .env("BULWARK_LOG", "info")
        .env_remove("NOTION_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the bulwark binary starts");
    let output = Arc::new(Mutex::new(String::new()));
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    tokio::spawn(collect(stdout, Arc::clone(&output)));
    tokio::spawn(collect(stderr, Arc::clone(&output)));
    (child, output)
}

async fn collect(mut pipe: impl AsyncReadExt + Unpin, output: Arc<Mutex<String>>) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        output
            .lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// The address in the startup line (`… proxy=http://127.0.0.1:PORT …`).
fn listening_addr(output: &str) -> Option<SocketAddr> {
    let line = output
        .lines()
        .find(|l| l.contains("bulwark proxy listening"))?;
    let start = line.find("proxy=http://")? + "proxy=http://".len();
    line[start..].split_whitespace().next()?.parse().ok()
}

/// Runs the binary to its exit (bounded), returning its exit success and output.
async fn run_to_exit(args: &[&str]) -> (bool, String) {
    let (mut child, output) = spawn(args, None);
    let status = timeout(BOUND, child.wait())
        .await
        .expect("exits in time")
        .expect("exit status");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let output = output.lock().unwrap().clone();
    (status.success(), output)
}

/// Opens `n` connections that each send half a request line and stall.
async fn stall(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut stalled = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = timeout(BOUND, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        // The proxy may already have evicted it; a failed write is fine.
        let _ = stream.write_all(b"GET /v1/users/me HT").await;
        stalled.push(stream);
    }
    stalled
}

/// 2,000 stalled connections against a proxy limited to 1,024 open files.
async fn survive_stalled_connections(extra_args: &[&str]) -> String {
    let fake = fake().await;
    let url = fake.url();
    let mut args = vec!["--upstream", url.as_str(), "--port", "0"];
    args.extend_from_slice(extra_args);
    let proxy = ProxyProcess::start(&args, Some(1024)).await;
    let fds_before = proxy.open_fds();

    let started = Instant::now();
    let stalled = stall(proxy.addr, 2000).await;
    let stalling = started.elapsed();
    let fds_stalled = proxy.open_fds();

    let started = Instant::now();
    let reply = request(proxy.addr, "GET", "/v1/users/me", None).await;
    let answered = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert!(
        answered < Duration::from_secs(5),
        "answered after {answered:?}"
    );
    let fds_after = proxy.open_fds();
    drop(stalled);

    let output = proxy.stop().await;
    assert!(!output.contains("panicked"), "{output}");
    println!(
        "{extra_args:?}: 2000 stalled connections opened in {stalling:?}; GET /v1/users/me answered in {answered:?}; \
         proxy fds: {fds_before:?} before, {fds_stalled:?} with 2000 stalled, {fds_after:?} after the GET"
    );
    if let Some(fds) = fds_stalled {
        assert!(fds <= 1024, "{fds} open files under ulimit -n 1024");
    }
    output
}

/// Regression: with 1,100 half-sent requests under `ulimit -n 1024`, `accept` failed with
/// EMFILE and normal requests timed out. With the default cap (512) the table never runs
/// out of descriptors: each new connection evicts the longest-stalled one.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_2000_stalled_connections_under_ulimit_1024() {
    let output = survive_stalled_connections(&[]).await;
    assert!(!output.contains("accept failed"), "{output}");
}

/// The same with a cap above the descriptor limit: `accept` fails with EMFILE, and the proxy
/// closes idle connections, backs off and keeps serving.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_it_backs_off_and_keeps_serving() {
    let output = survive_stalled_connections(&["--max-connections", "4000"]).await;
    assert!(
        output.contains("accept failed"),
        "the EMFILE path ran: {output}"
    );
    assert!(output.contains("accepting again"), "{output}");
    assert_eq!(
        output.matches("accept failed").count(),
        1,
        "one warning per episode: {output}"
    );
}

/// Regression: logs printed the full query string of every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_query_values_and_no_tokens() {
    let fake = fake().await;
    let url = fake.url();
    let proxy = ProxyProcess::start(&["--upstream", &url, "--port", "0"], None).await;

    let reply = request(
        proxy.addr,
        "GET",
        "/v1/users?filter=sup3rsecret&page_size=10",
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    request(proxy.addr, "GET", "/_fake/outage?token=sup3rsecret", None)
        .await
        .assert_own_notion_error(400, "invalid_request_url");
    let output = proxy
        .wait_for_output("route=/_fake/outage?token=<redacted>")
        .await;
    assert!(
        output.contains("route=/v1/users?filter=<redacted>&page_size=<redacted>"),
        "{output}"
    );
    assert!(output.contains("status=200"), "{output}");
    let output = proxy.stop().await;
    assert!(!output.contains("sup3rsecret"), "{output}");
    assert!(
        !output.contains("secret_test"),
        "the bearer token: {output}"
    );
    assert!(!output.to_lowercase().contains("authorization"), "{output}");
}

/// Regression: a password in `--upstream http://user:pw@host` was printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_credentials_are_never_printed() {
    const PASSWORD: &str = "hunter2pw9";
    let fake = fake().await;
    let upstream = format!("http://user:{PASSWORD}@{}", fake.addr());
    let ready = std::env::temp_dir().join(format!(
        "bulwark-cli-test-{}-{}.json",
        std::process::id(),
        fake.addr().port()
    ));
    let ready_arg = ready.to_str().unwrap().to_owned();

    // Startup line, warning and ready file; the credentials are not sent upstream either.
    let proxy = ProxyProcess::start(
        &[
            "--upstream",
            &upstream,
            "--port",
            "0",
            "--ready-file",
            &ready_arg,
        ],
        None,
    )
    .await;
    let reply = request(proxy.addr, "GET", "/v1/users/me", None).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    let recorded = fake.requests();
    assert!(recorded[0]
        .headers
        .get("authorization")
        .is_some_and(|v| v == "Bearer secret_test"));
    let ready_json = std::fs::read_to_string(&ready).expect("the ready file");
    let _ = std::fs::remove_file(&ready);
    let mut output = proxy.stop().await;
    assert!(
        ready_json.contains(&format!("http://<redacted>@{}", fake.addr())),
        "{ready_json}"
    );
    assert!(output.contains("<redacted>@"), "{output}");

    // Errors while serving: an upstream that refuses connections.
    let dead = format!("http://user:{PASSWORD}@127.0.0.1:1");
    let proxy = ProxyProcess::start(
        &["--upstream", &dead, "--port", "0", "--max-retries", "0"],
        None,
    )
    .await;
    let reply = request(proxy.addr, "GET", "/v1/users/me", None).await;
    assert_eq!(reply.status, 503, "{}", reply.head);
    proxy.wait_for_output("status=503").await;
    output.push_str(&proxy.stop().await);

    // Errors at startup: invalid upstreams.
    for bad in [
        format!("ftp://user:{PASSWORD}@127.0.0.1:7777"),
        format!("http://user:{PASSWORD}@127.0.0.1:99999"),
        format!("http://user:{PASSWORD}@127.0.0.1:7777/a/../b"),
        format!("http://user:{PASSWORD}@127.0.0.1:7777/?q=1"),
    ] {
        let (ok, out) = run_to_exit(&["--upstream", &bad, "--port", "0"]).await;
        assert!(!ok, "{bad} was accepted: {out}");
        assert!(out.contains("upstream"), "{out}");
        output.push_str(&out);
    }
    assert!(!output.contains(PASSWORD), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulwark_proxy_requires_an_upstream() {
    let (ok, output) = run_to_exit(&["--port", "0"]).await;
    assert!(!ok);
    assert!(output.contains("--upstream"), "{output}");
}

/// `bulwark proxy --metrics 127.0.0.1:0`: a Prometheus scrape shows the preset's labelled
/// counters, histograms and the breaker's gauge, each named `notion`, and no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_labelled_counters_and_histograms() {
    let fake = fake().await;
    let url = fake.url();
    let proxy = ProxyProcess::start(
        &[
            "--upstream",
            &url,
            "--port",
            "0",
            "--metrics",
            "127.0.0.1:0",
        ],
        None,
    )
    .await;
    let output = proxy.output();
    let metrics: SocketAddr = output
        .lines()
        .find(|l| l.contains("bulwark proxy listening"))
        .and_then(|l| {
            let start = l.find("metrics=http://")? + "metrics=http://".len();
            l[start..].split('/').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no metrics address in: {output}"));

    assert_eq!(
        request(proxy.addr, "GET", "/v1/users", None).await.status,
        200
    );
    assert_eq!(
        request(proxy.addr, "GET", "/v1/users", None).await.status,
        200
    );
    let missing = request(
        proxy.addr,
        "GET",
        "/v1/pages/00000000-0000-0000-0000-000000000000",
        None,
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.head);

    let scrape = request(metrics, "GET", "/metrics", None).await;
    assert_eq!(scrape.status, 200, "{}", scrape.head);
    assert!(
        scrape.head.contains("text/plain; version=0.0.4"),
        "{}",
        scrape.head
    );
    let text = String::from_utf8(scrape.body).unwrap();
    for needle in [
        "# HELP bulwark_requests_total ",
        "# TYPE bulwark_requests_total counter",
        r#"bulwark_requests_total{layer="retry",name="notion",outcome="success"} 2"#,
        r#"bulwark_requests_total{layer="retry",name="notion",outcome="failure"} 1"#,
        r#"bulwark_requests_total{layer="bucket",name="notion",outcome="admitted"} 3"#,
        r#"bulwark_requests_total{layer="breaker",name="notion",outcome="permitted"} 3"#,
        r#"bulwark_notion_errors_total{name="notion",status="404",code="object_not_found"} 1"#,
        "# TYPE bulwark_notion_request_duration_seconds histogram",
        r#"bulwark_notion_request_duration_seconds_bucket{name="notion",outcome="ok",le="+Inf"} 2"#,
        r#"bulwark_notion_request_duration_seconds_count{name="notion",outcome="http_error"} 1"#,
        r#"bulwark_breaker_state{name="notion"} 0"#,
    ] {
        assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    }
    assert!(!text.contains("secret_test"), "{text}");
    assert_eq!(request(metrics, "GET", "/", None).await.status, 404);
    proxy.stop().await;
}
