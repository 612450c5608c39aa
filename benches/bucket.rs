//! Token-bucket rate limiters on the admitted path, side by side: per-call overhead, how one
//! bucket shared by two threads scales, and a keyed limiter over 10 000 keys.
//!
//! Every limiter is set so high it never runs dry during the bench (one token per
//! nanosecond, a burst of 10⁹ where the API has one): every call is admitted, so what is
//! measured is the limiter's own work on the path every request takes. The inner service
//! answers at once (`service_fn` returning a ready `Response<()>`).
//!
//! Group `bucket_admitted`: each iteration is `ready()` + `call(request)` + awaiting the
//! response, driven by `now_or_never` (no executor, no runtime per iteration), on one thread.
//! The request is made outside the measured part (`iter_batched` with
//! `BatchSize::LargeInput`, which keeps the batch vectors small).
//!
//! * `bare` — the inner service alone;
//! * `bulwark` — [`TokenBucketLayer::new`]`(Rate::per_second(1_000_000_000))` with a burst of
//!   10⁹;
//! * `governor_check` — `governor`'s direct limiter (`RateLimiter::direct`, a quota of
//!   10⁹ per second with a burst of 10⁹): its bare `check()`, no service around it, the floor
//!   any limiter has to be compared with (`bulwark − bare` against `governor_check`);
//! * `governor_service` — the same limiter behind a minimal hand-written tower `Service`
//!   ([`Governed`]): `check()`, then the inner service, a refusal as an error;
//! * `tower` — `tower::limit::RateLimitLayer::new(u64::MAX, 1 s)`: a fixed window per service
//!   instance (every clone has its own limit), never reached here;
//! * `tower_resilience` — `tower_resilience_ratelimiter::RateLimiterLayer::burst(10⁹, 10⁹)`,
//!   its token-bucket mode (the closest to ours): a `std::sync::Mutex` around the state, an
//!   `async` acquire and a boxed response future per call.
//!
//! Group `bucket_clock`: one read of each clock the limiters use — `tokio::time::Instant`
//! (ours, tower's and tower-resilience's, so paused-time tests work), `std::time::Instant`
//! (what tokio's reads when the clock was never paused), and governor's default clock
//! (`quanta`, the TSC).
//!
//! Group `bucket_two_threads`: the time for `N` = 100 000 calls on one OS thread, and for
//! the same `N` calls split over two OS threads (`std::thread::scope`), each thread owning
//! its own clone of a service made by the SAME layer (for governor, clones sharing one
//! `Arc<RateLimiter>`), so both threads draw from ONE bucket. Scaling is
//! `time(1 thread) / time(2 threads)`: 2.0 is perfect, 1.0 is none. A single bucket is one
//! atomic word in both limiters, so its cache line bounces between the cores: contention is
//! inherent to a shared limit; what a limiter can avoid is writing any *other* shared line
//! per call (reference counts, counters). Entries: `bare`, `bulwark`, `governor_check`,
//! `governor_service`. The threads are spawned once per sample and start together on a
//! barrier; the clock runs from the barrier to the last join, so a sample of `iters`
//! iterations is `iters * N` calls. Every entry is lock-free, so `now_or_never` drives them
//! as above.
//!
//! Group `bucket_keyed`: 10 000 keys, one bucket each, the key being the request's `u32`
//! body; each iteration takes the next key in turn (all of them are in the map after the
//! first round). Entries: `bulwark` ([`TokenBucketLayer::keyed`]`(|req| Some(*req.body()))`,
//! a bounded `moka` map that drops keys idle for the bucket's refill time, here 1 s) and
//! `governor_check_key` (`RateLimiter::keyed`, its default `DashMap` store, which is
//! unbounded; `check_key` alone, no service).
//!
//! Group `bucket_redis` (report only; needs `--features redis` and `redis-server` on PATH,
//! otherwise it is skipped with a note): a `redis-server` started on a free loopback port,
//! `ping` (a bare `PING` round trip on a multiplexed connection, the floor) and
//! `bulwark_redis` (one admitted call through the layer with a `RedisStore`: one `EVALSHA`
//! round trip), each iteration driven by `block_on` on a current-thread runtime with I/O.
//!
//! All entries run in one process, so their ratios are comparable on a noisy machine. A tokio
//! runtime is entered once, outside the measured loop, as a real client is.
//!
//! ```text
//! cargo bench --bench bucket -- --warm-up-time 1 --measurement-time 3
//! cargo bench --bench bucket --features redis -- --warm-up-time 1 --measurement-time 3 bucket_redis
//! ```

mod common;

