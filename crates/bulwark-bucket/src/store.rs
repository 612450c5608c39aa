//! Where buckets live: one local bucket, or one per key in a bounded map.

use std::{
    collections::VecDeque,
    hash::Hash,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    task::Waker,
    time::Duration,
};

use crate::gcra::{Gcra, HORIZON};

/// One bucket: its theoretical arrival time, in nanoseconds since the layer was created, and
/// the queue of requests waiting for a token.
///
/// Admission is GCRA on the TAT alone (one compare-and-swap), so the rate bound holds for
/// every admission whatever the queue does. A request that cannot go at once joins the FIFO
/// queue; only its head sleeps, until the GCRA says its token is due, then takes it with the
/// same compare-and-swap and hands the head to the next waiter. Nothing is reserved ahead of
/// time: a waiter that leaves (its future dropped) is simply removed, wherever it stands, and
/// everyone behind it moves up. While anyone waits, new requests queue behind them.
#[derive(Debug, Default)]
pub(crate) struct LocalBucket {
    tat: AtomicU64,
    /// An upstream quota found used up, and the low-allowance warning state.
    pub(crate) quota: crate::quota::QuotaLock,
    /// Waiters in `queue`, readable without the lock by the admission fast path.
    queued: AtomicUsize,
    queue: Mutex<Queue>,
}

/// The waiters of one bucket, oldest first.
#[derive(Debug, Default)]
struct Queue {
    next_id: u64,
    waiters: VecDeque<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    /// Woken when it becomes the head.
    waker: Option<Waker>,
}

/// Why a request cannot be admitted at once.
#[derive(Debug)]
pub(crate) enum Queued {
    /// Its turn comes within `max_wait`, after about `wait` nanoseconds: a place in the queue.
    Wait { ticket: Ticket, wait: u64 },
    /// Not within `max_wait`: the wait it would have had, in nanoseconds.
    Refuse(u64),
}

impl LocalBucket {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a token at `now` if one is free and nobody is waiting; `false` otherwise.
    #[inline]
    pub(crate) fn try_acquire(&self, gcra: &Gcra, now: u64) -> bool {
        self.queued.load(Ordering::SeqCst) == 0 && self.take(gcra, now)
    }

    /// The GCRA compare-and-swap: takes a token if one is free at `now`.
    #[inline]
    fn take(&self, gcra: &Gcra, now: u64) -> bool {
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let decision = gcra.decide(tat, now);
            if decision.wait > 0 {
                return false;
            }
            match self.tat.compare_exchange_weak(
                tat,
                decision.new_tat,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => tat = actual,
            }
        }
    }

    /// How long a request arriving at `now` would wait: for the next free token, then one
    /// interval for each waiter ahead of it.
    fn wait_behind(&self, gcra: &Gcra, now: u64, ahead: usize) -> u64 {
        let first = gcra.decide(self.tat.load(Ordering::Acquire), now).wait;
        first.saturating_add(gcra.interval.saturating_mul(ahead as u64))
    }

    /// After [`try_acquire`](Self::try_acquire) failed: a place in the queue if the turn comes
    /// within `max_wait`, or the wait it would have had. Admits at once (`None`) if a token
    /// freed up and nobody waits.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        gcra: &Gcra,
        now: u64,
        max_wait: u64,
    ) -> Option<Queued> {
        // Refusals (reject mode, a long queue) decide without the lock.
        let guess = self.wait_behind(gcra, now, self.queued.load(Ordering::SeqCst));
        if guess > max_wait && max_wait == 0 {
            return Some(Queued::Refuse(guess));
        }
        let mut queue = self.lock();
        let ahead = queue.waiters.len();
        if ahead == 0 && self.take(gcra, now) {
            return None;
        }
        let wait = self.wait_behind(gcra, now, ahead);
        if wait > max_wait {
            return Some(Queued::Refuse(wait));
        }
        let id = queue.next_id;
        queue.next_id += 1;
        queue.waiters.push_back(Waiter { id, waker: None });
        self.queued.store(queue.waiters.len(), Ordering::SeqCst);
        Some(Queued::Wait {
            ticket: Ticket {
                bucket: Arc::clone(self),
                id,
                done: false,
            },
            wait,
        })
    }

    /// Counts an admission decided elsewhere (by Redis) at `now`, whatever the bucket holds,
    /// so that a fallback to this bucket starts from this process's recent use.
    #[cfg(feature = "redis")]
    pub(crate) fn charge(&self, gcra: &Gcra, now: u64) {
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(gcra.decide(tat, now).new_tat)
            });
    }

    /// Lets nothing through before `until` (nanoseconds since creation). The head of the
    /// queue finds out when it wakes and sleeps again.
    pub(crate) fn pause(&self, gcra: &Gcra, until: u64) {
        self.tat
            .fetch_max(gcra.paused_until(until), Ordering::AcqRel);
    }

    pub(crate) fn tat(&self) -> u64 {
        self.tat.load(Ordering::Acquire)
    }
}

/// A place in a bucket's queue. Dropped before its turn, it leaves the queue and the waiters
/// behind it move up.
#[derive(Debug)]
pub(crate) struct Ticket {
    bucket: Arc<LocalBucket>,
    id: u64,
    done: bool,
}

/// What a waiter should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Admitted: its token is taken and it has left the queue.
    Go,
    /// It is the head: sleep until this time (nanoseconds since creation), then ask again.
    SleepUntil(u64),
    /// Others are ahead: it will be woken when it becomes the head.
    Wait,
}

impl Ticket {
    /// The bucket this place is in.
    pub(crate) fn bucket(&self) -> &Arc<LocalBucket> {
        &self.bucket
    }

