//! Notion incident triage: the runbook as a command. Three bounded checks, a verdict, the
//! action to take, and an exit code a script or a pager can act on.
//!
//! ```sh
//! cargo run --example triage                              # against an embedded FakeNotion
//! cargo run --example triage -- --simulate outage         # see a verdict (exit 10)
//! cargo run --example triage -- --json                    # one JSON document
//! NOTION_TOKEN=secret_… cargo run --example triage -- --base-url https://api.notion.com
//! NOTION_TOKEN=secret_… cargo run --example triage -- --base-url https://api.notion.com \
//!     --data-source 1f2e…                                 # time a data source query
//! ```
//!
//! Steps, each printed with its result and duration, each bounded by `--timeout` (10 s):
//! 1. the status page (`--status-url`; `https://status.notion.so/api/v2/status.json` with
//!    `--base-url`, FakeNotion's own `/api/v2/status.json` otherwise): indicator
//!    (`none`/`minor`/`major`/`critical`) and description;
//! 2. `GET /v1/users/me` with the token (`NOTION_TOKEN` with `--base-url`);
//! 3. one query's latency: `POST /v1/search` `{"page_size":1}`, or with `--data-source ID`
//!    `POST /v1/data_sources/{ID}/query`.
//!
//! | verdict | exit | evidence | action |
//! |---|---|---|---|
//! | `healthy` | 0 | everything answers | nothing |
//! | `notion_outage` | 10 | status page `major`/`critical`, 5xx/529 or the edge's HTML from the API, timeouts after connecting | serve stale, let the breaker fail fast, watch the status page |
//! | `token_invalid` | 11 | 401 `unauthorized` | token expired or revoked: create a new integration secret / re-run OAuth |
//! | `rate_limited` | 12 | 429 | wait `Retry-After` (shown with `rate_limit_reason`), then slow down |
//! | `network` | 13 | connect refused, DNS, TLS, connect timeout, a proxy's page | check egress/proxy/DNS |
//! | `integration_side` | 14 | 403 `restricted_resource`, 404 `object_not_found`, 400 `validation_error`/`missing_version` | share the page/data source with the integration; fix the request/Notion-Version |
//!
//! Exit 1 is triage's own failure (FakeNotion could not start, an unusable token or URL),
//! 2 a usage error. The first matching row of the order in `checks::diagnose` wins:
//! network, then outage evidence from the API, 401, 429, the status page, other 4xx.
//!
//! `--simulate healthy|outage|revoked|rate-limited|network|restricted` sets up the embedded
//! FakeNotion before the checks: an outage (every call 503, status page `major`), a revoked
//! token (a token FakeNotion does not accept), 429s with `Retry-After: 30`, a closed port, a
//! 403 `restricted_resource` on the query.
//!
//! ## Why `bulwark_notion::Client`
//! The API calls go through the ready [`Client`](bulwark::notion::Client), so triage parses
//! Notion's answers exactly as the application does (`NotionError`, the edge detection of
//! `UnexpectedResponse`, the error classification of `bulwark-http`), but with the preset
//! tuned to report rather than to cope: no retries, no stale cache, no bucket pause on
//! `Retry-After`, a 10 s attempt timeout. The status page is not under `/v1/`, so it is read
//! with a plain hyper-util client (rustls with ring, like the `Client`).
//!
//! The observations and the verdict live in `examples/triage/checks.rs`, which
//! `tests/triage_notion.rs` includes too, to check each verdict end to end against FakeNotion.

use std::{process::ExitCode, time::Duration};

use bulwark_testkit::{FakeNotion, Fault, Matcher, StatusIndicator};
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};

#[path = "triage/checks.rs"]
mod checks;

use checks::{CallObservation, Diagnosis, Observations, StatusObservation, Target};

const DEFAULT_STATUS_URL: &str = "https://status.notion.so/api/v2/status.json";
/// The token the embedded FakeNotion accepts.
const FAKE_TOKEN: &str = "secret_triage_demo";

