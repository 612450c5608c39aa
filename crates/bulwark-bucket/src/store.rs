//! Where buckets live: one local bucket, or one per key in a bounded map.

use std::{
    collections::VecDeque,
    hash::Hash,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    task::Waker,
};

use crate::gcra::Gcra;

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

/// How long a bucket stays full before a sweep forgets it (nanoseconds): a key in use is
/// never full for long (its TAT runs ahead of the clock by an interval at each use), so keys
/// used within about this long stay, and a busy map does not churn its keys.
const IDLE_GRACE: u64 = 1_000_000_000;

/// One bucket per key, at most about `max_keys` of them.
///
/// A concurrent map (`dashmap`): a request for a known key costs one shard read lock and
/// one reference count, no allocation. Keys are forgotten only when forgetting them changes
/// nothing: a bucket is *idle* when it has been full again for a second (its TAT a second in
/// the past, so a new bucket would decide alike, and the key has not been used for that
/// long), nobody waits in it or holds it (no response future that may
/// pause it), and no quota lock holds. Idle buckets are swept out when the map reaches
/// `max_keys`, and now and then as new keys arrive (after as many new keys as half the map
/// held at the last sweep), so a quiet map shrinks as its traffic moves on. Each sweep is one
/// pass over the map, amortised over the insertions since the last.
///
/// When a sweep at `max_keys` finds fewer than an eighth of the keys idle, it also forgets
/// buckets that are merely unused (nobody waits in or holds them) until an eighth is freed:
/// those keys' next requests start from a full bucket, the price of the bound (an attacker
/// with many keys must not grow the map or make each new key cost a whole pass).
pub(crate) struct KeyedBuckets<K> {
    map: dashmap::DashMap<K, Arc<LocalBucket>>,
    max_keys: usize,
    /// New keys since the last sweep, and the map's size after it.
    inserted: AtomicUsize,
    swept_to: AtomicUsize,
    sweeping: Mutex<()>,
}

