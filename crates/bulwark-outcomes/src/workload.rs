//! The workload: what a real integration does, planned from the seed before the run.
//!
//! [`WORKERS`] workers each run their own list of operations one after the other, thinking
//! `U[0.5, 1.5)` s before each, so together they offer about 6 operations per second — twice
//! Notion's 3 requests/s. The lists depend only on the seed and the duration, so every policy
//! is asked to do exactly the same operations; a slow policy takes longer to get through them.

use std::{sync::Arc, time::Duration};

use bulwark_cache::CacheStatus;
use bulwark_http::{BoxError, BufferedBody};
use bulwark_testkit::SEED_DATA_SOURCE_ID;
use http::{header, Method, Request};
use serde_json::json;
use tokio::time::{sleep, timeout, Instant};
use tower::{Service, ServiceExt};

use crate::policy::{Req, Stack};

/// How many workers run at once.
pub const WORKERS: usize = 6;
/// How many seeded pages the reads pick from.
pub const READ_PAGES: usize = 20;
/// The bearer token every request carries (FakeNotion accepts only this one).
pub const TOKEN: &str = "secret_outcomes";
/// The `Notion-Version` every request carries.
pub const NOTION_VERSION: &str = "2025-09-03";
/// The longest one operation may take before the harness gives up on it (a bound on every
/// run: no policy under test waits this long).
pub const OPERATION_LIMIT: Duration = Duration::from_secs(600);

/// The operation mix, in percent.
const MIX: [(OpKind, u32); 5] = [
    (OpKind::ReadPage, 35),
    (OpKind::ReadMe, 15),
    (OpKind::Query, 15),
    (OpKind::Create, 20),
    (OpKind::Update, 15),
];

/// What one operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `GET /v1/pages/{id}` of one of the [`READ_PAGES`] seeded pages.
    ReadPage,
    /// `GET /v1/users/me`.
    ReadMe,
    /// `POST /v1/data_sources/{id}/query` (a read-only POST).
    Query,
    /// `POST /v1/pages` with a title no other operation uses.
    Create,
    /// `PATCH /v1/pages/{id}` setting a title no other operation uses, on a seeded page no
    /// other operation touches.
    Update,
}

impl OpKind {
    /// Whether the operation changes data.
    #[must_use]
    pub const fn is_write(self) -> bool {
        matches!(self, Self::Create | Self::Update)
    }
}

/// One planned operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Op {
    pub(crate) kind: OpKind,
    /// How long the worker thinks before it.
    pub(crate) think: Duration,
    /// Which read page ([`OpKind::ReadPage`]) or update target ([`OpKind::Update`]).
    pub(crate) target: usize,
    /// The title a write sets (unique per operation); empty for reads.
    pub(crate) title: String,
}

/// Every worker's operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) workers: Vec<Vec<Op>>,
    /// How many update operations there are (each has its own seeded page).
    pub(crate) updates: usize,
}

impl Plan {
    /// Plans `duration` worth of operations (about one per worker per second).
    pub(crate) fn new(seed: u64, duration: Duration) -> Self {
        let per_worker = usize::try_from(duration.as_secs()).unwrap_or(usize::MAX);
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        let mut updates = 0;
        let workers = (0..WORKERS)
            .map(|w| {
                let stream = 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(w as u64 + 1);
                let mut rng = fastrand::Rng::with_seed(seed ^ stream);
                (0..per_worker)
                    .map(|k| {
                        let think = Duration::from_millis(500 + rng.u64(0..1000));
                        let mut draw = rng.u32(0..total);
                        let kind = MIX
                            .iter()
                            .find(|(_, weight)| {
                                let hit = draw < *weight;
                                draw = draw.saturating_sub(*weight);
                                hit
                            })
                            .map_or(OpKind::ReadMe, |(kind, _)| *kind);
                        let (target, title) = match kind {
                            OpKind::ReadPage => (rng.usize(0..READ_PAGES), String::new()),
                            OpKind::ReadMe | OpKind::Query => (0, String::new()),
                            OpKind::Create => (0, format!("new w{w} #{k}")),
                            OpKind::Update => {
                                updates += 1;
                                (updates - 1, format!("upd w{w} #{k}"))
                            }
                        };
                        Op {
                            kind,
                            think,
                            target,
                            title,
                        }
                    })
                    .collect()
            })
            .collect();
        Self { workers, updates }
    }

