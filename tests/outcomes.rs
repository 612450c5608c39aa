//! The invariants of `cargo bench --bench outcomes` that must hold whatever the tuning, on a
//! small, fast version of it: two profiles, short traces, the policies they compare bulwark
//! with.
//!
//! - bulwark never writes a page twice;
//! - bulwark never receives more 429s than the official JS SDK's policy;
//! - bulwark never completes fewer reads than no policy at all;
//! - with `dedupe_creates_by`, no write the caller was told failed had been applied, and the
//!   outage ends in a first success within 5 s.
//!
//! Virtual time: each run is a paused-clock runtime of its own (see `bulwark_outcomes::run`).

use std::time::Duration;

use bulwark_outcomes::{run_profile, Policy, Profile, ProfileReport, Settings};

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
