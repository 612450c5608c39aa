//! What happened in one run, counted from what the callers saw and from FakeNotion's own
//! request log and page store — never from a policy's counters.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use bulwark_testkit::{Page, RecordedRequest};
use tokio::time::Instant;

use crate::{policy::Policy, workload::Done, workload::OpKind};

/// One policy's result on one profile.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Outcome {
    /// The policy.
    pub policy: Policy,
    /// Operations planned and run (the same for every policy of a profile).
    pub operations: usize,
    /// Reads (`GET pages/{id}`, `users/me`, `…/query`) answered 2xx, stale copies included.
    pub succeeded_reads: usize,
    /// Writes (`POST pages`, `PATCH pages/{id}`) answered 2xx.
    pub succeeded_writes: usize,
    /// Reads answered with anything else, or an error.
    pub failed_reads: usize,
    /// Writes answered with anything else, or an error.
    pub failed_writes: usize,
    /// Writes the caller was told failed although FakeNotion applied them: a created page with
    /// the operation's title exists, or the update's page carries its title.
    pub failed_but_applied: usize,
    /// Extra pages per created title: pages a retried `POST /v1/pages` made twice.
    pub duplicated_writes: usize,
    /// Requests FakeNotion received.
    pub upstream_calls: usize,
    /// Of them, answered 429.
    pub throttled: usize,
    /// Latency of every operation (succeeded or not), from the call to its answer: median.
    pub latency_p50: Duration,
    /// 99th percentile.
    pub latency_p99: Duration,
    /// The slowest.
    pub latency_max: Duration,
    /// Per outage, from the moment FakeNotion was up again to the first request it answered
    /// 2xx; `None` when none came before the next outage (or the end).
    pub recoveries: Vec<Option<Duration>>,
    /// Answers that were stored copies served because the upstream failed (bulwark's cache).
    pub stale_answers: usize,
    /// When the last operation finished (virtual time from the start).
    pub finished_after: Duration,
    /// Why operations failed: status or error, and how often.
    pub failures: BTreeMap<String, usize>,
}

impl Outcome {
    /// All succeeded operations.
    #[must_use]
    pub const fn succeeded(&self) -> usize {
        self.succeeded_reads + self.succeeded_writes
    }

    /// All failed operations.
    #[must_use]
    pub const fn failed(&self) -> usize {
        self.failed_reads + self.failed_writes
    }

    /// Upstream calls per succeeded operation (`None` when nothing succeeded).
    #[must_use]
    pub fn calls_per_success(&self) -> Option<f64> {
        (self.succeeded() > 0).then(|| self.upstream_calls as f64 / self.succeeded() as f64)
    }
}

/// What a run leaves behind, to be counted.
pub(crate) struct Evidence<'a> {
    pub(crate) policy: Policy,
    pub(crate) done: &'a [Done],
    pub(crate) log: &'a [RecordedRequest],
    pub(crate) pages: &'a [Page],
    pub(crate) start: Instant,
    /// Outage windows, as offsets from `start`.
    pub(crate) outages: &'a [(Duration, Duration)],
    pub(crate) finished_after: Duration,
}

impl Evidence<'_> {
    pub(crate) fn count(&self) -> Outcome {
        let mut per_title: HashMap<String, usize> = HashMap::new();
        let mut by_id: HashMap<&str, &Page> = HashMap::new();
        for page in self.pages {
            if let Some(title) = page.title() {
                *per_title.entry(title).or_default() += 1;
            }
            by_id.insert(page.id.as_str(), page);
        }

        let mut outcome = Outcome {
            policy: self.policy,
            operations: self.done.len(),
            succeeded_reads: 0,
            succeeded_writes: 0,
            failed_reads: 0,
            failed_writes: 0,
            failed_but_applied: 0,
            duplicated_writes: 0,
            upstream_calls: self.log.len(),
            throttled: self.log.iter().filter(|r| r.status == 429).count(),
            latency_p50: Duration::ZERO,
            latency_p99: Duration::ZERO,
            latency_max: Duration::ZERO,
            recoveries: self.recoveries(),
            stale_answers: self.done.iter().filter(|d| d.stale).count(),
            finished_after: self.finished_after,
            failures: BTreeMap::new(),
        };
        for done in self.done {
            let write = done.kind.is_write();
            let applied = match done.kind {
                OpKind::Create => {
                    let copies = per_title.get(&done.title).copied().unwrap_or(0);
                    outcome.duplicated_writes += copies.saturating_sub(1);
                    copies > 0
                }
                OpKind::Update => by_id
                    .get(done.page.as_str())
                    .and_then(|page| page.title())
                    .is_some_and(|title| title == done.title),
                OpKind::ReadPage | OpKind::ReadMe | OpKind::Query => false,
            };
            match (done.succeeded, write) {
                (true, false) => outcome.succeeded_reads += 1,
                (true, true) => outcome.succeeded_writes += 1,
                (false, false) => outcome.failed_reads += 1,
                (false, true) => {
                    outcome.failed_writes += 1;
                    outcome.failed_but_applied += usize::from(applied);
                }
            }
            if let Some(why) = &done.failure {
                *outcome.failures.entry(why.clone()).or_default() += 1;
            }
        }
        let mut latencies: Vec<Duration> = self.done.iter().map(|d| d.latency).collect();
        latencies.sort_unstable();
        outcome.latency_p50 = percentile(&latencies, 50);
        outcome.latency_p99 = percentile(&latencies, 99);
        outcome.latency_max = latencies.last().copied().unwrap_or_default();
        outcome
    }

    /// For each outage: from its end to the first 2xx FakeNotion answered before the next
    /// outage began (or ever, for the last one).
    fn recoveries(&self) -> Vec<Option<Duration>> {
        self.outages
            .iter()
            .enumerate()
            .map(|(i, (_, up))| {
                let up = self.start + *up;
                let next_down = self.outages.get(i + 1).map(|(down, _)| self.start + *down);
                self.log
                    .iter()
                    .filter(|r| r.at >= up && next_down.is_none_or(|down| r.at < down))
                    .find(|r| (200..300).contains(&r.status))
                    .map(|r| r.at - up)
            })
            .collect()
    }
}