    /// Asks for the token at `now`: the head takes it once it is due; the others register
    /// `waker` for when they become the head.
    pub(crate) fn turn(&mut self, gcra: &Gcra, now: u64, waker: &Waker) -> Turn {
        if self.done {
            return Turn::Go;
        }
        let bucket = &self.bucket;
        let mut queue = bucket.lock();
        match queue.waiters.iter().position(|w| w.id == self.id) {
            Some(0) => {}
            Some(i) => {
                let slot = &mut queue.waiters[i].waker;
                if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    *slot = Some(waker.clone());
                }
                return Turn::Wait;
            }
            // Not queued (cannot happen: only `Drop` and `Go` remove it): let it go rather
            // than hang.
            None => {
                self.done = true;
                return Turn::Go;
            }
        }
        if bucket.take(gcra, now) {
            queue.waiters.pop_front();
            bucket.queued.store(queue.waiters.len(), Ordering::SeqCst);
            wake_head(&mut queue);
            self.done = true;
            return Turn::Go;
        }
        let wait = gcra.decide(bucket.tat.load(Ordering::Acquire), now).wait;
        Turn::SleepUntil(now.saturating_add(wait))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut queue = self.bucket.lock();
        if let Some(i) = queue.waiters.iter().position(|w| w.id == self.id) {
            queue.waiters.remove(i);
            self.bucket
                .queued
                .store(queue.waiters.len(), Ordering::SeqCst);
            if i == 0 {
                wake_head(&mut queue);
            }
        }
    }
}

/// Wakes the (new) head so it starts its own wait.
fn wake_head(queue: &mut Queue) {
    if let Some(waker) = queue.waiters.front_mut().and_then(|w| w.waker.take()) {
        waker.wake();
    }
}

/// One bucket per key, at most `max_keys` of them; idle keys are evicted first.
pub(crate) struct KeyedBuckets<K> {
    cache: moka::sync::Cache<K, Arc<LocalBucket>>,
}

impl<K> KeyedBuckets<K>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    /// `idle`: how long a key may go unused before it is dropped; see [`idle_time`] for why
    /// its bucket is full again by then, so forgetting it changes nothing.
    pub(crate) fn new(max_keys: u64, idle: Duration) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_keys)
                .time_to_idle(idle)
                .build(),
        }
    }

    pub(crate) fn get(&self, key: K) -> Arc<LocalBucket> {
        // A plain look-up first: moka's `get_with` wraps the key in an `Arc` even when the
        // key is there, one allocation per request on the hot path.
        if let Some(bucket) = self.cache.get(&key) {
            return bucket;
        }
        self.cache
            .get_with(key, || Arc::new(LocalBucket::default()))
    }

    /// Calls `f` on every bucket held.
    pub(crate) fn for_each(&self, f: impl Fn(&LocalBucket)) {
        for (_, bucket) in &self.cache {
            f(&bucket);
        }
    }

    /// Keys held (after pending evictions run).
    pub(crate) fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

/// How long a key may go unused before it is forgotten: the time a drained bucket takes to
/// refill, plus the longest reservation one use can make (`max_wait`, one interval), at least
/// 1 s. Waiters queued behind a use reserve at most `max_wait` ahead, so by then the bucket is
/// full again.
///
/// Regression: the idle time used to be the refill time alone (1 s for 3/s): a key with 30
/// queued waiters was forgotten after 1 s without a new request, and the next request went
/// straight through. Not covered: a `Retry-After` pause longer than this with no request for
/// the key during it (the next request after that may go early and meet the upstream's 429,
/// which pauses the bucket again). A per-entry expiry that follows the TAT covers that too,
/// but costs about 120 ns per keyed call (moka's timer wheel; measured in `bucket_keyed`).
///
/// At most [`HORIZON`] (about 146 years): moka refuses (panics on) an idle time over 1000
/// years, and `max_wait(Duration::MAX)` asked for 584.
pub(crate) fn idle_time(gcra: &Gcra, max_wait: Duration) -> Duration {
    Duration::from_nanos(gcra.capacity)
        .max(Duration::from_secs(1))
        .saturating_add(max_wait)
        .saturating_add(Duration::from_nanos(gcra.interval))
        .min(Duration::from_nanos(HORIZON))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a keyed bucket with 30 queued waiters was forgotten after 1 s without a new
    /// request, and the next request went straight through.
    #[test]
    fn keys_outlive_every_reservation() {
        let gcra = Gcra::new(3, Duration::from_secs(1), 3);
        let idle = idle_time(&gcra, Duration::from_secs(30));
        // A waiter may sit up to 30 s; its slot ends one interval later; then the bucket
        // refills in 1 s.
        assert!(idle >= Duration::from_secs(31) + Duration::from_nanos(gcra.interval));
        // Regression: a keyed layer with `max_wait(Duration::MAX)` panicked in moka
        // ("time_to_idle is longer than 1000 years").
        assert_eq!(
            idle_time(&gcra, Duration::MAX),
            Duration::from_nanos(HORIZON)
        );
        let _ = KeyedBuckets::<u32>::new(1, idle_time(&gcra, Duration::MAX));
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_bounded_and_shared() {
        let keyed = KeyedBuckets::new(10, Duration::from_secs(1));
        let a = keyed.get("a");
        assert!(Arc::ptr_eq(&a, &keyed.get("a")));
        for i in 0..1000 {
            let _ = keyed.get(if i % 2 == 0 { "x" } else { "y" });
        }
        assert!(keyed.len() <= 10);
    }
}
