//! The main demo: FakeNotion with scripted faults, a mix of reads and writes, and a table of
//! how bulwark classified each outcome.
//!
//! ```sh
//! cargo run --example notion_demo
//! ```
//!
//! No credentials and no network: FakeNotion runs on `127.0.0.1` inside this process.

use std::time::Duration;

use bulwark::http::{BoxError, Class, Classify, HttpClassifier};
use bulwark_testkit::{FakeNotion, Fault, Matcher};
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{util::BoxCloneService, ServiceBuilder, ServiceExt};

const TOKEN: &str = "secret_demo";

/// One demo row: what is sent, and the fault FakeNotion injects for it.
struct Case {
    kind: &'static str,
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
    token: Option<&'static str>,
    fault: Option<Fault>,
}

type HttpService = BoxCloneService<Request<Full<Bytes>>, Response<Incoming>, BoxError>;

fn client() -> HttpService {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .service(client)
        .map_err(BoxError::from)
        .boxed_clone()
}

fn request(
    base: &str,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    token: Option<&str>,
) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("notion-version", "2025-09-03")
        .header("content-type", "application/json");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    req.body(Full::new(body)).expect("a valid request")
}

fn describe(class: &Class) -> String {
    match class.retry_after() {
        Some(wait) => format!("{} (retry after {}s)", class.as_str(), wait.as_secs()),
        None => class.as_str().to_owned(),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let fake = FakeNotion::builder()
        .tokens([TOKEN])
        .rate_limit(3, 3)
        .start()
        .await?;
    let base = fake.url();
    let svc = client();
    let faults = fake.faults();
    let new_page = serde_json::json!({
        "parent": {"database_id": bulwark_testkit::SEED_DATABASE_ID},
        "properties": {"Name": {"title": [{"text": {"content": "Demo page"}}]}}
    });

    println!("bulwark notion_demo: FakeNotion at {base}\n");
    println!(
        "{:<3} {:<32} {:<26} {:<28} class",
        "#", "request", "fault injected", "outcome"
    );
    println!("{}", "-".repeat(112));

    let case = |kind, method, path: &str, body, token, fault| Case {
        kind,
        method,
        path: path.to_owned(),
        body,
        token,
        fault,
    };
    let me = "/v1/users/me";
    let query = format!(
        "/v1/data_sources/{}/query",
        bulwark_testkit::SEED_DATA_SOURCE_ID
    );
    let cases = [
        case("read", Method::GET, me, None, Some(TOKEN), None),
        case(
            "write",
            Method::POST,
            "/v1/pages",
            Some(new_page.clone()),
            Some(TOKEN),
            None,
        ),
        case(
            "read",
            Method::GET,
            "/v1/pages/00000000-0000-0000-0000-000000000000",
            None,
            Some(TOKEN),
            None,
        ),
        case("read", Method::GET, me, None, Some("revoked"), None),
        case(
            "query",
            Method::POST,
            &query,
            Some(serde_json::json!({"page_size": 10})),
            Some(TOKEN),
            Some(Fault::Status(502)),
        ),
        case(
            "read",
            Method::GET,
            me,
            None,
            Some(TOKEN),
            Some(Fault::RateLimited {
                retry_after_secs: 2,
            }),
        ),
        case(
            "read",
            Method::GET,
            me,
            None,
            Some(TOKEN),
            Some(Fault::Status(529)),
        ),
        case(
            "read",
            Method::GET,
            me,
            None,
            Some(TOKEN),
            Some(Fault::CloudflareHtml(522)),
        ),
        case(
            "write",
            Method::POST,
            "/v1/pages",
            Some(new_page.clone()),
            Some(TOKEN),
            Some(Fault::StatusAfterApply(504)),
        ),
        case(
            "read",
            Method::GET,
            me,
            None,
            Some(TOKEN),
            Some(Fault::DropConnection),
        ),
        case(
            "read",
            Method::GET,
            me,
            None,
            Some(TOKEN),
            Some(Fault::Delay(Duration::from_secs(3))),
        ),
    ];

    let mut row = 0;
    for Case {
        kind,
        method,
        path,
        body,
        token,
        fault,
    } in cases
    {
        row += 1;
        // Stay under FakeNotion's 3 requests/second; rate limiting proper arrives with the bucket layer.
        tokio::time::sleep(Duration::from_millis(350)).await;
        let fault_name = fault.as_ref().map_or_else(|| "-".to_owned(), fault_label);
        if let Some(fault) = fault {
            faults.script_for(Matcher::new(method.clone(), path.clone()), [fault]);
        }
        let label = fit(&format!("{kind} {method} {path}"), 32);
        let result = svc
            .clone()
            .oneshot(request(&base, method, &path, body, token))
            .await;
        let class = HttpClassifier.classify_result(&result);
        let outcome = match result {
            Ok(res) => {
                let status = res.status();
                let body = res.into_body().collect().await?.to_bytes();
                let code = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned));
                match code {
                    Some(code) => format!("{} {code}", status.as_u16()),
                    None => format!(
                        "{} {}",
                        status.as_u16(),
                        status.canonical_reason().unwrap_or("")
                    ),
                }
            }
            Err(err) => format!("error: {}", short_error(&err)),
        };
        let outcome = fit(&outcome, 28);
        println!(
            "{row:<3} {label:<32} {fault_name:<26} {outcome:<28} {}",
            describe(&class)
        );
    }

    // A closed port: the connection is refused before anything is sent.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let result = svc
        .clone()
        .oneshot(request(
            &format!("http://127.0.0.1:{closed}"),
            Method::GET,
            "/v1/users/me",
            None,
            Some(TOKEN),
        ))
        .await;
    let class = HttpClassifier.classify_result(&result);
    row += 1;
    println!(
        "{row:<3} {:<32} {:<26} {:<28} {}",
        "read GET (closed port)",
        "-",
        fit(
            &result.err().map_or_else(
                || "answered".to_owned(),
                |e| format!("error: {}", short_error(&e))
            ),
            28
        ),
        describe(&class)
    );

    println!(
        "\nFakeNotion received {} requests; {} pages exist (one write got a 504 *after* it was applied: a blind retry would duplicate it).",
        fake.requests().len(),
        fake.page_count()
    );
    fake.shutdown().await;
    Ok(())
}

/// Truncates `text` to `width` characters, marking the cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width - 2).collect();
    cut.push('…');
    cut
}

fn fault_label(fault: &Fault) -> String {
    match fault {
        Fault::Status(status) => format!("{status}"),
        Fault::StatusAfterApply(status) => format!("{status} after applying"),
        Fault::RateLimited { retry_after_secs } => format!("429, Retry-After: {retry_after_secs}"),
        Fault::DropConnection => "connection dropped".to_owned(),
        Fault::CloudflareHtml(status) => format!("Cloudflare HTML {status}"),
        Fault::Delay(d) => format!("{}s delay, 1s timeout", d.as_secs()),
        other => format!("{other:?}"),
    }
}

fn short_error(err: &BoxError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}
