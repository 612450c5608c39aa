//! `RedisStore` against a real `redis-server`, which each test starts on a free loopback port
//! (`.ci/run` installs it when missing; without it these tests fail, they do not skip).
//!
//! Two layers with their own stores stand for two processes. Redis decides with its own clock,
//! so these tests run in real time; each is a few seconds at most and every loop is bounded.
#![cfg(feature = "redis")]

use std::time::Duration;

use bulwark_bucket::{KeySecret, Rate, RateLimited, RedisStore, TokenBucketLayer};
use bulwark_http::BoxError;
use bulwark_testkit::{CapturedLogs, RedisServer};
use http::{Request, Response};
use tokio::time::{sleep, timeout, Instant};
use tower::{limit::ConcurrencyLimitLayer, service_fn, Layer, Service, ServiceBuilder, ServiceExt};

/// The deployment secret every layer of these tests shares.
fn secret() -> KeySecret {
    KeySecret::new("the tests' shared key secret....").unwrap()
}

/// A client of `server`.
fn client(server: &RedisServer) -> redis::Client {
    redis::Client::open(server.url()).unwrap()
}

/// An upstream that answers with the status in the request body (429s carry a Retry-After).
async fn upstream<B: Into<u16>>(req: Request<B>) -> Result<Response<()>, BoxError> {
    let status: u16 = req.into_body().into();
    let mut res = Response::builder().status(status);
    if status == 429 {
        res = res.header("retry-after", "2");
    }
    Ok(res.body(())?)
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Admitted,
    Limited(Duration),
}

/// Sends one request; panics on a hang (2 s) or any error other than `RateLimited`.
async fn send<S, B>(svc: &S, req: Request<B>) -> Outcome
where
    S: Service<Request<B>, Response = Response<()>, Error = BoxError> + Clone,
{
    match timeout(Duration::from_secs(2), svc.clone().oneshot(req)).await {
        Err(_) => panic!("a request hung for 2 s"),
        Ok(Ok(_)) => Outcome::Admitted,
        Ok(Err(e)) => match e.downcast_ref::<RateLimited>() {
            Some(limited) => Outcome::Limited(limited.retry_after),
            None => panic!("unexpected error: {e}"),
        },
    }
}

#[tokio::test]
async fn two_layers_on_one_redis_share_one_limit() {
    let Some(server) = RedisServer::start_or_skip().await else {
        return;
    };
    let make = || {
        TokenBucketLayer::new(Rate::per_second(10))
            .burst(5)
            .max_wait(Duration::ZERO)
            .store(RedisStore::new(client(&server), "test:shared", secret()))
    };
    let (a, b) = (make(), make());
    let start = Instant::now();
    // Each "process" sends as fast as it can for 3 s.
    let run = |layer: &TokenBucketLayer| {
        let svc = layer.layer(service_fn(upstream::<u16>));
        async move {
            let mut admitted = 0u64;
            while start.elapsed() < Duration::from_secs(3) {
                if send(&svc, Request::new(200)).await == Outcome::Admitted {
                    admitted += 1;
                }
            }
            admitted
        }
    };
    let (from_a, from_b) = tokio::join!(run(&a), run(&b));
    let elapsed = start.elapsed().as_secs_f64();
    let total = from_a + from_b;
    eprintln!("{total} admissions ({from_a} + {from_b}) in {elapsed:.3} s");
    // Every admission happened (on Redis's clock) between `start` and now, so GCRA bounds
    // them by burst + rate·elapsed. Redis measures with its wall clock and this test with
    // the monotonic one: an NTP slew (≤ 500 ppm) moves the bound by far less than one
    // request, and +1 covers it together with rounding the bound down.
    let bound = 5.0 + 10.0 * elapsed;
    assert!(
        total as f64 <= bound.floor() + 1.0,
        "{total} admissions ({from_a} + {from_b}) in {elapsed:.3} s, bound {bound:.1}"
    );
    assert!(
        total as f64 >= 0.9 * bound,
        "{total} admissions ({from_a} + {from_b}) in {elapsed:.3} s: under 90 % of {bound:.1}"
    );
    assert!(from_a > 0 && from_b > 0, "{from_a} + {from_b}");
    for layer in [&a, &b] {
        let stats = layer.stats();
        assert_eq!(stats.fallbacks, 0, "Redis answered every request");
        assert!(stats.rejected > 0);
    }
    assert_eq!(a.stats().admitted + b.stats().admitted, total);
}

