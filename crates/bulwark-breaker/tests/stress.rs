//! Multi-threaded stress: however many callers race — and drop their calls mid-flight — no
//! more than `half_open_calls` probes are ever in flight, and no permit leaks.

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bulwark_breaker::{BreakerState, CircuitBreakerLayer};
use bulwark_http::CircuitOpen;
use http::{Request, Response, StatusCode};
use tokio::sync::watch;
use tower::{service_fn, Layer, ServiceExt};

/// Leaves the in-flight count when a call ends or is dropped mid-way.
struct Leave(Arc<AtomicUsize>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_in_flight_never_exceed_the_limit() {
    const PROBES: usize = 3;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    // Probes hang until released, so the half-open state cannot end during the race: every
    // admitted call is a probe of the same half-open, and only drops free permits.
    let (release, released) = watch::channel(false);
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .half_open_calls(PROBES as u32)
        .break_duration(Duration::from_millis(1))
        // Real time on a busy machine: a probe held past the default 1 s and then dropped
        // would count as failed (the drop rule). This test is about early drops only.
        .slow_call_threshold(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (f, m, c) = (in_flight.clone(), max_in_flight.clone(), calls.clone());
    let svc = layer.layer(service_fn(move |req: Request<StatusCode>| {
        let (f, m, c, mut released) = (f.clone(), m.clone(), c.clone(), released.clone());
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            let _leave = Leave(f);
            if *req.body() == StatusCode::OK {
                let _ = released.wait_for(|r| *r).await;
            }
            Ok::<_, Infallible>(Response::builder().status(*req.body()).body(()).unwrap())
        }
    }));
    // Trip it, and let the (1 ms) break pass.
    svc.clone()
        .oneshot(Request::new(StatusCode::SERVICE_UNAVAILABLE))
        .await
        .unwrap();
    for _ in 0..100 {
        if layer.handle().state() == BreakerState::HalfOpen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(layer.handle().state(), BreakerState::HalfOpen);
    max_in_flight.store(0, Ordering::SeqCst);
    calls.store(0, Ordering::SeqCst);

    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let (mut rejected, mut kept) = (0usize, Vec::new());
                for i in 0..2_000usize {
                    let call = svc.clone().oneshot(Request::new(StatusCode::OK));
                    let mut call = Box::pin(call);
                    // Poll once: admitted probes start and hang; rejections end at once.
                    match futures_poll_once(&mut call).await {
                        Some(Err(e)) => {
                            assert!(e.is::<CircuitOpen>());
                            rejected += 1;
                        }
                        Some(Ok(_)) => unreachable!("probes hang until released"),
                        None if (i + t) % 3 == 0 => drop(call), // frees its permit
                        None => kept.push(call),
                    }
                    if i % 8 == 0 {
                        tokio::task::yield_now().await;
                    }
                    // Hold at most a couple of probes per task, dropping the oldest.
                    if kept.len() > 1 {
                        kept.remove(0);
                    }
                }
                (rejected, kept)
            })
        })
        .collect();
    let mut rejected = 0;
    let mut kept = Vec::new();
    for t in tasks {
        let (r, k) = t.await.unwrap();
        rejected += r;
        kept.extend(k);
    }
    let max = max_in_flight.load(Ordering::SeqCst);
    assert!(max <= PROBES, "{max} probes were in flight at once");
    assert!(
        calls.load(Ordering::SeqCst) > PROBES,
        "dropped probes gave their permits back"
    );
    assert!(rejected > 0);
    assert!(kept.len() <= PROBES);

    // Release the probes that are still held: they succeed and close the circuit.
    release.send(true).unwrap();
    for call in kept {
        assert_eq!(call.await.unwrap().status(), StatusCode::OK);
    }
    // If every probe was dropped, one more call is the probe that closes it.
    if layer.handle().state() != BreakerState::Closed {
        svc.clone()
            .oneshot(Request::new(StatusCode::OK))
            .await
            .unwrap();
    }
    assert_eq!(layer.handle().state(), BreakerState::Closed);
}

/// Polls a future once; `None` if it is still pending.
async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}