impl<K> KeyedBuckets<K>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    pub(crate) fn new(max_keys: u64) -> Self {
        Self {
            map: dashmap::DashMap::new(),
            max_keys: usize::try_from(max_keys).unwrap_or(usize::MAX).max(1),
            inserted: AtomicUsize::new(0),
            swept_to: AtomicUsize::new(0),
            sweeping: Mutex::new(()),
        }
    }

    /// The bucket of `key`, made if new (`now`: the buckets' clock, read only then).
    pub(crate) fn get(&self, key: K, now: impl FnOnce() -> u64) -> Arc<LocalBucket> {
        if let Some(bucket) = self.map.get(&key) {
            return Arc::clone(&bucket);
        }
        let inserted = self.inserted.fetch_add(1, Ordering::Relaxed) + 1;
        if self.map.len() >= self.max_keys
            || inserted > self.swept_to.load(Ordering::Relaxed) / 2 + 64
        {
            self.sweep(now());
        }
        Arc::clone(&self.map.entry(key).or_default())
    }

    /// Forgets idle buckets (and, at the bound, unused ones: see the type).
    fn sweep(&self, now: u64) {
        // One sweeper at a time; the others go on (the map may pass the bound by a few).
        let Ok(_sweeping) = self.sweeping.try_lock() else {
            return;
        };
        let unused = |bucket: &Arc<LocalBucket>| {
            Arc::strong_count(bucket) == 1 && bucket.queued.load(Ordering::SeqCst) == 0
        };
        self.map.retain(|_, bucket| {
            !(unused(bucket)
                && bucket.tat().saturating_add(IDLE_GRACE) <= now
                && !bucket.quota.holds_at(now))
        });
        let len = self.map.len();
        if len >= self.max_keys {
            // Below the bound by an eighth of it, so the next sweep is that many keys away.
            let goal = (len + 1 - self.max_keys).max(self.max_keys.div_ceil(8));
            let mut freed = 0;
            self.map.retain(|_, bucket| {
                if freed < goal && unused(bucket) {
                    freed += 1;
                    return false;
                }
                true
            });
            if freed > 0 {
                tracing::debug!(target: "bulwark_bucket", freed, "keyed buckets at max_keys: forgot unused keys");
            }
        }
        self.swept_to.store(self.map.len(), Ordering::Relaxed);
        self.inserted.store(0, Ordering::Relaxed);
    }

    /// Calls `f` on every bucket held.
    pub(crate) fn for_each(&self, f: impl Fn(&LocalBucket)) {
        for bucket in &self.map {
            f(bucket.value());
        }
    }

    /// Keys held.
    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Regression: a keyed bucket with 30 queued waiters was forgotten after 1 s without a new
    /// request, and the next request went straight through. A bucket is forgotten only when
    /// nobody waits in it or holds it, it is full again and no quota lock holds.
    #[test]
    fn only_idle_buckets_are_forgotten() {
        let gcra = Gcra::new(3, Duration::from_secs(1), 3);
        let keyed = KeyedBuckets::new(1000);
        let sec = 1_000_000_000;
        // Drained at 0: full again after 1 s.
        let drained = keyed.get(1_u32, || 0);
        while drained.take(&gcra, 0) {}
        drop(drained);
        // Paused by an upstream until 60 s.
        keyed.get(2, || 0).pause(&gcra, 60 * sec);
        // A quota lock with no announced reset.
        assert!(keyed.get(3, || 0).quota.lock(None, 0, 3600 * sec));
        // Held (a response future in flight).
        let held = keyed.get(4, || 0);
        // Never used.
        drop(keyed.get(5, || 0));
        keyed.sweep(sec / 2);
        let left = |keyed: &KeyedBuckets<u32>| {
            let mut keys: Vec<u32> = keyed.map.iter().map(|e| *e.key()).collect();
            keys.sort_unstable();
            keys
        };
        // Nothing has been full for a second yet.
        assert_eq!(left(&keyed), [1, 2, 3, 4, 5]);
        keyed.sweep(sec + sec / 2);
        assert_eq!(left(&keyed), [1, 2, 3, 4], "unused and full since 0");
        keyed.sweep(2 * sec);
        assert_eq!(left(&keyed), [2, 3, 4], "full again since 1 s");
        keyed.sweep(61 * sec);
        assert_eq!(left(&keyed), [2, 3, 4], "paused until 60 s");
        keyed.sweep(62 * sec);
        assert_eq!(left(&keyed), [3, 4]);
        drop(held);
        keyed.sweep(62 * sec);
        assert_eq!(left(&keyed), [3]);
    }

    #[test]
    fn keys_are_bounded_and_shared() {
        let keyed = KeyedBuckets::new(10);
        let a = keyed.get(1_000_000_u32, || 0);
        assert!(Arc::ptr_eq(&a, &keyed.get(1_000_000_u32, || 0)));
        for i in 0..1000_u32 {
            let _ = keyed.get(i, || 0);
        }
        assert!(keyed.len() <= 10, "{}", keyed.len());
        // Keys in use are not churned: 100 keys used round and round in a map of 1000 stay.
        let keyed = KeyedBuckets::new(1000);
        let gcra = Gcra::new(1000, Duration::from_secs(1), 1000);
        let first: Vec<_> = (0..100_u32).map(|i| keyed.get(i, || 0)).collect();
        drop(first);
        for round in 0..50_u64 {
            for i in 0..100_u32 {
                let now = round * 10_000_000; // every 10 ms
                assert!(keyed.get(i, || now).take(&gcra, now));
            }
            // 5 ms on: every bucket full again, every key used 5 ms ago.
            keyed.sweep(round * 10_000_000 + 5_000_000);
        }
        assert_eq!(keyed.len(), 100);
        // At the bound with every bucket busy (held): none is forgotten, the map grows.
        let keyed = KeyedBuckets::new(10);
        let held: Vec<_> = (0..20_u32).map(|i| keyed.get(i, || 0)).collect();
        assert_eq!(keyed.len(), 20);
        drop(held);
        let _ = keyed.get(99, || 0);
        assert!(keyed.len() <= 10, "{}", keyed.len());
    }
}
