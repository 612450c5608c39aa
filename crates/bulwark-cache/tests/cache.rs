//! `StaleCacheLayer` behaviour through the public API, with paused time.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bulwark_cache::{CacheStatus, StaleCacheLayer};
use bulwark_http::{BoxError, BufferedBody, CircuitOpen};
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use tower::{util::BoxCloneService, Layer, ServiceExt};

/// What the fake upstream answers next.
#[derive(Clone, Debug)]
enum Next {
    Ok(&'static str),
    OkWith(&'static str, &'static str),
    Status(u16),
    Refused,
    Open,
    Slow(u64),
    /// After the delay, answers with this status.
    SlowStatus(u64, u16),
    /// 200 with the upstream's own `Cache-Status`.
    Tagged(&'static str),
    Bytes(usize),
}

#[derive(Clone)]
struct Upstream {
    next: Arc<Mutex<Next>>,
    calls: Arc<AtomicUsize>,
}

impl Upstream {
    fn new(next: Next) -> Self {
        Self {
            next: Arc::new(Mutex::new(next)),
            calls: Arc::default(),
        }
    }

    fn set(&self, next: Next) {
        *self.next.lock().unwrap() = next;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn service(&self) -> BoxCloneService<Request<BufferedBody>, Response<BufferedBody>, BoxError> {
        let up = self.clone();
        BoxCloneService::new(tower::service_fn(move |req: Request<BufferedBody>| {
            up.calls.fetch_add(1, Ordering::SeqCst);
            let next = up.next.lock().unwrap().clone();
            let echo = String::from_utf8_lossy(req.body().as_ref()).into_owned();
            async move {
                let res = |status: u16, cc: Option<&str>, body: String| {
                    let mut b = Response::builder().status(status);
                    if let Some(cc) = cc {
                        b = b.header("cache-control", cc);
                    }
                    Ok(b.body(BufferedBody::from(body)).unwrap())
                };
                match next {
                    Next::Ok(body) => res(200, None, format!("{body}{echo}")),
                    Next::OkWith(body, cc) => res(200, Some(cc), body.to_owned()),
                    Next::Status(s) => res(s, None, format!("status {s}")),
                    Next::Refused => {
                        Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into())
                    }
                    Next::Open => Err(CircuitOpen::new(Duration::from_secs(5)).into()),
                    Next::Bytes(n) => res(200, None, "y".repeat(n)),
                    Next::Slow(ms) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        res(200, None, "slow".to_owned())
                    }
                    Next::SlowStatus(ms, s) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        res(s, None, format!("status {s}"))
                    }
                    Next::Tagged(upstream) => Ok(Response::builder()
                        .header("cache-status", upstream)
                        .body(BufferedBody::from("tagged"))
                        .unwrap()),
                }
            }
        }))
    }
}