use std::{
    convert::Infallible,
    future::{ready, Ready},
    hint::black_box,
    num::NonZeroU32,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bulwark::{
    bucket::{Rate, TokenBucketLayer},
    http::BoxError,
};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use futures_util::{
    future::{Either, MapErr},
    FutureExt, TryFutureExt,
};
use governor::{clock::Clock as _, DefaultDirectRateLimiter, Quota};
use http::{Request, Response};
use tower::{service_fn, Layer, Service, ServiceExt};

type Req = Request<()>;
type Res = Response<()>;

/// Calls per iteration of `bucket_two_threads`.
const N: u64 = 100_000;

/// Keys of `bucket_keyed`.
const KEYS: u32 = 10_000;

/// One token per nanosecond: never runs dry at the rates a bench reaches.
const RATE: u32 = 1_000_000_000;

/// The inner service: a `200` at once.
fn inner<B>() -> impl Service<
    Request<B>,
    Response = Res,
    Error = Infallible,
    Future = Ready<Result<Res, Infallible>>,
> + Clone
       + Send
       + 'static {
    service_fn(|_req: Request<B>| ready(Ok(Response::new(()))))
}

/// `ready()` + `call()` + await, without an executor: every service here is ready at once.
fn drive<S, B>(svc: &mut S, req: Request<B>) -> Res
where
    S: Service<Request<B>, Response = Res>,
    S::Error: std::fmt::Debug,
{
    async move { svc.ready().await?.call(req).await }
        .now_or_never()
        .expect("the inner service answers at once")
        .expect("every call is admitted")
}

/// `calls` calls through `svc`, each with its own request.
fn run<S>(mut svc: S, calls: u64)
where
    S: Service<Req, Response = Res>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..calls {
        drive(&mut svc, Request::new(()));
    }
}

/// Our layer, as high as it goes here.
fn bulwark_layer() -> TokenBucketLayer {
    TokenBucketLayer::new(Rate::per_second(RATE)).burst(RATE)
}

/// governor's quota, the same as ours.
fn quota() -> Quota {
    let rate = NonZeroU32::new(RATE).expect("non-zero");
    Quota::per_second(rate).allow_burst(rate)
}

/// A minimal tower `Service` around governor's direct limiter: `check()`, then the inner
/// service; a refusal is an error (as ours is).
#[derive(Clone)]
struct Governed<S> {
    limiter: Arc<DefaultDirectRateLimiter>,
    inner: S,
}

impl<S, B> Service<Request<B>> for Governed<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future =
        Either<MapErr<S::Future, fn(S::Error) -> BoxError>, Ready<Result<S::Response, BoxError>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.limiter.check() {
            Ok(()) => Either::Left(
                self.inner
                    .call(req)
                    .map_err(Into::into as fn(S::Error) -> BoxError),
            ),
            Err(_) => Either::Right(ready(Err("rate limited".into()))),
        }
    }
}

