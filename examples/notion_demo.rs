//! The main demo: one workload of Notion reads and writes, run at the same time without and
//! with bulwark against two FakeNotions that inject the same faults, then a table side by side.
//!
//! ```sh
//! cargo run --example notion_demo                    # 60 s, no credentials, no network
//! cargo run --example notion_demo -- --seconds 20    # shorter: the outage shrinks with it
//! cargo run --example notion_demo -- --seed 42       # another workload and fault sequence
//! ```
//!
//! Each FakeNotion (on `127.0.0.1`, inside this process) injects, from the same seed:
//!
//! - Notion's rate limit: 3 requests/s per token, burst 3 (429 `rate_limited`, `Retry-After`);
//! - a 20 s outage (every request answered 503) starting at 35 % of the run; when `--seconds`
//!   is below 40 the outage lasts a third of the run instead;
//! - random 502s on 5 % of the requests, and on 20 % of the page creations a 502 sent *after*
//!   the page was created (the ambiguous failure that makes a blind retry duplicate a page);
//! - one Cloudflare-style HTML 502 (no Notion error body) at 15 % of the run.
//!
//! The workload is fixed in advance from `--seed`: 4 operations/s (above Notion's 3/s), about
//! 65 % `GET /v1/pages/{id}` over 5 pages, 25 % `POST /v1/data_sources/ds_1/query` (a
//! read-only POST) and 10 % `POST /v1/pages` with a unique title (at most 30). "Without
//! bulwark" is a hyper-util client with a 60 s timeout and no retries, as a naive integration
//! has; "with bulwark" is `NotionLayer::builder().token(..).build()` over the same client, with
//! the preset's defaults untouched. Both run at once, so the demo takes `--seconds` plus a
//! short drain (at most 35 s) for requests still waiting in bulwark's token bucket. Progress
//! shows as one bar per arm on a terminal, and as a line every 10 s without one (CI). A setup
//! failure (a port that cannot be bound, a bad flag) ends the demo with a message and exit
//! code 1 (2 for bad flags).
//!
//! # Against a real Notion
//!
//! ```sh
//! NOTION_TOKEN=secret_… cargo run --example notion_demo -- \
//!     --base-url https://api.notion.com --data-source <DATA_SOURCE_ID> --seconds 30
//! ```
//!
//! runs the workload only through bulwark, with no injected faults, and prints the bulwark
//! column. With `--data-source`, reads are pages found by a first query of that data source
//! and the query itself, and writes **create real pages** in it (at most 30, titled
//! `bulwark demo <run> #<n>`; delete them afterwards). Without `--data-source` the workload
//! is reads only: `GET /v1/users/me` and `POST /v1/search`.

