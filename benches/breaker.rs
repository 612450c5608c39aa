//! Circuit breakers on the closed path, side by side: per-call overhead, and how a breaker
//! shared by two threads scales.
//!
//! The inner service answers `200` at once (`service_fn` returning a ready
//! `Response<()>`), so what is measured is the breaker's own work: admitting the call and
//! recording its outcome. The request is a `Request<()>`, the same for every entry.
//!
//! Every peer is configured as close to [`CircuitBreakerLayer::new`]'s defaults as its API
//! allows: trip at a failure rate of 50 % once 20 calls are in a 30 s window, 30 s break,
//! one half-open probe, 5xx counted as failures.
//!
//! Group `breaker_closed_path`: each iteration is `ready()` + `call(request)` + awaiting the
//! response, driven by `now_or_never` (no executor, no runtime per iteration), on one thread.
//! The request is made outside the measured part (`iter_batched` with
//! `BatchSize::LargeInput`, which keeps the batch vectors small).
//!
//! * `bare` — the inner service alone;
//! * `bulwark_time` — [`CircuitBreakerLayer::new`] (time window of 30 s);
//! * `bulwark_count` — the same with `.window(Window::count(100))`;
//! * `tower_resilience_time` — `tower_resilience_circuitbreaker::CircuitBreakerLayer`, a
//!   time-based window of 30 s, failure rate 50 %, 20 minimum calls, 30 s in open. It keeps
//!   one record per call and walks them all on every call, so its cost grows with the calls
//!   in the window (here, with how long the bench has run); it has no consecutive-failure
//!   rule alongside the rate (its `FailureModel` is one or the other);
//! * `tower_resilience_count` — the same with its default count-based window of 100 calls;
//! * `failsafe` — `failsafe::StateMachine` (futures API: `breaker.call(inner_future)`), a
//!   success rate of 50 % over 30 s with 20 minimum requests, or 5 consecutive failures,
//!   breaking for 30 s doubling up to 5 min. It wraps the very future the bare service
//!   returns.
//!
//! Group `breaker_two_threads`: the time for `N` = 100 000 calls on one OS thread, and for
//! the same `N` calls split over two OS threads (`std::thread::scope`), each thread owning
//! its own clone of a service made by the SAME layer, so both threads share one breaker.
//! Scaling is `time(1 thread) / time(2 threads)`: 2.0 is perfect, 1.0 is none. Entries:
//! `bare`, `bulwark` (time window), `bulwark_count`, `tower_resilience_count` (its time window
//! would take minutes here) and `failsafe` (clones of one `StateMachine`). The threads
//! are spawned once per sample and start together on a barrier; the clock runs from the
//! barrier to the last join, so a sample of `iters` iterations is `iters * N` calls. Here the
//! driver polls until ready with a no-op waker (`spin`): tower-resilience's `tokio::sync::Mutex`
//! can be contended and answer `Pending` once, which `now_or_never` cannot retry. On a ready
//! future it costs what `now_or_never` costs.
//!
//! All entries run in one process, so their ratios are comparable on a noisy machine. A tokio
//! runtime is entered once, outside the measured loop, as a real client is.
//!
//! ```text
//! cargo bench --bench breaker -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::{
    convert::Infallible,
    future::{ready, Future, Ready},
    pin::pin,
    task::{Context, Poll, Waker},
    time::Duration,
};

use bulwark::breaker::{CircuitBreakerLayer, Window};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use failsafe::{
    backoff,
    failure_policy::{consecutive_failures, success_rate_over_time_window},
    futures::CircuitBreaker as _,
    FailurePolicy as _,
};
use futures_util::FutureExt;
use http::{Request, Response};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_resilience_circuitbreaker::SlidingWindowType;

type Req = Request<()>;
type Res = Response<()>;

/// Calls per iteration of `breaker_two_threads`.
const N: u64 = 100_000;

/// The inner service: a `200` at once.
fn inner(
) -> impl Service<Req, Response = Res, Error = Infallible, Future = Ready<Result<Res, Infallible>>>
       + Clone
       + Send
       + 'static {
    service_fn(|_req: Req| ready(Ok(Response::new(()))))
}

/// `ready()` + `call()` + await, without an executor: every service here is ready at once.
fn drive<S>(svc: &mut S, req: Req) -> Res
where
    S: Service<Req, Response = Res>,
    S::Error: std::fmt::Debug,
{
    async move { svc.ready().await?.call(req).await }
        .now_or_never()
        .expect("the inner service answers at once")
        .expect("the inner service never fails")
}

/// Polls `fut` until it is ready, with a no-op waker (a contended lock may be `Pending` for a
/// moment).
fn spin<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::hint::spin_loop();
    }
}

/// `ready()` + `call()` + await with [`spin`].
fn spin_drive<S>(svc: &mut S, req: Req) -> Res
where
    S: Service<Req, Response = Res>,
    S::Error: std::fmt::Debug,
{
    spin(async move { svc.ready().await?.call(req).await }).expect("the inner service never fails")
}

/// `calls` calls through `svc`, each with its own request.
fn run<S>(mut svc: S, calls: u64)
where
    S: Service<Req, Response = Res>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..calls {
        spin_drive(&mut svc, Request::new(()));
    }
}

