//! What Mark2Notion answers to one request: authentication, faults, routing,
//! the quota, validation and the two endpoints, in that order. Synchronous
//! and socket-free: the caller has read the body and holds the state's lock,
//! so a quota check and its charge are one step.

use std::collections::HashSet;
use std::collections::VecDeque;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;

use super::blocks;
use super::usage::Account;
use super::wire::Answer;
use super::Call;
use crate::wire::new_id;

/// Everything one fake Mark2Notion holds, behind one lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) keys: HashSet<String>,
    pub(crate) account: Account,
    pub(crate) outage: bool,
    pub(crate) fail_next: u64,
    pub(crate) log: VecDeque<Call>,
    pub(crate) record_limit: usize,
    pub(crate) calls_after_exhaustion: u64,
}

impl State {
    /// Keeps `call`, forgetting the oldest beyond the record limit.
    pub(crate) fn record(&mut self, call: Call) {
        if call.after_exhaustion {
            self.calls_after_exhaustion = self.calls_after_exhaustion.saturating_add(1);
        }
        if self.record_limit == 0 {
            return;
        }
        while self.log.len() >= self.record_limit {
            self.log.pop_front();
        }
        self.log.push_back(call);
    }
}

/// The request body as read.
#[derive(Debug)]
pub(crate) enum RequestBody {
    Read(Bytes),
    /// Longer than [`MAX_BODY`](super::MAX_BODY).
    TooLarge,
    /// The body stream failed.
    Unreadable,
}

/// What [`answer`] looks at.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    pub(crate) method: &'a Method,
    pub(crate) path: &'a str,
    /// `x-api-key`; `None` when absent or empty.
    pub(crate) api_key: Option<&'a str>,
    pub(crate) body: &'a RequestBody,
}

enum Route {
    Convert,
    Append,
}

/// The answer to `request`, charging the quota when it succeeds.
pub(crate) fn answer(state: &mut State, request: &Incoming<'_>) -> Answer {
    let Some(key) = request.api_key else {
        return Answer::error(StatusCode::UNAUTHORIZED, "Missing x-api-key", None);
    };
    let usage = state.account.usage().clone();
    if !state.keys.contains(key) {
        return Answer::error(StatusCode::FORBIDDEN, "Invalid API key", Some(usage));
    }
    if state.outage {
        return Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
            Some(usage),
        );
    }
    if state.fail_next > 0 {
        state.fail_next -= 1;
        return Answer::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error",
            Some(usage),
        );
    }
    let path = request.path.strip_suffix('/').unwrap_or(request.path);
    let route = match (request.method, path) {
        (&Method::POST, "/api/convert") => Route::Convert,
        (&Method::POST, "/api/append") => Route::Append,
        _ => return Answer::error(StatusCode::NOT_FOUND, "Not found", Some(usage)),
    };
    if usage.is_exhausted() {
        return Answer::quota_exceeded(usage);
    }
    let fields = match request.body {
        RequestBody::TooLarge => {
            return Answer::fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                &[("body", "Request body too large")],
                usage,
            )
        }
        RequestBody::Unreadable => None,
        RequestBody::Read(bytes) => serde_json::from_slice::<Value>(bytes).ok(),
    };
    let Some(fields) = fields else {
        return Answer::fail(StatusCode::BAD_REQUEST, &[("body", "Invalid JSON")], usage);
    };
    let data = match route {
        Route::Convert => convert(&fields),
        Route::Append => append(&fields),
    };
    match data {
        Ok(data) => {
            state.account.charge();
            Answer::success(&data, state.account.usage().clone())
        }
        Err(problems) => Answer::fail(StatusCode::BAD_REQUEST, &problems, usage),
    }
}

/// A non-empty string field (JavaScript's `!value || typeof value !== "string"`).
fn text<'a>(fields: &'a Value, name: &str) -> Option<&'a str> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `{"blocks":[…]}`, or the bad fields.
fn convert(fields: &Value) -> Result<String, Vec<(&'static str, &'static str)>> {
    let markdown = text(fields, "markdown")
        .ok_or_else(|| vec![("markdown", "Missing or invalid markdown content")])?;
    Ok(serde_json::json!({ "blocks": blocks::convert(markdown) }).to_string())
}

/// `{"lastBlockId":…,"requestCount":N}`, or the bad fields.
fn append(fields: &Value) -> Result<String, Vec<(&'static str, &'static str)>> {
    let mut problems = Vec::new();
    let markdown = text(fields, "markdown");
    if markdown.is_none() {
        problems.push(("markdown", "Missing or invalid markdown content"));
    }
    if text(fields, "notionToken").is_none() {
        problems.push(("notionToken", "Missing or invalid notionToken"));
    }
    if text(fields, "pageId").is_none() {
        problems.push(("pageId", "Missing or invalid pageId"));
    }
    if fields
        .get("after")
        .is_some_and(|after| !after.is_null() && !after.is_string())
    {
        problems.push(("after", "Invalid after block id"));
    }
    let Some(markdown) = markdown.filter(|_| problems.is_empty()) else {
        return Err(problems);
    };
    let count = blocks::convert(markdown).len();
    Ok(serde_json::json!({
        "lastBlockId": new_id(),
        "requestCount": blocks::notion_requests(count),
    })
    .to_string())
}
