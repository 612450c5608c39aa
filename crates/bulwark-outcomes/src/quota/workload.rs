//! The quota workload: Markdown notes converted by a few workers, planned from the seed.

use std::time::Duration;

use bulwark_http::{BoxError, BufferedBody, CircuitOpen, QuotaExhausted, RateLimited};
use bulwark_testkit::mark2notion::DEFAULT_API_KEY;
use http::{header, Method, Request, Response};
use serde_json::json;
use tokio::time::{sleep, timeout, Instant};
use tower::{Service, ServiceExt};

use crate::{
    policy::{Req, Stack},
    workload::{describe_error, OPERATION_LIMIT},
};

/// How many workers convert at once.
pub const QUOTA_WORKERS: usize = 3;

/// One planned conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Convert {
    /// How long the worker thinks before it.
    pub(crate) think: Duration,
    /// The Markdown to convert (unique per operation).
    pub(crate) markdown: String,
}

/// Every worker's conversions, and the quota that runs out a third of the way through them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuotaPlan {
    pub(crate) workers: Vec<Vec<Convert>>,
    /// Successful calls the fake allows: a third of the operations.
    pub(crate) quota: u64,
}

impl QuotaPlan {
    /// Plans `duration` worth of conversions (about one per worker per second).
    pub(crate) fn new(seed: u64, duration: Duration) -> Self {
        let per_worker = usize::try_from(duration.as_secs()).unwrap_or(usize::MAX);
        let workers: Vec<Vec<Convert>> = (0..QUOTA_WORKERS)
            .map(|w| {
                // Another stream than the Notion workload's, so the two plans differ.
                let stream = 0x6d32_6e5f_7175_6f74_u64.wrapping_mul(w as u64 + 1);
                let mut rng = fastrand::Rng::with_seed(seed ^ stream);
                (0..per_worker)
                    .map(|k| Convert {
                        think: Duration::from_millis(500 + rng.u64(0..1000)),
                        markdown: format!(
                            "# Note {w}-{k}\n\nWritten by worker {w}.\n\n- item {}\n- item {}\n",
                            rng.u32(0..100),
                            rng.u32(0..100)
                        ),
                    })
                    .collect()
            })
            .collect();
        let operations = workers.iter().map(Vec::len).sum::<usize>();
        Self {
            workers,
            quota: u64::try_from(operations / 3).unwrap_or(u64::MAX),
        }
    }

    /// How many operations are planned.
    pub(crate) fn len(&self) -> usize {
        self.workers.iter().map(Vec::len).sum()
    }
}

/// What the caller saw of one conversion.
#[derive(Debug, Clone)]
pub(crate) struct Converted {
    /// When the caller asked (after thinking).
    pub(crate) started: Instant,
    /// From the call to its answer.
    pub(crate) latency: Duration,
    /// Why it failed (`None`: a 2xx): `429 response`, `QuotaExhausted (local)`, ….
    pub(crate) failure: Option<String>,
}

/// `POST {base}/api/convert` with the default key, as Mark2Notion's docs send it.
fn request(convert: &Convert, base: &str) -> Req {
    Request::builder()
        .method(Method::POST)
        .uri(format!("{base}/api/convert"))
        .header("x-api-key", DEFAULT_API_KEY)
        .header(header::CONTENT_TYPE, "application/json")
        .body(BufferedBody::from(
            json!({ "markdown": convert.markdown }).to_string(),
        ))
        .expect("the workload's requests are valid")
}

/// Runs one worker's conversions, one after the other.
pub(crate) async fn worker(
    mut stack: Stack,
    converts: Vec<Convert>,
    base: &'static str,
) -> Vec<Converted> {
    let mut done = Vec::with_capacity(converts.len());
    for convert in converts {
        sleep(convert.think).await;
        let req = request(&convert, base);
        let started = Instant::now();
        let result = timeout(OPERATION_LIMIT, call(&mut stack, req)).await;
        let latency = started.elapsed();
        let failure = match result {
            Err(_) => Some("harness limit".to_owned()),
            Ok(Err(error)) => Some(describe(&*error)),
            Ok(Ok(res)) => {
                (!res.status().is_success()).then(|| format!("{} response", res.status().as_u16()))
            }
        };
        done.push(Converted {
            started,
            latency,
            failure,
        });
    }
    done
}

async fn call(stack: &mut Stack, req: Req) -> Result<Response<bytes::Bytes>, BoxError> {
    stack.ready().await?.call(req).await
}

/// bulwark's local refusals by type (`QuotaExhausted (local)`), anything else as the Notion
/// workload describes it.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut link = Some(error);
    // Bounded: error chains are short, but a cyclic `source` must not hang the harness.
    for _ in 0..16 {
        let Some(e) = link else { break };
        if e.is::<QuotaExhausted>() {
            return "QuotaExhausted (local)".to_owned();
        }
        if e.is::<CircuitOpen>() {
            return "CircuitOpen (local)".to_owned();
        }
        if e.is::<RateLimited>() {
            return "RateLimited (local)".to_owned();
        }
        link = e.source();
    }
    describe_error(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_depends_on_the_seed_and_spends_the_quota_a_third_of_the_way_in() {
        let plan = QuotaPlan::new(7, Duration::from_secs(300));
        assert_eq!(plan, QuotaPlan::new(7, Duration::from_secs(300)));
        assert_ne!(plan, QuotaPlan::new(8, Duration::from_secs(300)));
        assert_eq!((plan.len(), plan.quota), (900, 300));
        let mut notes: Vec<&str> = plan
            .workers
            .iter()
            .flatten()
            .map(|c| c.markdown.as_str())
            .collect();
        notes.sort_unstable();
        notes.dedup();
        assert_eq!(notes.len(), 900, "every note is its own");
        let req = request(&plan.workers[0][0], "http://m");
        assert_eq!(req.uri(), "http://m/api/convert");
        assert_eq!(req.headers()["x-api-key"], DEFAULT_API_KEY);
        let body: serde_json::Value = serde_json::from_slice(req.body().as_ref()).unwrap();
        assert!(body["markdown"]
            .as_str()
            .unwrap()
            .starts_with("# Note 0-0\n"));
    }

    #[test]
    fn local_refusals_are_named_by_type() {
        let quota: BoxError = Box::new(QuotaExhausted::new(None, Duration::from_secs(3600)));
        assert_eq!(describe(&*quota), "QuotaExhausted (local)");
    }
}
