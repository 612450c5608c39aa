//! Per-request overhead of retry layers on the success path, side by side.
//!
//! Group `retry_success_path`: the inner service answers `200` at once, and each iteration is
//! `ready()` + `call(request)` + awaiting the response, driven by `now_or_never` (no executor,
//! no runtime per iteration). The same request, a clone of a prebuilt
//! `POST /v1/databases/{id}/query` with three headers and a JSON [`BufferedBody`], is made
//! outside the measured part (`iter_batched`), so every entry pays only its own clone of it.
//! `BatchSize::LargeInput` keeps the batches small: with `SmallInput` the batch vectors are
//! megabytes, and the page faults of filling them land in the measured loop (about +15 ns).
//!
//! * `bare` — the inner service alone;
//! * `bulwark` — [`bulwark::retry::RetryLayer::new`] with its defaults;
//! * `tower` — `tower::retry::Retry` with a policy doing what ours does by default: retry
//!   429/5xx and errors up to 3 times, an `ExponentialBackoffMaker` from 200 ms capped at 20 s,
//!   and a `TpsBudget` of 10 s / 10 per s / 20 % (the same numbers as ours), cloning the request;
//! * `tower_resilience` — `tower_resilience_retry::RetryLayer`: 4 attempts, exponential
//!   backoff from 200 ms capped at 20 s, a token-bucket budget, retrying errors and 429/5xx
//!   responses.
//!
//! All four run in one group, in one process, so their ratios are comparable on a noisy
//! machine. A tokio runtime is entered once, outside the measured loop, as a real client is.
//!
//! Group `retry_decision`: [`bulwark::retry::Backoff::delay`], the pure backoff maths.
//!
//! ```text
//! cargo bench --bench retry -- --warm-up-time 1 --measurement-time 3
//! ```

use std::{
    convert::Infallible,
    future::{ready, Ready},
    hint::black_box,
    sync::Arc,
    time::Duration,
};

use bulwark::{
    http::BufferedBody,
    retry::{Backoff, Jitter, RetryLayer},
};
use criterion::{BatchSize, Criterion};
use futures_util::FutureExt;
use http::{header, Method, Request, Response, StatusCode};
use tower::{
    retry::{
        backoff::{Backoff as _, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff},
        budget::{Budget, TpsBudget},
        Policy,
    },
    service_fn, Layer, Service, ServiceExt,
};

type Req = Request<BufferedBody>;
type Res = Response<()>;

/// The inner service: a `200` at once.
fn inner(
) -> impl Service<Req, Response = Res, Error = Infallible, Future = Ready<Result<Res, Infallible>>>
       + Clone
       + Send
       + 'static {
    service_fn(|_req: Req| ready(Ok(Response::new(()))))
}

fn request() -> Req {
    Request::builder()
        .method(Method::POST)
        .uri("https://api.notion.com/v1/databases/668d797c-76fa-4934-9b05-ad288df2d136/query")
        .header(header::AUTHORIZATION, "Bearer secret_0123456789abcdef")
        .header("notion-version", "2022-06-28")
        .header(header::CONTENT_TYPE, "application/json")
        .body(BufferedBody::from(r#"{"page_size":100}"#))
        .expect("valid request")
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

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// A `tower::retry::Policy` equivalent to `RetryLayer::new()`'s defaults (less `Retry-After`
/// and idempotency, which tower leaves to the policy's author).
#[derive(Clone)]
struct TowerPolicy {
    budget: Arc<TpsBudget>,
    maker: ExponentialBackoffMaker,
    /// Per request: `tower::retry::Retry` clones the policy into each response future.
    backoff: Option<ExponentialBackoff>,
    retries_left: u32,
}

impl TowerPolicy {
    fn new() -> Self {
        Self {
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
            maker: ExponentialBackoffMaker::new(
                Duration::from_millis(200),
                Duration::from_secs(20),
                1.0,
                Default::default(),
            )
            .expect("valid backoff"),
            backoff: None,
            retries_left: 3,
        }
    }
}

impl<E> Policy<Req, Res, E> for TowerPolicy {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, _req: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        if let Ok(res) = result {
            if !retryable(res.status()) {
                self.budget.deposit();
                return None;
            }
        }
        if self.retries_left == 0 || !self.budget.withdraw() {
            return None;
        }
        self.retries_left -= 1;
        let maker = &mut self.maker;
        Some(
            self.backoff
                .get_or_insert_with(|| maker.make_backoff())
                .next_backoff(),
        )
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        (self.retries_left > 0).then(|| req.clone())
    }
}

fn success_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let template = request();

    let mut bare = inner();
    let mut bulwark = RetryLayer::new().layer(inner());
    let mut tower = tower::retry::RetryLayer::new(TowerPolicy::new()).layer(inner());
    let mut resilience = tower_resilience_retry::RetryLayer::<Req, Res, Infallible>::builder()
        .max_attempts(4)
        .backoff(
            tower_resilience_retry::ExponentialBackoff::new(Duration::from_millis(200))
                .max_interval(Duration::from_secs(20)),
        )
        .budget(
            tower_resilience_retry::RetryBudgetBuilder::new()
                .token_bucket()
                .build(),
        )
        .retry_on(|_: &Infallible| true)
        .retry_on_response(|res: &Res| retryable(res.status()))
        .build()
        .layer(inner());

    let mut group = c.benchmark_group("retry_success_path");
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
    group.bench_function("tower", |b| {
        b.iter_batched(
            || template.clone(),
            |req| drive(&mut tower, req),
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
    group.finish();
}

fn decision(c: &mut Criterion) {
    let full = Backoff::default();
    let none = Backoff::exponential(Duration::from_millis(200)).jitter(Jitter::None);
    let mut group = c.benchmark_group("retry_decision");
    group.bench_function("backoff_delay_full_jitter", |b| {
        b.iter(|| {
            black_box(full).delay(
                black_box(2),
                black_box(Duration::from_millis(400)),
                black_box(0.5),
            )
        });
    });
    group.bench_function("backoff_delay_no_jitter", |b| {
        b.iter(|| {
            black_box(none).delay(
                black_box(2),
                black_box(Duration::from_millis(400)),
                black_box(0.5),
            )
        });
    });
    group.finish();
}

// `criterion_main!` by hand: `criterion_group!` makes an undocumented `pub fn`.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    success_path(&mut c);
    decision(&mut c);
    c.final_summary();
}
