//! `RetryLayer` behaviour through the public API, with paused time.

use std::{
    collections::VecDeque,
    future::{ready, Ready},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use bulwark_http::{BoxError, CircuitOpen};
use bulwark_retry::{Backoff, GiveUp, Jitter, RetryBudget, RetryEvent, RetryLayer};
use http::{Method, Request, Response};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

#[derive(Clone, Debug)]
enum Outcome {
    Status(u16),
    StatusRetryAfter(u16, String),
    Refused,
    Reset,
    Open,
}

/// A scripted upstream: answers from a script (repeating its last entry) and records calls.
#[derive(Clone, Default)]
struct Upstream {
    script: Arc<Mutex<VecDeque<Outcome>>>,
    calls: Arc<Mutex<Vec<(Instant, Method)>>>,
    readies: Arc<AtomicUsize>,
}

impl Upstream {
    fn new(script: impl IntoIterator<Item = Outcome>) -> Self {
        let up = Self::default();
        up.script.lock().unwrap().extend(script);
        up
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    fn gaps(&self) -> Vec<Duration> {
        let calls = self.calls.lock().unwrap();
        calls.windows(2).map(|w| w[1].0 - w[0].0).collect()
    }
}

impl Service<Request<String>> for Upstream {
    type Response = Response<String>;
    type Error = BoxError;
    type Future = Ready<Result<Response<String>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.readies.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<String>) -> Self::Future {
        self.calls
            .lock()
            .unwrap()
            .push((Instant::now(), req.method().clone()));
        let mut script = self.script.lock().unwrap();
        let outcome = if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script.front().cloned().unwrap_or(Outcome::Status(200))
        };
        let res = |status: u16, ra: Option<String>| {
            let mut b = Response::builder().status(status);
            if let Some(ra) = ra {
                b = b.header("retry-after", ra);
            }
            Ok(b.body(format!("status {status}")).unwrap())
        };
        ready(match outcome {
            Outcome::Status(s) => res(s, None),
            Outcome::StatusRetryAfter(s, ra) => res(s, Some(ra)),
            Outcome::Refused => {
                Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into())
            }
            Outcome::Reset => Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset).into()),
            Outcome::Open => Err(CircuitOpen::new(Duration::from_secs(5)).into()),
        })
    }
}

fn get() -> Request<String> {
    Request::get("http://upstream.test/v1/pages/1")
        .body(String::new())
        .unwrap()
}

fn post() -> Request<String> {
    Request::post("http://upstream.test/v1/pages")
        .body("{}".to_owned())
        .unwrap()
}

fn no_jitter() -> RetryLayer {
    RetryLayer::new().backoff(Backoff::exponential(Duration::from_millis(200)).jitter(Jitter::None))
}

async fn send(
    layer: &RetryLayer,
    up: &Upstream,
    req: Request<String>,
) -> Result<Response<String>, BoxError> {
    layer.layer(up.clone()).oneshot(req).await
}

#[tokio::test(start_paused = true)]
async fn always_retryable_makes_exactly_four_calls_and_returns_the_last_response() {
    let up = Upstream::new([Outcome::Status(503)]);
    let layer = no_jitter();
    let res = send(&layer, &up, get()).await.unwrap();
    assert_eq!(up.calls(), 4);
    assert_eq!(
        res.status(),
        503,
        "the upstream's last answer, not an error"
    );
    assert_eq!(res.body(), "status 503");
    let stats = layer.stats();
    assert_eq!((stats.attempts, stats.retries, stats.gave_up), (4, 3, 1));
}

#[tokio::test(start_paused = true)]
async fn permanent_makes_one_call() {
    for status in [400, 401, 404, 409, 422] {
        let up = Upstream::new([Outcome::Status(status)]);
        let res = send(&no_jitter(), &up, get()).await.unwrap();
        assert_eq!(res.status(), status);
        assert_eq!(up.calls(), 1, "{status}");
    }
}

