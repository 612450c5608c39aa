//! The HTTP/1.1 server: accepting connections, reading requests, recording
//! them, applying faults and latency, and dropping connections on demand.
//!
//! Served with hyper directly (not axum) so that a service error can close
//! the connection without any response: that is how
//! [`Fault::DropConnection`] works.

use std::collections::HashSet;
use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::{self, ApiRequest};
use crate::bucket::Buckets;
use crate::control;
use crate::fault::{Fault, FaultHandle};
use crate::lock;
use crate::record::{Log, RecordedRequest};
use crate::status::StatusPage;
use crate::store::Store;
use crate::wire::{
    cloudflare_html, error_response, new_id, plain_json, rate_limited, status_error,
    validation_error, Body, REQUEST_ID_HEADER,
};

/// The largest request body read (Notion's own limit is 500 KB).
const MAX_BODY: usize = 4 * 1024 * 1024;
/// How long `shutdown` lets in-flight requests finish.
const GRACE: Duration = Duration::from_secs(1);

/// Everything the connections share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) faults: FaultHandle,
    /// Accepted tokens; `None` accepts any non-empty bearer token.
    pub(crate) tokens: Option<HashSet<String>>,
    pub(crate) buckets: Buckets,
    pub(crate) store: Mutex<Store>,
    pub(crate) log: Mutex<Log>,
    pub(crate) status: Mutex<StatusPage>,
}

/// The service error that makes hyper close the connection without an answer
/// (in process: the error the caller gets instead of a response).
#[derive(Debug)]
pub(crate) struct ConnectionDropped;

impl fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FakeNotion dropped the connection")
    }
}

impl Error for ConnectionDropped {}

/// Accepts connections until `shutdown` turns true (or its sender goes),
/// then lets in-flight requests finish for up to a second. Every connection
/// task lives in a `JoinSet` owned here, so aborting this task ends them all.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let connection_shutdown = shutdown.clone();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared), connection_shutdown.clone()));
                }
                Err(error) => {
                    tracing::warn!(target: "bulwark_testkit", %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(GRACE, drain).await.is_err() {
        tracing::debug!(target: "bulwark_testkit", "aborting connections still open after the grace period");
    }
    // Dropping `connections` aborts whatever is left.
}

/// Resolves once shutdown is requested (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped: that is a stop too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Best effort: small answers should not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| handle(Arc::clone(&shared), request));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(target: "bulwark_testkit", %error, "connection closed with an error");
    }
}

/// The bearer token of `Authorization: Bearer <token>`, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// One request: read, record, answer (or drop), fill in the record. The one
/// implementation behind the TCP server and [`InProcessNotion`](crate::InProcessNotion).
pub(crate) async fn handle<B>(
    shared: Arc<Shared>,
    request: Request<B>,
) -> Result<Response<Body>, ConnectionDropped>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    if control::is_control(request.uri().path()) {
        return Ok(answer_control(&shared, request).await);
    }
    let at = Instant::now();
    let received = SystemTime::now();
    let (parts, body) = request.into_parts();
    let token = bearer(&parts.headers);
    let (body, too_large) = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => (Bytes::new(), true),
        Err(error) => {
            tracing::debug!(target: "bulwark_testkit", %error, "reading the request body failed");
            (Bytes::new(), false)
        }
    };
    let record = RecordedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        token: token.clone(),
        at,
        received,
        headers: parts.headers.clone(),
        body: body.clone(),
        status: 0,
        request_id: None,
    };
    let seq = lock(&shared.log).push(record);
    let answer = respond(&shared, &parts, token.as_deref(), &body, too_large).await;
    match answer {
        Some(response) => {
            let status = response.status().as_u16();
            let request_id = response
                .headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            lock(&shared.log).answered(seq, status, request_id);
            tracing::debug!(target: "bulwark_testkit", method = %parts.method, path = parts.uri.path(), status, "answered");
            Ok(response)
        }
        None => {
            tracing::debug!(target: "bulwark_testkit", method = %parts.method, path = parts.uri.path(), "dropping the connection");
            Err(ConnectionDropped)
        }
    }
}

/// A `/_fake/*` control request: answered at once, never recorded, delayed,
/// rate-limited or faulted.
async fn answer_control<B>(shared: &Shared, request: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, control::MAX_BODY)
        .collect()
        .await
        .ok()
        .map(http_body_util::Collected::to_bytes);
    let response = control::handle(
        &shared.faults,
        &parts.method,
        parts.uri.path(),
        body.as_ref(),
    );
    tracing::debug!(target: "bulwark_testkit", method = %parts.method, path = parts.uri.path(), status = response.status().as_u16(), "control request");
    response
}

/// The answer to one request, or `None` to drop the connection.
async fn respond(
    shared: &Shared,
    parts: &Parts,
    token: Option<&str>,
    body: &Bytes,
    too_large: bool,
) -> Option<Response<Body>> {
    let latency = shared.faults.current_latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let request_id = new_id();
    let rid = request_id.as_str();
    let path = parts.uri.path();
    if path != "/v1" && !path.starts_with("/v1/") {
        return Some(non_api(shared, &parts.method, path, rid));
    }
    if shared.faults.is_outage() {
        return Some(status_error(503, rid));
    }
    let fault = shared.faults.next_fault(&parts.method, path);
    if let Some(fault) = &fault {
        tracing::debug!(target: "bulwark_testkit", ?fault, method = %parts.method, path, "injecting a fault");
    }
    let request = ApiRequest {
        method: &parts.method,
        path,
        query: parts.uri.query(),
        headers: &parts.headers,
        token,
        body,
        request_id: rid,
    };
    api::learn_properties(shared, &request);
    let real = |request: &ApiRequest<'_>| {
        if too_large {
            validation_error(
                format!("Request body too large: the limit is {MAX_BODY} bytes."),
                request.request_id,
            )
        } else {
            api::handle(shared, request)
        }
    };
    let answer = match fault {
        None | Some(Fault::Pass) => real(&request),
        Some(Fault::Status(status)) => status_error(status, rid),
        Some(Fault::StatusAfterApply(status)) => {
            let applied = real(&request);
            tracing::debug!(target: "bulwark_testkit", applied = applied.status().as_u16(), answered = status, "applied, answering an error");
            status_error(status, rid)
        }
        Some(Fault::RateLimited { retry_after_secs }) => rate_limited(retry_after_secs, rid),
        Some(Fault::DropConnection) => return None,
        Some(Fault::CloudflareHtml(status)) => cloudflare_html(status),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            real(&request)
        }
    };
    Some(answer)
}

/// Paths outside `/v1`: the status page, else `invalid_request_url`.
fn non_api(shared: &Shared, method: &Method, path: &str, rid: &str) -> Response<Body> {
    if path == "/api/v2/status.json" && (method == Method::GET || method == Method::HEAD) {
        let value = lock(&shared.status).to_json();
        return plain_json(StatusCode::OK, &value);
    }
    error_response(
        StatusCode::BAD_REQUEST,
        "invalid_request_url",
        "Invalid request URL.",
        rid,
    )
}
