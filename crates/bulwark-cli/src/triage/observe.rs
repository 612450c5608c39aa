//! The checks: bounded calls whose answers become [`Observations`], and one [`Run`] (the
//! observations, their verdict and when).
//!
//! The API calls go through [`bulwark_notion::Client`], so triage parses Notion's answers
//! exactly as an application does (`NotionError`, the edge detection of
//! `UnexpectedResponse`, `bulwark-http`'s error classification), with the preset tuned to
//! report rather than to cope: no retries, no stale cache, a breaker that never opens, no
//! bucket pause on `Retry-After` (its 3 requests/s pacing stays, so triage's own calls do not
//! trip the rate limit), each attempt bounded by the step's timeout. The status page is not under `/v1/`, so it is read
//! with a plain hyper-util client.

use std::{error::Error as StdError, future::Future, time::Duration};

use bulwark_http::{classify_error_chain, BoxError, Class};
use bulwark_notion::{Client, Error as ClientError};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::time::{timeout, Instant};

use crate::proxy::redact_url;
use crate::triage::{
    net::{self, chain, HttpClient},
    observation::{CallObservation, Observations, PageCheck, SchemaCheck, StatusObservation, Step},
    schema::{ActualSchema, ExpectedSchema},
    verdict::{diagnose, Diagnosis},
};

/// Notion's status page.
pub const NOTION_STATUS_URL: &str = "https://status.notion.so/api/v2/status.json";
/// The default bound on each step.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The API's base URL (requests go to `{base_url}/v1/…`).
    pub base_url: String,
    /// The Statuspage `status.json` URL.
    pub status_url: String,
    /// The bearer token.
    pub token: String,
    /// Query this data source instead of `POST /v1/search`; it should exist.
    pub data_source: Option<String>,
    /// Retrieve [`data_source`](Self::data_source) and compare its schema with this one.
    pub expected_schema: Option<ExpectedSchema>,
    /// Pages that should exist: `GET /v1/pages/{id}` each.
    pub pages: Vec<String>,
    /// The bound on each step (connect, request, response body, a wait for the pacing).
    pub step_timeout: Duration,
}

impl Target {
    /// Checks `base_url` with `token`, Notion's status page, the defaults for the rest.
    #[must_use]
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            status_url: NOTION_STATUS_URL.to_owned(),
            token: token.into(),
            data_source: None,
            expected_schema: None,
            pages: Vec::new(),
            step_timeout: DEFAULT_STEP_TIMEOUT,
        }
    }

    /// The method and path of the query step.
    #[must_use]
    pub fn query_route(&self) -> (&'static str, String) {
        match &self.data_source {
            Some(id) => ("POST", format!("/v1/data_sources/{id}/query")),
            None => ("POST", "/v1/search".to_owned()),
        }
    }
}

/// One triage run: what was seen, the verdict, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The API checked, credentials redacted.
    pub base_url: String,
    /// When the first check started (UTC).
    pub started_at: OffsetDateTime,
    /// When the last check ended (UTC).
    pub finished_at: OffsetDateTime,
    /// What the checks saw.
    pub observations: Observations,
    /// The verdict.
    pub diagnosis: Diagnosis,
}

/// Runs the checks of a [`Target`], again and again if need be (`--watch`): one API client,
/// so one pacing bucket, for every run.
#[derive(Debug)]
pub struct Checker {
    target: Target,
    client: Client,
    status_client: HttpClient<Empty<Bytes>>,
}

impl Checker {
    /// The clients for `target`.
    ///
    /// # Errors
    /// When a client cannot be built (an empty token, a base URL that is not `http(s)://`,
    /// TLS setup).
    pub fn new(target: Target) -> Result<Self, BoxError> {
        let step = target.step_timeout;
        let client = Client::builder(target.token.clone())
            .base_url(target.base_url.clone())
            .connect_timeout(step)
            .preset(|p| {
                p.retry(|r| r.max_retries(0))
                    // A breaker open from earlier checks would answer for Notion (and hide a
                    // recovery from `--watch`): it never opens here.
                    .breaker(|b| b.consecutive_failures(0).minimum_calls(u32::MAX))
                    .without_cache()
                    .bucket(|b| b.pause_on_retry_after(false).max_wait(step))
                    .attempt_timeout(step)
            })
            .build()?;
        let status_client = net::client(step)?;
        Ok(Self {
            target,
            client,
            status_client,
        })
    }

    /// What is checked.
    #[must_use]
    pub const fn target(&self) -> &Target {
        &self.target
    }

