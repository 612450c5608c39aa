//! The triage runbook's observations and its verdict, shared by `examples/triage.rs` (which
//! renders them) and `tests/triage_notion.rs` (which checks them end to end against
//! FakeNotion).
//!
//! [`observe`] does the I/O: three bounded steps, each turned into a plain value
//! ([`StatusObservation`], [`CallObservation`]). [`diagnose`] is pure: the three values in, a
//! [`Diagnosis`] (verdict, why, what to do) out.

use std::{error::Error as StdError, time::Duration};

use bulwark::{
    http::{classify_error_chain, BoxError, Class},
    notion::{Client, Error as ClientError},
};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::{client::legacy::Client as HyperClient, rt::TokioExecutor};
use serde_json::{json, Value};
use tokio::time::{timeout, Instant};

/// Where and how to look.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The API's base URL (requests go to `{base_url}/v1/…`).
    pub(crate) base_url: String,
    /// The Statuspage `status.json` URL.
    pub(crate) status_url: String,
    /// The bearer token.
    pub(crate) token: String,
    /// Query this data source instead of `POST /v1/search`.
    pub(crate) data_source: Option<String>,
    /// The bound on each step (connect, request, response body).
    pub(crate) step_timeout: Duration,
}

impl Target {
    /// The method and path of the query step.
    pub(crate) fn query_route(&self) -> (&'static str, String) {
        match &self.data_source {
            Some(id) => ("POST", format!("/v1/data_sources/{id}/query")),
            None => ("POST", "/v1/search".to_owned()),
        }
    }
}

/// Step 1: what the status page said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StatusObservation {
    /// `{"status":{"indicator":…,"description":…}}`.
    Reported {
        /// `none`, `minor`, `major` or `critical` (or whatever Statuspage invents next).
        indicator: String,
        /// Statuspage's sentence, e.g. `All Systems Operational`.
        description: String,
    },
    /// No usable answer (unreachable, timeout, not Statuspage's JSON).
    Unavailable {
        /// What went wrong.
        error: String,
    },
}

/// Steps 2 and 3: what one API call gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallObservation {
    /// A 2xx JSON answer.
    Ok {
        /// A one-line summary of the answer.
        summary: String,
    },
    /// Notion's JSON error body.
    Api {
        /// The HTTP status.
        status: u16,
        /// Notion's `code`.
        code: String,
        /// Notion's `message`.
        message: String,
        /// `Retry-After`, in whole seconds.
        retry_after_secs: Option<u64>,
        /// `additional_data.rate_limit_reason`.
        rate_limit_reason: Option<String>,
        /// The request id, for Notion's support.
        request_id: Option<String>,
    },
    /// An answer that is not Notion's JSON (an edge proxy's HTML page, a corporate proxy).
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// `cf-ray` without `x-notion-request-id`: Notion's edge answered, not the API.
        from_edge: bool,
        /// The start of the body.
        snippet: String,
    },
    /// Connected (or tried to), but no answer within the step's bound.
    Timeout,
    /// Never reached the API: connect refused, DNS, TLS handshake, connect timeout.
    Unreachable {
        /// The error chain.
        error: String,
    },
    /// The connection broke mid-request (reset, closed before the answer).
    Interrupted {
        /// The error chain.
        error: String,
    },
    /// The request could not be built (a data source id that is not valid in a URL).
    InvalidRequest {
        /// Why.
        error: String,
    },
}

/// One step's observation and how long it took.
#[derive(Debug, Clone)]
pub(crate) struct Step<T> {
    /// What was seen.
    pub(crate) observation: T,
    /// How long the step took.
    pub(crate) elapsed: Duration,
}

/// The three steps.
#[derive(Debug, Clone)]
pub(crate) struct Observations {
    /// Step 1: the status page.
    pub(crate) status: Step<StatusObservation>,
    /// Step 2: `GET /v1/users/me`.
    pub(crate) me: Step<CallObservation>,
    /// Step 3: the query.
    pub(crate) query: Step<CallObservation>,
}

/// The runbook's conclusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Everything answers.
    Healthy,
    /// Notion is down or degraded.
    NotionOutage,
    /// The token is expired or revoked.
    TokenInvalid,
    /// Notion refuses for the rate limit.
    RateLimited,
    /// The API cannot be reached from here.
    Network,
    /// The integration's access or the request is wrong.
    IntegrationSide,
}

