//! Helpers shared by the benches: the two-thread scaling harness.

use std::{sync::Barrier, time::Duration};

/// Wall time of `threads` OS threads, each running `work(calls)` on its own clone of `make`'s
/// value, `total` calls split between them; the clock starts when all of them are at a
/// barrier.
// Benches measure wall time by design: `tokio::time::Instant` would follow a paused clock.
#[allow(clippy::disallowed_types, clippy::disallowed_methods)]
pub(crate) fn wall_time<T, W>(threads: u64, total: u64, make: &T, work: W) -> Duration
where
    T: Clone + Send,
    W: Fn(T, u64) + Sync,
{
    let barrier = Barrier::new(threads as usize + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let mine = make.clone();
                let (barrier, work) = (&barrier, &work);
                // The first threads take the remainder.
                let calls = total / threads + u64::from(i < total % threads);
                scope.spawn(move || {
                    barrier.wait();
                    work(mine, calls);
                })
            })
            .collect();
        barrier.wait();
        let start = std::time::Instant::now();
        for handle in handles {
            handle.join().expect("bench thread panicked");
        }
        start.elapsed()
    })
}

/// Benches `1_thread` and `2_threads` under `name`, `calls` calls per iteration.
pub(crate) fn scaling<T, W>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    calls: u64,
    name: &str,
    make: &T,
    work: W,
) where
    T: Clone + Send,
    W: Fn(T, u64) + Sync,
{
    for threads in [1, 2] {
        let id = if threads == 1 {
            "1_thread"
        } else {
            "2_threads"
        };
        group.bench_function(format!("{name}/{id}"), |b| {
            b.iter_custom(|iters| wall_time(threads, iters * calls, make, &work));
        });
    }
}