fn get(path: &str, token: &str) -> Request<BufferedBody> {
    Request::get(format!("https://api.test{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(BufferedBody::empty())
        .unwrap()
}

async fn body<B: http_body::Body>(res: Response<B>) -> String
where
    B::Error: std::fmt::Debug,
{
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn rfc5861_example() {
    let up = Upstream::new(Next::OkWith("v1", "max-age=600, stale-if-error=1200"));
    let cache = StaleCacheLayer::new();
    let svc = cache.layer(up.service());
    let res = svc.clone().oneshot(get("/p", "a")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["cache-status"],
        "bulwark; fwd=uri-miss; stored"
    );
    // Fresh for 600 s: no upstream call.
    tokio::time::advance(Duration::from_secs(300)).await;
    let res = svc.clone().oneshot(get("/p", "a")).await.unwrap();
    assert_eq!(res.headers()["cache-status"], "bulwark; hit; ttl=300");
    assert_eq!(
        res.extensions().get::<CacheStatus>(),
        Some(&CacheStatus::Fresh {
            age: Duration::from_secs(300)
        })
    );
    assert_eq!(up.calls(), 1);
    // At age 900 the upstream fails: the stored 200 answers, Age: 900.
    tokio::time::advance(Duration::from_secs(600)).await;
    up.set(Next::Status(500));
    let res = svc.clone().oneshot(get("/p", "a")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["age"], "900");
    assert_eq!(
        res.headers()["cache-status"],
        "bulwark; fwd=stale; fwd-status=500",
        "asked, failed: forwarded, not a hit"
    );
    assert_eq!(
        res.extensions().get::<CacheStatus>(),
        Some(&CacheStatus::Stale {
            age: Duration::from_secs(900)
        })
    );
    assert_eq!(body(res).await, "v1");
    // At age 1801 (past 600 + 1200) the 500 passes through.
    tokio::time::advance(Duration::from_secs(901)).await;
    let res = svc.clone().oneshot(get("/p", "a")).await.unwrap();
    assert_eq!(res.status(), 500);
    assert_eq!(cache.stats().stale_served, 1);
}

#[tokio::test(start_paused = true)]
async fn must_revalidate_and_no_store_are_never_served_stale() {
    for cc in ["max-age=0, must-revalidate", "no-store", "no-cache"] {
        let up = Upstream::new(Next::OkWith("v1", cc));
        let svc = StaleCacheLayer::new().layer(up.service());
        svc.clone().oneshot(get("/p", "a")).await.unwrap();
        up.set(Next::Status(503));
        assert_eq!(
            svc.clone().oneshot(get("/p", "a")).await.unwrap().status(),
            503,
            "{cc}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn always_live_by_default_and_stale_for_five_minutes() {
    let up = Upstream::new(Next::Ok("v1"));
    let svc = StaleCacheLayer::new().layer(up.service());
    let res = svc.clone().oneshot(get("/p", "a")).await.unwrap();
    assert_eq!(
        res.extensions().get::<CacheStatus>(),
        Some(&CacheStatus::Live)
    );
    svc.clone().oneshot(get("/p", "a")).await.unwrap();
    assert_eq!(up.calls(), 2, "fresh_for defaults to 0: always go live");
    up.set(Next::Refused);
    tokio::time::advance(Duration::from_secs(299)).await;
    let res = svc.clone().oneshot(get("/p", "a")).await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "an error (not a response) is answered stale too"
    );
    assert_eq!(
        res.headers()["cache-status"],
        "bulwark; fwd=stale; detail=error",
        "asked, no response came back"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    let err = svc.clone().oneshot(get("/p", "a")).await.unwrap_err();
    assert!(
        err.downcast_ref::<std::io::Error>().is_some(),
        "too old: the error passes through"
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_inside_is_answered_stale() {
    let up = Upstream::new(Next::Ok("v1"));
    let svc = StaleCacheLayer::new().layer(up.service());
    svc.clone().oneshot(get("/p", "a")).await.unwrap();
    up.set(Next::Open);
    tokio::time::advance(Duration::from_secs(7)).await;
    let res = svc.clone().oneshot(get("/p", "a")).await.unwrap();
    assert!(matches!(
        res.extensions().get::<CacheStatus>(),
        Some(CacheStatus::Stale { .. })
    ));
    assert_eq!(
        res.headers()["cache-status"],
        "bulwark; hit; ttl=-7",
        "refused before the upstream: not forwarded, a hit on a copy 7 s stale"
    );
}

/// Two identical requests, the second sent while the first is in flight.
async fn two_at_once<S>(svc: &S, path: &str) -> (S::Response, S::Response)
where
    S: tower::Service<Request<BufferedBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: std::fmt::Debug + Send + 'static,
{
    let leader = tokio::spawn(svc.clone().oneshot(get(path, "t")));
    tokio::task::yield_now().await;
    let follower = tokio::spawn(svc.clone().oneshot(get(path, "t")));
    (
        leader.await.unwrap().unwrap(),
        follower.await.unwrap().unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn cache_status_says_what_happened_rfc_9211() {
    let status = |res: &Response<_>| {
        res.headers()
            .get_all("cache-status")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let up = Upstream::new(Next::Slow(50));
    let cache = StaleCacheLayer::new()
        .fresh_for(Duration::from_secs(10))
        .stale_while_revalidate(Duration::from_secs(20));
    let svc = cache.layer(up.service());

    // A miss two callers share: the leader stores, the follower is collapsed onto it.
    let (leader, follower) = two_at_once(&svc, "/a").await;
    assert_eq!(status(&leader), ["bulwark; fwd=uri-miss; stored"]);
    assert_eq!(status(&follower), ["bulwark; fwd=uri-miss; collapsed"]);
    assert_eq!(up.calls(), 1);

    // Fresh: a hit with the seconds of freshness left.
    tokio::time::advance(Duration::from_secs(4)).await;
    let res = svc.clone().oneshot(get("/a", "t")).await.unwrap();
    assert_eq!(status(&res), ["bulwark; hit; ttl=6"]);

    // Within stale-while-revalidate: served without waiting (a hit), 3 s stale.
    tokio::time::advance(Duration::from_secs(9)).await;
    let res = svc.clone().oneshot(get("/a", "t")).await.unwrap();
    assert_eq!(status(&res), ["bulwark; hit; ttl=-3"]);
    tokio::time::sleep(Duration::from_millis(100)).await; // the background refresh

    // A copy too old to serve at once: forwarded as stale, the answer stored in its place.
    tokio::time::advance(Duration::from_secs(40)).await;
    up.set(Next::Ok("v2"));
    let res = svc.clone().oneshot(get("/a", "t")).await.unwrap();
    assert_eq!(status(&res), ["bulwark; fwd=stale; stored"]);

    // A failure two callers share: both get the stored copy; the leader saw the 503.
    tokio::time::advance(Duration::from_secs(40)).await;
    up.set(Next::SlowStatus(50, 503));
    let (leader, follower) = two_at_once(&svc, "/a").await;
    assert_eq!(status(&leader), ["bulwark; fwd=stale; fwd-status=503"]);
    assert_eq!(status(&follower), ["bulwark; fwd=stale; collapsed"]);
    assert_eq!(body(follower).await, "v2");

    // A cacheable answer that is not stored (a 404) still says it was forwarded.
    up.set(Next::Status(404));
    let res = svc.clone().oneshot(get("/other", "t")).await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(status(&res), ["bulwark; fwd=uri-miss"]);

    // An upstream's own member is kept, bulwark's comes last — stored and live alike.
    up.set(Next::Tagged("ExampleCDN; hit"));
    let res = svc.clone().oneshot(get("/tagged", "t")).await.unwrap();
    assert_eq!(
        status(&res),
        ["ExampleCDN; hit", "bulwark; fwd=uri-miss; stored"]
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    let res = svc.clone().oneshot(get("/tagged", "t")).await.unwrap();
    assert_eq!(status(&res), ["ExampleCDN; hit", "bulwark; hit; ttl=9"]);

    // Writes are not cacheable: passed through untouched.
    let post = Request::post("https://api.test/v1/pages")
        .body(BufferedBody::from("{}"))
        .unwrap();
    let res = svc.clone().oneshot(post).await.unwrap();
    assert!(status(&res) == ["ExampleCDN; hit"]);
}

#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_refreshes_exactly_once() {
    let up = Upstream::new(Next::Ok("v1"));
    let cache = StaleCacheLayer::new()
        .fresh_for(Duration::from_secs(10))
        .stale_while_revalidate(Duration::from_secs(60));
    let svc = cache.layer(up.service());
    svc.clone().oneshot(get("/p", "a")).await.unwrap();
    tokio::time::advance(Duration::from_secs(15)).await;
    up.set(Next::Slow(100));
    for _ in 0..5 {
        let res = svc.clone().oneshot(get("/p", "a")).await.unwrap();
        assert!(matches!(
            res.extensions().get::<CacheStatus>(),
            Some(CacheStatus::Stale { .. })
        ));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        up.calls(),
        2,
        "one background refresh for five stale answers"
    );
    let res = svc.clone().oneshot(get("/p", "a")).await.unwrap();
    assert!(matches!(
        res.extensions().get::<CacheStatus>(),
        Some(CacheStatus::Fresh { .. })
    ));
    assert_eq!(body(res).await, "slow");
}

#[tokio::test(start_paused = true)]
async fn one_tokens_copy_never_reaches_another() {
    let up = Upstream::new(Next::Ok("secret page of A"));
    let svc = StaleCacheLayer::new().layer(up.service());
    svc.clone().oneshot(get("/p", "token-a")).await.unwrap();
    up.set(Next::Status(503));
    let res = svc.clone().oneshot(get("/p", "token-b")).await.unwrap();
    assert_eq!(res.status(), 503, "B gets the failure, not A's copy");
    let res = svc.clone().oneshot(get("/p", "token-a")).await.unwrap();
    assert_eq!(body(res).await, "secret page of A");
}

#[tokio::test(start_paused = true)]
async fn a_404_evicts_and_a_write_invalidates() {
    let up = Upstream::new(Next::Ok("v1"));
    let cache = StaleCacheLayer::new();
    let svc = cache.layer(up.service());
    svc.clone().oneshot(get("/v1/pages/1", "a")).await.unwrap();
    up.set(Next::Status(404));
    assert_eq!(
        svc.clone()
            .oneshot(get("/v1/pages/1", "a"))
            .await
            .unwrap()
            .status(),
        404
    );
    up.set(Next::Status(503));
    assert_eq!(
        svc.clone()
            .oneshot(get("/v1/pages/1", "a"))
            .await
            .unwrap()
            .status(),
        503,
        "evicted by the 404"
    );

    up.set(Next::Ok("v1"));
    svc.clone().oneshot(get("/v1/pages/2", "a")).await.unwrap();
    let patch = Request::builder()
        .method(Method::PATCH)
        .uri("https://api.test/v1/pages/2")
        .body(BufferedBody::from("{}"))
        .unwrap();
    assert_eq!(svc.clone().oneshot(patch).await.unwrap().status(), 200);
    up.set(Next::Status(503));
    assert_eq!(
        svc.clone()
            .oneshot(get("/v1/pages/2", "a"))
            .await
            .unwrap()
            .status(),
        503,
        "invalidated by the PATCH"
    );
    assert!(cache.stats().evictions >= 2);
}

#[tokio::test(start_paused = true)]
async fn read_only_posts_are_keyed_by_their_body() {
    let up = Upstream::new(Next::Ok("result for "));
    let cache = StaleCacheLayer::new()
        .cacheable(|m, u| m == Method::GET || (m == Method::POST && u.path() == "/v1/search"));
    let svc = cache.layer(up.service());
    let search = |q: &'static str| {
        Request::post("https://api.test/v1/search")
            .header("authorization", "Bearer a")
            .body(BufferedBody::from(q))
            .unwrap()
    };
    svc.clone().oneshot(search("alpha")).await.unwrap();
    svc.clone().oneshot(search("beta")).await.unwrap();
    assert_eq!(cache.stats().stores, 2);
    up.set(Next::Status(502));
    assert_eq!(
        body(svc.clone().oneshot(search("alpha")).await.unwrap()).await,
        "result for alpha"
    );
    assert_eq!(
        body(svc.clone().oneshot(search("beta")).await.unwrap()).await,
        "result for beta"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hundred_concurrent_misses_make_one_call() {
    let up = Upstream::new(Next::Slow(50));
    let svc = StaleCacheLayer::new().layer(up.service());
    let tasks: Vec<_> = (0..100)
        .map(|_| tokio::spawn(svc.clone().oneshot(get("/p", "a"))))
        .collect();
    for t in tasks {
        let res = t.await.unwrap().unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(body(res).await, "slow");
    }
    assert_eq!(up.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_leader_hands_over() {
    let up = Upstream::new(Next::Slow(1_000));
    let svc = StaleCacheLayer::new().layer(up.service());
    let leader = tokio::spawn(svc.clone().oneshot(get("/p", "a")));
    tokio::task::yield_now().await;
    let followers: Vec<_> = (0..10)
        .map(|_| tokio::spawn(svc.clone().oneshot(get("/p", "a"))))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    leader.abort();
    for f in followers {
        assert_eq!(f.await.unwrap().unwrap().status(), 200, "nobody hangs");
    }
    assert_eq!(up.calls(), 2, "the leader's call, then one follower's");
}

#[tokio::test(start_paused = true)]
async fn a_follower_stops_waiting_for_a_slow_leader_after_coalesce_wait() {
    let up = Upstream::new(Next::Slow(30_000));
    let svc = StaleCacheLayer::new()
        .coalesce_max_wait(Duration::from_secs(2))
        .layer(up.service());
    let start = tokio::time::Instant::now();
    let leader = tokio::spawn(svc.clone().oneshot(get("/p", "a")));
    tokio::task::yield_now().await;
    up.set(Next::Ok("quick"));
    let follower = svc.clone().oneshot(get("/p", "a")).await.unwrap();
    assert_eq!(body(follower).await, "quick");
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "waited 2 s, then went alone"
    );
    assert_eq!(up.calls(), 2);
    assert_eq!(body(leader.await.unwrap().unwrap()).await, "slow");
    // Without the limit a follower waits for the leader however long it takes.
    let up = Upstream::new(Next::Slow(30_000));
    let svc = StaleCacheLayer::new().layer(up.service());
    let start = tokio::time::Instant::now();
    let leader = tokio::spawn(svc.clone().oneshot(get("/p", "a")));
    tokio::task::yield_now().await;
    let follower = svc.clone().oneshot(get("/p", "a")).await.unwrap();
    assert_eq!(body(follower).await, "slow");
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert_eq!(up.calls(), 1);
    leader.await.unwrap().unwrap();
}

/// Leaders and followers of coalesced misses cancelled in bulk, leaders again and again: every
/// survivor gets the answer, each handover costs exactly one more upstream call, and a request
/// after everyone left leads at once (no ghost leader holds the key).
#[tokio::test(start_paused = true)]
async fn many_cancelled_leaders_and_followers_leave_no_ghost() {
    for round in 0..20usize {
        let up = Upstream::new(Next::Slow(1_000));
        let svc = StaleCacheLayer::new().layer(up.service());
        let path = format!("/p{round}");
        let mut calls: VecDeque<_> = VecDeque::new();
        for _ in 0..10 {
            let mut call = tokio_test::task::spawn(svc.clone().oneshot(get(&path, "t")));
            tokio_test::assert_pending!(call.poll());
            calls.push_back(call);
        }
        assert_eq!(up.calls(), 1, "round {round}: one leader");
        // Drop the current leader (the oldest) `round % 4` times, and every third follower.
        let handovers = round % 4;
        for _ in 0..handovers {
            drop(calls.pop_front());
            tokio::time::advance(Duration::from_millis(10)).await;
            for call in &mut calls {
                let _ = call.poll();
            }
        }
        let survivors: Vec<_> = calls
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 2)
            .map(|(_, c)| tokio::spawn(c))
            .collect();
        assert_eq!(
            up.calls(),
            1 + handovers,
            "round {round}: one call per leader"
        );
        for s in survivors {
            assert_eq!(s.await.unwrap().unwrap().status(), 200);
        }
        assert_eq!(up.calls(), 1 + handovers);

        // Everyone gone mid-flight: the next request leads at once.
        let mut calls: Vec<_> = (0..5)
            .map(|_| tokio_test::task::spawn(svc.clone().oneshot(get("/q", "t"))))
            .collect();
        for c in &mut calls {
            tokio_test::assert_pending!(c.poll());
        }
        drop(calls);
        up.set(Next::Slow(50));
        let started = tokio::time::Instant::now();
        svc.clone().oneshot(get("/q", "t")).await.unwrap();
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(50),
            "round {round}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn memory_stays_within_max_bytes() {
    let up = Upstream::new(Next::Bytes(1_000));
    let cache = StaleCacheLayer::new().max_bytes(100_000);
    let svc = cache.layer(up.service());
    for i in 0..2_000 {
        svc.clone()
            .oneshot(get(&format!("/p/{i}"), "a"))
            .await
            .unwrap();
    }
    let stats = cache.stats();
    assert!(stats.bytes <= 100_000, "{} bytes stored", stats.bytes);
    assert!(stats.entries < 2_000);
    assert_eq!(stats.stores, 2_000);
}

#[tokio::test(start_paused = true)]
async fn large_bodies_stream_through_uncached() {
    let up = Upstream::new(Next::Ok("0123456789abcdef"));
    let cache = StaleCacheLayer::new().max_body_bytes(8);
    let svc = cache.layer(up.service());
    let res = svc.clone().oneshot(get("/p", "a")).await.unwrap();
    assert_eq!(body(res).await, "0123456789abcdef", "nothing lost");
    assert_eq!(cache.stats().stores, 0);
}
