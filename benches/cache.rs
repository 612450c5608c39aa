//! Response caches side by side: the live path (miss + store), a fresh hit, and memory per
//! entry.
//!
//! The inner service answers `200` at once (`service_fn` returning a ready
//! `Response<BufferedBody>`) with a 1 KiB body allocated per call (as a body read from the
//! network is), `Content-Type`, `Content-Length` and a `Cache-Control` that matches the group.
//! The request is a `GET` `Request<BufferedBody>` with an `Authorization` header, the same
//! URL every time, made outside the measured part (`iter_batched` with
//! `BatchSize::LargeInput`).
//!
//! Every iteration is `ready()` + `call(request)` + awaiting the response, driven by
//! `now_or_never` for every entry of both groups (no executor per iteration): each service
//! here completes at once, boxed miss paths included (`http-cache`'s `moka::future::Cache` is
//! in memory). A tokio runtime is entered once, outside the measured loop, as a real client
//! is. Response bodies are dropped unread.
//!
//! Group `cache_live_path` (`Cache-Control: max-age=0`): every call goes to the upstream and
//! stores the answer.
//!
//! * `bare` — the inner service alone;
//! * `bulwark` — [`StaleCacheLayer::new`] (always live by default; every success is stored);
//! * `tower_resilience` — `tower_resilience_cache::CacheLayer`, keyed on method, URI and
//!   `Authorization`, with a TTL of zero, so each call finds the old entry expired, removes
//!   it, calls the upstream and stores the clone of the response;
//! * `http_cache` — `http_cache_tower::HttpCacheLayer` with a `MokaManager` (private-cache
//!   semantics, `shared: false`, as a client cache): the stored copy is stale at once, so each
//!   call revalidates upstream and stores the new answer (postcard-serialised).
//!
//! Group `cache_fresh_hit` (`Cache-Control: max-age=3600`): one warm-up call, then every
//! measured call is a fresh hit. `bare` (the upstream call itself) for reference; `bulwark`
//! with `.fresh_for(1 h)`; `tower_resilience` with a 1 h TTL; `http_cache` as above.
//!
//! Memory (printed on stderr before the groups, not a criterion measurement): 10 000
//! distinct URLs stored with 1 KiB bodies; bytes per entry from each cache's own count where
//! it has one, and the growth of the process's resident set (`/proc/self/statm`) divided by
//! the entries. Every cache is kept alive until all are measured, so one's freed pages are
//! not reused by the next.
//!
//! ```text
//! cargo bench --bench cache -- --warm-up-time 1 --measurement-time 3
//! ```

use std::{
    convert::Infallible,
    future::{ready, Ready},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use bulwark::cache::StaleCacheLayer;
use bulwark_http::BufferedBody;
use criterion::{BatchSize, Criterion};
use futures_util::FutureExt;
use http::{header, HeaderValue, Method, Request, Response, Uri};
use http_cache::{CacheOptions, HttpCacheOptions, MokaCache, MokaManager};
use http_cache_tower::HttpCacheLayer;
use tower::{service_fn, Layer, Service, ServiceExt};

type Req = Request<BufferedBody>;
type Res = Response<BufferedBody>;

/// tower-resilience's key: method, URI and `Authorization`.
type TrKey = (Method, Uri, Option<HeaderValue>);

/// Body size of every response.
const BODY: usize = 1024;

/// Entries stored for the memory report.
const ENTRIES: usize = 10_000;

/// Upstream calls, per group, to check that each entry takes the intended path.
static LIVE_CALLS: AtomicU64 = AtomicU64::new(0);
static HIT_CALLS: AtomicU64 = AtomicU64::new(0);
static MEM_CALLS: AtomicU64 = AtomicU64::new(0);

/// The inner service: a `200` at once, with a freshly allocated 1 KiB body.
fn inner(
    cache_control: &'static str,
    calls: &'static AtomicU64,
) -> impl Service<Req, Response = Res, Error = Infallible, Future = Ready<Result<Res, Infallible>>>
       + Clone
       + Send
       + 'static {
    service_fn(move |_req: Req| {
        calls.fetch_add(1, Ordering::Relaxed);
        let res = Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, BODY)
            .header(header::CACHE_CONTROL, cache_control)
            .body(BufferedBody::from(vec![b'x'; BODY]))
            .expect("valid response");
        ready(Ok(res))
    })
}