fn admitted(c: &mut Criterion) {
    let mut bare = inner();
    let mut bulwark = bulwark_layer().layer(inner());
    let governor = Arc::new(DefaultDirectRateLimiter::direct(quota()));
    let mut governed = Governed {
        limiter: Arc::new(DefaultDirectRateLimiter::direct(quota())),
        inner: inner(),
    };
    let mut tower =
        tower::limit::RateLimitLayer::new(u64::MAX, Duration::from_secs(1)).layer(inner());
    let mut resilience =
        tower_resilience_ratelimiter::RateLimiterLayer::burst(RATE as usize, RATE as usize)
            .build()
            .expect("valid settings")
            .layer(inner());

    let mut group = c.benchmark_group("bucket_admitted");
    group.bench_function("bare", |b| {
        b.iter_batched(
            || Request::new(()),
            |req| drive(&mut bare, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("bulwark", |b| {
        b.iter_batched(
            || Request::new(()),
            |req| drive(&mut bulwark, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("governor_check", |b| {
        b.iter(|| governor.check().expect("every call is admitted"));
    });
    group.bench_function("governor_service", |b| {
        b.iter_batched(
            || Request::new(()),
            |req| drive(&mut governed, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("tower", |b| {
        b.iter_batched(
            || Request::new(()),
            |req| drive(&mut tower, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("tower_resilience", |b| {
        b.iter_batched(
            || Request::new(()),
            |req| drive(&mut resilience, req),
            BatchSize::LargeInput,
        );
    });
    group.finish();
    assert_eq!(
        bulwark.stats().rejected,
        0,
        "the bulwark entry must only measure admissions"
    );
}

// Benches measure wall time by design; this group compares the clocks themselves.
#[allow(clippy::disallowed_types, clippy::disallowed_methods)]
fn clocks(c: &mut Criterion) {
    let quanta = governor::clock::DefaultClock::default();
    let mut group = c.benchmark_group("bucket_clock");
    group.bench_function("tokio_instant_now", |b| b.iter(tokio::time::Instant::now));
    group.bench_function("std_instant_now", |b| b.iter(std::time::Instant::now));
    group.bench_function("governor_clock_now", |b| b.iter(|| quanta.now()));
    group.finish();
}

fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("bucket_two_threads");
    group
        .throughput(Throughput::Elements(N))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20);

    common::scaling(&mut group, N, "bare", &inner(), run);
    {
        let layer = bulwark_layer();
        common::scaling(&mut group, N, "bulwark", &layer.layer(inner()), run);
        assert_eq!(layer.stats().rejected, 0, "only admissions");
    }
    {
        let limiter = Arc::new(DefaultDirectRateLimiter::direct(quota()));
        common::scaling(
            &mut group,
            N,
            "governor_check",
            &limiter,
            |limiter, calls| {
                for _ in 0..calls {
                    limiter.check().expect("every call is admitted");
                }
            },
        );
    }
    {
        let governed = Governed {
            limiter: Arc::new(DefaultDirectRateLimiter::direct(quota())),
            inner: inner(),
        };
        common::scaling(&mut group, N, "governor_service", &governed, run);
    }
    group.finish();
}

fn keyed(c: &mut Criterion) {
    let layer = bulwark_layer().keyed(|req: &Request<u32>| Some(*req.body()));
    let mut bulwark = layer.layer(inner());
    let governor = governor::DefaultKeyedRateLimiter::<u32>::keyed(quota());
    // Every key in both maps before measuring.
    for key in 0..KEYS {
        drive(&mut bulwark, Request::new(key));
        governor.check_key(&key).expect("admitted");
    }

    let mut group = c.benchmark_group("bucket_keyed");
    let mut next = 0u32;
    group.bench_function("bulwark", |b| {
        b.iter_batched(
            || {
                next = (next + 1) % KEYS;
                Request::new(next)
            },
            |req| drive(&mut bulwark, req),
            BatchSize::LargeInput,
        );
    });
    // Checked now: a key idle for a second (the bucket's refill time) is dropped.
    let stats = layer.stats();
    assert_eq!(stats.rejected, 0, "only admissions");
    assert_eq!(stats.keys, u64::from(KEYS), "one bucket per key");
    let mut next = 0u32;
    group.bench_function("governor_check_key", |b| {
        b.iter_batched(
            || {
                next = (next + 1) % KEYS;
                next
            },
            |key| governor.check_key(black_box(&key)).expect("admitted"),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

/// A `redis-server` child process on a free loopback port, killed on drop.
#[cfg(feature = "redis")]
struct RedisServer {
    port: u16,
    child: std::process::Child,
}

#[cfg(feature = "redis")]
impl RedisServer {
    /// `None` when `redis-server` cannot be run.
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| eprintln!("bucket_redis: skipped, cannot run `redis-server` ({e})"))
            .ok()?;
        Some(Self { port, child })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

#[cfg(feature = "redis")]
impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One admitted call through the layer with a [`RedisStore`](bulwark::bucket::RedisStore),
/// against a `redis-server` on loopback (report only: it is a network round trip), next to a
/// bare `PING` on a multiplexed connection, the floor of any round trip.
#[cfg(feature = "redis")]
fn redis(c: &mut Criterion) {
    use bulwark::bucket::{redis, KeySecret, RedisStore};

    let Some(server) = RedisServer::start() else {
        return;
    };
    // Its own runtime: the connection needs tokio's I/O driver. `block_on` per iteration.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let client = redis::Client::open(server.url()).expect("valid URL");
    let mut conn = rt.block_on(async {
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
                {
                    return conn;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not answer PING within 5 s");
    });
    // One token per microsecond (the store's resolution): never runs dry at a round trip a
    // call. A store timeout of 1 s, so a slow answer is measured, not replaced by the local
    // bucket.
    let layer = TokenBucketLayer::new(Rate::per_second(1_000_000))
        .burst(1_000_000)
        .store(
            RedisStore::new(client, "bulwark:bench", KeySecret::new([0x5a; 32]).unwrap())
                .timeout(Duration::from_secs(1)),
        );
    let mut svc = layer.layer(inner());

    let mut group = c.benchmark_group("bucket_redis");
    group.bench_function("ping", |b| {
        b.iter(|| {
            rt.block_on(redis::cmd("PING").query_async::<String>(&mut conn))
                .expect("PING")
        });
    });
    group.bench_function("bulwark_redis", |b| {
        b.iter_batched(
            || Request::new(()),
            |req| {
                rt.block_on(async { svc.ready().await?.call(req).await })
                    .expect("every call is admitted")
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
    let stats = layer.stats();
    assert_eq!(stats.rejected, 0, "only admissions");
    assert_eq!(stats.fallbacks, 0, "every call was decided by Redis");
}

#[cfg(not(feature = "redis"))]
fn redis(_c: &mut Criterion) {
    eprintln!("bucket_redis: skipped, needs `--features redis`");
}

// `criterion_main!` by hand: `criterion_group!` makes an undocumented `pub fn`.
fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let mut c = Criterion::default().configure_from_args();
    admitted(&mut c);
    clocks(&mut c);
    two_threads(&mut c);
    keyed(&mut c);
    redis(&mut c);
    c.final_summary();
}
