//! One run of the `quota-exhausted` comparison, and its counting.

use std::{collections::BTreeMap, time::Duration};

use bulwark_testkit::FakeMark2Notion;
use tokio::time::Instant;

use super::{
    policy::QuotaPolicy,
    workload::{worker, Converted, QuotaPlan},
};
use crate::run::Settings;

/// The comparison's name on the command line and in the tables.
pub const QUOTA_PROFILE: &str = "quota-exhausted";
/// How long the workload runs by default (virtual time): 300 operations per worker.
pub(crate) const QUOTA_DURATION: Duration = Duration::from_secs(300);

/// What one policy did once the quota was gone, counted from the fake's call log and what the
/// callers saw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaOutcome {
    /// The policy.
    pub policy: QuotaPolicy,
    /// Operations offered (the same for every policy).
    pub operations: usize,
    /// The quota: successful calls the fake allowed.
    pub quota: u64,
    /// Operations whose caller got a 2xx.
    pub succeeded: usize,
    /// Operations whose caller got anything else.
    pub failed: usize,
    /// Calls the fake received.
    pub upstream_calls: usize,
    /// Calls the fake received while the quota was already used up
    /// ([`calls_after_exhaustion`](bulwark_testkit::Mark2NotionHandle::calls_after_exhaustion)).
    pub calls_after_exhaustion: u64,
    /// When the fake answered the call that used the quota's last unit, from the start
    /// (`None`: the quota lasted).
    pub exhausted_at: Option<Duration>,
    /// Operations whose caller asked at or after [`exhausted_at`](Self::exhausted_at) (but
    /// for one that got the quota's last unit in that same instant).
    pub operations_after_exhaustion: usize,
    /// The time those operations took, summed: what callers spent waiting for an answer the
    /// quota had already decided.
    pub waiting_after_exhaustion: Duration,
    /// The longest of those operations.
    pub longest_after_exhaustion: Duration,
    /// What the failed operations' callers got (`429 response`, `QuotaExhausted (local)`),
    /// with how many got it.
    pub failures: BTreeMap<String, usize>,
    /// When the last worker finished its list.
    pub finished_after: Duration,
}

impl QuotaOutcome {
    /// Calls after exhaustion per operation started after it (`None` when none was).
    #[must_use]
    pub fn wasted_per_operation(&self) -> Option<f64> {
        let operations = u32::try_from(self.operations_after_exhaustion).ok()?;
        (operations > 0).then(|| self.calls_after_exhaustion as f64 / f64::from(operations))
    }
}

/// The `quota-exhausted` table: every policy asked, same settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaReport {
    /// How long the workload was planned for.
    pub duration: Duration,
    /// One row per policy, in the order asked.
    pub rows: Vec<QuotaOutcome>,
}

/// Runs `policy` through the `quota-exhausted` comparison: a current-thread runtime with a
/// paused clock, the thread's `fastrand` generator seeded (bulwark's jitter draws from it), a
/// fresh in-process fake Mark2Notion whose quota is a third of the operations. Same settings,
/// same outcome. `settings.duration` (default 300 s) sets the operations per worker.
///
/// # Panics
/// When the runtime cannot be built, or a worker task panics (a bug in the harness).
#[must_use]
pub fn run_quota(policy: QuotaPolicy, settings: &Settings) -> QuotaOutcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    fastrand::seed(settings.seed);
    runtime.block_on(simulate(policy, settings))
}

/// Runs every policy in `policies` through the `quota-exhausted` comparison.
#[must_use]
pub fn run_quota_profile(policies: &[QuotaPolicy], settings: &Settings) -> QuotaReport {
    QuotaReport {
        duration: duration_of(settings),
        rows: policies
            .iter()
            .map(|&policy| run_quota(policy, settings))
            .collect(),
    }
}

fn duration_of(settings: &Settings) -> Duration {
    settings.duration.unwrap_or(QUOTA_DURATION)
}

async fn simulate(policy: QuotaPolicy, settings: &Settings) -> QuotaOutcome {
    let plan = QuotaPlan::new(settings.seed, duration_of(settings));
    let operations = plan.len();
    let upstream = FakeMark2Notion::builder()
        .quota(plan.quota)
        .record_limit(usize::MAX)
        .in_process();
    let handle = upstream.handle();
    let base = upstream.base_url();
    let start = Instant::now();
    let stack = policy.stack(upstream);
    let workers: Vec<_> = plan
        .workers
        .into_iter()
        .map(|converts| tokio::spawn(worker(stack.clone(), converts, base)))
        .collect();
    let mut done = Vec::with_capacity(operations);
    for worker in workers {
        done.extend(worker.await.expect("a worker never panics"));
    }
    let finished_after = start.elapsed();

    // The quota ran out when the call that used its last unit arrived (the fake answers at
    // once: arrival and answer are one instant).
    let calls = handle.calls();
    let last_unit = usize::try_from(plan.quota).ok().and_then(|quota| {
        calls
            .iter()
            .filter(|call| call.status == 200)
            .nth(quota.checked_sub(1)?)
            .map(|call| call.at)
    });
    count(
        policy,
        operations,
        plan.quota,
        &done,
        Counts {
            upstream_calls: calls.len(),
            calls_after_exhaustion: handle.calls_after_exhaustion(),
            start,
            last_unit,
            finished_after,
        },
    )
}

/// What the fake and the clock say.
struct Counts {
    upstream_calls: usize,
    calls_after_exhaustion: u64,
    start: Instant,
    last_unit: Option<Instant>,
    finished_after: Duration,
}

fn count(
    policy: QuotaPolicy,
    operations: usize,
    quota: u64,
    done: &[Converted],
    counts: Counts,
) -> QuotaOutcome {
    // Asked at or after the instant the quota ran out, and not the one that used it up.
    let after: Vec<&Converted> = counts.last_unit.map_or_else(Vec::new, |at| {
        done.iter()
            .filter(|op| op.started >= at && op.failure.is_some())
            .collect()
    });
    let mut failures = BTreeMap::new();
    for why in done.iter().filter_map(|op| op.failure.as_ref()) {
        *failures.entry(why.clone()).or_default() += 1;
    }
    let failed = failures.values().sum();
    QuotaOutcome {
        policy,
        operations,
        quota,
        succeeded: done.len() - failed,
        failed,
        upstream_calls: counts.upstream_calls,
        calls_after_exhaustion: counts.calls_after_exhaustion,
        exhausted_at: counts.last_unit.map(|at| at - counts.start),
        operations_after_exhaustion: after.len(),
        waiting_after_exhaustion: after.iter().map(|op| op.latency).sum(),
        longest_after_exhaustion: after.iter().map(|op| op.latency).max().unwrap_or_default(),
        failures,
        finished_after: counts.finished_after,
    }
}
