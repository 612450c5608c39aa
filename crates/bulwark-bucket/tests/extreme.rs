//! Extreme settings never panic (issue 15, finding 1): every number and duration setter with
//! `0`, 1 ns, `u32::MAX`, `usize::MAX`, `Duration::MAX` and random values, a few requests on
//! paused time, and an upstream `Retry-After` of any length. A refusal's `retry_after` is never
//! more than [`MAX_RETRY_AFTER`] (one year), the longest wait a bulwark client accepts.

use std::{error::Error as StdError, hash::Hash, time::Duration};

use bulwark_bucket::{KeyExtractor, Rate, RateLimited, TokenBucketLayer};
use bulwark_http::{BoxError, Class, Classify, RejectionResponseLayer, MAX_RETRY_AFTER};
use http::{Request, Response, StatusCode};
use proptest::prelude::*;
use tokio::time::timeout;
use tower::{service_fn, util::BoxCloneService, Layer, ServiceBuilder, ServiceExt};

/// Answers 429 to requests whose body is odd, 200 otherwise.
type Upstream = BoxCloneService<Request<u32>, Response<()>, BoxError>;

fn upstream() -> Upstream {
    BoxCloneService::new(service_fn(|req: Request<u32>| async move {
        let status = if req.body() % 2 == 1 { 429 } else { 200 };
        Ok::<_, BoxError>(Response::builder().status(status).body(()).unwrap())
    }))
}

/// Classifies every 429 as throttled with this `Retry-After`, however long: a custom
/// classifier is not bound by the header parser's one-year limit.
#[derive(Debug, Clone, Copy)]
struct Throttles(Duration);

impl Classify for Throttles {
    fn classify_response<B>(&self, res: &Response<B>) -> Class {
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            Class::Throttled {
                retry_after: Some(self.0),
            }
        } else {
            Class::Success
        }
    }

    fn classify_error(&self, _err: &(dyn StdError + 'static)) -> Class {
        Class::Permanent
    }
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_secs(1)),
        Just(Duration::MAX),
        Just(Duration::from_nanos(u64::MAX)),
        any::<u64>().prop_map(Duration::from_nanos),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn count() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), Just(1), Just(3), Just(u32::MAX), any::<u32>()]
}

/// Sends each `(body, gap in ms)` after its gap, every call bounded by 5 s of virtual time,
/// and checks every refusal.
async fn drive<E, K>(layer: TokenBucketLayer<Throttles, E, K>, requests: &[(u32, u64)])
where
    E: KeyExtractor<u32, Key = K> + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
{
    // Never panics, whatever it says.
    let _ = layer.validate();
    let svc = layer.layer(upstream());
    let mut calls = Vec::new();
    for &(body, gap) in requests {
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let call = svc.clone().oneshot(Request::new(body));
        calls.push(tokio::spawn(timeout(Duration::from_secs(5), call)));
    }
    for call in calls {
        match call.await.expect("no panic") {
            // Still waiting for its token after 5 s: dropped, which is fine too.
            Err(_elapsed) => {}
            Ok(Ok(_response)) => {}
            Ok(Err(err)) => {
                let limited = err.downcast_ref::<RateLimited>().expect("only RateLimited");
                assert!(
                    limited.retry_after <= MAX_RETRY_AFTER,
                    "retry_after {:?}",
                    limited.retry_after
                );
            }
        }
    }
    let _ = layer.stats();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn no_setting_panics_and_retry_after_stays_sane(
        rate in (count(), duration()),
        per_second in prop::option::of(count()),
        burst in prop::option::of(count()),
        max_wait in prop::option::of(duration()),
        max_keys in prop::option::of(prop_oneof![Just(0usize), Just(1), Just(usize::MAX), 0usize..100]),
        keyed in any::<bool>(),
        pause in any::<bool>(),
        emit in any::<bool>(),
        upstream_retry_after in duration(),
        requests in proptest::collection::vec((0u32..6, prop_oneof![Just(0u64), 0u64..3_000]), 1..8),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let rate = match per_second {
                Some(n) => Rate::per_second(n),
                None => Rate::new(rate.0, rate.1),
            };
            let _ = (rate.interval(), rate.count(), rate.per());
            let mut layer = TokenBucketLayer::new(rate);
            if let Some(burst) = burst {
                layer = layer.burst(burst);
            }
            if let Some(max_wait) = max_wait {
                layer = layer.max_wait(max_wait);
            }
            if let Some(max_keys) = max_keys {
                layer = layer.max_keys(max_keys);
            }
            let layer = layer
                .pause_on_retry_after(pause)
                .emit_headers(emit)
                .classify(Throttles(upstream_retry_after));
            if keyed {
                drive(layer.keyed(|req: &Request<u32>| Some(*req.body() / 2)), &requests).await;
            } else {
                drive(layer, &requests).await;
            }
        });
    }
}