#[tokio::test]
async fn a_dead_redis_degrades_to_local_and_a_restarted_one_is_used_again() {
    let logs = CapturedLogs::default();
    let _capture = logs.capture();
    let Some(mut server) = RedisServer::start_or_skip().await else {
        return;
    };
    // One request per 12 s after a burst of 5: nothing refills during the test, so every
    // refusal below says whose bucket decided.
    let make = || {
        TokenBucketLayer::new(Rate::per_minute(5))
            .max_wait(Duration::ZERO)
            .keyed(|req: &Request<&'static str>| Some(req.body().to_string()))
            .store(RedisStore::new(client(&server), "test:outage", secret()))
    };
    let (a, b) = (make(), make());
    let upstream = || service_fn(|_req: Request<&'static str>| upstream(Request::new(200u16)));
    let (svc_a, svc_b) = (a.layer(upstream()), b.layer(upstream()));

    // Redis up: A spends the burst of key "one"; B, whose local bucket is full, is refused.
    for _ in 0..5 {
        assert_eq!(send(&svc_a, Request::new("one")).await, Outcome::Admitted);
    }
    let Outcome::Limited(retry_after) = send(&svc_b, Request::new("one")).await else {
        panic!("B shares A's bucket");
    };
    assert!(retry_after > Duration::from_secs(11), "{retry_after:?}");
    assert_eq!(a.stats().fallbacks + b.stats().fallbacks, 0);

    // Redis holds the bucket under a MAC of the key, never the key itself.
    let mut redis = client(&server)
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("test:outage*")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let name = keys[0].strip_prefix("test:outage:").unwrap();
    assert!(
        name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()) && !name.contains("one"),
        "{name}"
    );

    // Redis dies: each layer decides locally, promptly, with no error but RateLimited.
    server.kill();
    let outage = Instant::now();
    for svc in [&svc_a, &svc_b] {
        for _ in 0..5 {
            assert_eq!(send(svc, Request::new("two")).await, Outcome::Admitted);
        }
        assert!(matches!(
            send(svc, Request::new("two")).await,
            Outcome::Limited(_)
        ));
        for _ in 0..200 {
            send(svc, Request::new("more")).await;
        }
    }
    // 10 admissions on key "two" (5 + 5) where Redis would allow 5: the buckets were local.
    assert!(a.stats().fallbacks >= 206 && b.stats().fallbacks >= 206);
    assert!(
        outage.elapsed() < Duration::from_secs(1),
        "412 requests took {:?} during the outage",
        outage.elapsed()
    );

    // Each layer logged the outage once.
    assert_eq!(logs.count("Redis unreachable"), 2);

    // Redis returns (empty, on the same port): both layers go back to it within a few
    // seconds (a layer retries a dead Redis once a second).
    server.restart().await;
    let restarted = Instant::now();
    for (layer, svc) in [(&a, &svc_a), (&b, &svc_b)] {
        let mut back = false;
        for _ in 0..50 {
            let before = layer.stats().fallbacks;
            send(svc, Request::new("probe")).await;
            if layer.stats().fallbacks == before {
                back = true;
                break;
            }
            sleep(Duration::from_millis(100)).await;
        }
        assert!(back, "Redis not used again within 5 s");
    }
    eprintln!(
        "Redis used again {:?} after its restart",
        restarted.elapsed()
    );
    assert_eq!(logs.count("Redis answers again"), 2);
    assert_eq!(logs.count("Redis unreachable"), 2);

    // Shared again: A spends key "four" (new to both); B, whose local bucket is full, is refused.
    let fallbacks = (a.stats().fallbacks, b.stats().fallbacks);
    for _ in 0..5 {
        assert_eq!(send(&svc_a, Request::new("four")).await, Outcome::Admitted);
    }
    assert!(matches!(
        send(&svc_a, Request::new("four")).await,
        Outcome::Limited(_)
    ));
    assert!(matches!(
        send(&svc_b, Request::new("four")).await,
        Outcome::Limited(_)
    ));
    assert_eq!((a.stats().fallbacks, b.stats().fallbacks), fallbacks);
}

#[tokio::test]
async fn an_upstream_pause_reaches_the_other_layers() {
    let Some(server) = RedisServer::start_or_skip().await else {
        return;
    };
    let make = || {
        TokenBucketLayer::new(Rate::per_second(10))
            .max_wait(Duration::ZERO)
            .store(RedisStore::new(client(&server), "test:pause", secret()))
    };
    let (a, b) = (make(), make());
    let svc_a = a.layer(service_fn(upstream::<u16>));
    let svc_b = b.layer(service_fn(upstream::<u16>));
    assert_eq!(send(&svc_b, Request::new(200)).await, Outcome::Admitted);
    // A's upstream answers 429 with Retry-After: 2; the response comes back as it is.
    let res = svc_a.clone().oneshot(Request::new(429)).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(a.stats().paused, 1);
    // B has tokens locally, but Redis's bucket is paused for 2 s.
    let Outcome::Limited(retry_after) = send(&svc_b, Request::new(200)).await else {
        panic!("B is paused too");
    };
    assert!(
        retry_after > Duration::from_millis(1500) && retry_after <= Duration::from_secs(2),
        "{retry_after:?}"
    );
    assert_eq!(b.stats().fallbacks, 0);
}

#[tokio::test]
async fn a_wait_decided_by_redis_is_served_locally() {
    let Some(server) = RedisServer::start_or_skip().await else {
        return;
    };
    let make = || {
        TokenBucketLayer::new(Rate::per_second(10))
            .burst(1)
            .max_wait(Duration::from_secs(1))
            .emit_headers(true)
            .store(RedisStore::new(client(&server), "test:wait", secret()))
    };
    let (a, b) = (make(), make());
    let svc_a = a.layer(service_fn(upstream::<u16>));
    let svc_b = b.layer(service_fn(upstream::<u16>));
    let res = svc_a.clone().oneshot(Request::new(200)).await.unwrap();
    // The RateLimit header reflects Redis's bucket: nothing left right after the burst of 1.
    let header = res.headers().get("ratelimit").unwrap().to_str().unwrap();
    assert!(header.contains("r=0"), "{header}");
    // B's local bucket is full, but Redis says: your slot is in 100 ms.
    let start = Instant::now();
    assert_eq!(send(&svc_b, Request::new(200)).await, Outcome::Admitted);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(80) && waited < Duration::from_millis(600),
        "{waited:?}"
    );
    assert_eq!((b.stats().waited, b.stats().admitted), (1, 1));
}