/// Notion incident triage: status page, token, one query; a verdict and an exit code.
#[derive(Debug, Parser)]
#[command(name = "triage")]
struct Args {
    /// The Notion API to check (e.g. https://api.notion.com); the token comes from
    /// NOTION_TOKEN. Without it, an embedded FakeNotion is checked.
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// The Statuspage status.json to read. Defaults to Notion's with --base-url, to
    /// FakeNotion's without.
    #[arg(long, value_name = "URL")]
    status_url: Option<String>,
    /// Time `POST /v1/data_sources/{ID}/query` instead of `POST /v1/search`.
    #[arg(long, value_name = "ID")]
    data_source: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// The bound on each step, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
    /// Set up the embedded FakeNotion to show a verdict.
    #[arg(long, value_enum, conflicts_with = "base_url")]
    simulate: Option<Simulate>,
}

/// What `--simulate` sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Simulate {
    Healthy,
    Outage,
    Revoked,
    RateLimited,
    Network,
    Restricted,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.timeout == 0 {
        eprintln!("triage: --timeout must be at least 1 second");
        return ExitCode::from(2);
    }
    let step_timeout = Duration::from_secs(args.timeout);

    // Keep the FakeNotion alive until the checks are done.
    let (target, _fake, mode) = match &args.base_url {
        Some(base_url) => {
            let Ok(token) = std::env::var("NOTION_TOKEN") else {
                eprintln!("triage: set NOTION_TOKEN to check {base_url}");
                return ExitCode::from(2);
            };
            let target = Target {
                base_url: base_url.trim_end_matches('/').to_owned(),
                status_url: args
                    .status_url
                    .clone()
                    .unwrap_or_else(|| DEFAULT_STATUS_URL.to_owned()),
                token,
                data_source: args.data_source.clone(),
                step_timeout,
            };
            (target, None, "real API".to_owned())
        }
        None => {
            let simulate = args.simulate.unwrap_or(Simulate::Healthy);
            match fake_target(simulate, &args, step_timeout).await {
                Ok((target, fake)) => {
                    let mode = format!(
                        "embedded FakeNotion, --simulate {}",
                        simulate
                            .to_possible_value()
                            .map_or_else(String::new, |v| v.get_name().to_owned())
                    );
                    (target, fake, mode)
                }
                Err(err) => {
                    eprintln!("triage: cannot start FakeNotion: {err}");
                    return ExitCode::from(1);
                }
            }
        }
    };

    let observations = match checks::observe(&target).await {
        Ok(observations) => observations,
        Err(err) => {
            eprintln!("triage: {err}");
            return ExitCode::from(1);
        }
    };
    let diagnosis = checks::diagnose(
        &observations.status.observation,
        &observations.me.observation,
        &observations.query.observation,
    );
    if args.json {
        let doc = to_json(&target, &mode, &observations, &diagnosis);
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
        );
    } else {
        print_text(&target, &mode, &observations, &diagnosis);
    }
    ExitCode::from(diagnosis.verdict.exit_code())
}

