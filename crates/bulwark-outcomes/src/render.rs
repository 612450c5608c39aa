//! The tables (markdown, for people) and JSON (for machines).

use std::{fmt::Write as _, time::Duration};

use serde_json::{json, Value};

use crate::{
    metrics::Outcome,
    policy::Policy,
    quota::{QuotaOutcome, QuotaReport, QUOTA_PROFILE, QUOTA_WORKERS},
    run::{ProfileReport, Settings},
    workload::WORKERS,
};

/// The footnote on tower-resilience's row (see the policy's module docs).
const BREAKER_CLOCK_NOTE: &str = "¹ tower-resilience-circuitbreaker 0.14 times its open state with `std::time::Instant`: under the paused clock its 30 s break lasts 30 s of wall time, longer than the run, so once open it stays open to the end of the trace. The `(retry+limiter)` row has no breaker.";

/// What the workload is and what the columns mean, printed before the tables.
pub const LEGEND: &str = "\
Workload: 6 workers, each working through its own seeded list of operations (35 % GET pages/{id}, \
15 % GET users/me, 15 % POST data_sources/{id}/query, 20 % POST pages, 15 % PATCH pages/{id}) \
with U[0.5, 1.5) s of thinking before each: about 6 operations/s offered, twice Notion's \
3 requests/s. Every policy gets the same operations and waits for each before the next. \
FakeNotion (in process, virtual time) answers at once, so latency is the waiting a policy adds \
plus the profile's delays.

Columns: succeeded = a 2xx reached the caller (stale copies included); failed but applied = the \
caller was told the write failed, FakeNotion's page store has it; duplicated writes = extra \
pages per created title; upstream calls and 429s = FakeNotion's request log; recovery = from \
the end of an outage to the first 2xx FakeNotion answered; stale answers = bulwark's cache \
answering with a stored copy; all done after = when the last worker finished its list.
";

/// The legend, then one markdown table per profile, each with its heading and notes.
#[must_use]
pub fn markdown(reports: &[ProfileReport], settings: &Settings) -> String {
    let mut out = format!("{LEGEND}\n");
    for report in reports {
        out.push_str(&table(report, settings));
        out.push('\n');
    }
    out
}

/// One profile's heading, table and notes.
#[must_use]
pub fn table(report: &ProfileReport, settings: &Settings) -> String {
    let profile = report.profile;
    let operations = report.rows.first().map_or(0, |row| row.operations);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### {}\n\n{}. Work: {operations} operations ({} s at the offered rate), {WORKERS} workers, seed {}.\n",
        profile.name(),
        capitalise(profile.describe()),
        report.duration.as_secs(),
        settings.seed,
    );
    let recovery = profile.has_recoveries();
    out.push_str("| policy | succeeded (reads / writes) | failed | failed but applied | duplicated writes | upstream calls per success | 429s received | latency p50 / p99 / max |");
    if recovery {
        out.push_str(" recovery to first success |");
    }
    out.push_str(" stale answers | all done after |\n|---|---:|---:|---:|---:|---:|---:|---:|");
    if recovery {
        out.push_str("---:|");
    }
    out.push_str("---:|---:|\n");
    let mut footnote = false;
    for row in &report.rows {
        let mut name = row.policy.name().to_owned();
        if row.policy == Policy::TowerResilience {
            name.push_str(" ¹");
            footnote = true;
        }
        let _ = write!(
            out,
            "| {name} | {} ({} / {}) | {} | {} | {} | {} | {} | {} / {} / {} |",
            row.succeeded(),
            row.succeeded_reads,
            row.succeeded_writes,
            row.failed(),
            row.failed_but_applied,
            row.duplicated_writes,
            row.calls_per_success()
                .map_or_else(|| "–".to_owned(), |c| format!("{c:.2}")),
            row.throttled,
            duration(row.latency_p50),
            duration(row.latency_p99),
            duration(row.latency_max),
        );
        if recovery {
            let _ = write!(out, " {} |", recoveries(&row.recoveries));
        }
        let _ = writeln!(
            out,
            " {} | {} |",
            row.stale_answers,
            duration(row.finished_after)
        );
    }
    if footnote {
        let _ = writeln!(out, "\n{BREAKER_CLOCK_NOTE}");
    }
    out
}