use std::{
    collections::{BTreeMap, HashMap},
    process::ExitCode,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bulwark::{
    cache::{CacheBody, CacheStatus},
    http::{BoxError, BufferedBody, CircuitOpen, RateLimited},
    notion::{NotionLayer, DEFAULT_NOTION_VERSION},
};
use bulwark_testkit::{FakeNotion, Fault, Matcher, SEED_DATA_SOURCE_ID};
use clap::Parser;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use tokio::{
    task::JoinSet,
    time::{sleep, sleep_until, timeout_at, Instant},
};
use tower::{util::BoxCloneService, Layer, Service, ServiceBuilder, ServiceExt};

/// The token both FakeNotions accept.
const TOKEN: &str = "secret_demo";
/// Operations started per second, a little above Notion's 3 requests/s.
const OPS_PER_SECOND: u32 = 4;
/// The per-request timeout of the bare client, the same as the preset's per-attempt timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long requests still in flight when the run ends may take before they are abandoned.
const MAX_DRAIN: Duration = Duration::from_secs(35);
/// Pages read by `GET /v1/pages/{id}`.
const READ_PAGES: usize = 5;
/// The most pages the workload creates.
const MAX_WRITES: usize = 30;
/// The share of requests answered 502 before being processed.
const RANDOM_502: f64 = 0.05;
/// The share of page creations answered 502 after the page was created.
const WRITE_502_AFTER_APPLY: f64 = 0.2;
/// FakeNotion's rate limit, Notion's: requests per second and burst, per token.
const NOTION_RATE: (u32, u32) = (3, 3);

/// The same Notion workload with and without bulwark, side by side, against FakeNotion.
#[derive(Debug, Parser)]
#[command(name = "notion_demo")]
struct Args {
    /// How long the workload runs, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=3600))]
    seconds: u64,
    /// Seed of the workload and of the injected faults (same seed, same run).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Run only through bulwark against this Notion API, with no injected faults; the token
    /// comes from the NOTION_TOKEN environment variable.
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// With --base-url: the data source to query and to create pages in (real pages!);
    /// without it the workload is reads only.
    #[arg(long, value_name = "ID", requires = "base_url")]
    data_source: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.base_url.clone() {
        None => demo(&args).await,
        Some(base_url) => real(&args, base_url).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("notion_demo: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------------------------

/// One operation of the workload.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// `GET /v1/pages/{id}` of the n-th page.
    ReadPage(usize),
    /// `POST /v1/data_sources/{id}/query` (or `POST /v1/search` with no data source).
    Query,
    /// `POST /v1/pages`, the n-th write (its title is unique).
    Create(usize),
}

impl Op {
    const fn is_write(self) -> bool {
        matches!(self, Self::Create(_))
    }
}

/// The operations, one every `1 / OPS_PER_SECOND` s, drawn from `seed`.
fn workload(seconds: u64, seed: u64, writes: bool) -> Vec<Op> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut created = 0;
    (0..seconds * u64::from(OPS_PER_SECOND))
        .map(|_| {
            let roll = rng.u32(0..100);
            if writes && roll < 10 && created < MAX_WRITES {
                created += 1;
                Op::Create(created)
            } else if roll < 35 {
                Op::Query
            } else {
                Op::ReadPage(rng.usize(0..READ_PAGES))
            }
        })
        .collect()
}

/// Where the workload's requests go.
#[derive(Debug)]
struct Target {
    base_url: String,
    /// Pages to read; empty reads `users/me` instead.
    pages: Vec<String>,
    data_source: Option<String>,
    /// The data source's title property.
    title_property: String,
    /// Tells this run's page titles apart from earlier runs'.
    run: String,
}

impl Target {
    fn title(&self, n: usize) -> String {
        format!("bulwark demo {} #{n}", self.run)
    }

    fn request(&self, op: Op) -> Result<Request<BufferedBody>, http::Error> {
        let url = |path: &str| format!("{}/v1/{path}", self.base_url);
        match (op, &self.data_source) {
            (Op::ReadPage(n), _) if !self.pages.is_empty() => {
                let id = &self.pages[n % self.pages.len()];
                get(&url(&format!("pages/{id}")))
            }
            (Op::ReadPage(_), _) => get(&url("users/me")),
            (Op::Query, Some(ds)) => post(
                &url(&format!("data_sources/{ds}/query")),
                &json!({ "page_size": 10 }),
            ),
            (Op::Query, None) => post(&url("search"), &json!({ "page_size": 10 })),
            (Op::Create(n), Some(ds)) => post(
                &url("pages"),
                &json!({
                    "parent": { "data_source_id": ds },
                    "properties": {
                        self.title_property.as_str(): {
                            "title": [{ "text": { "content": self.title(n) } }]
                        }
                    }
                }),
            ),
            (Op::Create(_), None) => get(&url("users/me")),
        }
    }
}

fn get(url: &str) -> Result<Request<BufferedBody>, http::Error> {
    Request::get(url).body(BufferedBody::empty())
}

fn post(url: &str, body: &Value) -> Result<Request<BufferedBody>, http::Error> {
    Request::post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(BufferedBody::from(body.to_string()))
}

// ---------------------------------------------------------------------------------------------
// The two clients
// ---------------------------------------------------------------------------------------------

/// What the workload keeps of an answer.
#[derive(Debug, Clone, Copy)]
struct Answer {
    status: StatusCode,
    /// bulwark's stale cache answered with its last good copy.
    stale: bool,
    /// bulwark's cache shared another identical request's upstream answer (coalescing).
    shared: bool,
}

type Svc = BoxCloneService<Request<BufferedBody>, Answer, BoxError>;

/// A naive integration: hyper-util's client, a timeout, the token and `Notion-Version` on
/// every request, no retries.
fn bare(token: &str) -> Result<Svc, BoxError> {
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
fn with_bulwark<S>(notion: S) -> Svc
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

// ---------------------------------------------------------------------------------------------
// Running one arm
// ---------------------------------------------------------------------------------------------

/// One operation's outcome.
#[derive(Debug)]
struct Outcome {
    op: Op,
    /// When it started, from the start of the run.
    at: Duration,
    ok: bool,
    stale: bool,
    shared: bool,
    latency: Duration,
    /// Why it failed: a status, or the error's kind.
    failure: Option<String>,
}

/// Live counts for the progress display.
#[derive(Debug, Default)]
struct Live {
    done: AtomicUsize,
    failed: AtomicUsize,
}

/// What one arm did.
#[derive(Debug)]
struct ArmRun {
    outcomes: Vec<Outcome>,
    /// Operations still in flight at the drain cap, abandoned.
    unfinished: usize,
}

/// Starts every operation at its time, waits for the answers until `deadline`, abandons the
/// rest.
async fn run_arm(
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
const CIRCUIT_OPEN: &str = "circuit open";

/// A short name for why a request failed without an HTTP answer.
fn error_kind(error: &BoxError) -> String {
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

// ---------------------------------------------------------------------------------------------
// The fault plan
// ---------------------------------------------------------------------------------------------

/// When the scripted faults happen, from the start of the run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    run: Duration,
    cloudflare_at: Duration,
    outage_from: Duration,
    outage_until: Duration,
    /// The outage is shorter than 20 s because the run is.
    scaled: bool,
}

impl Plan {
    fn new(seconds: u64) -> Self {
        let run = Duration::from_secs(seconds);
        let scaled = seconds < 40;
        let outage = if scaled {
            run / 3
        } else {
            Duration::from_secs(20)
        };
        let outage_from = run * 35 / 100;
        Self {
            run,
            cloudflare_at: run * 15 / 100,
            outage_from,
            outage_until: outage_from + outage,
            scaled,
        }
    }

    fn phase(&self, elapsed: Duration) -> &'static str {
        if elapsed >= self.run {
            "draining"
        } else if elapsed >= self.outage_until {
            "after the outage"
        } else if elapsed >= self.outage_from {
            "OUTAGE: every request 503"
        } else {
            "normal"
        }
    }
}

/// A FakeNotion with Notion's rate limit, `READ_PAGES` pages and the seeded random faults;
/// the outage and the Cloudflare 502 are switched on at their times by [`drive_faults`].
async fn start_fake(seed: u64) -> Result<FakeNotion, BoxError> {
    let fake = FakeNotion::builder()
        .tokens([TOKEN])
        .rate_limit(NOTION_RATE.0, NOTION_RATE.1)
        .seed_pages(READ_PAGES)
        .start()
        .await
        .map_err(|e| format!("starting FakeNotion on 127.0.0.1: {e}"))?;
    let faults = fake.faults();
    faults.failure_ratio(RANDOM_502, seed);
    let mut rng = fastrand::Rng::with_seed(seed.rotate_left(17) ^ 0x0057_5249_5445);
    let writes: Vec<Fault> = (0..2 * MAX_WRITES)
        .map(|_| {
            if rng.f64() < WRITE_502_AFTER_APPLY {
                Fault::StatusAfterApply(502)
            } else {
                Fault::Pass
            }
        })
        .collect();
    faults.script_for(Matcher::new(Method::POST, "/v1/pages"), writes);
    Ok(fake)
}

/// Injects the timed faults into every fake at the same moments.
async fn drive_faults(fakes: Vec<bulwark_testkit::FaultHandle>, plan: Plan, start: Instant) {
    sleep_until(start + plan.cloudflare_at).await;
    for f in &fakes {
        f.script([Fault::CloudflareHtml(502)]);
    }
    sleep_until(start + plan.outage_from).await;
    for f in &fakes {
        f.outage(true);
    }
    sleep_until(start + plan.outage_until).await;
    for f in &fakes {
        f.outage(false);
    }
}

// ---------------------------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------------------------

/// One bar per arm; when the bars are hidden (no terminal, as in CI), a line every 10 s.
#[derive(Debug)]
struct Progress {
    multi: MultiProgress,
    arms: Vec<(&'static str, ProgressBar, Arc<Live>)>,
}

impl Progress {
    fn new(total: usize, names: &[&'static str]) -> Result<Self, BoxError> {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template(
            "{prefix:>16} [{bar:30.cyan/blue}] {pos:>4}/{len} ops  {msg}",
        )?
        .progress_chars("=> ");
        let arms = names
            .iter()
            .map(|&name| {
                let bar = multi.add(ProgressBar::new(total as u64));
                bar.set_style(style.clone());
                bar.set_prefix(name);
                (name, bar, Arc::new(Live::default()))
            })
            .collect();
        Ok(Self { multi, arms })
    }

    /// Updates the bars' messages until aborted.
    async fn tick(&self, plan: Plan, start: Instant, total: usize) {
        let mut next_line = Duration::from_secs(10);
        loop {
            let elapsed = start.elapsed();
            let phase = plan.phase(elapsed);
            for (_, bar, live) in &self.arms {
                bar.set_message(format!(
                    "{phase} · {} failed",
                    live.failed.load(Ordering::Relaxed)
                ));
            }
            if self.multi.is_hidden() && elapsed >= next_line {
                let arms: Vec<String> = self
                    .arms
                    .iter()
                    .map(|(name, _, live)| {
                        format!(
                            "{name}: {}/{total} done, {} failed",
                            live.done.load(Ordering::Relaxed),
                            live.failed.load(Ordering::Relaxed)
                        )
                    })
                    .collect();
                println!(
                    "[{:>4}s] {phase:<26} {}",
                    next_line.as_secs(),
                    arms.join(" | ")
                );
                next_line += Duration::from_secs(10);
            }
            sleep(Duration::from_millis(250)).await;
        }
    }

    fn finish(&self) {
        for (_, bar, live) in &self.arms {
            bar.finish_with_message(format!(
                "done · {} failed",
                live.failed.load(Ordering::Relaxed)
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/// One column of the table.
#[derive(Debug, Default)]
struct Column {
    reads: usize,
    writes: usize,
    upstream: Option<usize>,
    throttled: Option<usize>,
    retries: Option<u64>,
    opens: Option<u64>,
    stale: Option<usize>,
    shared: Option<usize>,
    failed_reads: usize,
    failed_writes: usize,
    /// Writes refused by the open breaker.
    refused_writes: usize,
    /// Of those, writes started after the outage was over.
    refused_after_outage: usize,
    /// Failed writes whose page exists all the same.
    landed_anyway: Option<usize>,
    created: Option<usize>,
    duplicates: Option<usize>,
    p50: Option<Duration>,
    p99: Option<Duration>,
    unfinished: usize,
    /// Failures by reason.
    why: BTreeMap<String, usize>,
}

impl Column {
    fn from_run(run: &ArmRun, ops: &[Op], plan: &Plan) -> Self {
        let mut col = Self {
            reads: ops.iter().filter(|op| !op.is_write()).count(),
            writes: ops.iter().filter(|op| op.is_write()).count(),
            unfinished: run.unfinished,
            ..Self::default()
        };
        let mut latencies: Vec<Duration> = Vec::with_capacity(run.outcomes.len());
        let (mut stale, mut shared) = (0, 0);
        let (mut read_ok, mut write_ok) = (0, 0);
        for o in &run.outcomes {
            latencies.push(o.latency);
            stale += usize::from(o.stale);
            shared += usize::from(o.shared);
            match (o.ok, o.op.is_write()) {
                (true, true) => write_ok += 1,
                (true, false) => read_ok += 1,
                (false, write) => {
                    let why = o.failure.clone().unwrap_or_default();
                    if write && why == CIRCUIT_OPEN {
                        col.refused_writes += 1;
                        if o.at >= plan.outage_until {
                            col.refused_after_outage += 1;
                        }
                    }
                    *col.why.entry(why).or_default() += 1;
                }
            }
        }
        // Abandoned operations never got an answer: they failed too.
        col.failed_reads = col.reads - read_ok;
        col.failed_writes = col.writes - write_ok;
        col.stale = Some(stale);
        col.shared = Some(shared);
        latencies.sort_unstable();
        col.p50 = percentile(&latencies, 50);
        col.p99 = percentile(&latencies, 99);
        col
    }

    /// Fills in what FakeNotion saw: calls, 429s, pages created, duplicates, and which failed
    /// writes landed all the same.
    fn observe(&mut self, fake: &FakeNotion, target: &Target, run: &ArmRun) {
        let log = fake.requests();
        self.upstream = Some(log.len());
        self.throttled = Some(log.iter().filter(|r| r.status == 429).count());
        let mut titles: HashMap<String, usize> = HashMap::new();
        let prefix = target.title(0);
        let prefix = prefix.trim_end_matches('0');
        for page in fake.pages() {
            if let Some(title) = page.title().filter(|t| t.starts_with(prefix)) {
                *titles.entry(title).or_default() += 1;
            }
        }
        self.created = Some(titles.values().sum());
        self.duplicates = Some(titles.values().map(|n| n.saturating_sub(1)).sum());
        self.landed_anyway = Some(
            run.outcomes
                .iter()
                .filter(|o| !o.ok)
                .filter_map(|o| match o.op {
                    Op::Create(n) => Some(n),
                    _ => None,
                })
                .filter(|&n| titles.contains_key(&target.title(n)))
                .count(),
        );
    }

    fn with_layer(&mut self, layer: &NotionLayer) {
        let stats = layer.stats();
        self.retries = Some(stats.retry.retries);
        self.opens = Some(stats.breaker.opens);
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "—".to_owned());
        let mut rows = vec![
            (
                "operations (reads + writes)",
                format!(
                    "{} ({} + {})",
                    self.reads + self.writes,
                    self.reads,
                    self.writes
                ),
            ),
            ("upstream calls", opt(self.upstream.map(|n| n.to_string()))),
            ("429s received", opt(self.throttled.map(|n| n.to_string()))),
            ("retries", opt(self.retries.map(|n| n.to_string()))),
            ("breaker opens", opt(self.opens.map(|n| n.to_string()))),
            (
                "reads sharing another's call",
                opt(self.shared.map(|n| n.to_string())),
            ),
            (
                "stale answers served",
                opt(self.stale.map(|n| n.to_string())),
            ),
            (
                "failed reads",
                format!("{} of {}", self.failed_reads, self.reads),
            ),
            (
                "failed writes",
                format!("{} of {}", self.failed_writes, self.writes),
            ),
            (
                "failed but applied (the page exists)",
                opt(self.landed_anyway.map(|n| n.to_string())),
            ),
            ("pages created", opt(self.created.map(|n| n.to_string()))),
            (
                "duplicated writes",
                opt(self.duplicates.map(|n| n.to_string())),
            ),
            (
                "latency p50 / p99",
                format!(
                    "{} / {}",
                    opt(self.p50.map(human)),
                    opt(self.p99.map(human))
                ),
            ),
        ];
        if self.unfinished > 0 {
            rows.push(("abandoned at the drain cap", self.unfinished.to_string()));
        }
        rows
    }

    fn why(&self) -> String {
        if self.why.is_empty() {
            return "none".to_owned();
        }
        self.why
            .iter()
            .map(|(why, n)| format!("{n}× {why}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get((last * p).div_ceil(100)).copied()
}

fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Prints a Markdown table (readable as it is in a terminal) with padded columns.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([headers[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| {
                let pad = w - c.chars().count();
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect();
        println!("| {} |", cells.join(" | "));
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            if i == 0 {
                "-".repeat(w + 2)
            } else {
                format!("{}:", "-".repeat(w + 1))
            }
        })
        .collect();
    println!("|{}|", rule.join("|"));
    for row in rows {
        line(row.clone());
    }
}

// ---------------------------------------------------------------------------------------------
// The two modes
// ---------------------------------------------------------------------------------------------

/// Both arms against FakeNotion.
async fn demo(args: &Args) -> Result<(), BoxError> {
    let plan = Plan::new(args.seconds);
    let ops = Arc::new(workload(args.seconds, args.seed, true));
    let total = ops.len();

    let bare_fake = start_fake(args.seed).await?;
    let bulwark_fake = start_fake(args.seed).await?;
    // The demo's creates carry a unique title: the preset settles an ambiguous create by
    // looking it up instead of reporting a failure that may have landed.
    let layer = NotionLayer::builder()
        .token(TOKEN)
        .dedupe_creates_by("Name")
        .build()?;
    let http = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let bulwark_svc = with_bulwark(layer.layer(http));
    let bare_svc = bare(TOKEN)?;
    let bare_target = Arc::new(fake_target(&bare_fake));
    let bulwark_target = Arc::new(fake_target(&bulwark_fake));

    print_header(args, &plan, &ops);

    let progress = Progress::new(total, &["without bulwark", "with bulwark"])?;
    let start = Instant::now();
    let deadline = start + plan.run + MAX_DRAIN;
    let faults = tokio::spawn(drive_faults(
        vec![bare_fake.faults(), bulwark_fake.faults()],
        plan,
        start,
    ));
    let (bare_run, bulwark_run) = {
        let ticker = progress.tick(plan, start, total);
        let arms = async {
            tokio::join!(
                run_arm(
                    bare_svc,
                    Arc::clone(&bare_target),
                    Arc::clone(&ops),
                    start,
                    deadline,
                    Arc::clone(&progress.arms[0].2),
                    progress.arms[0].1.clone(),
                ),
                run_arm(
                    bulwark_svc,
                    Arc::clone(&bulwark_target),
                    Arc::clone(&ops),
                    start,
                    deadline,
                    Arc::clone(&progress.arms[1].2),
                    progress.arms[1].1.clone(),
                ),
            )
        };
        tokio::select! {
            runs = arms => runs,
            () = ticker => unreachable!("the ticker never ends"),
        }
    };
    faults.abort();
    progress.finish();
    let took = start.elapsed();

    let mut bare_col = Column::from_run(&bare_run, &ops, &plan);
    bare_col.observe(&bare_fake, &bare_target, &bare_run);
    bare_col.retries = Some(0);
    let mut bulwark_col = Column::from_run(&bulwark_run, &ops, &plan);
    bulwark_col.observe(&bulwark_fake, &bulwark_target, &bulwark_run);
    bulwark_col.with_layer(&layer);
    bare_col.stale = None;
    bare_col.shared = None;
    bare_fake.shutdown().await;
    bulwark_fake.shutdown().await;

    println!();
    println!(
        "Same workload, same faults, {} s (finished after {:.1} s):",
        args.seconds,
        took.as_secs_f64()
    );
    println!();
    let rows: Vec<Vec<String>> = bare_col
        .rows()
        .into_iter()
        .zip(bulwark_col.rows())
        .map(|((name, bare), (_, bulwark))| vec![name.to_owned(), bare, bulwark])
        .collect();
    print_table(&["", "without bulwark", "with bulwark"], &rows);
    println!();
    println!("Why operations failed:");
    println!("  without bulwark: {}", bare_col.why());
    println!("  with bulwark:    {}", bulwark_col.why());
    println!();
    print_footer(&bare_col, &bulwark_col, &layer);
    Ok(())
}

fn fake_target(fake: &FakeNotion) -> Target {
    Target {
        base_url: fake.url(),
        pages: fake.pages().into_iter().map(|p| p.id).collect(),
        data_source: Some(SEED_DATA_SOURCE_ID.to_owned()),
        title_property: "Name".to_owned(),
        run: "run".to_owned(),
    }
}

fn print_header(args: &Args, plan: &Plan, ops: &[Op]) {
    let writes = ops.iter().filter(|op| op.is_write()).count();
    println!("bulwark notion_demo: the same workload without and with bulwark, at the same time.");
    println!(
        "  workload: {} operations in {} s ({OPS_PER_SECOND}/s: {} reads, {writes} writes), seed {}",
        ops.len(),
        args.seconds,
        ops.len() - writes,
        args.seed
    );
    println!(
        "  faults:   each FakeNotion allows {}/s per token (burst {}); {:.0} % random 502s;",
        NOTION_RATE.0,
        NOTION_RATE.1,
        RANDOM_502 * 100.0,
    );
    println!(
        "            {:.0} % of page creations answered 502 after the page was created;",
        WRITE_502_AFTER_APPLY * 100.0
    );
    println!(
        "            a Cloudflare HTML 502 at {:.0} s; an outage (every request 503) from {:.0} s to {:.0} s",
        plan.cloudflare_at.as_secs_f64(),
        plan.outage_from.as_secs_f64(),
        plan.outage_until.as_secs_f64(),
    );
    if plan.scaled {
        println!("            (a third of the run: shorter than 20 s because --seconds < 40)");
    }
    println!(
        "  clients:  without bulwark: hyper-util client, {} s timeout, no retries",
        REQUEST_TIMEOUT.as_secs()
    );
    println!(
        "            with bulwark: NotionLayer defaults (3 retries from 1 s; breaker at 5 failures"
    );
    println!(
        "            in a row or 50 % of 10 calls in 30 s, 1-4 s breaks; bucket 3/s per token;"
    );
    println!("            stale cache 5 min; creates deduplicated by their title: dedupe_creates_by(\"Name\"))");
    println!();
}

fn print_footer(bare: &Column, bulwark: &Column, layer: &NotionLayer) {
    let stats = layer.stats();
    let n = |v: Option<usize>| v.unwrap_or(0);
    let mut notes = vec![
        format!(
            "Reads: bulwark failed {} of {}, the bare client {}. {} bulwark answers were the last \
             good copy (marked stale: `Age`, and `Cache-Status` `fwd=stale`, or `hit; ttl=-N` \
             when refused unsent), served while FakeNotion failed or the breaker was open; {} \
             reads shared the upstream call of an identical read in flight.",
            bulwark.failed_reads,
            bulwark.reads,
            bare.failed_reads,
            n(bulwark.stale),
            n(bulwark.shared),
        ),
        format!(
            "Load: bulwark made {} upstream calls for {} operations, the bare client {}. 429s: {} \
             with bulwark (its bucket keeps to 3/s, a 429 pauses it), {} without. Its {} retries \
             repeated reads (GETs, read-only queries) after a 5xx and any request after a 429, \
             never a page creation blindly after a 5xx.",
            n(bulwark.upstream),
            bulwark.reads + bulwark.writes,
            n(bare.upstream),
            n(bulwark.throttled),
            n(bare.throttled),
            bulwark.retries.unwrap_or(0),
        ),
        format!(
            "Writes: {} duplicate pages with bulwark, {} without; {} writes reported failed \
             although the page exists with bulwark, {} without. A 502 after the page was created \
             is ambiguous: bulwark looks the page up by its title (dedupe_creates_by) and answers \
             with it when it exists, sends the create again only when it certainly does not; a \
             client that retried every 502 would have duplicated them.",
            n(bulwark.duplicates),
            n(bare.duplicates),
            n(bulwark.landed_anyway),
            n(bare.landed_anyway),
        ),
    ];
    if bulwark.refused_writes > 0 {
        let after = bulwark.refused_after_outage;
        notes.push(format!(
            "Breaker: it opened {} time(s) (now {}). While it was open {} writes were refused at \
             once, never sent (safe to retry later){}{}",
            bulwark.opens.unwrap_or(0),
            stats.breaker.state.as_str(),
            bulwark.refused_writes,
            if after > 0 {
                format!(
                    "; {after} of them came after FakeNotion was back, within the last break \
                     (1 s, doubling after each failed probe up to 4 s)"
                )
            } else {
                String::new()
            },
            if bulwark.failed_writes > bare.failed_writes {
                format!(
                    ". That is why bulwark failed more writes than the bare client ({} vs {}).",
                    bulwark.failed_writes, bare.failed_writes
                )
            } else {
                ".".to_owned()
            },
        ));
    }
    notes.push(format!(
        "Latency: bulwark's includes the wait for a token at 3/s ({} of {} admitted calls \
         waited); the bare client's fast answers include its errors.",
        stats.bucket.waited, stats.bucket.admitted
    ));
    println!("What it means:");
    for note in notes {
        print_wrapped(&note, 96);
    }
}

/// Prints `text` as a `- ` item wrapped at `width` columns.
fn print_wrapped(text: &str, width: usize) {
    let mut line = String::from("-");
    for word in text.split_whitespace() {
        if line.chars().count() + 1 + word.chars().count() > width {
            println!("{line}");
            line = String::from(" ");
        }
        line.push(' ');
        line.push_str(word);
    }
    println!("{line}");
}

/// Only through bulwark, against a real Notion API.
async fn real(args: &Args, base_url: String) -> Result<(), BoxError> {
    let token = std::env::var("NOTION_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or("--base-url needs the token in the NOTION_TOKEN environment variable")?;
    let base_url = base_url.trim_end_matches('/').to_owned();
    let layer = NotionLayer::builder().token(token).build()?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .wrap_connector(HttpConnector::new());
    let client = Client::builder(TokioExecutor::new()).build::<_, BufferedBody>(https);
    let svc = with_bulwark(layer.layer(client.clone()));

    // Setup through bulwark too: the data source's title property and a few pages to read.
    let mut target = Target {
        base_url,
        pages: Vec::new(),
        data_source: args.data_source.clone(),
        title_property: "Name".to_owned(),
        run: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string(),
    };
    if let Some(ds) = &args.data_source {
        let notion = layer.layer(client);
        let url = format!("{}/v1/data_sources/{ds}", target.base_url);
        let source = fetch_json(&notion, get(&url)?).await?;
        if let Some((name, _)) = source["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .find(|(_, p)| p["type"] == "title")
        {
            target.title_property.clone_from(name);
        }
        let found = fetch_json(
            &notion,
            post(&format!("{url}/query"), &json!({"page_size": 5}))?,
        )
        .await?;
        target.pages = found["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect();
    }
    let target = Arc::new(target);
    let ops = Arc::new(workload(
        args.seconds,
        args.seed,
        target.data_source.is_some(),
    ));
    let total = ops.len();
    println!(
        "bulwark notion_demo against {}: {total} operations in {} s, no injected faults{}",
        target.base_url,
        args.seconds,
        if target.data_source.is_some() {
            " (writes create real pages)"
        } else {
            " (reads only)"
        }
    );
    let plan = Plan {
        run: Duration::from_secs(args.seconds),
        cloudflare_at: Duration::MAX,
        outage_from: Duration::MAX,
        outage_until: Duration::MAX,
        scaled: false,
    };
    // The setup's calls are not the workload's.
    let admitted_before = layer.stats().bucket.admitted;
    let progress = Progress::new(total, &["with bulwark"])?;
    let start = Instant::now();
    let run = tokio::select! {
        run = run_arm(
            svc,
            Arc::clone(&target),
            Arc::clone(&ops),
            start,
            start + plan.run + MAX_DRAIN,
            Arc::clone(&progress.arms[0].2),
            progress.arms[0].1.clone(),
        ) => run,
        () = progress.tick(plan, start, total) => unreachable!("the ticker never ends"),
    };
    progress.finish();
    let mut col = Column::from_run(&run, &ops, &plan);
    col.with_layer(&layer);
    let admitted = layer.stats().bucket.admitted - admitted_before;
    col.upstream = Some(usize::try_from(admitted).unwrap_or(usize::MAX));
    col.created = Some(
        run.outcomes
            .iter()
            .filter(|o| o.ok && o.op.is_write())
            .count(),
    );
    println!();
    let rows: Vec<Vec<String>> = col
        .rows()
        .into_iter()
        .map(|(name, v)| vec![name.to_owned(), v])
        .collect();
    print_table(&["", "with bulwark"], &rows);
    println!();
    println!("Why operations failed: {}", col.why());
    Ok(())
}

/// Sends one setup request and parses its JSON, or says why not.
async fn fetch_json<S>(notion: &S, req: Request<BufferedBody>) -> Result<Value, BoxError>
where
    S: Service<
            Request<BufferedBody>,
            Response = Response<CacheBody<BufferedBody>>,
            Error = BoxError,
        > + Clone,
{
    let what = format!("{} {}", req.method(), req.uri().path());
    let res = notion
        .clone()
        .oneshot(req)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("{what}: {status}: {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(serde_json::from_slice(&body)?)
}
