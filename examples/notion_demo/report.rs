//! The report: each arm's outcomes as a column, the table side by side, and what it means.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use bulwark::notion::NotionLayer;
use bulwark_testkit::FakeNotion;

use crate::{
    faults::{Plan, NOTION_RATE, RANDOM_502, WRITE_502_AFTER_APPLY},
    runners::{ArmRun, CIRCUIT_OPEN, REQUEST_TIMEOUT},
    workload::{Op, Target, OPS_PER_SECOND},
};

/// One column of the table.
#[derive(Debug, Default)]
pub(crate) struct Column {
    pub(crate) reads: usize,
    pub(crate) writes: usize,
    pub(crate) upstream: Option<usize>,
    pub(crate) throttled: Option<usize>,
    pub(crate) retries: Option<u64>,
    pub(crate) opens: Option<u64>,
    pub(crate) stale: Option<usize>,
    pub(crate) shared: Option<usize>,
    pub(crate) failed_reads: usize,
    pub(crate) failed_writes: usize,
    /// Writes refused by the open breaker.
    pub(crate) refused_writes: usize,
    /// Of those, writes started after the outage was over.
    pub(crate) refused_after_outage: usize,
    /// Failed writes whose page exists all the same.
    pub(crate) landed_anyway: Option<usize>,
    pub(crate) created: Option<usize>,
    pub(crate) duplicates: Option<usize>,
    pub(crate) p50: Option<Duration>,
    pub(crate) p99: Option<Duration>,
    pub(crate) unfinished: usize,
    /// Failures by reason.
    pub(crate) why: BTreeMap<String, usize>,
}

impl Column {
    pub(crate) fn from_run(run: &ArmRun, ops: &[Op], plan: &Plan) -> Self {
        let mut col = Self {
            reads: ops.iter().filter(|op| !op.is_write()).count(),
            writes: ops.iter().filter(|op| op.is_write()).count(),
            unfinished: run.unfinished,
            ..Self::default()
        };
        let mut latencies: Vec<Duration> = Vec::with_capacity(run.outcomes.len());
        let (mut stale, mut shared) = (0, 0);
        let (mut read_ok, mut write_ok) = (0, 0);
        for o in &run.outcomes {
            latencies.push(o.latency);
            stale += usize::from(o.stale);
            shared += usize::from(o.shared);
            match (o.ok, o.op.is_write()) {
                (true, true) => write_ok += 1,
                (true, false) => read_ok += 1,
                (false, write) => {
                    let why = o.failure.clone().unwrap_or_default();
                    if write && why == CIRCUIT_OPEN {
                        col.refused_writes += 1;
                        if o.at >= plan.outage_until {
                            col.refused_after_outage += 1;
                        }
                    }
                    *col.why.entry(why).or_default() += 1;
                }
            }
        }
        // Abandoned operations never got an answer: they failed too.
        col.failed_reads = col.reads - read_ok;
        col.failed_writes = col.writes - write_ok;
        col.stale = Some(stale);
        col.shared = Some(shared);
        latencies.sort_unstable();
        col.p50 = percentile(&latencies, 50);
        col.p99 = percentile(&latencies, 99);
        col
    }

    /// Fills in what FakeNotion saw: calls, 429s, pages created, duplicates, and which failed
    /// writes landed all the same.
    pub(crate) fn observe(&mut self, fake: &FakeNotion, target: &Target, run: &ArmRun) {
        let log = fake.requests();
        self.upstream = Some(log.len());
        self.throttled = Some(log.iter().filter(|r| r.status == 429).count());
        let mut titles: HashMap<String, usize> = HashMap::new();
        let prefix = target.title(0);
        let prefix = prefix.trim_end_matches('0');
        for page in fake.pages() {
            if let Some(title) = page.title().filter(|t| t.starts_with(prefix)) {
                *titles.entry(title).or_default() += 1;
            }
        }
        self.created = Some(titles.values().sum());
        self.duplicates = Some(titles.values().map(|n| n.saturating_sub(1)).sum());
        self.landed_anyway = Some(
            run.outcomes
                .iter()
                .filter(|o| !o.ok)
                .filter_map(|o| match o.op {
                    Op::Create(n) => Some(n),
                    _ => None,
                })
                .filter(|&n| titles.contains_key(&target.title(n)))
                .count(),
        );
    }

