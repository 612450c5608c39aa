//! `RedisStore` against a real `redis-server`, which each test starts on a free loopback port
//! (`.ci/run` installs it when missing; without it these tests fail, they do not skip).
//!
//! Two layers with their own stores stand for two processes. Entries carry wall-clock times,
//! so these tests run in real time; every call is bounded and every loop is too.
#![cfg(feature = "redis")]

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bulwark_cache::{CacheBody, CacheStatus, KeySecret, RedisStore, StaleCacheLayer};
use bulwark_http::{BoxError, BufferedBody};
use bulwark_testkit::{CapturedLogs, RedisServer};
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use tokio::time::{sleep, timeout, Instant};
use tower::{util::BoxCloneService, Layer, Service, ServiceExt};

/// The deployment secret every layer of these tests shares.
fn secret() -> KeySecret {
    KeySecret::new("the tests' shared key secret....").unwrap()
}

/// A client of `server`.
fn client(server: &RedisServer) -> redis::Client {
    redis::Client::open(server.url()).unwrap()
}

/// A fake upstream: answers `status` (with `cache-control` if set) and the request's path as
/// the body; counts its calls.
#[derive(Clone)]
struct Upstream {
    answer: Arc<Mutex<(u16, Option<&'static str>)>>,
    calls: Arc<AtomicUsize>,
}

type Svc = BoxCloneService<Request<BufferedBody>, Response<CacheBody<BufferedBody>>, BoxError>;

impl Upstream {
    fn new(status: u16) -> Self {
        Self {
            answer: Arc::new(Mutex::new((status, None))),
            calls: Arc::default(),
        }
    }

