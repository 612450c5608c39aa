//! Heap allocations per request on the admitted path, counted by an instrumented global
//! allocator (`stats_alloc`): zero for the circuit breaker and the token bucket, alone and
//! composed; the other layers' counts are printed (`cargo test --test allocations --
//! --nocapture`) and bounded so a regression shows.
//!
//! One test function: the allocator's counters are process-wide, so nothing else may run
//! while a region is measured.

use std::{
    alloc::System,
    convert::Infallible,
    future::{ready, Ready},
    time::Duration,
};

use bulwark::{
    breaker::{CircuitBreakerLayer, Window},
    bucket::{Rate, TokenBucketLayer},
    cache::StaleCacheLayer,
    http::BufferedBody,
    retry::RetryLayer,
};
use futures_util::FutureExt;
use http::{Request, Response};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::{service_fn, Layer, Service, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const CALLS: usize = 10_000;

fn inner<B>() -> impl Service<
    Request<B>,
    Response = Response<()>,
    Error = Infallible,
    Future = Ready<Result<Response<()>, Infallible>>,
> + Clone {
    service_fn(|_req: Request<B>| ready(Ok(Response::new(()))))
}

/// Allocations per call of `svc` on `make()`'s requests, after a warm-up (thread-local
/// stripes, metrics handles and the like are made on first use).
fn per_call<S, B>(mut svc: S, make: impl Fn() -> Request<B>) -> f64
where
    S: Service<Request<B>>,
    S::Error: std::fmt::Debug,
{
    let drive = |svc: &mut S, req: Request<B>| {
        async { svc.ready().await.unwrap().call(req).await.unwrap() }
            .now_or_never()
            .expect("answers at once");
    };
    let requests: Vec<_> = (0..CALLS).map(|_| make()).collect();
    for _ in 0..1_000 {
        drive(&mut svc, make());
    }
    let region = Region::new(GLOBAL);
    for req in requests {
        drive(&mut svc, req);
    }
    let stats = region.change();
    stats.allocations as f64 / CALLS as f64
}

fn breaker(window: Window) -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .window(window)
        .build()
        .unwrap()
}

fn bucket() -> TokenBucketLayer {
    TokenBucketLayer::new(Rate::per_second(1_000_000_000)).burst(1_000_000_000)
}

#[test]
fn admitted_path_allocations_per_request() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let get = || Request::new(());

    let breaker_time = per_call(
        breaker(Window::time(Duration::from_secs(30))).layer(inner()),
        get,
    );
    let breaker_count = per_call(breaker(Window::count(100)).layer(inner()), get);
    let bucket_alone = per_call(bucket().layer(inner()), get);
    let both = per_call(
        breaker(Window::time(Duration::from_secs(30))).layer(bucket().layer(inner())),
        get,
    );
    let keyed = per_call(
        bucket()
            .keyed(|_req: &Request<()>| Some(7_u64))
            .layer(inner()),
        get,
    );
    let retry = per_call(RetryLayer::new().layer(inner()), || {
        Request::new(BufferedBody::from("{}"))
    });
    // The same GET over and over, answered with a fresh 1 KiB body.
    let cache_per_call = |layer: StaleCacheLayer| {
        per_call(
            layer.layer(service_fn(|_req: Request<BufferedBody>| {
                ready(Ok::<_, Infallible>(Response::new(BufferedBody::from(
                    vec![b'x'; 1024],
                ))))
            })),
            || {
                Request::get("http://upstream.test/x")
                    .body(BufferedBody::default())
                    .unwrap()
            },
        )
    };
    let cache = cache_per_call(StaleCacheLayer::new());
    let fresh_hit = cache_per_call(StaleCacheLayer::new().fresh_for(Duration::from_secs(3600)));

    println!("allocations per admitted request ({CALLS} calls each):");
    for (name, n) in [
        ("breaker, time window", breaker_time),
        ("breaker, count window", breaker_count),
        ("bucket", bucket_alone),
        ("breaker + bucket", both),
        ("bucket, keyed (one key)", keyed),
        ("retry (a copy of the request kept)", retry),
        ("stale cache, live path (1 KiB stored per call)", cache),
        ("stale cache, fresh hit", fresh_hit),
    ] {
        println!("  {name:<48} {n:.2}");
    }
    assert_eq!(breaker_time, 0.0, "breaker (time window) allocates");
    assert_eq!(breaker_count, 0.0, "breaker (count window) allocates");
    assert_eq!(bucket_alone, 0.0, "bucket allocates");
    assert_eq!(both, 0.0, "breaker + bucket allocate");
    // The keyed map's housekeeping (moka) allocates now and then: amortised, under 1 %.
    assert!(keyed < 0.05, "keyed bucket allocates: {keyed}");
    // Regression bounds for the layers that copy by design (see the README).
    assert!(retry <= 2.0, "retry: {retry}");
    assert!(cache <= 20.0, "cache: {cache}");
    assert!(fresh_hit <= 8.0, "cache, fresh hit: {fresh_hit}");
}
