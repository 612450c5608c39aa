//! Waiters that leave: a dropped waiting request gives its place back wherever it stands in
//! the queue, and the waiters behind it move up. Paused time throughout.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use bulwark_bucket::{Rate, RateLimited, TokenBucketLayer};
use bulwark_http::BoxError;
use http::{Request, Response};
use proptest::prelude::*;
use tokio::time::Instant;
use tokio_test::task::Spawn;
use tower::{service_fn, util::BoxCloneService, Layer, Service, ServiceExt};

type Log = Arc<Mutex<Vec<(Instant, u32)>>>;

/// Records when each request (tagged by its body) was sent; a tag ≥ 429 000 is answered 429
/// with `Retry-After: 10`, half a second later.
fn upstream(log: Log) -> BoxCloneService<Request<u32>, Response<()>, BoxError> {
    BoxCloneService::new(service_fn(move |req: Request<u32>| {
        let log = log.clone();
        async move {
            let tag = *req.body();
            log.lock().unwrap().push((Instant::now(), tag));
            let mut res = Response::builder();
            if tag >= 429_000 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                res = res.status(429).header("retry-after", "10");
            }
            Ok::<_, BoxError>(res.body(()).unwrap())
        }
    }))
}

type Svc = bulwark_bucket::TokenBucket<
    BoxCloneService<Request<u32>, Response<()>, BoxError>,
    bulwark_http::HttpClassifier,
    bulwark_bucket::Unkeyed,
    (),
>;
type Call = Spawn<<Svc as Service<Request<u32>>>::Future>;

/// Sends `tag` and polls once: the call is then admitted, refused, or queued.
async fn start(svc: &mut Svc, tag: u32) -> Call {
    let mut call = tokio_test::task::spawn(svc.ready().await.unwrap().call(Request::new(tag)));
    let _ = call.poll();
    call
}

/// The first case: 3/s, burst 3, max_wait 30 s; 45 waiters queue after the burst and
/// are all cancelled. The next request used to wait 15 s behind them.
#[tokio::test(start_paused = true)]
async fn forty_five_cancelled_waiters_leave_no_queue_behind() {
    let log = Log::default();
    let layer = TokenBucketLayer::new(Rate::per_second(3))
        .burst(3)
        .max_wait(Duration::from_secs(30));
    let mut svc = layer.layer(upstream(log.clone()));
    let start_at = Instant::now();
    for tag in 0..3 {
        svc.clone().oneshot(Request::new(tag)).await.unwrap();
    }
    let mut waiters = Vec::new();
    for tag in 100..145 {
        let mut call = start(&mut svc, tag).await;
        tokio_test::assert_pending!(call.poll());
        waiters.push(call);
    }
    tokio::time::advance(Duration::from_millis(100)).await;
    drop(waiters);
    svc.clone().oneshot(Request::new(7)).await.unwrap();
    let sent = log.lock().unwrap().clone();
    assert_eq!(sent.len(), 4, "no cancelled waiter was sent");
    let (at, tag) = sent[3];
    assert_eq!(tag, 7);
    // The next token after the burst: a third of a second (the timer rounds up to the ms).
    let waited = at - start_at;
    assert!(
        waited >= Duration::from_nanos(333_333_334) && waited <= Duration::from_millis(334),
        "{waited:?}"
    );
}

/// The second case: 1/s, 10 queued, the middle 8 cancelled: the last one goes at 2 s,
/// not 10 s.
#[tokio::test(start_paused = true)]
async fn the_last_of_ten_goes_at_two_seconds_when_the_middle_eight_leave() {
    let log = Log::default();
    let layer = TokenBucketLayer::new(Rate::per_second(1)).max_wait(Duration::from_secs(30));
    let mut svc = layer.layer(upstream(log.clone()));
    let start_at = Instant::now();
    svc.clone().oneshot(Request::new(0)).await.unwrap();
    let mut waiters = Vec::new();
    for tag in 1..=10 {
        waiters.push(start(&mut svc, tag).await);
    }
    let last = waiters.pop().unwrap();
    let first = waiters.remove(0);
    drop(waiters); // tags 2..=9
    let (first, last) = (tokio::spawn(first), tokio::spawn(last));
    first.await.unwrap().unwrap();
    last.await.unwrap().unwrap();
    let sent: Vec<_> = log
        .lock()
        .unwrap()
        .iter()
        .map(|(t, tag)| (*t - start_at, *tag))
        .collect();
    assert_eq!(
        sent,
        [
            (Duration::ZERO, 0),
            (Duration::from_secs(1), 1),
            (Duration::from_secs(2), 10)
        ]
    );
    assert_eq!(layer.stats().admitted, 3);
}

