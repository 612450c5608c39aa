//! One run: a fresh FakeNotion, one policy, one profile, on its own paused-clock runtime.

use std::{sync::Arc, time::Duration};

use bulwark_testkit::FakeNotion;
use tokio::time::Instant;

use crate::{
    metrics::{Evidence, Outcome},
    policy::Policy,
    profile::Profile,
    workload::{worker, PageIds, Plan, READ_PAGES, TOKEN},
};

/// What every run of one invocation shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Seeds everything random: the workload, the faults, the policies' jitter.
    pub seed: u64,
    /// How long the workload runs, instead of the profile's own
    /// ([`Profile::duration`]); the profile's timed faults keep their times.
    pub duration: Option<Duration>,
}

impl Settings {
    /// The default seed of `cargo bench --bench outcomes`.
    pub const DEFAULT_SEED: u64 = 13;

    /// The profiles' own durations, with this seed.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self {
            seed,
            duration: None,
        }
    }

    /// Runs every profile for `duration` instead of its own. Defaults to the profile's.
    #[must_use]
    pub const fn duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }

    /// How long `profile`'s workload runs under these settings.
    #[must_use]
    pub fn duration_of(&self, profile: Profile) -> Duration {
        self.duration.unwrap_or_else(|| profile.duration())
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::new(Self::DEFAULT_SEED)
    }
}

/// Runs `policy` through `profile`: a current-thread runtime with a paused clock of its own,
/// the process-wide `fastrand` generator of this thread seeded (bulwark's retry jitter draws
/// from it), a fresh in-process FakeNotion. Same settings, same outcome.
///
/// # Panics
/// When the runtime cannot be built, or a worker task panics (a bug in the harness).
#[must_use]
pub fn run(profile: Profile, policy: Policy, settings: &Settings) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    fastrand::seed(settings.seed);
    runtime.block_on(simulate(profile, policy, settings))
}

async fn simulate(profile: Profile, policy: Policy, settings: &Settings) -> Outcome {
    let plan = Plan::new(settings.seed, settings.duration_of(profile));
    let upstream = FakeNotion::builder()
        .rate_limit(3, 3)
        .tokens([TOKEN])
        .seed_pages(READ_PAGES + plan.updates)
        .record_limit(usize::MAX)
        .in_process();
    let mut seeded = upstream.pages().into_iter().map(|page| page.id);
    let ids = Arc::new(PageIds {
        reads: seeded.by_ref().take(READ_PAGES).collect(),
        updates: seeded.collect(),
    });
    profile.install(&upstream.faults(), settings.seed);

    let start = Instant::now();
    let driver = tokio::spawn(profile.drive(upstream.faults(), settings.seed, start));
    let stack = policy.stack(upstream.clone(), settings.seed);
    let workers: Vec<_> = plan
        .workers
        .into_iter()
        .map(|ops| {
            tokio::spawn(worker(
                stack.clone(),
                ops,
                Arc::clone(&ids),
                upstream.base_url(),
            ))
        })
        .collect();
    let mut done = Vec::new();
    for handle in workers {
        done.extend(handle.await.expect("a worker never panics"));
    }
    let finished_after = start.elapsed();
    driver.abort();

    let log = upstream.requests();
    let pages = upstream.pages();
    Evidence {
        policy,
        done: &done,
        log: &log,
        pages: &pages,
        start,
        outages: &profile.outages(),
        finished_after,
    }
    .count()
}

/// One profile's table: every policy in `policies`, same settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProfileReport {
    /// The profile.
    pub profile: Profile,
    /// How long the workload was planned for.
    pub duration: Duration,
    /// One row per policy, in the order asked.
    pub rows: Vec<Outcome>,
}

/// Runs every policy in `policies` through `profile`.
#[must_use]
pub fn run_profile(profile: Profile, policies: &[Policy], settings: &Settings) -> ProfileReport {
    ProfileReport {
        profile,
        duration: settings.duration_of(profile),
        rows: policies
            .iter()
            .map(|&policy| run(profile, policy, settings))
            .collect(),
    }
}