    /// How many operations are planned.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.workers.iter().map(Vec::len).sum()
    }
}

/// The ids of the seeded pages: reads first, then one per update operation.
#[derive(Debug, Clone)]
pub(crate) struct PageIds {
    pub(crate) reads: Vec<String>,
    pub(crate) updates: Vec<String>,
}

/// What the caller saw of one operation.
#[derive(Debug, Clone)]
pub(crate) struct Done {
    pub(crate) kind: OpKind,
    pub(crate) title: String,
    /// The update's target page id (empty for other operations).
    pub(crate) page: String,
    /// A 2xx answer reached the caller.
    pub(crate) succeeded: bool,
    /// The answer was a stored copy served because the upstream failed (bulwark's cache).
    pub(crate) stale: bool,
    /// From the call to its answer.
    pub(crate) latency: Duration,
    /// Why it failed: the status, or what the error says.
    pub(crate) failure: Option<String>,
}

/// The request for one operation, as an SDK would send it.
fn request(op: &Op, ids: &PageIds, base: &str) -> Req {
    let (method, path, body) = match op.kind {
        OpKind::ReadPage => (
            Method::GET,
            format!("/v1/pages/{}", ids.reads[op.target]),
            None,
        ),
        OpKind::ReadMe => (Method::GET, "/v1/users/me".to_owned(), None),
        OpKind::Query => (
            Method::POST,
            format!("/v1/data_sources/{SEED_DATA_SOURCE_ID}/query"),
            Some(json!({"page_size": 10})),
        ),
        OpKind::Create => (
            Method::POST,
            "/v1/pages".to_owned(),
            Some(json!({
                "parent": {"data_source_id": SEED_DATA_SOURCE_ID},
                "properties": {"Name": {"title": [{"text": {"content": op.title}}]}}
            })),
        ),
        OpKind::Update => (
            Method::PATCH,
            format!("/v1/pages/{}", ids.updates[op.target]),
            Some(json!({
                "properties": {"Name": {"title": [{"text": {"content": op.title}}]}}
            })),
        ),
    };
    let builder = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header("notion-version", NOTION_VERSION);
    let built = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(BufferedBody::from(body.to_string())),
        None => builder.body(BufferedBody::empty()),
    };
    built.expect("the workload's requests are valid")
}

/// Runs one worker's operations, one after the other.
pub(crate) async fn worker(
    mut stack: Stack,
    ops: Vec<Op>,
    ids: Arc<PageIds>,
    base: &'static str,
) -> Vec<Done> {
    let mut done = Vec::with_capacity(ops.len());
    for op in ops {
        sleep(op.think).await;
        let req = request(&op, &ids, base);
        let started = Instant::now();
        let result = timeout(OPERATION_LIMIT, call(&mut stack, req)).await;
        let latency = started.elapsed();
        let (succeeded, stale, failure) = match result {
            Err(_) => (false, false, Some("harness limit".to_owned())),
            Ok(Err(error)) => (false, false, Some(describe_error(&*error))),
            Ok(Ok(res)) => {
                let stale = matches!(
                    res.extensions().get::<CacheStatus>(),
                    Some(CacheStatus::Stale { .. })
                );
                let status = res.status();
                let failure = (!status.is_success()).then(|| status.as_u16().to_string());
                (status.is_success(), stale, failure)
            }
        };
        let page = if op.kind == OpKind::Update {
            ids.updates[op.target].clone()
        } else {
            String::new()
        };
        done.push(Done {
            kind: op.kind,
            title: op.title,
            page,
            succeeded,
            stale,
            latency,
            failure,
        });
    }
    done
}

async fn call(stack: &mut Stack, req: Req) -> Result<http::Response<bytes::Bytes>, BoxError> {
    stack.ready().await?.call(req).await
}