    pub(crate) fn with_layer(&mut self, layer: &NotionLayer) {
        let stats = layer.stats();
        self.retries = Some(stats.retry.retries);
        self.opens = Some(stats.breaker.opens);
    }

    pub(crate) fn rows(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "—".to_owned());
        let mut rows = vec![
            (
                "operations (reads + writes)",
                format!(
                    "{} ({} + {})",
                    self.reads + self.writes,
                    self.reads,
                    self.writes
                ),
            ),
            ("upstream calls", opt(self.upstream.map(|n| n.to_string()))),
            ("429s received", opt(self.throttled.map(|n| n.to_string()))),
            ("retries", opt(self.retries.map(|n| n.to_string()))),
            ("breaker opens", opt(self.opens.map(|n| n.to_string()))),
            (
                "reads sharing another's call",
                opt(self.shared.map(|n| n.to_string())),
            ),
            (
                "stale answers served",
                opt(self.stale.map(|n| n.to_string())),
            ),
            (
                "failed reads",
                format!("{} of {}", self.failed_reads, self.reads),
            ),
            (
                "failed writes",
                format!("{} of {}", self.failed_writes, self.writes),
            ),
            (
                "failed but applied (the page exists)",
                opt(self.landed_anyway.map(|n| n.to_string())),
            ),
            ("pages created", opt(self.created.map(|n| n.to_string()))),
            (
                "duplicated writes",
                opt(self.duplicates.map(|n| n.to_string())),
            ),
            (
                "latency p50 / p99",
                format!(
                    "{} / {}",
                    opt(self.p50.map(human)),
                    opt(self.p99.map(human))
                ),
            ),
        ];
        if self.unfinished > 0 {
            rows.push(("abandoned at the drain cap", self.unfinished.to_string()));
        }
        rows
    }

    pub(crate) fn why(&self) -> String {
        if self.why.is_empty() {
            return "none".to_owned();
        }
        self.why
            .iter()
            .map(|(why, n)| format!("{n}× {why}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub(crate) fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get((last * p).div_ceil(100)).copied()
}

pub(crate) fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Prints a Markdown table (readable as it is in a terminal) with padded columns.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([headers[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| {
                let pad = w - c.chars().count();
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect();
        println!("| {} |", cells.join(" | "));
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            if i == 0 {
                "-".repeat(w + 2)
            } else {
                format!("{}:", "-".repeat(w + 1))
            }
        })
        .collect();
    println!("|{}|", rule.join("|"));
    for row in rows {
        line(row.clone());
    }
}

/// What the run does, before it starts.
pub(crate) fn print_header(seconds: u64, seed: u64, plan: &Plan, ops: &[Op]) {
    let writes = ops.iter().filter(|op| op.is_write()).count();
    println!("bulwark notion_demo: the same workload without and with bulwark, at the same time.");
    println!(
        "  workload: {} operations in {} s ({OPS_PER_SECOND}/s: {} reads, {writes} writes), seed {}",
        ops.len(),
        seconds,
        ops.len() - writes,
        seed
    );
    println!(
        "  faults:   each FakeNotion allows {}/s per token (burst {}); {:.0} % random 502s;",
        NOTION_RATE.0,
        NOTION_RATE.1,
        RANDOM_502 * 100.0,
    );
    println!(
        "            {:.0} % of page creations answered 502 after the page was created;",
        WRITE_502_AFTER_APPLY * 100.0
    );
    println!(
        "            a Cloudflare HTML 502 at {:.0} s; an outage (every request 503) from {:.0} s to {:.0} s",
        plan.cloudflare_at.as_secs_f64(),
        plan.outage_from.as_secs_f64(),
        plan.outage_until.as_secs_f64(),
    );
    if plan.scaled {
        println!("            (a third of the run: shorter than 20 s because --seconds < 40)");
    }
    println!(
        "  clients:  without bulwark: hyper-util client, {} s timeout, no retries",
        REQUEST_TIMEOUT.as_secs()
    );
    println!(
        "            with bulwark: NotionLayer defaults (3 retries from 1 s; breaker at 5 failures"
    );
    println!(
        "            in a row or 50 % of 10 calls in 30 s, 1-4 s breaks; bucket 3/s per token;"
    );
    println!("            stale cache 5 min; creates deduplicated by their title: dedupe_creates_by(\"Name\"))");
    println!();
}

/// What the table means, in words.
pub(crate) fn print_footer(bare: &Column, bulwark: &Column, layer: &NotionLayer) {
    let stats = layer.stats();
    let n = |v: Option<usize>| v.unwrap_or(0);
    let mut notes = vec![
        format!(
            "Reads: bulwark failed {} of {}, the bare client {}. {} bulwark answers were the last \
             good copy (marked stale: `Age`, and `Cache-Status` `fwd=stale`, or `hit; ttl=-N` \
             when refused unsent), served while FakeNotion failed or the breaker was open; {} \
             reads shared the upstream call of an identical read in flight.",
            bulwark.failed_reads,
            bulwark.reads,
            bare.failed_reads,
            n(bulwark.stale),
            n(bulwark.shared),
        ),
        format!(
            "Load: bulwark made {} upstream calls for {} operations, the bare client {}. 429s: {} \
             with bulwark (its bucket keeps to 3/s, a 429 pauses it), {} without. Its {} retries \
             repeated reads (GETs, read-only queries) after a 5xx and any request after a 429, \
             never a page creation blindly after a 5xx.",
            n(bulwark.upstream),
            bulwark.reads + bulwark.writes,
            n(bare.upstream),
            n(bulwark.throttled),
            n(bare.throttled),
            bulwark.retries.unwrap_or(0),
        ),
        format!(
            "Writes: {} duplicate pages with bulwark, {} without; {} writes reported failed \
             although the page exists with bulwark, {} without. A 502 after the page was created \
             is ambiguous: bulwark looks the page up by its title (dedupe_creates_by) and answers \
             with it when it exists, sends the create again only when it certainly does not; a \
             client that retried every 502 would have duplicated them.",
            n(bulwark.duplicates),
            n(bare.duplicates),
            n(bulwark.landed_anyway),
            n(bare.landed_anyway),
        ),
    ];
    if bulwark.refused_writes > 0 {
        let after = bulwark.refused_after_outage;
        notes.push(format!(
            "Breaker: it opened {} time(s) (now {}). While it was open {} writes were refused at \
             once, never sent (safe to retry later){}{}",
            bulwark.opens.unwrap_or(0),
            stats.breaker.state.as_str(),
            bulwark.refused_writes,
            if after > 0 {
                format!(
                    "; {after} of them came after FakeNotion was back, within the last break \
                     (1 s, doubling after each failed probe up to 4 s)"
                )
            } else {
                String::new()
            },
            if bulwark.failed_writes > bare.failed_writes {
                format!(
                    ". That is why bulwark failed more writes than the bare client ({} vs {}).",
                    bulwark.failed_writes, bare.failed_writes
                )
            } else {
                ".".to_owned()
            },
        ));
    }
    notes.push(format!(
        "Latency: bulwark's includes the wait for a token at 3/s ({} of {} admitted calls \
         waited); the bare client's fast answers include its errors.",
        stats.bucket.waited, stats.bucket.admitted
    ));
    println!("What it means:");
    for note in notes {
        print_wrapped(&note, 96);
    }
}

/// Prints `text` as a `- ` item wrapped at `width` columns.
pub(crate) fn print_wrapped(text: &str, width: usize) {
    let mut line = String::from("-");
    for word in text.split_whitespace() {
        if line.chars().count() + 1 + word.chars().count() > width {
            println!("{line}");
            line = String::from(" ");
        }
        line.push(' ');
        line.push_str(word);
    }
    println!("{line}");
}