/// Regression (issue 15): `Rate::new(0, 1 s)` ("refuses everything") refused with a
/// `retry_after` of `Duration::MAX`, which overflowed when rendered as `Retry-After`. It now
/// says [`MAX_RETRY_AFTER`] (one year): the longest wait a bulwark client accepts.
#[tokio::test(start_paused = true)]
async fn a_zero_rate_refuses_with_a_retry_after_of_one_year() {
    let layer = TokenBucketLayer::new(Rate::new(0, Duration::from_secs(1)));
    let err = layer
        .layer(upstream())
        .oneshot(Request::new(0))
        .await
        .unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(limited.retry_after, MAX_RETRY_AFTER);
    assert_eq!(
        limited.policy.map(|p| p.quota),
        Some(0),
        "a quota of nothing"
    );

    // Rendered for a server: a 429 with a Retry-After a client can read.
    let svc = ServiceBuilder::new()
        .layer(RejectionResponseLayer::new())
        .layer(TokenBucketLayer::new(Rate::per_second(0)))
        .service(upstream());
    let res = svc.oneshot(Request::new(0)).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(secs, MAX_RETRY_AFTER.as_secs());
}

/// Regression: `Rate::new(1, Duration::MAX)` saturated the bucket's arithmetic to "no
/// limit": every request went through. It admits one, then refuses.
#[tokio::test(start_paused = true)]
async fn one_request_per_duration_max_admits_one() {
    let layer = TokenBucketLayer::new(Rate::new(1, Duration::MAX)).max_wait(Duration::ZERO);
    let svc = layer.layer(upstream());
    svc.clone().oneshot(Request::new(0)).await.unwrap();
    for _ in 0..3 {
        let err = svc.clone().oneshot(Request::new(0)).await.unwrap_err();
        let limited = err.downcast_ref::<RateLimited>().unwrap();
        assert_eq!(limited.retry_after, MAX_RETRY_AFTER);
    }
    assert_eq!(layer.stats().admitted, 1);
}

/// Regression: a keyed layer with `max_wait(Duration::MAX)` panicked when it was built
/// (moka: "time_to_idle is longer than 1000 years").
#[tokio::test(start_paused = true)]
async fn a_keyed_layer_that_waits_forever_builds() {
    let layer = TokenBucketLayer::new(Rate::per_second(1))
        .max_wait(Duration::MAX)
        .keyed(|req: &Request<u32>| Some(*req.body()));
    let svc = layer.layer(upstream());
    svc.clone().oneshot(Request::new(0)).await.unwrap();
    // The next token for key 0 is a second away: it waits for it.
    let res = timeout(Duration::from_secs(2), svc.oneshot(Request::new(0))).await;
    assert!(res.unwrap().is_ok());
}

/// An upstream pause as long as `Duration::MAX` holds the bucket, and the refusals it causes
/// say at most a year.
#[tokio::test(start_paused = true)]
async fn an_endless_upstream_pause_refuses_with_a_capped_retry_after() {
    let layer = TokenBucketLayer::new(Rate::per_second(10))
        .max_wait(Duration::from_secs(1))
        .classify(Throttles(Duration::MAX));
    let svc = layer.layer(upstream());
    let res = svc.clone().oneshot(Request::new(1)).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let err = svc.oneshot(Request::new(0)).await.unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(limited.retry_after, MAX_RETRY_AFTER);
    assert_eq!(layer.stats().paused, 1);
}

/// `validate` names the setting the layer would clamp or that makes no sense.
#[test]
fn validate_names_what_the_layer_would_clamp() {
    let field = |layer: TokenBucketLayer| layer.validate().map_err(|e| e.field());
    assert_eq!(field(TokenBucketLayer::new(Rate::per_second(3))), Ok(()));
    // A zero rate is valid: it refuses everything, as documented. So is a zero period.
    assert_eq!(field(TokenBucketLayer::new(Rate::per_second(0))), Ok(()));
    assert_eq!(
        field(TokenBucketLayer::new(Rate::new(3, Duration::ZERO))),
        Ok(())
    );
    // Waiting "forever" is a choice, not an error.
    assert_eq!(
        field(TokenBucketLayer::new(Rate::per_second(3)).max_wait(Duration::MAX)),
        Ok(())
    );
    assert_eq!(
        field(TokenBucketLayer::new(Rate::per_second(3)).burst(0)),
        Err("burst")
    );
    assert_eq!(
        field(TokenBucketLayer::new(Rate::per_second(3)).max_keys(0)),
        Err("max_keys")
    );
    // Faster than one request per nanosecond.
    assert_eq!(
        field(TokenBucketLayer::new(Rate::new(
            u32::MAX,
            Duration::from_nanos(1)
        ))),
        Err("rate")
    );
    assert_eq!(
        field(TokenBucketLayer::new(Rate::per_second(u32::MAX))),
        Err("rate")
    );
    assert_eq!(
        field(TokenBucketLayer::new(Rate::new(
            1_000_000_000,
            Duration::from_secs(1)
        ))),
        Ok(()),
        "exactly one per nanosecond"
    );
    // A burst that would take more than ~146 years to refill.
    assert_eq!(
        field(TokenBucketLayer::new(Rate::per_minute(1)).burst(u32::MAX)),
        Err("burst")
    );
    let err = TokenBucketLayer::new(Rate::per_second(3))
        .burst(0)
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("burst"), "{err}");
}
