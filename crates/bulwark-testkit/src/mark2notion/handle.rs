//! [`Mark2NotionHandle`]: the state one fake shares between its connections,
//! its in-process service and the test; and the one request handler they use.

use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use serde_json::Value;
use tokio::time::Instant;

use super::api::{self, Incoming, RequestBody, State};
use super::usage::Usage;
use super::MAX_BODY;
use crate::lock;

/// One request the fake received, and what it answered.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Call {
    /// The HTTP method.
    pub method: Method,
    /// The path, without the query (`/api/convert`).
    pub path: String,
    /// The `x-api-key` sent (also when refused); `None` when absent or
    /// empty. A value that is not UTF-8 is kept lossily.
    pub api_key: Option<String>,
    /// The request body (empty when it exceeded [`MAX_BODY`]).
    pub body: Bytes,
    /// When the request head arrived (`tokio::time`).
    pub at: Instant,
    /// The status answered.
    pub status: u16,
    /// Whether the quota was exhausted when the request arrived: a call a
    /// client could have known was wasted.
    pub after_exhaustion: bool,
}

impl Call {
    /// The body parsed as JSON, if it is JSON.
    #[must_use]
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Observes and steers one fake Mark2Notion while it runs: its calls, its
/// usage, its faults. Got from [`FakeMark2Notion::handle`](super::FakeMark2Notion::handle)
/// or [`InProcessMark2Notion::handle`](super::InProcessMark2Notion::handle).
///
/// # Clone
/// Cheap; every clone steers the same fake.
#[derive(Clone)]
pub struct Mark2NotionHandle {
    pub(crate) state: Arc<Mutex<State>>,
}

impl fmt::Debug for Mark2NotionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Mark2NotionHandle")
            .field("usage", state.account.usage())
            .field("outage", &state.outage)
            .field("fail_next", &state.fail_next)
            .field("calls", &state.log.len())
            .finish_non_exhaustive()
    }
}

impl Mark2NotionHandle {
    /// Every request received, in arrival order, whatever it was answered
    /// (the latest [`record_limit`](super::FakeMark2NotionBuilder::record_limit) of them).
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state).log.iter().cloned().collect()
    }

    /// How many requests arrived while the quota was exhausted (all of
    /// them, past the record limit too): the wasted calls a client should
    /// not make. Starts at 0; [`clear_calls`](Self::clear_calls) zeroes it.
    #[must_use]
    pub fn calls_after_exhaustion(&self) -> u64 {
        lock(&self.state).calls_after_exhaustion
    }

    /// Forgets the recorded calls and zeroes
    /// [`calls_after_exhaustion`](Self::calls_after_exhaustion). The usage stays.
    pub fn clear_calls(&self) {
        let mut state = lock(&self.state);
        state.log.clear();
        state.calls_after_exhaustion = 0;
    }

    /// The usage now (a period that ended under
    /// [`reset_after`](super::FakeMark2NotionBuilder::reset_after) is rolled over first).
    #[must_use]
    pub fn usage(&self) -> Usage {
        let mut state = lock(&self.state);
        state.account.roll(Instant::now());
        state.account.usage().clone()
    }

    /// Sets the calls counted this period (above the quota is allowed: the
    /// 429 body then reports it).
    pub fn set_used(&self, used: u64) -> &Self {
        lock(&self.state).account.set_used(used);
        self
    }

    /// Changes the quota (a plan change mid-period).
    pub fn set_quota(&self, quota: u64) -> &Self {
        lock(&self.state).account.set_quota(quota);
        self
    }

    /// A new billing period: the usage goes back to 0 (and a
    /// [`reset_after`](super::FakeMark2NotionBuilder::reset_after) period restarts now).
    pub fn reset_usage(&self) -> &Self {
        lock(&self.state).account.reset(Instant::now());
        self
    }

    /// Answers the next `n` authenticated requests (valid `x-api-key`) with
    /// 500 `Internal server error`, not counted against the quota. Replaces
    /// any earlier count; 0 cancels.
    pub fn fail_next(&self, n: u64) -> &Self {
        lock(&self.state).fail_next = n;
        self
    }

    /// How many injected 500s are still to come.
    #[must_use]
    pub fn pending_failures(&self) -> u64 {
        lock(&self.state).fail_next
    }

    /// Turns the outage on or off: while on, every authenticated request
    /// is answered 503 `Service unavailable` (not counted, and consuming no
    /// [`fail_next`](Self::fail_next)).
    pub fn outage(&self, on: bool) -> &Self {
        lock(&self.state).outage = on;
        self
    }

    /// Whether the outage is on.
    #[must_use]
    pub fn is_outage(&self) -> bool {
        lock(&self.state).outage
    }
}

/// One request: read the body (up to [`MAX_BODY`]), answer, record. The one
/// implementation behind the TCP server and the in-process service; it never
/// fails and never panics.
pub(crate) async fn handle<B>(
    handle: &Mark2NotionHandle,
    request: Request<B>,
) -> Response<Full<Bytes>>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let at = Instant::now();
    let after_exhaustion = {
        let mut state = lock(&handle.state);
        state.account.roll(at);
        state.account.usage().is_exhausted()
    };
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => RequestBody::Read(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => RequestBody::TooLarge,
        Err(error) => {
            tracing::debug!(target: "bulwark_testkit", %error, "reading a Mark2Notion request body failed");
            RequestBody::Unreadable
        }
    };
    let api_key = api_key(&parts.headers);
    let path = parts.uri.path();
    let incoming = Incoming {
        method: &parts.method,
        path,
        api_key: api_key.as_deref(),
        body: &body,
    };
    let mut state = lock(&handle.state);
    state.account.roll(Instant::now());
    let answer = api::answer(&mut state, &incoming);
    let status = answer.status.as_u16();
    state.record(Call {
        method: parts.method.clone(),
        path: path.to_owned(),
        api_key: api_key.clone(),
        body: match body {
            RequestBody::Read(bytes) => bytes,
            RequestBody::TooLarge | RequestBody::Unreadable => Bytes::new(),
        },
        at,
        status,
        after_exhaustion,
    });
    drop(state);
    tracing::debug!(target: "bulwark_testkit", method = %parts.method, path, status, "Mark2Notion answered");
    answer.into_response()
}

/// `x-api-key`, `None` when absent or empty.
fn api_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-api-key")?;
    (!value.is_empty()).then(|| String::from_utf8_lossy(value.as_bytes()).into_owned())
}