/// The `p`-th percentile by nearest rank of sorted `values`.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use bulwark_http::BufferedBody;
    use bulwark_testkit::{FakeNotion, Fault, InProcessNotion};
    use http::{Method, Request};
    use tower::ServiceExt;

    use super::*;

    async fn send(fake: &InProcessNotion, method: Method, path: &str, title: &str) -> u16 {
        let body = serde_json::json!({
            "parent": {"data_source_id": "ds_1"},
            "properties": {"Name": {"title": [{"text": {"content": title}}]}}
        });
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", fake.base_url()))
            .header("authorization", "Bearer t")
            .header("notion-version", "2025-09-03")
            .body(BufferedBody::from(body.to_string()))
            .unwrap();
        fake.clone().oneshot(req).await.unwrap().status().as_u16()
    }

    fn done(kind: OpKind, title: &str, page: &str, succeeded: bool) -> Done {
        Done {
            kind,
            title: title.to_owned(),
            page: page.to_owned(),
            succeeded,
            stale: false,
            latency: Duration::from_secs(u64::from(!succeeded)),
            failure: (!succeeded).then(|| "502".to_owned()),
        }
    }

    /// Duplicates, failed-but-applied writes, 429s and recovery are read from FakeNotion's
    /// page store and log, whatever the caller was told.
    #[test]
    fn writes_are_judged_by_the_page_store_and_calls_by_the_log() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let fake = FakeNotion::builder()
                .no_rate_limit()
                .seed_pages(2)
                .in_process();
            let seeded: Vec<String> = fake.pages().into_iter().map(|p| p.id).collect();
            let start = Instant::now();
            // "twice" is created twice (a blind retry); "landed" lands but answers 502;
            // "lost" never arrives; the update to seeded[0] lands but answers 502, the one to
            // seeded[1] fails before it is applied.
            assert_eq!(send(&fake, Method::POST, "/v1/pages", "twice").await, 200);
            assert_eq!(send(&fake, Method::POST, "/v1/pages", "twice").await, 200);
            fake.faults().script([
                Fault::StatusAfterApply(502),
                Fault::StatusAfterApply(502),
                Fault::Status(502),
            ]);
            assert_eq!(send(&fake, Method::POST, "/v1/pages", "landed").await, 502);
            let first = format!("/v1/pages/{}", seeded[0]);
            let second = format!("/v1/pages/{}", seeded[1]);
            assert_eq!(send(&fake, Method::PATCH, &first, "upd 0").await, 502);
            assert_eq!(send(&fake, Method::PATCH, &second, "upd 1").await, 502);
            // Say an outage ran from 10 s to 20 s: a 429 at 21 s, the first 2xx at 23 s.
            fake.faults().script([Fault::RateLimited {
                retry_after_secs: 1,
            }]);
            tokio::time::sleep(Duration::from_secs(21)).await;
            assert_eq!(send(&fake, Method::GET, "/v1/users/me", "").await, 429);
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(send(&fake, Method::GET, "/v1/users/me", "").await, 200);

            let ops = [
                done(OpKind::Create, "twice", "", true),
                done(OpKind::Create, "landed", "", false),
                done(OpKind::Create, "lost", "", false),
                done(OpKind::Update, "upd 0", &seeded[0], false),
                done(OpKind::Update, "upd 1", &seeded[1], false),
                done(OpKind::ReadMe, "", "", true),
            ];
            let outcome = Evidence {
                policy: Policy::Bare,
                done: &ops,
                log: &fake.requests(),
                pages: &fake.pages(),
                start,
                outages: &[(Duration::from_secs(10), Duration::from_secs(20))],
                finished_after: Duration::from_secs(23),
            }
            .count();
            assert_eq!((outcome.succeeded_reads, outcome.succeeded_writes), (1, 1));
            assert_eq!((outcome.failed_reads, outcome.failed_writes), (0, 4));
            assert_eq!(outcome.failed_but_applied, 2, "landed, upd 0");
            assert_eq!(outcome.duplicated_writes, 1, "twice");
            assert_eq!((outcome.upstream_calls, outcome.throttled), (7, 1));
            assert_eq!(outcome.recoveries, [Some(Duration::from_secs(3))]);
            assert_eq!(outcome.failures["502"], 4);
            assert_eq!(
                (outcome.latency_p50, outcome.latency_max),
                (Duration::from_secs(1), Duration::from_secs(1))
            );
            assert_eq!(outcome.calls_per_success(), Some(3.5));
        });
    }

    #[test]
    fn nearest_rank_percentiles() {
        let ms = |v: u64| Duration::from_millis(v);
        let values: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&values, 50), ms(50));
        assert_eq!(percentile(&values, 99), ms(99));
        assert_eq!(percentile(&[ms(7)], 99), ms(7));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }
}