/// Every report as one JSON document.
#[must_use]
pub fn json(reports: &[ProfileReport], settings: &Settings) -> Value {
    json!({
        "seed": settings.seed,
        "workers": WORKERS,
        "profiles": reports.iter().map(|report| json!({
            "profile": report.profile.name(),
            "description": report.profile.describe(),
            "duration_s": report.duration.as_secs(),
            "rows": report.rows.iter().map(row_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn row_json(row: &Outcome) -> Value {
    json!({
        "policy": row.policy.name(),
        "operations": row.operations,
        "succeeded_reads": row.succeeded_reads,
        "succeeded_writes": row.succeeded_writes,
        "failed_reads": row.failed_reads,
        "failed_writes": row.failed_writes,
        "failed_but_applied": row.failed_but_applied,
        "duplicated_writes": row.duplicated_writes,
        "upstream_calls": row.upstream_calls,
        "upstream_calls_per_success": row.calls_per_success(),
        "throttled_429": row.throttled,
        "latency_ms": {
            "p50": millis(row.latency_p50),
            "p99": millis(row.latency_p99),
            "max": millis(row.latency_max),
        },
        "recovery_to_first_success_ms": row.recoveries.iter().map(|r| r.map(millis)).collect::<Vec<_>>(),
        "stale_answers": row.stale_answers,
        "finished_after_ms": millis(row.finished_after),
        "failures": row.failures,
    })
}

/// What the `quota-exhausted` table shows, printed under it.
const QUOTA_NOTE: &str = "Mark2Notion answers a used-up monthly quota with 429 `Usage quota exceeded for current billing period`, `X-Usage-Remaining: 0` and no `Retry-After`: nothing will change before the next billing period, so every call after it is wasted and every second a caller waits for one is lost. The seed retry loop (Mark2Notion's documented `callAPIWithRetry`, the Notion tables' `naive`) sends each operation 4 times and keeps its caller 7 s for the same 429; retrying every failure sends it 4 times too, 3 s. bulwark's `Mark2NotionLayer` classifies that 429 as `QuotaExhausted`: it hands the one that revealed it to its caller unretried, leaves the circuit closed (the service is healthy), and refuses every later request at once, locally, with a typed `bulwark_http::QuotaExhausted` error (`downcast_ref`) carrying when to try again — one call an hour checks whether the quota came back. Operations after = those asked once the quota had run out; calls after exhaustion = the fake's count of requests that arrived with the quota already spent; waiting after exhaustion = the time those operations took to answer, summed (virtual time), and the longest.";

/// The `quota-exhausted` heading, table and note.
#[must_use]
pub fn quota_table(report: &QuotaReport, settings: &Settings) -> String {
    let first = report.rows.first();
    let operations = first.map_or(0, |row| row.operations);
    let quota = first.map_or(0, |row| row.quota);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### {QUOTA_PROFILE}\n\nMark2Notion (the in-process fake, `POST /api/convert`) with a monthly quota of {quota} conversions that runs out about a third of the way in and does not come back during the run. Work: {operations} conversions ({} s at the offered rate), {QUOTA_WORKERS} workers, seed {}.\n",
        report.duration.as_secs(),
        settings.seed,
    );
    out.push_str("| policy | offered | succeeded | failed | upstream calls | quota ran out at | operations after | calls after exhaustion | waiting after exhaustion | what callers got | all done after |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n");
    for row in &report.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.policy.name(),
            row.operations,
            row.succeeded,
            row.failed,
            row.upstream_calls,
            row.exhausted_at
                .map_or_else(|| "never".to_owned(), duration),
            row.operations_after_exhaustion,
            row.calls_after_exhaustion,
            waiting(row),
            failures(&row.failures),
            duration(row.finished_after),
        );
    }
    let _ = writeln!(out, "\n{QUOTA_NOTE}");
    out
}

/// `4200 s (max 7.0 s)`, or `–` when no operation came after.
fn waiting(row: &QuotaOutcome) -> String {
    if row.operations_after_exhaustion == 0 {
        return "–".to_owned();
    }
    format!(
        "{} (max {})",
        duration(row.waiting_after_exhaustion),
        duration(row.longest_after_exhaustion),
    )
}

/// The failures, most frequent first: `QuotaExhausted (local) × 599, 429 response × 1`.
fn failures(failures: &std::collections::BTreeMap<String, usize>) -> String {
    if failures.is_empty() {
        return "–".to_owned();
    }
    let mut sorted: Vec<(&String, &usize)> = failures.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    sorted
        .iter()
        .map(|(why, n)| format!("{why} × {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// [`json()`](fn@json), with the `quota-exhausted` report under `"quota_exhausted"` when there is one.
#[must_use]
pub fn json_with_quota(
    reports: &[ProfileReport],
    quota: Option<&QuotaReport>,
    settings: &Settings,
) -> Value {
    let mut document = json(reports, settings);
    if let (Some(report), Some(object)) = (quota, document.as_object_mut()) {
        object.insert("quota_exhausted".to_owned(), quota_json(report));
    }
    document
}

fn quota_json(report: &QuotaReport) -> Value {
    json!({
        "profile": QUOTA_PROFILE,
        "workers": QUOTA_WORKERS,
        "duration_s": report.duration.as_secs(),
        "rows": report.rows.iter().map(|row| json!({
            "policy": row.policy.name(),
            "operations": row.operations,
            "quota": row.quota,
            "succeeded": row.succeeded,
            "failed": row.failed,
            "upstream_calls": row.upstream_calls,
            "calls_after_exhaustion": row.calls_after_exhaustion,
            "exhausted_at_ms": row.exhausted_at.map(millis),
            "operations_after_exhaustion": row.operations_after_exhaustion,
            "waiting_after_exhaustion_ms": millis(row.waiting_after_exhaustion),
            "longest_after_exhaustion_ms": millis(row.longest_after_exhaustion),
            "failures": row.failures,
            "finished_after_ms": millis(row.finished_after),
        })).collect::<Vec<_>>(),
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `0 ms`, `840 ms`, `2.3 s`, `64 s`.
fn duration(d: Duration) -> String {
    let ms = millis(d);
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=9_999 => format!("{:.1} s", d.as_secs_f64()),
        _ => format!("{:.0} s", d.as_secs_f64()),
    }
}

/// One outage: its recovery time, or `never`. Several: the mean and the worst of those with a
/// success, and how many up-windows saw none.
fn recoveries(values: &[Option<Duration>]) -> String {
    let seen: Vec<Duration> = values.iter().flatten().copied().collect();
    let missed = values.len() - seen.len();
    match values {
        [] => "–".to_owned(),
        [Some(one)] => duration(*one),
        [None] => "never".to_owned(),
        _ if seen.is_empty() => format!("never ({missed} of {} up-windows)", values.len()),
        _ => {
            let count = u32::try_from(seen.len()).unwrap_or(u32::MAX);
            let mean = seen.iter().sum::<Duration>() / count;
            let worst = seen.iter().max().copied().unwrap_or_default();
            let mut text = format!("mean {}, max {}", duration(mean), duration(worst));
            if missed > 0 {
                let _ = write!(text, "; none in {missed} of {} up-windows", values.len());
            }
            text
        }
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_recoveries_read_well() {
        let ms = Duration::from_millis;
        assert_eq!(duration(ms(0)), "0 ms");
        assert_eq!(duration(ms(840)), "840 ms");
        assert_eq!(duration(ms(2_345)), "2.3 s");
        assert_eq!(duration(ms(64_400)), "64 s");
        assert_eq!(recoveries(&[]), "–");
        assert_eq!(recoveries(&[None]), "never");
        assert_eq!(recoveries(&[Some(ms(1_500))]), "1.5 s");
        assert_eq!(
            recoveries(&[Some(ms(1_000)), Some(ms(3_000)), None]),
            "mean 2.0 s, max 3.0 s; none in 1 of 3 up-windows"
        );
        assert_eq!(recoveries(&[None, None]), "never (2 of 2 up-windows)");
        assert_eq!(capitalise("twice"), "Twice");
    }
}
