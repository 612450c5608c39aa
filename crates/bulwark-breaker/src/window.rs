//! The sliding windows the breaker decides on, in atomics.
//!
//! * [`Window::count`]: the last `n` outcomes, a ring of `AtomicU8` plus running totals.
//! * [`Window::time`]: ten buckets covering the window, **striped per thread** (each thread
//!   writes its own cache-padded copy of the buckets, the decision sums them), so a busy
//!   closed breaker shared by many threads does not bounce one cache line between cores.
//!
//! Both are approximate only under a race on a bucket rotation between two threads that share
//! a stripe (an outcome may be lost); single-threaded they are exact. Time is passed in as
//! nanoseconds since the breaker was created.

use std::{
    cell::Cell,
    sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    time::Duration,
};

use crossbeam_utils::CachePadded;

/// Number of buckets of a time window.
pub(crate) const BUCKETS: usize = 10;

/// A bucket's epoch while it is being reset.
const ROTATING: u64 = u64::MAX;

/// The window over which failure and slow-call ratios are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window(Kind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Time(Duration),
    Count(u32),
}

impl Window {
    /// The calls of the last `duration`, in ten buckets (so outcomes expire a tenth of the
    /// window at a time).
    #[must_use]
    pub const fn time(duration: Duration) -> Self {
        Self(Kind::Time(duration))
    }

    /// The last `n` calls.
    #[must_use]
    pub const fn count(n: u32) -> Self {
        Self(Kind::Count(n))
    }

    /// `Some(duration)` for a time window.
    #[must_use]
    pub const fn duration(&self) -> Option<Duration> {
        match self.0 {
            Kind::Time(d) => Some(d),
            Kind::Count(_) => None,
        }
    }

    /// `Some(n)` for a count window.
    #[must_use]
    pub const fn size(&self) -> Option<u32> {
        match self.0 {
            Kind::Count(n) => Some(n),
            Kind::Time(_) => None,
        }
    }
}

/// Sums over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

const PRESENT: u8 = 1;
const FAILED: u8 = 2;
const SLOW: u8 = 4;

fn code(failure: bool, slow: bool) -> u8 {
    PRESENT | if failure { FAILED } else { 0 } | if slow { SLOW } else { 0 }
}

#[derive(Debug, Default)]
struct Bucket {
    epoch: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

/// One thread's share: its buckets and its cumulative counters.
#[derive(Debug, Default)]
pub(crate) struct Stripe {
    buckets: [Bucket; BUCKETS],
    pub(crate) calls: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) slow: AtomicU64,
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's stripe number (assigned round-robin on first use).
pub(crate) fn thread_stripe() -> usize {
    THREAD_STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed);
        s.set(v);
        v
    })
}

#[derive(Debug)]
struct CountRing {
    slots: Box<[AtomicU8]>,
    next: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

/// The shared window state plus cumulative counters.
#[derive(Debug)]
pub(crate) struct WindowState {
    stripes: Box<[CachePadded<Stripe>]>,
    mask: usize,
    bucket_nanos: u64,
    ring: Option<CountRing>,
}

impl WindowState {
    pub(crate) fn new(window: Window, stripes: usize) -> Self {
        let stripes = stripes.clamp(1, 64).next_power_of_two();
        let (bucket_nanos, ring) = match window.0 {
            Kind::Time(d) => {
                let nanos = u64::try_from(d.as_nanos() / BUCKETS as u128).unwrap_or(u64::MAX);
                (nanos.max(1), None)
            }
            Kind::Count(n) => (
                u64::MAX,
                Some(CountRing {
                    slots: (0..n.max(1)).map(|_| AtomicU8::new(0)).collect(),
                    next: AtomicU64::new(0),
                    calls: AtomicU32::new(0),
                    failures: AtomicU32::new(0),
                    slow: AtomicU32::new(0),
                }),
            ),
        };
        Self {
            stripes: (0..stripes)
                .map(|_| CachePadded::new(Stripe::default()))
                .collect(),
            mask: stripes - 1,
            bucket_nanos,
            ring,
        }
    }