#[tokio::test]
async fn without_redis_the_local_bucket_decides_at_once() {
    // Nothing listens on this port: connecting fails, every request is decided locally.
    let client = redis::Client::open(RedisServer::unused_url()).unwrap();
    let layer = TokenBucketLayer::new(Rate::per_second(10))
        .burst(5)
        .max_wait(Duration::ZERO)
        .store(RedisStore::new(client, "test:absent", secret()));
    let svc = layer.layer(service_fn(upstream::<u16>));
    let start = Instant::now();
    let mut admitted = 0;
    for _ in 0..20 {
        if send(&svc, Request::new(200)).await == Outcome::Admitted {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);
    assert_eq!(layer.stats().fallbacks, 20);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_redis_feature_keeps_the_response_future_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let layer = TokenBucketLayer::new(Rate::per_second(1)).store(RedisStore::new(
        redis::Client::open("redis://127.0.0.1:1/").unwrap(),
        "test:auto-traits",
        secret(),
    ));
    let svc = layer.layer(service_fn(upstream::<u16>));
    // Built, never polled: no runtime needed.
    send_sync(&svc.oneshot(Request::new(200u16)));
}

/// Issue 15: asking Redis and waiting for the slot it reserved is waiting too: the request holds
/// no `ConcurrencyLimitLayer(1)` permit meanwhile, so another caller is ready at once.
#[tokio::test]
async fn a_request_waiting_for_a_redis_slot_holds_no_concurrency_permit() {
    let Some(server) = RedisServer::start_or_skip().await else {
        return;
    };
    let layer = TokenBucketLayer::new(Rate::per_second(2))
        .burst(1)
        .max_wait(Duration::from_secs(5))
        .store(RedisStore::new(client(&server), "test:permit", secret()));
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(ConcurrencyLimitLayer::new(1))
        .service_fn(upstream::<u16>);
    let (mut a, mut b) = (svc.clone(), svc);
    assert_eq!(send(&a, Request::new(200)).await, Outcome::Admitted);
    // The next slot is half a second away: Redis reserves it and the request waits.
    timeout(Duration::from_secs(1), a.ready())
        .await
        .expect("a is ready")
        .unwrap();
    let start = Instant::now();
    let waiting = tokio::spawn(a.call(Request::new(200)));
    timeout(Duration::from_millis(200), b.ready())
        .await
        .expect("the permit is free while the other request waits")
        .unwrap();
    // Give the permit back: the waiter needs it at its slot.
    drop(b);
    let res = timeout(Duration::from_secs(2), waiting)
        .await
        .expect("no hang");
    assert!(res.unwrap().is_ok());
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "it waited for its slot"
    );
    assert_eq!(layer.stats().fallbacks, 0, "Redis decided");
}