/// Starts FakeNotion set up for `simulate` and the target pointing at it.
async fn fake_target(
    simulate: Simulate,
    args: &Args,
    step_timeout: Duration,
) -> std::io::Result<(Target, Option<FakeNotion>)> {
    let fake = FakeNotion::builder().tokens([FAKE_TOKEN]).start().await?;
    let mut target = Target {
        base_url: fake.url(),
        status_url: args
            .status_url
            .clone()
            .unwrap_or_else(|| format!("{}/api/v2/status.json", fake.url())),
        token: FAKE_TOKEN.to_owned(),
        data_source: args.data_source.clone(),
        step_timeout,
    };
    match simulate {
        Simulate::Healthy => {}
        Simulate::Outage => {
            fake.faults().outage(true);
            fake.set_status_indicator(StatusIndicator::Major);
        }
        Simulate::Revoked => target.token = "secret_revoked_last_week".to_owned(),
        Simulate::RateLimited => {
            fake.faults().script([
                Fault::RateLimited {
                    retry_after_secs: 30,
                },
                Fault::RateLimited {
                    retry_after_secs: 30,
                },
            ]);
        }
        Simulate::Network => {
            // A port nobody listens on: bind one, note it, close it.
            let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
            target.base_url = format!("http://{closed}");
            target.status_url = format!("http://{closed}/api/v2/status.json");
            return Ok((target, None));
        }
        Simulate::Restricted => {
            let (_, path) = target.query_route();
            fake.faults()
                .script_for(Matcher::any_method(path), [Fault::Status(403)]);
        }
    }
    Ok((target, Some(fake)))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn describe_status(obs: &StatusObservation) -> String {
    match obs {
        StatusObservation::Reported {
            indicator,
            description,
        } => format!("{indicator} — {description}"),
        StatusObservation::Unavailable { error } => format!("unavailable: {error}"),
    }
}

fn describe_call(obs: &CallObservation) -> String {
    match obs {
        CallObservation::Ok { summary } => format!("200 OK: {summary}"),
        CallObservation::Api {
            status,
            code,
            message,
            retry_after_secs,
            rate_limit_reason,
            request_id,
        } => {
            let mut text = format!("{status} {code}: {message}");
            if let Some(secs) = retry_after_secs {
                text.push_str(&format!(" [Retry-After {secs} s]"));
            }
            if let Some(reason) = rate_limit_reason {
                text.push_str(&format!(" [rate_limit_reason {reason}]"));
            }
            if let Some(id) = request_id {
                text.push_str(&format!(" [request id {id}]"));
            }
            text
        }
        CallObservation::Unexpected {
            status,
            from_edge,
            snippet,
        } => format!(
            "{status} from {}: {snippet:.80}",
            if *from_edge {
                "Notion's edge proxy"
            } else {
                "not the Notion API"
            }
        ),
        CallObservation::Timeout => "timed out".to_owned(),
        CallObservation::Unreachable { error } => format!("unreachable: {error}"),
        CallObservation::Interrupted { error } => format!("cut off: {error}"),
        CallObservation::InvalidRequest { error } => format!("invalid request: {error}"),
    }
}

fn print_text(target: &Target, mode: &str, obs: &Observations, diagnosis: &Diagnosis) {
    let (method, path) = target.query_route();
    println!("Notion triage of {} ({mode})", target.base_url);
    println!(
        "[1/3] status page {:<28} {:>8}  {}",
        "",
        ms(obs.status.elapsed),
        describe_status(&obs.status.observation)
    );
    println!(
        "[2/3] {:<40} {:>8}  {}",
        "GET /v1/users/me",
        ms(obs.me.elapsed),
        describe_call(&obs.me.observation)
    );
    println!(
        "[3/3] {:<40} {:>8}  {}",
        format!("{method} {path}"),
        ms(obs.query.elapsed),
        describe_call(&obs.query.observation)
    );
    println!();
    println!(
        "verdict: {} (exit {})",
        diagnosis.verdict.as_str(),
        diagnosis.verdict.exit_code()
    );
    println!("why:     {}", diagnosis.reason);
    println!("action:  {}", diagnosis.action);
}

fn status_json(obs: &StatusObservation) -> Value {
    match obs {
        StatusObservation::Reported {
            indicator,
            description,
        } => json!({ "ok": true, "indicator": indicator, "description": description }),
        StatusObservation::Unavailable { error } => json!({ "ok": false, "error": error }),
    }
}

fn call_json(obs: &CallObservation) -> Value {
    match obs {
        CallObservation::Ok { summary } => json!({ "ok": true, "status": 200, "summary": summary }),
        CallObservation::Api {
            status,
            code,
            message,
            retry_after_secs,
            rate_limit_reason,
            request_id,
        } => json!({
            "ok": false,
            "status": status,
            "code": code,
            "message": message,
            "retry_after_secs": retry_after_secs,
            "rate_limit_reason": rate_limit_reason,
            "request_id": request_id,
        }),
        CallObservation::Unexpected {
            status,
            from_edge,
            snippet,
        } => json!({
            "ok": false, "status": status, "error": "unexpected_response",
            "from_edge": from_edge, "snippet": snippet,
        }),
        CallObservation::Timeout => json!({ "ok": false, "error": "timeout" }),
        CallObservation::Unreachable { error } => {
            json!({ "ok": false, "error": "unreachable", "detail": error })
        }
        CallObservation::Interrupted { error } => {
            json!({ "ok": false, "error": "interrupted", "detail": error })
        }
        CallObservation::InvalidRequest { error } => {
            json!({ "ok": false, "error": "invalid_request", "detail": error })
        }
    }
}

fn to_json(target: &Target, mode: &str, obs: &Observations, diagnosis: &Diagnosis) -> Value {
    let (method, path) = target.query_route();
    let duration_ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    json!({
        "base_url": target.base_url,
        "status_url": target.status_url,
        "mode": mode,
        "steps": [
            {
                "step": "status_page",
                "request": format!("GET {}", target.status_url),
                "duration_ms": duration_ms(obs.status.elapsed),
                "result": status_json(&obs.status.observation),
            },
            {
                "step": "token",
                "request": "GET /v1/users/me",
                "duration_ms": duration_ms(obs.me.elapsed),
                "result": call_json(&obs.me.observation),
            },
            {
                "step": "query",
                "request": format!("{method} {path}"),
                "duration_ms": duration_ms(obs.query.elapsed),
                "result": call_json(&obs.query.observation),
            },
        ],
        "verdict": diagnosis.verdict.as_str(),
        "reason": diagnosis.reason,
        "action": diagnosis.action,
        "exit_code": diagnosis.verdict.exit_code(),
    })
}

#[cfg(test)]
mod tests {
    use super::checks::{diagnose, CallObservation as Call, StatusObservation as Status, Verdict};

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

    #[test]
    fn healthy_when_everything_answers() {
        for status in [
            page("none"),
            page("minor"),
            Status::Unavailable { error: "x".into() },
        ] {
            let d = diagnose(&status, &ok(), &ok());
            assert_eq!(d.verdict, Verdict::Healthy, "{status:?}");
            assert_eq!(d.verdict.exit_code(), 0);
        }
        assert!(diagnose(&page("minor"), &ok(), &ok())
            .action
            .contains("minor"));
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
            let d = diagnose(&status, &me, &query);
            assert_eq!(
                d.verdict,
                Verdict::NotionOutage,
                "{status:?} {me:?} {query:?}"
            );
            assert_eq!(d.verdict.exit_code(), 10);
        }
    }

    #[test]
    fn token_invalid_on_401_even_during_a_reported_outage() {
        let d = diagnose(
            &page("major"),
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
        let d = diagnose(&page("none"), &limited, &limited);
        assert_eq!(d.verdict, Verdict::RateLimited);
        assert_eq!(d.verdict.exit_code(), 12);
        assert!(d.reason.contains("Retry-After 42 s"), "{}", d.reason);
        assert!(d.action.contains("42 s"), "{}", d.action);
        assert!(d.action.contains("public_api_space_request_rate_limit"));
        // Without a Retry-After it still says what it knows.
        let d = diagnose(&page("none"), &ok(), &api(429, "rate_limited"));
        assert_eq!(d.verdict, Verdict::RateLimited);
        assert!(d.reason.contains("no Retry-After"));
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
            let d = diagnose(&status, &me, &query);
            assert_eq!(d.verdict, Verdict::Network, "{me:?}");
            assert_eq!(d.verdict.exit_code(), 13);
            assert!(d.action.contains("check egress/proxy/DNS"));
        }
    }

    #[test]
    fn integration_side_for_access_and_request_errors() {
        for (query, hint) in [
            (
                api(403, "restricted_resource"),
                "share the page/data source",
            ),
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
            let d = diagnose(&page("none"), &ok(), &query);
            assert_eq!(d.verdict, Verdict::IntegrationSide, "{query:?}");
            assert_eq!(d.verdict.exit_code(), 14);
            assert!(d.action.contains(hint), "{query:?}: {}", d.action);
        }
    }

    #[test]
    fn exit_codes_are_distinct_and_documented() {
        let all = [
            Verdict::Healthy,
            Verdict::NotionOutage,
            Verdict::TokenInvalid,
            Verdict::RateLimited,
            Verdict::Network,
            Verdict::IntegrationSide,
        ];
        let codes: Vec<u8> = all.iter().map(|v| v.exit_code()).collect();
        assert_eq!(codes, [0, 10, 11, 12, 13, 14]);
        let names: Vec<&str> = all.iter().map(|v| v.as_str()).collect();
        assert_eq!(
            names,
            [
                "healthy",
                "notion_outage",
                "token_invalid",
                "rate_limited",
                "network",
                "integration_side"
            ]
        );
    }
}