    /// Number of stripes (a power of two).
    pub(crate) fn stripes(&self) -> usize {
        self.stripes.len()
    }

    fn stripe(&self) -> &Stripe {
        &self.stripes[thread_stripe() & self.mask]
    }

    /// `true` when the window needs the clock (a time window).
    pub(crate) fn needs_time(&self) -> bool {
        self.ring.is_none()
    }

    /// Counts an outcome in the cumulative metrics only (late outcomes).
    pub(crate) fn count_metrics(&self, failure: bool, slow: bool) {
        let stripe = self.stripe();
        stripe.calls.fetch_add(1, Ordering::Relaxed);
        // Released after the call's count: see `cumulative`.
        if failure {
            stripe.failures.fetch_add(1, Ordering::Release);
        }
        if slow {
            stripe.slow.fetch_add(1, Ordering::Release);
        }
    }

    /// Records an outcome in the window and the cumulative metrics.
    pub(crate) fn record(&self, now_nanos: u64, failure: bool, slow: bool) {
        match &self.ring {
            Some(ring) => {
                // The ring's own position counts its calls (see `cumulative`): only failures
                // and slow calls add to the stripe, sparing one atomic add per success. The
                // call is counted first (and `cumulative` reads the failures first), so a
                // snapshot never shows more failures than calls.
                Self::record_count(ring, failure, slow);
                if failure || slow {
                    let stripe = self.stripe();
                    if failure {
                        stripe.failures.fetch_add(1, Ordering::Release);
                    }
                    if slow {
                        stripe.slow.fetch_add(1, Ordering::Release);
                    }
                }
            }
            None => {
                self.count_metrics(failure, slow);
                self.record_time(now_nanos, failure, slow);
            }
        }
    }