impl Verdict {
    /// The verdict's name, as printed and in `--json`.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::NotionOutage => "notion_outage",
            Self::TokenInvalid => "token_invalid",
            Self::RateLimited => "rate_limited",
            Self::Network => "network",
            Self::IntegrationSide => "integration_side",
        }
    }

    /// The process exit code for this verdict.
    pub(crate) const fn exit_code(self) -> u8 {
        match self {
            Self::Healthy => 0,
            Self::NotionOutage => 10,
            Self::TokenInvalid => 11,
            Self::RateLimited => 12,
            Self::Network => 13,
            Self::IntegrationSide => 14,
        }
    }
}

/// A verdict with its reason and the action to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diagnosis {
    /// The conclusion.
    pub(crate) verdict: Verdict,
    /// The evidence, in one sentence.
    pub(crate) reason: String,
    /// What to do.
    pub(crate) action: String,
}

impl Diagnosis {
    fn new(verdict: Verdict, reason: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            verdict,
            reason: reason.into(),
            action: action.into(),
        }
    }
}

/// The verdict from the three observations. Pure: no I/O, no clock.
///
/// Evidence is weighed in this order, first match wins:
/// 1. a call never reached the API, or a non-JSON answer below 500 came back (a proxy's or
///    captive portal's page, an edge block) → `network`;
/// 2. a call got 5xx/529 (JSON or an edge's HTML), timed out after connecting, or was cut off
///    → `notion_outage`;
/// 3. 401 → `token_invalid`;
/// 4. 429 → `rate_limited`;
/// 5. the status page says `major`/`critical` (though the calls went through) → `notion_outage`;
/// 6. any other 4xx, or a request that could not be built → `integration_side`;
/// 7. otherwise `healthy` (a `minor` indicator or an unreadable status page is mentioned).
pub(crate) fn diagnose(
    status: &StatusObservation,
    me: &CallObservation,
    query: &CallObservation,
) -> Diagnosis {
    let calls = [("GET /v1/users/me", me), ("the query", query)];
    let status_note = match status {
        StatusObservation::Reported {
            indicator,
            description,
        } => format!("status page: {indicator} ({description})"),
        StatusObservation::Unavailable { .. } => "status page unreadable".to_owned(),
    };

    // 1. Never reached Notion.
    for (name, call) in calls {
        match call {
            CallObservation::Unreachable { error } => {
                return Diagnosis::new(
                    Verdict::Network,
                    format!("{name} never reached the API: {error}; {status_note}"),
                    "check egress/proxy/DNS (firewall rules, HTTPS_PROXY, resolver, TLS \
                     interception) from this host; Notion itself may be fine",
                );
            }
            CallObservation::Unexpected {
                status, snippet, ..
            } if *status < 500 => {
                return Diagnosis::new(
                    Verdict::Network,
                    format!(
                        "{name} got {status} that is not the Notion API's answer \
                         ({snippet:.80}); {status_note}"
                    ),
                    "check egress/proxy/DNS: a proxy, captive portal or edge block answers \
                     instead of Notion",
                );
            }
            _ => {}
        }
    }

    // 2. Notion (or its edge) failing.
    for (name, call) in calls {
        let evidence = match call {
            CallObservation::Api { status, code, .. } if *status >= 500 => {
                Some(format!("{name} got {status} {code}"))
            }
            CallObservation::Unexpected {
                status, from_edge, ..
            } if *status >= 500 => Some(format!(
                "{name} got {status} {}",
                if *from_edge {
                    "from Notion's edge proxy (HTML, cf-ray, no x-notion-request-id)"
                } else {
                    "that is not Notion's JSON"
                }
            )),
            CallObservation::Timeout => Some(format!("{name} timed out")),
            CallObservation::Interrupted { error } => {
                Some(format!("{name} was cut off mid-request: {error}"))
            }
            _ => None,
        };
        if let Some(evidence) = evidence {
            return Diagnosis::new(
                Verdict::NotionOutage,
                format!("{evidence}; {status_note}"),
                OUTAGE_ACTION,
            );
        }
    }

    // 3. and 4. Refused for the caller's own reasons.
    for (name, call) in calls {
        if let CallObservation::Api {
            status: 401, code, ..
        } = call
        {
            return Diagnosis::new(
                Verdict::TokenInvalid,
                format!("{name} got 401 {code}"),
                "token expired or revoked: create a new integration secret / re-run OAuth, \
                 then update NOTION_TOKEN",
            );
        }
    }
    for (name, call) in calls {
        if let CallObservation::Api {
            status: 429,
            retry_after_secs,
            rate_limit_reason,
            ..
        } = call
        {
            let wait = retry_after_secs.map_or_else(
                || "no Retry-After".to_owned(),
                |s| format!("Retry-After {s} s"),
            );
            let reason = rate_limit_reason.as_deref().unwrap_or("not given");
            return Diagnosis::new(
                Verdict::RateLimited,
                format!("{name} got 429 rate_limited ({wait}, rate_limit_reason {reason})"),
                format!(
                    "wait {} before calling again (rate_limit_reason {reason}); then stay under \
                     ~3 requests/s per integration: one token bucket per token, shared by every \
                     process (bulwark's bucket with the Redis store)",
                    retry_after_secs
                        .map_or_else(|| "a few seconds".to_owned(), |s| format!("{s} s"))
                ),
            );
        }
    }

    // 5. The status page admits an outage the calls did not hit (yet).
    if let StatusObservation::Reported { indicator, .. } = status {
        if indicator == "major" || indicator == "critical" {
            return Diagnosis::new(
                Verdict::NotionOutage,
                format!("{status_note}; the calls went through this time"),
                OUTAGE_ACTION,
            );
        }
    }

    // 6. Access or request problems.
    for (name, call) in calls {
        match call {
            CallObservation::Api { status, code, .. } => {
                let action = match (*status, code.as_str()) {
                    (403, _) | (404, _) | (_, "restricted_resource" | "object_not_found") => {
                        "share the page/data source with the integration (••• → Connections), \
                         or check the id"
                    }
                    (400, "missing_version") => "fix the request/Notion-Version header",
                    _ => "fix the request/Notion-Version (validation or unsupported request)",
                };
                return Diagnosis::new(
                    Verdict::IntegrationSide,
                    format!("{name} got {status} {code}; {status_note}"),
                    action,
                );
            }
            CallObservation::InvalidRequest { error } => {
                return Diagnosis::new(
                    Verdict::IntegrationSide,
                    format!("{name} could not be built: {error}"),
                    "fix the request (the data source id)",
                );
            }
            _ => {}
        }
    }

    // 7. Nothing wrong.
    let action = match status {
        StatusObservation::Reported { indicator, .. } if indicator != "none" => {
            "nothing to do now; the status page reports a minor incident: watch it"
        }
        StatusObservation::Unavailable { .. } => {
            "nothing to do: the API answers (the status page could not be read)"
        }
        StatusObservation::Reported { .. } => "nothing to do",
    };
    Diagnosis::new(
        Verdict::Healthy,
        format!("the token works and the query answers; {status_note}"),
        action,
    )
}