    /// Every check once, each bounded by the step timeout, one after the other.
    pub async fn observe(&self) -> Observations {
        let target = &self.target;
        let step = target.step_timeout;
        let status = timed(format!("GET {}", redact_url(&target.status_url)), async {
            status_page(&self.status_client, &target.status_url, step).await
        })
        .await;

        let me = self
            .call(
                "GET /v1/users/me".to_owned(),
                self.client.get("users/me", json!({})),
                |me| {
                    let name = me["name"].as_str().unwrap_or("(no name)");
                    let kind = me["type"].as_str().unwrap_or("?");
                    match me["bot"]["workspace_name"].as_str() {
                        Some(ws) => format!("{kind} {name:?} in workspace {ws:?}"),
                        None => format!("{kind} {name:?}"),
                    }
                },
            )
            .await;

        let (method, path) = target.query_route();
        let query = self
            .call(
                format!("{method} {path}"),
                self.client.post(&path, json!({ "page_size": 1 })),
                |res| {
                    let n = res["results"].as_array().map_or(0, Vec::len);
                    let more = res["has_more"].as_bool().unwrap_or(false);
                    format!("{n} result(s), has_more {more}")
                },
            )
            .await;

        let mut observations = Observations::new(status, me, query);
        observations
            .query_data_source
            .clone_from(&target.data_source);
        if let (Some(id), Some(expected)) = (&target.data_source, &target.expected_schema) {
            observations.schema = Some(self.schema(id, expected).await);
        }
        for id in &target.pages {
            observations.pages.push(self.page(id).await);
        }
        observations
    }

    /// [`observe`](Self::observe), then the verdict.
    pub async fn run(&self) -> Run {
        let started_at = now_utc();
        let observations = self.observe().await;
        let diagnosis = diagnose(&observations);
        Run {
            base_url: redact_url(&self.target.base_url),
            started_at,
            finished_at: now_utc(),
            observations,
            diagnosis,
        }
    }

    async fn schema(&self, id: &str, expected: &ExpectedSchema) -> SchemaCheck {
        let path = format!("/v1/data_sources/{id}");
        let mut actual = None;
        let step = self
            .call(
                format!("GET {path}"),
                self.client.get(&path, json!({})),
                |ds| {
                    actual = ActualSchema::from_data_source(ds);
                    match &actual {
                        Some(schema) => format!("{} properties", schema.properties.len()),
                        None => "no properties in the answer".to_owned(),
                    }
                },
            )
            .await;
        SchemaCheck {
            data_source_id: id.to_owned(),
            expected: expected.clone(),
            step,
            actual,
        }
    }

    async fn page(&self, id: &str) -> PageCheck {
        let path = format!("/v1/pages/{id}");
        let mut in_trash = false;
        let step = self
            .call(
                format!("GET {path}"),
                self.client.get(&path, json!({})),
                |page| {
                    in_trash = page["in_trash"].as_bool().unwrap_or(false)
                        || page["archived"].as_bool().unwrap_or(false);
                    let title = title(page).unwrap_or_else(|| "(untitled)".to_owned());
                    if in_trash {
                        format!("page {title:?}, in the trash")
                    } else {
                        format!("page {title:?}")
                    }
                },
            )
            .await;
        PageCheck {
            id: id.to_owned(),
            step,
            in_trash,
        }
    }

    async fn call(
        &self,
        request: String,
        fut: impl Future<Output = Result<Value, ClientError>>,
        summarize: impl FnOnce(&Value) -> String,
    ) -> Step<CallObservation> {
        let bound = self.target.step_timeout;
        timed(request, async {
            match timeout(bound, fut).await {
                Err(_) => CallObservation::Timeout,
                Ok(Ok(value)) => CallObservation::Ok {
                    summary: summarize(&value),
                },
                Ok(Err(err)) => from_client_error(err),
            }
        })
        .await
    }
}

/// The wall clock, UTC, to the second.
#[must_use]
pub fn now_utc() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

async fn timed<T>(request: String, fut: impl Future<Output = T>) -> Step<T> {
    let at = now_utc();
    let started = Instant::now();
    let observation = fut.await;
    Step {
        request,
        at,
        elapsed: started.elapsed(),
        observation,
    }
}

/// The plain text of a page's `title` property.
fn title(page: &Value) -> Option<String> {
    let props = page.get("properties")?.as_object()?;
    let title = props
        .values()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("title"))?
        .get("title")?
        .as_array()?;
    Some(
        title
            .iter()
            .filter_map(|t| t.get("plain_text").and_then(Value::as_str))
            .collect(),
    )
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

/// `GET url`, Statuspage's `{"status":{"indicator","description"}}`.
async fn status_page(
    client: &HttpClient<Empty<Bytes>>,
    url: &str,
    bound: Duration,
) -> StatusObservation {
    let unavailable = |error: String| StatusObservation::Unavailable { error };
    let uri: http::Uri = match url.parse() {
        Ok(uri) => uri,
        Err(err) => return unavailable(format!("invalid status URL: {err}")),
    };
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