#[tokio::test(start_paused = true)]
async fn success_after_failures_stops_retrying() {
    let up = Upstream::new([
        Outcome::Status(502),
        Outcome::Status(500),
        Outcome::Status(200),
    ]);
    let res = send(&no_jitter(), &up, get()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(up.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn no_jitter_delays_are_200_400_800_ms_then_capped() {
    let up = Upstream::new([Outcome::Status(503)]);
    send(&no_jitter(), &up, get()).await.unwrap();
    let ms = Duration::from_millis;
    assert_eq!(up.gaps(), [ms(200), ms(400), ms(800)]);

    let up = Upstream::new([Outcome::Status(503)]);
    let capped = RetryLayer::new()
        .max_retries(6)
        .budget(RetryBudget::unlimited())
        .backoff(
            Backoff::exponential(ms(200))
                .max_delay(ms(1000))
                .jitter(Jitter::None),
        );
    send(&capped, &up, get()).await.unwrap();
    assert_eq!(
        up.gaps(),
        [ms(200), ms(400), ms(800), ms(1000), ms(1000), ms(1000)]
    );
}

#[tokio::test(start_paused = true)]
async fn full_jitter_stays_under_the_exponential_ceiling() {
    for _ in 0..20 {
        let up = Upstream::new([Outcome::Status(503)]);
        send(
            &RetryLayer::new().budget(RetryBudget::unlimited()),
            &up,
            get(),
        )
        .await
        .unwrap();
        for (n, gap) in up.gaps().into_iter().enumerate() {
            assert!(
                gap <= Duration::from_millis(200 << n),
                "retry {n} waited {gap:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_seven_waits_at_least_seven_and_less_than_eight_seconds() {
    for _ in 0..10 {
        let up = Upstream::new([
            Outcome::StatusRetryAfter(429, "7".into()),
            Outcome::Status(200),
        ]);
        let events = Arc::new(Mutex::new(Vec::<RetryEvent>::new()));
        let seen = events.clone();
        let layer = RetryLayer::new().on_retry(move |e| seen.lock().unwrap().push(*e));
        let res = send(&layer, &up, get()).await.unwrap();
        assert_eq!(res.status(), 200);
        let gap = up.gaps()[0];
        assert!(
            gap >= Duration::from_secs(7) && gap < Duration::from_secs(8),
            "{gap:?}"
        );
        let events = events.lock().unwrap();
        assert_eq!(events.len(), 1);
        assert!(events[0].from_retry_after);
        assert_eq!(events[0].attempt, 1);
        // tokio's timer has millisecond resolution and rounds up.
        assert!(gap >= events[0].wait && gap - events[0].wait <= Duration::from_millis(1));
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_is_honoured() {
    let date = httpdate_in(Duration::from_secs(5));
    let up = Upstream::new([Outcome::StatusRetryAfter(503, date), Outcome::Status(200)]);
    let res = send(&RetryLayer::new(), &up, get()).await.unwrap();
    assert_eq!(res.status(), 200);
    let gap = up.gaps()[0];
    // The date has whole-second precision: 4–5 s from now, plus at most 10 % jitter.
    assert!(
        gap >= Duration::from_secs(4) && gap <= Duration::from_millis(5500),
        "{gap:?}"
    );
}

fn httpdate_in(d: Duration) -> String {
    // Formatting a wall-clock date is what a server does; the wait itself runs on tokio time.
    httpdate::fmt_http_date(SystemTime::now() + d)
}

#[tokio::test(start_paused = true)]
async fn retry_after_longer_than_the_cap_returns_the_429_at_once() {
    let up = Upstream::new([
        Outcome::StatusRetryAfter(429, "120".into()),
        Outcome::Status(200),
    ]);
    let layer = RetryLayer::new();
    let start = Instant::now();
    let res = send(&layer, &up, get()).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "120");
    assert_eq!(up.calls(), 1);
    assert_eq!(Instant::now(), start, "no time passed");
    assert_eq!(layer.stats().gave_up, 1);
}

#[tokio::test(start_paused = true)]
async fn post_on_502_is_not_repeated() {
    let up = Upstream::new([Outcome::Status(502), Outcome::Status(201)]);
    let layer = RetryLayer::new();
    let res = send(&layer, &up, post()).await.unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(up.calls(), 1);
    // Nor after a connection reset mid-request: it may have been applied.
    let up = Upstream::new([Outcome::Reset, Outcome::Status(201)]);
    assert!(send(&layer, &up, post()).await.is_err());
    assert_eq!(up.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn post_on_429_and_on_refused_connection_is_retried() {
    let up = Upstream::new([Outcome::Status(429), Outcome::Status(201)]);
    let res = send(&RetryLayer::new(), &up, post()).await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(up.calls(), 2);

    let up = Upstream::new([Outcome::Refused, Outcome::Status(201)]);
    let res = send(&RetryLayer::new(), &up, post()).await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn post_with_idempotency_key_on_502_is_retried() {
    let up = Upstream::new([Outcome::Status(502), Outcome::Status(201)]);
    let req = Request::post("http://upstream.test/v1/pages")
        .header("idempotency-key", "a1b2")
        .body("{}".to_owned())
        .unwrap();
    let res = send(&RetryLayer::new(), &up, req).await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn idempotent_when_predicate_allows_read_only_posts() {
    let layer =
        RetryLayer::new().idempotent_when(|m, u| m == Method::POST && u.path() == "/v1/search");
    let up = Upstream::new([Outcome::Status(502), Outcome::Status(200)]);
    let req = Request::post("http://upstream.test/v1/search")
        .body(String::new())
        .unwrap();
    assert_eq!(send(&layer, &up, req).await.unwrap().status(), 200);
    assert_eq!(up.calls(), 2);
    let up = Upstream::new([Outcome::Status(502), Outcome::Status(200)]);
    assert_eq!(send(&layer, &up, post()).await.unwrap().status(), 502);
}

#[tokio::test(start_paused = true)]
async fn rejected_by_an_inner_layer_is_never_retried() {
    let up = Upstream::new([Outcome::Open]);
    let err = send(&RetryLayer::new(), &up, get()).await.unwrap_err();
    assert!(
        err.is::<CircuitOpen>(),
        "the inner error is returned unchanged"
    );
    assert_eq!(up.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn errors_keep_the_inner_type_after_giving_up() {
    let up = Upstream::new([Outcome::Refused]);
    let err = send(&no_jitter(), &up, post()).await.unwrap_err();
    let io = err.downcast_ref::<std::io::Error>().unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(up.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn budget_bounds_a_retry_storm() {
    let up = Upstream::new([Outcome::Status(503)]);
    let layer = RetryLayer::new();
    let svc = layer.layer(up.clone());
    let requests = (0..1000).map(|_| svc.clone().oneshot(get()));
    let results = futures_join_all(requests).await;
    assert!(results.iter().all(|r| r.as_ref().unwrap().status() == 503));
    let stats = layer.stats();
    // 20 % of 1000 requests plus 10 retries/s over the 10 s window: about 300, not 3000.
    assert!(
        (250..=320).contains(&stats.retries),
        "retries = {}",
        stats.retries
    );
    assert_eq!(up.calls() as u64, 1000 + stats.retries);
    assert!(stats.budget_exhausted > 0);
}

async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    // Poll all concurrently on this task.
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().map(Option::unwrap));
    out
}

#[tokio::test(start_paused = true)]
async fn unlimited_budget_allows_every_retry() {
    let up = Upstream::new([Outcome::Status(503)]);
    let layer = no_jitter().budget(RetryBudget::unlimited());
    let svc = layer.layer(up.clone());
    futures_join_all((0..200).map(|_| svc.clone().oneshot(get()))).await;
    assert_eq!(up.calls(), 800);
}

#[tokio::test(start_paused = true)]
async fn total_timeout_stops_waits_that_would_cross_it() {
    let up = Upstream::new([Outcome::Status(503)]);
    let layer = no_jitter()
        .max_retries(10)
        .total_timeout(Duration::from_millis(1000));
    let start = Instant::now();
    let res = send(&layer, &up, get()).await.unwrap();
    assert_eq!(res.status(), 503);
    // 200 + 400 = 600 ms fits; the next 800 ms wait would end at 1400 ms: not started.
    assert_eq!(up.calls(), 3);
    assert_eq!(Instant::now() - start, Duration::from_millis(600));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_mid_wait_sends_nothing_more() {
    let up = Upstream::new([
        Outcome::StatusRetryAfter(503, "10".into()),
        Outcome::Status(200),
    ]);
    let mut svc = RetryLayer::new().layer(up.clone());
    let mut fut = tokio_test::task::spawn(svc.ready().await.unwrap().call(get()));
    tokio_test::assert_pending!(fut.poll());
    assert_eq!(up.calls(), 1);
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio_test::assert_pending!(fut.poll());
    drop(fut);
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::task::yield_now().await;
    assert_eq!(up.calls(), 1);
}

/// Retries booked for waits that never end (their futures dropped: client timeouts) go back
/// to the budget, so a burst of cancellations cannot spend it for everyone else.
#[tokio::test(start_paused = true)]
async fn cancelled_waits_give_their_retries_back_to_the_budget() {
    // 10 retries in the 10 s window, nothing earned from requests.
    let layer = no_jitter().budget(RetryBudget::new(Duration::from_secs(10), 1, 0.0).unwrap());
    for round in 0..5 {
        let up = Upstream::new([Outcome::StatusRetryAfter(503, "5".into())]);
        let mut svc = layer.layer(up.clone());
        let mut waiting = Vec::new();
        for _ in 0..10 {
            let mut fut = tokio_test::task::spawn(svc.ready().await.unwrap().call(get()));
            tokio_test::assert_pending!(fut.poll(), "round {round}: waiting to retry");
            waiting.push(fut);
        }
        // The budget is spent by the ten waits …
        let stats = layer.stats();
        assert_eq!(stats.retries, 10 * (round + 1));
        let res = svc.ready().await.unwrap().call(get()).await.unwrap();
        assert_eq!(res.status(), 503, "no retry left");
        assert_eq!(layer.stats().budget_exhausted, round + 1);
        // … and refunded when they are cancelled.
        drop(waiting);
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let up = Upstream::new([Outcome::Status(503), Outcome::Status(200)]);
    assert_eq!(
        send(&layer, &up, get()).await.unwrap().status(),
        200,
        "retried"
    );
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn readiness_is_polled_before_every_retry() {
    let up = Upstream::new([
        Outcome::Status(503),
        Outcome::Status(503),
        Outcome::Status(200),
    ]);
    let svc = no_jitter().layer(up.clone());
    svc.oneshot(get()).await.unwrap();
    // Once by `oneshot`, then once before each of the two retries.
    assert_eq!(up.readies.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn max_retries_zero_makes_one_call() {
    let up = Upstream::new([Outcome::Status(503)]);
    let layer = RetryLayer::new().max_retries(0);
    assert_eq!(send(&layer, &up, get()).await.unwrap().status(), 503);
    assert_eq!(up.calls(), 1);
    assert_eq!(layer.stats().gave_up, 1);
}

#[tokio::test(start_paused = true)]
async fn events_report_class_and_wait() {
    let events = Arc::new(Mutex::new(Vec::<RetryEvent>::new()));
    let seen = events.clone();
    let layer = no_jitter().on_retry(move |e| seen.lock().unwrap().push(*e));
    let up = Upstream::new([Outcome::Refused, Outcome::Status(429), Outcome::Status(200)]);
    send(&layer, &up, get()).await.unwrap();
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].class, bulwark_http::Class::Unreachable);
    assert_eq!(events[0].wait, Duration::from_millis(200));
    assert!(!events[0].from_retry_after);
    assert_eq!(events[1].attempt, 2);
    assert!(matches!(
        events[1].class,
        bulwark_http::Class::Throttled { .. }
    ));
    assert_eq!(GiveUp::BudgetExhausted.as_str(), "budget_exhausted");
}
