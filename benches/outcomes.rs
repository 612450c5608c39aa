//! Outcomes under faults: the same seeded fault traces, in virtual time, against every policy a
//! Notion user could pick instead of bulwark. One markdown table per fault profile (or JSON).
//!
//! ```text
//! cargo bench --bench outcomes                       # 8 profiles × 7 policies, then quota-exhausted
//! cargo bench --bench outcomes -- --seed 7 --json    # another trace, for machines
//! cargo bench --bench outcomes -- --profile outage-20s --policy bulwark
//! cargo bench --bench outcomes -- --profile quota-exhausted   # Mark2Notion's quota running out
//! ```
//!
//! The harness (workload, policies, profiles, counting, rendering) is the `bulwark-outcomes`
//! crate; this file parses the arguments and prints. Each run has its own current-thread
//! runtime with a paused clock, so the tables are the same on every run with the same seed;
//! only the wall time on stderr varies.

use std::{process::ExitCode, time::SystemTime};

use bulwark_outcomes::{render, run_profile, run_quota_profile, Args};

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("{error}\n\n{}", bulwark_outcomes::args::USAGE);
            return ExitCode::from(2);
        }
    };
    if args.help {
        println!("{}", bulwark_outcomes::args::USAGE);
        return ExitCode::SUCCESS;
    }
    let began = SystemTime::now();
    if !args.json {
        println!("{}", render::LEGEND);
    }
    let mut reports = Vec::with_capacity(args.profiles.len());
    for &profile in &args.profiles {
        let report = run_profile(profile, &args.policies, &args.settings);
        if !args.json {
            println!("{}", render::table(&report, &args.settings));
        }
        reports.push(report);
    }
    let quota = args.quota_exhausted.then(|| {
        let report = run_quota_profile(&args.quota_policies, &args.settings);
        if !args.json {
            println!("{}", render::quota_table(&report, &args.settings));
        }
        report
    });
    if args.json {
        let document = render::json_with_quota(&reports, quota.as_ref(), &args.settings);
        println!("{document:#}");
    }
    let wall = began.elapsed().unwrap_or_default();
    eprintln!(
        "{} profiles × {} policies{} in {:.1} s of wall time",
        args.profiles.len(),
        args.policies.len(),
        quota.as_ref().map_or_else(String::new, |report| format!(
            ", quota-exhausted × {}",
            report.rows.len()
        )),
        wall.as_secs_f64()
    );
    ExitCode::SUCCESS
}
