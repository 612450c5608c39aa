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
//!
//! # The code
//!
//! `workload` (the operations and the requests they make), `faults` (what each FakeNotion
//! injects, and when), `runners` (the two clients, and one arm's run through either),
//! `progress` (bars on a terminal, lines without one) and `report` (the table and what it
//! means); this file reads the flags and runs the two modes.

mod faults;
mod progress;
mod report;
mod runners;
mod workload;

use std::{
    process::ExitCode,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bulwark::{
    cache::CacheBody,
    http::{BoxError, BufferedBody},
    notion::NotionLayer,
};
use bulwark_testkit::{FakeNotion, SEED_DATA_SOURCE_ID};
use clap::Parser;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde_json::{json, Value};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

use crate::{
    faults::{drive_faults, start_fake, Plan, TOKEN},
    progress::Progress,
    report::{print_footer, print_header, print_table, Column},
    runners::{bare, run_arm, with_bulwark},
    workload::{get, post, workload, Target},
};

/// How long requests still in flight when the run ends may take before they are abandoned.
const MAX_DRAIN: Duration = Duration::from_secs(35);

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

    print_header(args.seconds, args.seed, &plan, &ops);

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

/// The workload's target on a FakeNotion: its seeded pages and data source.
fn fake_target(fake: &FakeNotion) -> Target {
    Target {
        base_url: fake.url(),
        pages: fake.pages().into_iter().map(|p| p.id).collect(),
        data_source: Some(SEED_DATA_SOURCE_ID.to_owned()),
        title_property: "Name".to_owned(),
        run: "run".to_owned(),
    }
}

/// Only through bulwark, against a real Notion API.
async fn real(args: &Args, base_url: String) -> Result<(), BoxError> {
    let token = std::env::var("NOTION_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or("--base-url needs the token in the NOTION_TOKEN environment variable")?;
    let base_url = base_url.trim_end_matches('/').to_owned();
    let layer = NotionLayer::builder().token(token).build()?;
    let https = bulwark::notion::https_connector(HttpConnector::new())?;
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
