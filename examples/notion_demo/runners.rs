//! The two clients (a naive one and bulwark's preset) and running one arm of the workload
//! through either.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bulwark::{
    cache::{CacheBody, CacheStatus},
    http::{BoxError, BufferedBody, CircuitOpen, RateLimited},
    notion::DEFAULT_NOTION_VERSION,
};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use indicatif::ProgressBar;
use tokio::{
    task::JoinSet,
    time::{sleep_until, timeout_at, Instant},
};
use tower::{util::BoxCloneService, Service, ServiceBuilder, ServiceExt};

use crate::workload::{Op, Target, OPS_PER_SECOND};

/// The per-request timeout of the bare client, the same as the preset's per-attempt timeout.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What the workload keeps of an answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    /// bulwark's stale cache answered with its last good copy.
    pub(crate) stale: bool,
    /// bulwark's cache shared another identical request's upstream answer (coalescing).
    pub(crate) shared: bool,
}

pub(crate) type Svc = BoxCloneService<Request<BufferedBody>, Answer, BoxError>;

/// A naive integration: hyper-util's client, a timeout, the token and `Notion-Version` on
/// every request, no retries.
pub(crate) fn bare(token: &str) -> Result<Svc, BoxError> {
    let mut auth = HeaderValue::try_from(format!("Bearer {token}"))?;
    auth.set_sensitive(true);
    let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let read = client
        .map_err(BoxError::from)
        .and_then(|res: Response<Incoming>| async move {
            let status = res.status();
            res.into_body().collect().await?;
            Ok::<_, BoxError>(Answer {
                status,
                stale: false,
                shared: false,
            })
        });
    Ok(ServiceBuilder::new()
        .map_request(move |mut req: Request<BufferedBody>| {
            let headers = req.headers_mut();
            headers.insert(header::AUTHORIZATION, auth.clone());
            headers.insert(
                "notion-version",
                HeaderValue::from_static(DEFAULT_NOTION_VERSION),
            );
            req
        })
        .timeout(REQUEST_TIMEOUT)
        .service(read)
        .boxed_clone())
}

/// The preset's service (`layer.layer(client)`), reduced to an [`Answer`].
pub(crate) fn with_bulwark<S>(notion: S) -> Svc
where
    S: Service<
            Request<BufferedBody>,
            Response = Response<CacheBody<BufferedBody>>,
            Error = BoxError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    notion
        .and_then(|res: Response<CacheBody<BufferedBody>>| async move {
            let status = res.status();
            let stale = matches!(
                res.extensions().get::<CacheStatus>(),
                Some(CacheStatus::Stale { .. })
            );
            // `Cache-Status: bulwark; fwd=uri-miss; collapsed`: a follower of a coalesced miss.
            let shared = res
                .headers()
                .get("cache-status")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("collapsed"));
            res.into_body().collect().await?;
            Ok(Answer {
                status,
                stale,
                shared,
            })
        })
        .boxed_clone()
}

/// One operation's outcome.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) op: Op,
    /// When it started, from the start of the run.
    pub(crate) at: Duration,
    pub(crate) ok: bool,
    pub(crate) stale: bool,
    pub(crate) shared: bool,
    pub(crate) latency: Duration,
    /// Why it failed: a status, or the error's kind.
    pub(crate) failure: Option<String>,
}

/// Live counts for the progress display.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) done: AtomicUsize,
    pub(crate) failed: AtomicUsize,
}

/// What one arm did.
#[derive(Debug)]
pub(crate) struct ArmRun {
    pub(crate) outcomes: Vec<Outcome>,
    /// Operations still in flight at the drain cap, abandoned.
    pub(crate) unfinished: usize,
}

/// Starts every operation at its time, waits for the answers until `deadline`, abandons the
/// rest.
pub(crate) async fn run_arm(
    svc: Svc,
    target: Arc<Target>,
    ops: Arc<Vec<Op>>,
    start: Instant,
    deadline: Instant,
    live: Arc<Live>,
    bar: ProgressBar,
) -> ArmRun {
    let every = Duration::from_secs(1) / OPS_PER_SECOND;
    let mut tasks = JoinSet::new();
    let mut outcomes = Vec::with_capacity(ops.len());
    for (i, &op) in ops.iter().enumerate() {
        sleep_until(start + every * u32::try_from(i).unwrap_or(u32::MAX)).await;
        while let Some(joined) = tasks.try_join_next() {
            outcomes.extend(joined.ok());
        }
        let svc = svc.clone();
        let target = Arc::clone(&target);
        let live = Arc::clone(&live);
        let bar = bar.clone();
        tasks.spawn(async move {
            let began = Instant::now();
            let answer = match target.request(op) {
                Ok(req) => svc.oneshot(req).await,
                Err(error) => Err(error.into()),
            };
            let latency = began.elapsed();
            let (ok, stale, shared, failure) = match answer {
                Ok(a) if a.status.is_success() => (true, a.stale, a.shared, None),
                Ok(a) => (
                    false,
                    a.stale,
                    a.shared,
                    Some(a.status.as_u16().to_string()),
                ),
                Err(error) => (false, false, false, Some(error_kind(&error))),
            };
            live.done.fetch_add(1, Ordering::Relaxed);
            if !ok {
                live.failed.fetch_add(1, Ordering::Relaxed);
            }
            bar.inc(1);
            Outcome {
                op,
                at: began - start,
                ok,
                stale,
                shared,
                latency,
                failure,
            }
        });
    }
    loop {
        match timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(joined)) => outcomes.extend(joined.ok()),
            Ok(None) => break,
            Err(_elapsed) => break,
        }
    }
    let unfinished = tasks.len();
    tasks.abort_all();
    ArmRun {
        outcomes,
        unfinished,
    }
}

/// Why an operation failed when the breaker refused it.
pub(crate) const CIRCUIT_OPEN: &str = "circuit open";

/// A short name for why a request failed without an HTTP answer.
pub(crate) fn error_kind(error: &BoxError) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&**error);
    while let Some(e) = source {
        if e.is::<CircuitOpen>() {
            return CIRCUIT_OPEN.to_owned();
        }
        if e.is::<RateLimited>() {
            return "bucket wait too long".to_owned();
        }
        if e.is::<tower::timeout::error::Elapsed>() {
            return "timeout".to_owned();
        }
        source = e.source();
    }
    "connection error".to_owned()
}