fn request(url: &str) -> Req {
    Request::get(url)
        .header(header::AUTHORIZATION, "Bearer secret_0123456789abcdef")
        .header(header::ACCEPT, "application/json")
        .body(BufferedBody::empty())
        .expect("valid request")
}

/// `ready()` + `call()` + await, without an executor: every service here answers at once.
fn drive<S>(svc: &mut S, req: Req) -> S::Response
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    async move { svc.ready().await?.call(req).await }
        .now_or_never()
        .expect("every service here answers at once")
        .expect("the inner service never fails")
}

fn tower_resilience_layer(
    ttl: Duration,
    max_size: usize,
) -> tower_resilience_cache::CacheLayer<Req, TrKey> {
    tower_resilience_cache::CacheLayer::builder()
        .max_size(max_size)
        .ttl(ttl)
        .key_extractor(|req: &Req| {
            (
                req.method().clone(),
                req.uri().clone(),
                req.headers().get(header::AUTHORIZATION).cloned(),
            )
        })
        .build()
        .expect("key extractor set")
}

fn http_cache_layer(capacity: u64) -> HttpCacheLayer<MokaManager> {
    let options = HttpCacheOptions {
        cache_options: Some(CacheOptions {
            shared: false,
            ..CacheOptions::default()
        }),
        ..HttpCacheOptions::default()
    };
    HttpCacheLayer::with_options(MokaManager::new(MokaCache::new(capacity)), options)
}

/// Calls `svc` `n` times with the same request; returns the upstream calls made.
fn upstream_calls<S>(svc: &mut S, url: &str, n: u64, calls: &AtomicU64) -> u64
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    let before = calls.load(Ordering::Relaxed);
    for _ in 0..n {
        drop(drive(svc, request(url)));
    }
    calls.load(Ordering::Relaxed) - before
}

const URL: &str = "https://api.notion.com/v1/pages/59833787-2cf9-4fdf-8782-e53db20768a5";