const OUTAGE_ACTION: &str = "Notion is down or degraded: do not retry in a loop; serve stale \
     data (bulwark's cache) and let the circuit breaker fail fast; watch the status page and \
     check again in a few minutes";

/// Runs the three steps against `target`, each bounded by `target.step_timeout`.
///
/// # Errors
/// When the client cannot be built (an empty token, a base URL that is not `http(s)://`).
pub(crate) async fn observe(target: &Target) -> Result<Observations, BoxError> {
    let step = target.step_timeout;
    // Triage wants Notion's raw answers: no retries, no stale copies, no bucket pausing on a
    // Retry-After (the query step would wait instead of reporting), and a breaker that cannot
    // open within two calls.
    let client = Client::builder(target.token.clone())
        .base_url(target.base_url.clone())
        .preset(|p| {
            p.retry(|r| r.max_retries(0))
                .without_cache()
                .bucket(|b| b.pause_on_retry_after(false).max_wait(step))
                .attempt_timeout(step)
        })
        .build()?;

    let started = Instant::now();
    let status = Step {
        observation: status_page(&target.status_url, step).await,
        elapsed: started.elapsed(),
    };

    let started = Instant::now();
    let observation = call(step, client.get("users/me", json!({})), |me| {
        let name = me["name"].as_str().unwrap_or("(no name)");
        let kind = me["type"].as_str().unwrap_or("?");
        let workspace = me["bot"]["workspace_name"].as_str();
        match workspace {
            Some(ws) => format!("{kind} {name:?} in workspace {ws:?}"),
            None => format!("{kind} {name:?}"),
        }
    })
    .await;
    let me = Step {
        observation,
        elapsed: started.elapsed(),
    };

    let (_, path) = target.query_route();
    let started = Instant::now();
    let observation = call(step, client.post(&path, json!({ "page_size": 1 })), |res| {
        let n = res["results"].as_array().map_or(0, Vec::len);
        let more = res["has_more"].as_bool().unwrap_or(false);
        format!("{n} result(s), has_more {more}")
    })
    .await;
    let query = Step {
        observation,
        elapsed: started.elapsed(),
    };

    Ok(Observations { status, me, query })
}