    fn record_count(ring: &CountRing, failure: bool, slow: bool) {
        let i = ring.next.fetch_add(1, Ordering::AcqRel);
        let slot = &ring.slots[(i % ring.slots.len() as u64) as usize];
        let old = slot.swap(code(failure, slow), Ordering::AcqRel);
        if old & PRESENT == 0 {
            ring.calls.fetch_add(1, Ordering::AcqRel);
        } else {
            if old & FAILED != 0 {
                ring.failures.fetch_sub(1, Ordering::AcqRel);
            }
            if old & SLOW != 0 {
                ring.slow.fetch_sub(1, Ordering::AcqRel);
            }
        }
        if failure {
            ring.failures.fetch_add(1, Ordering::AcqRel);
        }
        if slow {
            ring.slow.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn epoch(&self, now_nanos: u64) -> u64 {
        now_nanos / self.bucket_nanos + 1
    }

    fn record_time(&self, now_nanos: u64, failure: bool, slow: bool) {
        let epoch = self.epoch(now_nanos);
        let bucket = &self.stripe().buckets[(epoch % BUCKETS as u64) as usize];
        let seen = bucket.epoch.load(Ordering::Acquire);
        if seen != epoch {
            // `ROTATING` is above every epoch: a bucket being reset, or a newer bucket a racing
            // clock read already opened, drops this outcome from the window (the cumulative
            // metrics still have it). Only threads sharing a stripe can race here.
            if seen > epoch {
                return;
            }
            if bucket
                .epoch
                .compare_exchange(seen, ROTATING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                bucket.calls.store(0, Ordering::Release);
                bucket.failures.store(0, Ordering::Release);
                bucket.slow.store(0, Ordering::Release);
                bucket.epoch.store(epoch, Ordering::Release);
            } else if bucket.epoch.load(Ordering::Acquire) != epoch {
                return;
            }
        }
        bucket.calls.fetch_add(1, Ordering::AcqRel);
        if failure {
            bucket.failures.fetch_add(1, Ordering::AcqRel);
        }
        if slow {
            bucket.slow.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Sums over the window at `now_nanos`.
    pub(crate) fn totals(&self, now_nanos: u64) -> Totals {
        if let Some(ring) = &self.ring {
            return Totals {
                calls: u64::from(ring.calls.load(Ordering::Acquire)),
                failures: u64::from(ring.failures.load(Ordering::Acquire)),
                slow: u64::from(ring.slow.load(Ordering::Acquire)),
            };
        }
        let epoch = self.epoch(now_nanos);
        let oldest = epoch.saturating_sub(BUCKETS as u64 - 1);
        let mut totals = Totals::default();
        for stripe in self.stripes.iter() {
            for bucket in &stripe.buckets {
                let e = bucket.epoch.load(Ordering::Acquire);
                if e >= oldest && e <= epoch && e != 0 {
                    totals.calls += u64::from(bucket.calls.load(Ordering::Acquire));
                    totals.failures += u64::from(bucket.failures.load(Ordering::Acquire));
                    totals.slow += u64::from(bucket.slow.load(Ordering::Acquire));
                }
            }
        }
        totals
    }

    /// Empties the window (not the cumulative metrics).
    pub(crate) fn reset(&self) {
        if let Some(ring) = &self.ring {
            for slot in ring.slots.iter() {
                slot.store(0, Ordering::Release);
            }
            ring.calls.store(0, Ordering::Release);
            ring.failures.store(0, Ordering::Release);
            ring.slow.store(0, Ordering::Release);
            return;
        }
        for stripe in self.stripes.iter() {
            for bucket in &stripe.buckets {
                bucket.epoch.store(0, Ordering::Release);
                bucket.calls.store(0, Ordering::Release);
                bucket.failures.store(0, Ordering::Release);
                bucket.slow.store(0, Ordering::Release);
            }
        }
    }

    /// Cumulative (calls, failures, slow) over the breaker's life.
    pub(crate) fn cumulative(&self) -> Totals {
        // A count window's calls are its ring's position (every call it recorded; never
        // reset) plus the late ones counted in the stripes. Failures are read before calls
        // (and counted after them), so a snapshot never shows more failures than calls.
        let mut totals = self.stripes.iter().fold(Totals::default(), |t, s| Totals {
            failures: t.failures + s.failures.load(Ordering::Acquire),
            slow: t.slow + s.slow.load(Ordering::Acquire),
            ..t
        });
        totals.calls = self
            .ring
            .as_ref()
            .map_or(0, |ring| ring.next.load(Ordering::Acquire))
            + self
                .stripes
                .iter()
                .map(|s| s.calls.load(Ordering::Acquire))
                .sum::<u64>();
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn count_window_keeps_the_last_n() {
        let w = WindowState::new(Window::count(3), 1);
        w.record(0, true, false);
        w.record(0, true, true);
        w.record(0, false, false);
        assert_eq!(
            w.totals(0),
            Totals {
                calls: 3,
                failures: 2,
                slow: 1
            }
        );
        w.record(0, false, false); // evicts the first failure
        w.record(0, false, false); // evicts the slow failure
        assert_eq!(
            w.totals(0),
            Totals {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
        assert_eq!(w.cumulative().calls, 5);
        w.reset();
        assert_eq!(w.totals(0), Totals::default());
    }

    #[test]
    fn time_window_expires_a_bucket_at_a_time() {
        let w = WindowState::new(Window::time(Duration::from_secs(10)), 2);
        w.record(0, true, false); // bucket [0 s, 1 s)
        w.record(5 * SEC, true, false);
        assert_eq!(w.totals(9 * SEC).failures, 2);
        // At 10 s the first bucket is out; the 5 s one stays until 15 s.
        assert_eq!(w.totals(10 * SEC).failures, 1);
        assert_eq!(w.totals(15 * SEC).failures, 0);
        // A reused bucket starts from zero.
        w.record(20 * SEC, false, false);
        assert_eq!(
            w.totals(20 * SEC),
            Totals {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
    }

    #[test]
    fn stripes_are_summed() {
        let w = std::sync::Arc::new(WindowState::new(Window::time(Duration::from_secs(10)), 4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        w.record(SEC, true, false);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Threads that share a stripe may drop the odd outcome at a rotation; the metrics
        // never do.
        let failures = w.totals(SEC).failures;
        assert!((3990..=4000).contains(&failures), "{failures}");
        assert_eq!(w.cumulative().failures, 4000);
    }
}