fn live_path(c: &mut Criterion) {
    let template = request(URL);
    let mut bare = inner("max-age=0", &LIVE_CALLS);
    let layer = StaleCacheLayer::new();
    let mut bulwark = layer.layer(inner("max-age=0", &LIVE_CALLS));
    let mut resilience =
        tower_resilience_layer(Duration::ZERO, ENTRIES).layer(inner("max-age=0", &LIVE_CALLS));
    let mut http_cache = http_cache_layer(ENTRIES as u64).layer(inner("max-age=0", &LIVE_CALLS));

    // Each entry must go upstream on every call.
    assert_eq!(upstream_calls(&mut bulwark, URL, 100, &LIVE_CALLS), 100);
    assert_eq!(upstream_calls(&mut resilience, URL, 100, &LIVE_CALLS), 100);
    assert_eq!(upstream_calls(&mut http_cache, URL, 100, &LIVE_CALLS), 100);
    let stats = layer.stats();
    assert_eq!((stats.misses, stats.stores), (100, 100), "{stats:?}");

    let mut group = c.benchmark_group("cache_live_path");
    group.bench_function("bare", |b| {
        b.iter_batched(
            || template.clone(),
            |req| drive(&mut bare, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("bulwark", |b| {
        b.iter_batched(
            || template.clone(),
            |req| drive(&mut bulwark, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("tower_resilience", |b| {
        b.iter_batched(
            || template.clone(),
            |req| drive(&mut resilience, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("http_cache", |b| {
        b.iter_batched(
            || template.clone(),
            |req| drive(&mut http_cache, req),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn fresh_hit(c: &mut Criterion) {
    let template = request(URL);
    let mut bare = inner("max-age=3600", &HIT_CALLS);
    let layer = StaleCacheLayer::new().fresh_for(Duration::from_secs(3600));
    let mut bulwark = layer.layer(inner("max-age=3600", &HIT_CALLS));
    let mut resilience = tower_resilience_layer(Duration::from_secs(3600), ENTRIES)
        .layer(inner("max-age=3600", &HIT_CALLS));
    let mut http_cache = http_cache_layer(ENTRIES as u64).layer(inner("max-age=3600", &HIT_CALLS));

    // One warm-up call each, then hits only.
    assert_eq!(upstream_calls(&mut bulwark, URL, 100, &HIT_CALLS), 1);
    assert_eq!(upstream_calls(&mut resilience, URL, 100, &HIT_CALLS), 1);
    assert_eq!(upstream_calls(&mut http_cache, URL, 100, &HIT_CALLS), 1);
    assert_eq!(layer.stats().hits, 99);

    let mut group = c.benchmark_group("cache_fresh_hit");
    group.bench_function("bare", |b| {
        b.iter_batched(
            || template.clone(),
            |req| drive(&mut bare, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("bulwark", |b| {
        b.iter_batched(
            || template.clone(),
            |req| drive(&mut bulwark, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("tower_resilience", |b| {
        b.iter_batched(
            || template.clone(),
            |req| drive(&mut resilience, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("http_cache", |b| {
        b.iter_batched(
            || template.clone(),
            |req| drive(&mut http_cache, req),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

/// Resident set size in bytes, from `/proc/self/statm` (0 where there is none).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Stores `ENTRIES` distinct URLs through `svc`; returns the RSS growth per entry.
fn fill<S>(svc: &mut S) -> u64
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    let urls: Vec<String> = (0..ENTRIES)
        .map(|i| format!("https://api.notion.com/v1/pages/{i:08}"))
        .collect();
    let before = rss();
    let calls = MEM_CALLS.load(Ordering::Relaxed);
    for url in &urls {
        drop(drive(svc, request(url)));
    }
    assert_eq!(MEM_CALLS.load(Ordering::Relaxed) - calls, ENTRIES as u64);
    rss().saturating_sub(before) / ENTRIES as u64
}

fn memory() {
    let room = 2 * ENTRIES as u64;
    let layer = StaleCacheLayer::new().max_entries(room).max_bytes(1 << 30);
    let mut bulwark = layer.layer(inner("max-age=3600", &MEM_CALLS));
    let bulwark_rss = fill(&mut bulwark);
    let stats = layer.stats();
    eprintln!(
        "memory bulwark: {} entries, stats().bytes / entries = {} B, RSS growth / entry = {} B",
        stats.entries,
        stats.bytes / stats.entries.max(1),
        bulwark_rss,
    );

    let mut resilience = tower_resilience_layer(Duration::from_secs(3600), 2 * ENTRIES)
        .layer(inner("max-age=3600", &MEM_CALLS));
    let resilience_rss = fill(&mut resilience);
    eprintln!("memory tower_resilience: {ENTRIES} entries (no byte count), RSS growth / entry = {resilience_rss} B");

    let manager = MokaManager::new(MokaCache::new(room));
    let options = HttpCacheOptions {
        cache_options: Some(CacheOptions {
            shared: false,
            ..CacheOptions::default()
        }),
        ..HttpCacheOptions::default()
    };
    let mut http_cache = HttpCacheLayer::with_options(manager.clone(), options)
        .layer(inner("max-age=3600", &MEM_CALLS));
    let http_rss = fill(&mut http_cache);
    manager.cache.run_pending_tasks().now_or_never();
    let serialised: u64 = manager.cache.iter().map(|(_, v)| v.len() as u64).sum();
    let n = manager.cache.entry_count();
    eprintln!(
        "memory http_cache: {n} entries, serialised bytes / entry = {} B, RSS growth / entry = {http_rss} B",
        serialised / n.max(1),
    );
    drop((bulwark, resilience, http_cache));
}

// `criterion_main!` by hand: `criterion_group!` makes an undocumented `pub fn`.
fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    memory();
    let mut c = Criterion::default().configure_from_args();
    live_path(&mut c);
    fresh_hit(&mut c);
    c.final_summary();
}
