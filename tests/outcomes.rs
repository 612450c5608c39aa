//! The invariants of `cargo bench --bench outcomes` that must hold whatever the tuning, on a
//! small, fast version of it: two profiles, short traces, the policies they compare bulwark
//! with.
//!
//! - bulwark never writes a page twice;
//! - bulwark never receives more 429s than the official JS SDK's policy;
//! - bulwark never completes fewer reads than no policy at all;
//! - with `dedupe_creates_by`, no write the caller was told failed had been applied, and the
//!   outage ends in a first success within 5 s;
//! - once Mark2Notion's quota is gone, bulwark sends at most the one call that revealed it and
//!   its callers wait for nothing, where the seed's retry loop sends every operation again.
//!
//! Virtual time: each run is a paused-clock runtime of its own (see `bulwark_outcomes::run`).

use std::time::Duration;

use bulwark_outcomes::{
    run_profile, run_quota_profile, Policy, Profile, ProfileReport, QuotaPolicy, Settings,
};

const POLICIES: [Policy; 4] = [
    Policy::Bare,
    Policy::NotionJsSdk,
    Policy::Bulwark,
    Policy::BulwarkDedupe,
];

fn check(report: &ProfileReport) {
    let row = |policy| {
        report
            .rows
            .iter()
            .find(|row| row.policy == policy)
            .expect("every policy ran")
    };
    let (bare, sdk, bulwark, dedupe) = (
        row(Policy::Bare),
        row(Policy::NotionJsSdk),
        row(Policy::Bulwark),
        row(Policy::BulwarkDedupe),
    );
    let name = report.profile.name();
    assert!(
        bare.operations > 0 && bulwark.operations == bare.operations,
        "{name}: same work"
    );
    assert_eq!(
        bulwark.duplicated_writes + dedupe.duplicated_writes,
        0,
        "{name}: bulwark duplicated a write"
    );
    assert_eq!(
        dedupe.failed_but_applied, 0,
        "{name}: with dedupe, a write reported failed had been applied"
    );
    assert!(
        bulwark.throttled <= sdk.throttled,
        "{name}: bulwark received {} 429s, notion-js-sdk {}",
        bulwark.throttled,
        sdk.throttled
    );
    assert!(
        bulwark.succeeded_reads >= bare.succeeded_reads,
        "{name}: bulwark completed {} reads, bare {}",
        bulwark.succeeded_reads,
        bare.succeeded_reads
    );
}

/// 10 % 502/503/504, a third of the 502s after the page was written: the trap for retried
/// `POST /v1/pages`.
#[test]
fn flaky_5xx_bulwark_never_duplicates_never_throttles_more_never_reads_less() {
    let settings = Settings::new(Settings::DEFAULT_SEED).duration(Duration::from_secs(60));
    check(&run_profile(Profile::Flaky5xx, &POLICIES, &settings));
}

/// A 20 s outage (60 s to 80 s) in a 100 s trace: breaker, stale answers, recovery.
#[test]
fn outage_20s_bulwark_never_duplicates_never_throttles_more_never_reads_less() {
    let settings = Settings::new(Settings::DEFAULT_SEED).duration(Duration::from_secs(100));
    let report = run_profile(Profile::Outage20s, &POLICIES, &settings);
    check(&report);
    for row in &report.rows {
        assert_eq!(
            row.recoveries.len(),
            1,
            "{:?}: one outage, one recovery",
            row.policy
        );
    }
    for row in report.rows.iter().filter(|r| r.policy >= Policy::Bulwark) {
        let recovery = row.recoveries[0].expect("bulwark recovers");
        assert!(
            recovery <= Duration::from_secs(5),
            "{:?}: first success {recovery:?} after the outage",
            row.policy
        );
    }
}

/// Same seed, same table: the runs are deterministic.
#[test]
fn same_seed_same_outcome() {
    let settings = Settings::new(7).duration(Duration::from_secs(20));
    let once = run_profile(
        Profile::Flaky5xx,
        &[Policy::Bulwark, Policy::Naive],
        &settings,
    );
    let twice = run_profile(
        Profile::Flaky5xx,
        &[Policy::Bulwark, Policy::Naive],
        &settings,
    );
    assert_eq!(once, twice);
}

/// Issue 18, the `quota-exhausted` headline: after Mark2Notion's monthly quota runs out,
/// bulwark wastes at most the one call that revealed it (the hourly recheck never comes in a
/// run this short) and its callers wait 0 s, while the seed's documented retry loop sends at
/// least 3 more calls per operation and makes its callers wait for each.
#[test]
fn quota_exhausted_bulwark_wastes_at_most_one_call_and_no_time_the_seed_loop_wastes_three_per_operation(
) {
    let settings = Settings::new(Settings::DEFAULT_SEED).duration(Duration::from_secs(60));
    let report = run_quota_profile(
        &[QuotaPolicy::SeedRetryLoop, QuotaPolicy::Bulwark],
        &settings,
    );
    let (seed, bulwark) = (&report.rows[0], &report.rows[1]);
    for row in &report.rows {
        assert!(
            row.exhausted_at.is_some() && row.operations_after_exhaustion > 0,
            "{:?}: the quota ran out with work left: {row:?}",
            row.policy
        );
        assert_eq!(row.succeeded as u64, row.quota, "{:?}", row.policy);
    }
    assert!(
        bulwark.calls_after_exhaustion <= 1,
        "bulwark: {} calls after exhaustion",
        bulwark.calls_after_exhaustion
    );
    assert_eq!(
        bulwark.waiting_after_exhaustion,
        Duration::ZERO,
        "{bulwark:?}"
    );
    assert_eq!(
        bulwark.failures.get("QuotaExhausted (local)"),
        Some(&(bulwark.operations_after_exhaustion - 1)),
        "bulwark's callers get the typed local error after the revealing 429: {:?}",
        bulwark.failures
    );
    let per_operation = seed.wasted_per_operation().expect("operations after it");
    assert!(
        per_operation >= 3.0,
        "seed retry loop: {per_operation} calls wasted per operation"
    );
    assert!(
        seed.waiting_after_exhaustion
            >= Duration::from_secs(7) * u32::try_from(seed.operations_after_exhaustion).unwrap(),
        "seed retry loop: {:?} waited",
        seed.waiting_after_exhaustion
    );
}
