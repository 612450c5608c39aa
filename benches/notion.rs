//! What the Notion preset costs on the success path, over an upstream that answers at once.
//!
//! The inner service is a `service_fn` returning a ready `200` with a 1 KiB JSON body
//! allocated per call (as a body read from the network is). The request is a
//! `GET /v1/pages/{id}` `Request<BufferedBody>` made outside the measured part
//! (`iter_batched`, `BatchSize::LargeInput`); every iteration is `ready()` + `call()` + awaiting
//! the response, driven by `now_or_never` inside an entered tokio runtime (everything here
//! completes at once), and the response body is dropped unread.
//!
//! * `bare` — the inner service alone;
//! * `bulwark_layers` — retry, breaker, bucket and a `tower` timeout composed by hand with the
//!   default `HttpClassifier`: the four layers without Notion's rules;
//! * `notion_without_cache` — `NotionLayer` with `.without_cache()`: adds the headers, the
//!   token-keyed bucket, the body read and Notion's classifier;
//! * `notion` — `NotionLayer` with its defaults: adds the stale cache's live path (every
//!   success stored, so a later outage can be answered).
//!
//! Both preset entries raise the bucket's rate so that every call is admitted (3/s would
//! measure waiting). No peer crate offers a Notion preset, so there is no peer entry here; the
//! layers' own benches compare each with its peers.
//!
//! ```text
//! cargo bench --bench notion -- --warm-up-time 1 --measurement-time 3
//! ```

use std::{
    convert::Infallible,
    future::{ready, Ready},
    time::Duration,
};

use bulwark::{
    breaker::CircuitBreakerLayer,
    bucket::{Rate, TokenBucketLayer},
    http::BufferedBody,
    notion::{token_key, NotionClassifier, NotionLayer, TokenKey},
    retry::RetryLayer,
};
use criterion::{BatchSize, Criterion};
use futures_util::FutureExt;
use http::{Request, Response};
use tower::{service_fn, timeout::TimeoutLayer, util::ServiceFn, Layer, Service, ServiceExt};

type Req = Request<BufferedBody>;

type Answer = Ready<Result<Response<BufferedBody>, Infallible>>;

fn answer(_req: Req) -> Answer {
    let mut body = br#"{"object":"page","id":"p1","properties":{"Name":"#.to_vec();
    body.resize(1024 - 1, b' ');
    body.push(b'}');
    ready(Ok(Response::new(BufferedBody::from(body))))
}

fn upstream() -> ServiceFn<fn(Req) -> Answer> {
    service_fn(answer as fn(Req) -> Answer)
}

fn request() -> Req {
    Request::get("https://api.notion.com/v1/pages/59833787-2cf9-4fdf-8782-e53db20768a5")
        .header("authorization", "Bearer secret_bench")
        .body(BufferedBody::empty())
        .expect("a valid request")
}

fn fast_bucket() -> bulwark::notion::NotionBucket {
    TokenBucketLayer::new(Rate::new(1_000_000_000, Duration::from_secs(1)))
        .burst(1_000_000)
        .classify(NotionClassifier)
        .keyed(token_key as TokenKey)
}

fn bench<S>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    svc: S,
) where
    S: Service<Req> + Clone,
    S::Error: std::fmt::Debug,
{
    c.bench_function(name, |b| {
        b.iter_batched(
            request,
            |req| {
                let mut svc = svc.clone();
                let res = svc
                    .ready()
                    .now_or_never()
                    .expect("ready at once")
                    .expect("ready")
                    .call(req)
                    .now_or_never()
                    .expect("answered at once")
                    .expect("a response");
                drop(res);
            },
            BatchSize::LargeInput,
        );
    });
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("notion_success");

    bench(&mut group, "bare", upstream());

    let layers = tower::ServiceBuilder::new()
        .layer(RetryLayer::new())
        .layer(CircuitBreakerLayer::new())
        .layer(
            TokenBucketLayer::new(Rate::new(1_000_000_000, Duration::from_secs(1)))
                .burst(1_000_000),
        )
        .layer(TimeoutLayer::new(Duration::from_secs(60)))
        .service(upstream());
    bench(&mut group, "bulwark_layers", layers);

    let without_cache = NotionLayer::builder()
        .token("secret_bench")
        .bucket(|_| fast_bucket())
        .without_cache()
        .build()
        .expect("valid settings");
    bench(
        &mut group,
        "notion_without_cache",
        without_cache.layer(upstream()),
    );

    let notion = NotionLayer::builder()
        .token("secret_bench")
        .bucket(|_| fast_bucket())
        .build()
        .expect("valid settings");
    bench(&mut group, "notion", notion.layer(upstream()));
    group.finish();
    criterion.final_summary();
    let stats = notion.stats();
    assert_eq!(stats.retry.retries, 0, "every call succeeded at once");
    assert_eq!(stats.bucket.waited, 0, "no call waited for a token");
}