/// A queued waiter whose turn an upstream pause pushes past its `max_wait` is refused then,
/// instead of waiting longer than it agreed to; the pause holds for everyone.
#[tokio::test(start_paused = true)]
async fn a_pause_past_max_wait_refuses_the_queue_and_holds_for_everyone() {
    let log = Log::default();
    let layer = TokenBucketLayer::new(Rate::per_second(1)).max_wait(Duration::from_secs(3));
    let svc = layer.layer(upstream(log.clone()));
    let start_at = Instant::now();
    // Admitted at once; Notion answers 429, Retry-After: 10, at 0.5 s.
    let throttled = tokio::spawn(svc.clone().oneshot(Request::new(429_000)));
    tokio::task::yield_now().await;
    // Queued behind it for the token at 1 s.
    let queued = tokio::spawn(svc.clone().oneshot(Request::new(1)));
    tokio::task::yield_now().await;
    assert_eq!(throttled.await.unwrap().unwrap().status(), 429);
    let err = queued.await.unwrap().unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().expect("refused");
    assert_eq!(
        Instant::now() - start_at,
        Duration::from_secs(1),
        "at its turn"
    );
    assert_eq!(
        limited.retry_after,
        Duration::from_millis(9_500),
        "the pause left"
    );
    // Nobody goes before the pause ends, and the first one after it does.
    let early = svc.clone().oneshot(Request::new(2)).await.unwrap_err();
    assert!(early.downcast_ref::<RateLimited>().is_some());
    tokio::time::advance(Duration::from_millis(9_500)).await;
    svc.clone().oneshot(Request::new(3)).await.unwrap();
    let tags: Vec<u32> = log.lock().unwrap().iter().map(|(_, t)| *t).collect();
    assert_eq!(tags, [429_000, 3]);
}

/// One request of the model: how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Sent upstream at this many ms.
    Sent(u64),
    Refused,
    Cancelled,
}

#[derive(Debug, Clone)]
enum Event {
    Arrive,
    /// Cancels the queued waiter at this index (modulo the queue's length).
    Cancel(usize),
}

/// The reference: a FIFO queue in front of an exact GCRA, in whole milliseconds. At each
/// millisecond, due waiters go first, then the events of that millisecond, then whoever that
/// made due.
struct Model {
    interval: u64,
    capacity: u64,
    max_wait: u64,
    tat: u64,
    queue: VecDeque<u32>,
    ends: HashMap<u32, End>,
}

impl Model {
    fn wait(&self, now: u64) -> u64 {
        (self.tat.max(now) + self.interval)
            .saturating_sub(self.capacity)
            .saturating_sub(now)
    }

    fn admit(&mut self, id: u32, now: u64) {
        self.tat = self.tat.max(now) + self.interval;
        self.ends.insert(id, End::Sent(now));
    }

    fn drain(&mut self, now: u64) {
        while let Some(&head) = self.queue.front() {
            if self.wait(now) > 0 {
                break;
            }
            self.queue.pop_front();
            self.admit(head, now);
        }
    }

    fn arrive(&mut self, id: u32, now: u64) {
        if self.queue.is_empty() && self.wait(now) == 0 {
            self.admit(id, now);
            return;
        }
        let wait = self.wait(now) + self.interval * self.queue.len() as u64;
        if wait > self.max_wait {
            self.ends.insert(id, End::Refused);
        } else {
            self.queue.push_back(id);
        }
    }