/// The peers' settings, as close to `CircuitBreakerLayer::new()` as their APIs go.
fn tower_resilience_builder(
    window: SlidingWindowType,
) -> tower_resilience_circuitbreaker::CircuitBreakerConfigBuilder<
    tower_resilience_circuitbreaker::FnClassifier<
        impl Fn(&Result<Res, Infallible>) -> bool + Send + Sync,
    >,
> {
    let builder = tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .minimum_number_of_calls(20)
        .wait_duration_in_open(Duration::from_secs(30))
        .permitted_calls_in_half_open(1)
        .sliding_window_type(window);
    let builder = match window {
        SlidingWindowType::TimeBased => builder.sliding_window_duration(Duration::from_secs(30)),
        SlidingWindowType::CountBased => builder.sliding_window_size(100),
    };
    builder.classify_response(|res: &Res| res.status().is_server_error())
}

/// `failsafe`: success rate under 50 % over 30 s with 20 requests, or 5 failures in a row;
/// breaks of 30 s doubling up to 5 min.
fn failsafe_breaker() -> failsafe::StateMachine<impl failsafe::FailurePolicy + Send + Sync, ()> {
    let backoff = backoff::exponential(Duration::from_secs(30), Duration::from_secs(300));
    let policy = success_rate_over_time_window(0.5, 20, Duration::from_secs(30), backoff.clone())
        .or_else(consecutive_failures(5, backoff));
    failsafe::Config::new().failure_policy(policy).build()
}

fn closed_path(c: &mut Criterion) {
    let mut bare = inner();
    let mut bulwark_time = CircuitBreakerLayer::new().layer(inner());
    let mut bulwark_count = CircuitBreakerLayer::builder()
        .window(Window::count(100))
        .build()
        .expect("valid settings")
        .layer(inner());
    let mut resilience_time = tower_resilience_builder(SlidingWindowType::TimeBased)
        .build()
        .expect("valid settings")
        .layer(inner());
    let mut resilience_count = tower_resilience_builder(SlidingWindowType::CountBased)
        .build()
        .expect("valid settings")
        .layer(inner());
    let failsafe = failsafe_breaker();
    let mut failsafe_inner = inner();

    let mut group = c.benchmark_group("breaker_closed_path");
    group.bench_function("bare", |b| {
        b.iter_batched(
            || Request::new(()),
            |req| drive(&mut bare, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("bulwark_time", |b| {
        b.iter_batched(
            || Request::new(()),
            |req| drive(&mut bulwark_time, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("bulwark_count", |b| {
        b.iter_batched(
            || Request::new(()),
            |req| drive(&mut bulwark_count, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("tower_resilience_time", |b| {
        b.iter_batched(
            || Request::new(()),
            |req| drive(&mut resilience_time, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("tower_resilience_count", |b| {
        b.iter_batched(
            || Request::new(()),
            |req| drive(&mut resilience_count, req),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("failsafe", |b| {
        b.iter_batched(
            || Request::new(()),
            |req| {
                let svc = &mut failsafe_inner;
                let breaker = &failsafe;
                async move {
                    let fut = svc.ready().await.expect("ready").call(req);
                    breaker.call(fut).await
                }
                .now_or_never()
                .expect("the inner service answers at once")
                .expect("the inner service never fails")
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker_two_threads");
    group
        .throughput(Throughput::Elements(N))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20);

    common::scaling(&mut group, N, "bare", &inner(), run);
    {
        let layer = CircuitBreakerLayer::new();
        common::scaling(&mut group, N, "bulwark", &layer.layer(inner()), run);
    }
    {
        let layer = CircuitBreakerLayer::builder()
            .window(Window::count(100))
            .build()
            .expect("valid settings");
        common::scaling(&mut group, N, "bulwark_count", &layer.layer(inner()), run);
    }
    {
        // Its count-based window: the time-based one walks every record in the window on each
        // call (see `tower_resilience_time` above), which would take minutes here.
        // `build_with_handle`: every service of the layer shares one circuit (`build` gives
        // each `layer()` call its own).
        let (layer, _handle) = tower_resilience_builder(SlidingWindowType::CountBased)
            .build_with_handle()
            .expect("valid settings");
        common::scaling(
            &mut group,
            N,
            "tower_resilience_count",
            &layer.layer(inner()),
            run,
        );
    }
    {
        let breaker = failsafe_breaker();
        common::scaling(
            &mut group,
            N,
            "failsafe",
            &(breaker, inner()),
            |(breaker, mut svc), calls| {
                for _ in 0..calls {
                    let req = Request::new(());
                    spin(async {
                        let fut = svc.ready().await.expect("ready").call(req);
                        breaker.call(fut).await
                    })
                    .expect("the inner service never fails");
                }
            },
        );
    }
    group.finish();
}

// `criterion_main!` by hand: `criterion_group!` makes an undocumented `pub fn`.
fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let mut c = Criterion::default().configure_from_args();
    closed_path(&mut c);
    two_threads(&mut c);
    c.final_summary();
}
