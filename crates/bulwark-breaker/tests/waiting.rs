//! `max_wait`: requests that would rather wait for an open circuit than fail at once.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bulwark_breaker::{BreakerState, CircuitBreakerLayer, CircuitWait};
use bulwark_http::{BoxError, CircuitOpen};
use http::{Request, Response};
use tokio::time::Instant;
use tower::{limit::ConcurrencyLimitLayer, service_fn, Layer, Service, ServiceBuilder, ServiceExt};

/// An upstream that fails while `down` is set, records when each call arrived.
#[derive(Clone, Default)]
struct Upstream {
    down: Arc<AtomicUsize>,
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl Upstream {
    fn service(
        &self,
    ) -> impl Service<Request<()>, Response = Response<()>, Error = BoxError, Future = impl Send>
           + Clone
           + Send {
        let up = self.clone();
        service_fn(move |_req: Request<()>| {
            let up = up.clone();
            async move {
                up.calls.lock().unwrap().push(Instant::now());
                let status = if up.down.load(Ordering::SeqCst) == 1 {
                    503
                } else {
                    200
                };
                Ok::<_, BoxError>(Response::builder().status(status).body(()).unwrap())
            }
        })
    }

    fn set_down(&self, down: bool) {
        self.down.store(usize::from(down), Ordering::SeqCst);
    }
}

fn layer(max_wait: Duration) -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .consecutive_failures(3)
        .break_duration(Duration::from_secs(2))
        .max_break_duration(Duration::from_secs(4))
        .max_wait(max_wait)
        .build()
        .unwrap()
}

async fn open<S>(svc: &S, up: &Upstream)
where
    S: Service<Request<()>, Response = Response<()>, Error = BoxError> + Clone,
{
    up.set_down(true);
    for _ in 0..3 {
        let _ = svc.clone().oneshot(Request::new(())).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiting_request_goes_as_the_probe_when_the_break_ends() {
    let up = Upstream::default();
    let layer = layer(Duration::from_secs(10));
    let svc = layer.layer(up.service());
    open(&svc, &up).await;
    assert!(matches!(layer.handle().state(), BreakerState::Open { .. }));
    up.set_down(false);
    let start = Instant::now();
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "at the end of the break"
    );
    assert_eq!(layer.handle().state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn waiters_all_go_once_the_probe_closes_the_circuit() {
    let up = Upstream::default();
    let layer = layer(Duration::from_secs(10));
    let svc = layer.layer(up.service());
    open(&svc, &up).await;
    up.set_down(false);
    let start = Instant::now();
    let waiters: Vec<_> = (0..5)
        .map(|_| tokio::spawn(svc.clone().oneshot(Request::new(()))))
        .collect();
    for w in waiters {
        assert_eq!(w.await.unwrap().unwrap().status(), 200);
    }
    assert!(
        start.elapsed() <= Duration::from_millis(2_100),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        up.calls.lock().unwrap().len(),
        3 + 5,
        "each waiter sent once"
    );
}

#[tokio::test(start_paused = true)]
async fn past_the_wait_it_fails_with_circuit_open_and_per_request_overrides_win() {
    let up = Upstream::default();
    let layer = layer(Duration::from_secs(3));
    let svc = layer.layer(up.service());
    open(&svc, &up).await;
    // Still down: the probe at 2 s fails (a 503 comes back to it), the next break is 4 s.
    let start = Instant::now();
    let first = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(
        first.status(),
        503,
        "the waiter went as the probe and saw the 503"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    // The next chance is 4 s away, past a 3 s wait: refused at once.
    let err = svc.clone().oneshot(Request::new(())).await.unwrap_err();
    assert!(err.downcast_ref::<CircuitOpen>().is_some());
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "refused without waiting"
    );
    // A request may ask for more, or for none.
    let mut patient = Request::new(());
    patient
        .extensions_mut()
        .insert(CircuitWait(Duration::from_secs(10)));
    up.set_down(false);
    let res = svc.clone().oneshot(patient).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(start.elapsed(), Duration::from_secs(6));
    open(&svc, &up).await;
    let mut hasty = Request::new(());
    hasty.extensions_mut().insert(CircuitWait(Duration::ZERO));
    let at = Instant::now();
    assert!(svc.clone().oneshot(hasty).await.is_err());
    assert_eq!(at.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn waiting_holds_no_permit_and_cancelling_leaks_nothing() {
    let up = Upstream::default();
    let layer = layer(Duration::from_secs(10));
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(ConcurrencyLimitLayer::new(1))
        .service(up.service());
    open(&svc, &up).await;
    up.set_down(false);
    // Fifty waiters, then all cancelled: the one permit below is free all along.
    let mut waiters = Vec::new();
    for _ in 0..50 {
        let mut s = svc.clone();
        let mut w = tokio_test::task::spawn(s.ready().await.unwrap().call(Request::new(())));
        tokio_test::assert_pending!(w.poll());
        waiters.push(w);
    }
    let mut other = svc.clone();
    let ready = tokio_test::task::spawn(async move { other.ready().await.map(|_| ()) }).poll();
    assert!(ready.is_ready(), "no waiter holds the concurrency permit");
    drop(waiters);
    tokio::time::advance(Duration::from_secs(3)).await;
    // The probe permit was never taken by the dropped waiters: the next call is the probe.
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(layer.handle().state(), BreakerState::Closed);
    assert_eq!(up.calls.lock().unwrap().len(), 3 + 1);
}