async fn call(
    bound: Duration,
    fut: impl std::future::Future<Output = Result<Value, ClientError>>,
    summarize: impl FnOnce(&Value) -> String,
) -> CallObservation {
    match timeout(bound, fut).await {
        Err(_) => CallObservation::Timeout,
        Ok(Ok(value)) => CallObservation::Ok {
            summary: summarize(&value),
        },
        Ok(Err(err)) => from_client_error(err),
    }
}

fn from_client_error(err: ClientError) -> CallObservation {
    match err {
        ClientError::Api(err) => CallObservation::Api {
            status: err.status.as_u16(),
            code: err.code.as_str().to_owned(),
            message: err.message.clone(),
            retry_after_secs: err.retry_after.map(|d| d.as_secs_f64().ceil() as u64),
            rate_limit_reason: err
                .additional_data
                .as_ref()
                .and_then(|d| d.get("rate_limit_reason"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            request_id: err.request_id.clone(),
        },
        ClientError::UnexpectedResponse(res) => CallObservation::Unexpected {
            status: res.status.as_u16(),
            from_edge: res.from_edge,
            snippet: res.snippet,
        },
        ClientError::Transport(err) => from_transport(&*err),
        ClientError::InvalidRequest(error) => CallObservation::InvalidRequest { error },
        other => CallObservation::Interrupted {
            error: other.to_string(),
        },
    }
}

fn from_transport(err: &(dyn StdError + 'static)) -> CallObservation {
    let error = chain(err);
    match classify_error_chain(err) {
        Class::Unreachable => CallObservation::Unreachable { error },
        _ if is_elapsed(err) => CallObservation::Timeout,
        _ => CallObservation::Interrupted { error },
    }
}

fn is_elapsed(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if err.is::<tower::timeout::error::Elapsed>() || err.is::<tokio::time::error::Elapsed>() {
            return true;
        }
        next = err.source();
    }
    false
}

/// `outer: inner: innermost`, skipping repeats.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// Step 1: `GET status_url`, Statuspage's `{"status":{"indicator","description"}}`.
async fn status_page(url: &str, bound: Duration) -> StatusObservation {
    let unavailable = |error: String| StatusObservation::Unavailable { error };
    let uri: http::Uri = match url.parse() {
        Ok(uri) => uri,
        Err(err) => return unavailable(format!("invalid status URL: {err}")),
    };
    let https = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
    {
        Ok(builder) => builder.https_or_http().enable_http1().build(),
        Err(err) => return unavailable(format!("TLS setup failed: {err}")),
    };
    let client = HyperClient::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(https);
    let fetch = async {
        let res = client.get(uri).await.map_err(|e| chain(&e))?;
        let status = res.status();
        let body = Limited::new(res.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| chain(&*e))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        let json: Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON ({e})"))?;
        let indicator = json["status"]["indicator"]
            .as_str()
            .ok_or("no status.indicator in the answer")?;
        Ok(StatusObservation::Reported {
            indicator: indicator.to_owned(),
            description: json["status"]["description"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
    };
    match timeout(bound, fetch).await {
        Ok(Ok(observation)) => observation,
        Ok(Err(error)) => unavailable(error),
        Err(_) => unavailable(format!("no answer within {} s", bound.as_secs_f64())),
    }
}