/// A short name for why a call failed: the innermost error's message with its numbers
/// replaced by `N` (so `retry after 12.3s` and `retry after 4.1s` count as one reason), cut at
/// 60 characters.
pub(crate) fn describe_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    // Bounded: error chains are short, but a cyclic `source` must not hang the harness.
    for _ in 0..16 {
        match innermost.source() {
            Some(next) => innermost = next,
            None => break,
        }
    }
    let mut text = String::new();
    let mut in_number = false;
    for c in innermost.to_string().chars().take(60) {
        let digit = c.is_ascii_digit() || (in_number && c == '.');
        if !digit {
            text.push(c);
        } else if !in_number {
            text.push('N');
        }
        in_number = digit;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_depends_on_the_seed_only_and_follows_the_mix() {
        let plan = Plan::new(7, Duration::from_secs(200));
        assert_eq!(plan, Plan::new(7, Duration::from_secs(200)));
        assert_ne!(plan, Plan::new(8, Duration::from_secs(200)));
        assert_eq!(plan.len(), WORKERS * 200);
        let ops: Vec<&Op> = plan.workers.iter().flatten().collect();
        let share = |kind| ops.iter().filter(|op| op.kind == kind).count() * 100 / ops.len();
        assert!((30..=40).contains(&share(OpKind::ReadPage)));
        assert!((15..=25).contains(&share(OpKind::Create)));
        let mean_think = ops.iter().map(|op| op.think).sum::<Duration>() / ops.len() as u32;
        assert!(
            mean_think > Duration::from_millis(900) && mean_think < Duration::from_millis(1100)
        );
        // Every write has its own title; every update its own page.
        let mut titles: Vec<&str> = ops
            .iter()
            .filter(|op| op.kind.is_write())
            .map(|op| op.title.as_str())
            .collect();
        let writes = titles.len();
        titles.sort_unstable();
        titles.dedup();
        assert_eq!(titles.len(), writes);
        let mut targets: Vec<usize> = ops
            .iter()
            .filter(|op| op.kind == OpKind::Update)
            .map(|op| op.target)
            .collect();
        targets.sort_unstable();
        assert_eq!(targets, (0..plan.updates).collect::<Vec<_>>());
    }

    #[test]
    fn error_reasons_drop_their_numbers() {
        #[derive(Debug)]
        struct E(&'static str);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {}
        assert_eq!(
            describe_error(&E("circuit open: upstream failing, retry after 12.205s")),
            "circuit open: upstream failing, retry after Ns"
        );
        assert_eq!(
            describe_error(&E("rate limit exceeded.")),
            "rate limit exceeded."
        );
    }

    #[test]
    fn requests_look_like_an_sdks() {
        let ids = PageIds {
            reads: vec!["r0".into()],
            updates: vec!["u0".into()],
        };
        let op = |kind, title: &str| Op {
            kind,
            think: Duration::ZERO,
            target: 0,
            title: title.into(),
        };
        let create = request(&op(OpKind::Create, "new w0 #1"), &ids, "http://x");
        assert_eq!(create.method(), Method::POST);
        assert_eq!(create.uri(), "http://x/v1/pages");
        assert_eq!(create.headers()["authorization"], "Bearer secret_outcomes");
        assert_eq!(create.headers()["notion-version"], NOTION_VERSION);
        let body: serde_json::Value = serde_json::from_slice(create.body().as_ref()).unwrap();
        assert_eq!(
            body["properties"]["Name"]["title"][0]["text"]["content"],
            "new w0 #1"
        );
        let update = request(&op(OpKind::Update, "upd w0 #2"), &ids, "http://x");
        assert_eq!(
            (update.method(), update.uri().path()),
            (&Method::PATCH, "/v1/pages/u0")
        );
        let read = request(&op(OpKind::ReadPage, ""), &ids, "http://x");
        assert_eq!(read.uri().path(), "/v1/pages/r0");
        assert!(read.body().as_ref().is_empty());
    }
}