    fn set(&self, status: u16, cache_control: Option<&'static str>) {
        *self.answer.lock().unwrap() = (status, cache_control);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn behind(&self, layer: &StaleCacheLayer) -> Svc {
        let up = self.clone();
        let inner = tower::service_fn(move |req: Request<BufferedBody>| {
            up.calls.fetch_add(1, Ordering::SeqCst);
            let (status, cc) = *up.answer.lock().unwrap();
            let body = format!("{} {}", req.uri().path(), status);
            async move {
                let mut res = Response::builder().status(status);
                if let Some(cc) = cc {
                    res = res.header("cache-control", cc);
                }
                Ok::<_, BoxError>(res.body(BufferedBody::from(body))?)
            }
        });
        BoxCloneService::new(layer.layer(inner))
    }
}

fn layer(server: &RedisServer, prefix: &str) -> StaleCacheLayer {
    StaleCacheLayer::new()
        .stale_if_error(Duration::from_secs(300))
        .store(RedisStore::new(client(server), prefix, secret()))
}

fn get(path: &str, token: &str) -> Request<BufferedBody> {
    Request::get(format!("https://api.test{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(BufferedBody::empty())
        .unwrap()
}

struct Answer {
    status: u16,
    body: String,
    cache: Option<CacheStatus>,
    cache_status: String,
}

/// Sends one request; panics on a hang (2 s) or an error.
async fn send(svc: &Svc, req: Request<BufferedBody>) -> Answer {
    let res = match timeout(Duration::from_secs(2), svc.clone().oneshot(req)).await {
        Err(_) => panic!("a request hung for 2 s"),
        Ok(res) => res.unwrap(),
    };
    let status = res.status().as_u16();
    let cache = res.extensions().get::<CacheStatus>().copied();
    let cache_status = res
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        body: String::from_utf8(body.to_vec()).unwrap(),
        cache,
        cache_status,
    }
}

fn is_stale(a: &Answer) -> bool {
    matches!(a.cache, Some(CacheStatus::Stale { .. }))
}

#[tokio::test]
async fn two_layers_share_copies_but_never_across_tokens() {
    let Some(server) = RedisServer::start_or_skip().await else {
        return;
    };
    let (a, b) = (layer(&server, "test:shared"), layer(&server, "test:shared"));
    let (up_a, up_b) = (Upstream::new(200), Upstream::new(503));
    let (svc_a, svc_b) = (up_a.behind(&a), up_b.behind(&b));

    // A stores a copy from its healthy upstream.
    let res = send(&svc_a, get("/v1/pages/1", "alice")).await;
    assert_eq!((res.status, res.body.as_str()), (200, "/v1/pages/1 200"));
    assert_eq!(a.stats().stores, 1);

    // B never saw the request; its upstream fails: A's copy answers, marked stale.
    let res = send(&svc_b, get("/v1/pages/1", "alice")).await;
    assert_eq!((res.status, res.body.as_str()), (200, "/v1/pages/1 200"));
    assert!(is_stale(&res), "{:?}", res.cache);
    assert_eq!(res.cache_status, "bulwark; fwd=stale; fwd-status=503");
    assert_eq!((b.stats().shared_loads, b.stats().stale_served), (1, 1));

    // Another token does not get it.
    let res = send(&svc_b, get("/v1/pages/1", "mallory")).await;
    assert_eq!((res.status, res.cache), (503, Some(CacheStatus::Live)));
    // Nor does no token at all.
    let mut anonymous = get("/v1/pages/1", "x");
    anonymous.headers_mut().remove("authorization");
    assert_eq!(send(&svc_b, anonymous).await.status, 503);

    // A fresh copy in Redis answers B without calling B's upstream.
    up_a.set(200, Some("max-age=60"));
    send(&svc_a, get("/v1/pages/2", "alice")).await;
    up_b.set(200, None);
    let calls = up_b.calls();
    let res = send(&svc_b, get("/v1/pages/2", "alice")).await;
    assert_eq!((res.status, res.body.as_str()), (200, "/v1/pages/2 200"));
    assert!(matches!(res.cache, Some(CacheStatus::Fresh { .. })));
    assert!(
        res.cache_status.starts_with("bulwark; hit; ttl=")
            && res.cache_status.ends_with("; detail=shared"),
        "{}",
        res.cache_status
    );
    assert_eq!(up_b.calls(), calls, "served from Redis");
    assert_eq!(b.stats().shared_unavailable, 0);
}

#[tokio::test]
async fn evictions_reach_redis() {
    let Some(server) = RedisServer::start_or_skip().await else {
        return;
    };
    let a = layer(&server, "test:evict");
    let up_a = Upstream::new(200);
    let svc_a = up_a.behind(&a);
    send(&svc_a, get("/v1/pages/1", "alice")).await;
    send(&svc_a, get("/v1/pages/2?x=1", "alice")).await;
    send(&svc_a, get("/v1/pages/2?x=2", "bob")).await;
    assert_eq!(a.stats().stores, 3);

    // A 404 deletes the copy in Redis.
    up_a.set(404, None);
    assert_eq!(send(&svc_a, get("/v1/pages/1", "alice")).await.status, 404);
    // A successful write deletes every copy of its path, whoever's.
    up_a.set(200, None);
    let patch = Request::builder()
        .method(Method::PATCH)
        .uri("https://api.test/v1/pages/2")
        .body(BufferedBody::from("{}"))
        .unwrap();
    assert_eq!(send(&svc_a, patch).await.status, 200);

    // A new process with a failing upstream finds nothing to serve.
    let c = layer(&server, "test:evict");
    let svc_c = Upstream::new(503).behind(&c);
    for (path, token) in [
        ("/v1/pages/1", "alice"),
        ("/v1/pages/2?x=1", "alice"),
        ("/v1/pages/2?x=2", "bob"),
    ] {
        let res = send(&svc_c, get(path, token)).await;
        assert_eq!(res.status, 503, "{path} {token}");
    }
    assert_eq!(c.stats().shared_loads, 0);
    assert_eq!(c.stats().shared_unavailable, 0);
}

#[tokio::test]
async fn a_dead_redis_is_a_miss_and_a_restarted_one_is_shared_again() {
    let logs = CapturedLogs::default();
    let _capture = logs.capture();
    let Some(mut server) = RedisServer::start_or_skip().await else {
        return;
    };
    let (a, b) = (layer(&server, "test:outage"), layer(&server, "test:outage"));
    let (up_a, up_b) = (Upstream::new(200), Upstream::new(503));
    let (svc_a, svc_b) = (up_a.behind(&a), up_b.behind(&b));
    send(&svc_a, get("/v1/pages/1", "alice")).await;
    assert!(is_stale(&send(&svc_b, get("/v1/pages/1", "alice")).await));

    // Redis dies: A stores in memory only; B's failures pass through, except for the copy B
    // already holds, promptly.
    server.kill();
    let outage = Instant::now();
    assert_eq!(send(&svc_a, get("/v1/pages/2", "alice")).await.status, 200);
    for _ in 0..50 {
        let res = send(&svc_b, get("/v1/pages/2", "alice")).await;
        assert_eq!((res.status, res.cache), (503, Some(CacheStatus::Live)));
        let res = send(&svc_b, get("/v1/pages/1", "alice")).await;
        assert_eq!(res.status, 200);
        assert!(is_stale(&res));
    }
    assert!(
        outage.elapsed() < Duration::from_secs(1),
        "101 requests took {:?} during the outage",
        outage.elapsed()
    );
    assert!(a.stats().shared_unavailable >= 1);
    assert!(b.stats().shared_unavailable >= 50);
    // Each layer logged the outage once.
    assert_eq!(logs.count("Redis unreachable"), 2);

    // Redis returns (empty, on the same port): within a few seconds (a layer retries a dead
    // Redis once a second), A's copies reach B again.
    server.restart().await;
    let restarted = Instant::now();
    let mut shared = false;
    for _ in 0..50 {
        send(&svc_a, get("/v1/pages/3", "alice")).await;
        let res = send(&svc_b, get("/v1/pages/3", "alice")).await;
        if res.status == 200 {
            assert!(is_stale(&res));
            shared = true;
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    assert!(shared, "not shared again within 5 s of the restart");
    eprintln!("shared again {:?} after the restart", restarted.elapsed());
    assert_eq!(logs.count("Redis answers again"), 2);
    assert_eq!(logs.count("Redis unreachable"), 2);
}

#[tokio::test]
async fn without_redis_the_cache_works_from_memory_at_once() {
    // Nothing listens on this port: every Redis call fails, every request is decided locally.
    let client = redis::Client::open(RedisServer::unused_url()).unwrap();
    let cache = StaleCacheLayer::new().store(RedisStore::new(client, "test:absent", secret()));
    let up = Upstream::new(200);
    let svc = up.behind(&cache);
    let start = Instant::now();
    assert_eq!(send(&svc, get("/v1/pages/1", "alice")).await.status, 200);
    up.set(503, None);
    for _ in 0..20 {
        assert!(is_stale(&send(&svc, get("/v1/pages/1", "alice")).await));
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(cache.stats().shared_unavailable >= 21);
    assert_eq!(cache.stats().shared_loads, 0);
}

#[test]
fn the_redis_feature_keeps_the_service_send() {
    fn send<T: Send>(_: &T) {}
    let cache: StaleCacheLayer = StaleCacheLayer::new().store(RedisStore::new(
        redis::Client::open("redis://127.0.0.1:1/").unwrap(),
        "test:auto-traits",
        secret(),
    ));
    let svc = Upstream::new(200).behind(&cache);
    send(&svc);
    // Built, never polled: no runtime needed.
    let mut svc = svc;
    send(&svc.call(get("/", "t")));
}
