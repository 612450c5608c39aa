//! Property test through the layer: over any interval of length t, admitted ≤ burst + rate·t.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bulwark_bucket::{Rate, TokenBucketLayer};
use bulwark_http::BoxError;
use http::{Request, Response};
use proptest::prelude::*;
use tokio::time::Instant;
use tower::{service_fn, Layer, ServiceExt};

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn admissions_never_exceed_burst_plus_rate(
        count in 1u32..20,
        burst in 1u32..8,
        max_wait_ms in prop_oneof![Just(0u64), 0u64..2_000],
        gaps in proptest::collection::vec(0u64..300, 1..200),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async move {
            let sent = Arc::new(Mutex::new(Vec::<Instant>::new()));
            let log = sent.clone();
            let layer = TokenBucketLayer::new(Rate::per_second(count))
                .burst(burst)
                .max_wait(Duration::from_millis(max_wait_ms));
            let svc = layer.layer(service_fn(move |_req: Request<()>| {
                log.lock().unwrap().push(Instant::now());
                async { Ok::<_, BoxError>(Response::new(())) }
            }));
            let mut tasks = Vec::new();
            for gap in gaps {
                // `sleep`, not `advance`: timers of waiting requests fire in order on the way.
                tokio::time::sleep(Duration::from_millis(gap)).await;
                tasks.push(tokio::spawn(svc.clone().oneshot(Request::new(()))));
            }
            for t in tasks {
                let _ = t.await.unwrap();
            }
            let sent = sent.lock().unwrap().clone();
            let interval = Duration::from_secs(1) / count;
            for i in 0..sent.len() {
                for j in i..sent.len() {
                    let span = sent[j] - sent[i];
                    // tokio's timer fires on whole milliseconds (rounding up), so a waiter may be
                    // sent up to 1 ms after its slot: allow that much on the span.
                    let bound = u128::from(burst) + (span.as_nanos() + 1_000_000) / interval.as_nanos();
                    prop_assert!((j - i + 1) as u128 <= bound, "{} in {:?}", j - i + 1, span);
                }
            }
            Ok(())
        })?;
    }
}

/// Under saturation over 60 s, admitted ≥ 99 % of burst + rate·t.
#[tokio::test(start_paused = true)]
async fn saturation_reaches_the_bound() {
    let layer = TokenBucketLayer::new(Rate::per_second(3)).max_wait(Duration::ZERO);
    let svc = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, BoxError>(Response::new(()))
    }));
    let mut admitted = 0u64;
    // Offer a request every 10 ms for 60 s.
    for _ in 0..6_000 {
        if svc.clone().oneshot(Request::new(())).await.is_ok() {
            admitted += 1;
        }
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    let bound = 3 + 3 * 60;
    assert!(admitted <= bound);
    assert!(
        admitted as f64 >= 0.99 * bound as f64,
        "{admitted} of {bound}"
    );
}
