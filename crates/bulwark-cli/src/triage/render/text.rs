//! `--format text`: each check on a line with its duration, then the verdict.

use std::{fmt::Write as _, time::Duration};

use crate::triage::{observation::Step, observe::Run, render::iso8601};

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn line<T>(out: &mut String, n: usize, total: usize, step: &Step<T>, result: &str) {
    let _ = writeln!(
        out,
        "[{n}/{total}] {:<44} {:>8}  {result}",
        step.request,
        ms(step.elapsed)
    );
}

/// The checks, the verdict, why, what to do, and what else was seen.
#[must_use]
pub fn run_text(run: &Run, mode: &str) -> String {
    let obs = &run.observations;
    let calls = obs.calls();
    let total = 1 + calls.len();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Notion triage of {} ({mode}) at {}",
        run.base_url,
        iso8601(run.started_at)
    );
    line(
        &mut out,
        1,
        total,
        &obs.status,
        &obs.status.observation.describe(),
    );
    for (i, (step, _)) in calls.iter().enumerate() {
        line(&mut out, i + 2, total, step, &step.observation.describe());
    }
    let d = &run.diagnosis;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "verdict: {} (exit {})",
        d.verdict,
        d.verdict.exit_code()
    );
    let _ = writeln!(out, "why:     {}", d.reason);
    let _ = writeln!(out, "action:  {}", d.action);
    for also in &d.also {
        let _ = writeln!(out, "also:    {also}");
    }
    out
}