    /// Cancels a queued waiter; returns its id.
    fn cancel(&mut self, index: usize) -> Option<u32> {
        if self.queue.is_empty() {
            return None;
        }
        let id = self.queue.remove(index % self.queue.len())?;
        self.ends.insert(id, End::Cancelled);
        Some(id)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random arrivals and cancellations: every request ends exactly as in the reference
    /// model — sent at the same millisecond, refused, or cancelled — so cancelling any subset
    /// of waiters never delays the others beyond what the live queue needs, and order is FIFO.
    #[test]
    fn cancellations_match_a_fifo_gcra_model(
        count in prop_oneof![Just(5u32), Just(10u32), Just(20u32)],
        burst in 1u32..4,
        max_wait_ms in 0u64..2_000,
        events in proptest::collection::vec(
            (0u64..40, prop_oneof![3 => Just(Event::Arrive), 2 => (0usize..50).prop_map(Event::Cancel)]),
            1..80,
        ),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let interval = 1_000 / u64::from(count);
            let mut model = Model {
                interval,
                capacity: interval * u64::from(burst),
                max_wait: max_wait_ms,
                tat: 0,
                queue: VecDeque::new(),
                ends: HashMap::new(),
            };
            let log = Log::default();
            let layer = TokenBucketLayer::new(Rate::per_second(count))
                .burst(burst)
                .max_wait(Duration::from_millis(max_wait_ms));
            let mut svc = layer.layer(upstream(log.clone()));
            let start_at = Instant::now();
            // Each call, and whether it still owes its first poll.
            let mut pending: Vec<(u32, Call, bool)> = Vec::new();
            let mut ends: HashMap<u32, End> = HashMap::new();
            // Polls every woken call until none is; records how each ended.
            fn settle(pending: &mut Vec<(u32, Call, bool)>, ends: &mut HashMap<u32, End>, log: &Log, start_at: Instant) {
                loop {
                    let mut progress = false;
                    pending.retain_mut(|(id, call, first)| {
                        if !std::mem::take(first) && !call.is_woken() {
                            return true;
                        }
                        progress = true;
                        match call.poll() {
                            std::task::Poll::Pending => true,
                            std::task::Poll::Ready(result) => {
                                let end = match result {
                                    Ok(_) => {
                                        let at = log.lock().unwrap().iter().find(|(_, t)| t == id).unwrap().0;
                                        End::Sent(u64::try_from((at - start_at).as_millis()).unwrap())
                                    }
                                    Err(e) => {
                                        assert!(e.downcast_ref::<RateLimited>().is_some(), "{e}");
                                        End::Refused
                                    }
                                };
                                ends.insert(*id, end);
                                false
                            }
                        }
                    });
                    if !progress {
                        return;
                    }
                }
            }
            let mut now = 0u64;
            let mut next_id = 0u32;
            let mut schedule = VecDeque::new();
            let mut t = 0;
            for (gap, event) in events {
                t += gap;
                schedule.push_back((t, event));
            }
            while !schedule.is_empty() || !model.queue.is_empty() || !pending.is_empty() {
                prop_assert!(now < 60_000, "still busy after 60 s");
                settle(&mut pending, &mut ends, &log, start_at);
                model.drain(now);
                while schedule.front().is_some_and(|(at, _)| *at == now) {
                    let (_, event) = schedule.pop_front().unwrap();
                    match event {
                        Event::Arrive => {
                            let id = next_id;
                            next_id += 1;
                            model.arrive(id, now);
                            let call = tokio_test::task::spawn(
                                svc.ready().await.unwrap().call(Request::new(id)),
                            );
                            pending.push((id, call, true));
                            settle(&mut pending, &mut ends, &log, start_at);
                        }
                        Event::Cancel(index) => {
                            if let Some(id) = model.cancel(index) {
                                let at = pending.iter().position(|(p, _, _)| *p == id);
                                prop_assert!(at.is_some(), "waiter {} is not pending: {:?}", id, ends.get(&id));
                                drop(pending.remove(at.unwrap()));
                                ends.insert(id, End::Cancelled);
                                settle(&mut pending, &mut ends, &log, start_at);
                            }
                        }
                    }
                }
                model.drain(now);
                settle(&mut pending, &mut ends, &log, start_at);
                tokio::time::advance(Duration::from_millis(1)).await;
                now += 1;
            }
            for id in 0..next_id {
                prop_assert_eq!(ends.get(&id), model.ends.get(&id), "request {}", id);
            }
            Ok(())
        })?;
    }
}
