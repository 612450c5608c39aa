//! `bulwark report`: a summary of a `bulwark proxy --access-log` file — what Notion's
//! 502-troubleshooting guide has integrations work out by hand: errors by hour (UTC), by
//! route, by status and code, by request size (large bulk requests), and the share of 429s
//! and 5xx around them.
//!
//! [`Report`] aggregates while it reads, so memory stays bounded whatever the log's length:
//! one row per hour, per method and route, per status and code (each table at most
//! [`MAX_ROWS`] rows; later keys are counted in an `other` row) and four size buckets. Lines
//! that are not records ([`AccessRecord::parse`]), are not UTF-8 or are longer than
//! [`MAX_LINE_BYTES`] are counted and skipped, never fatal; blank lines are ignored.
//!
//! ```
//! use bulwark_cli::report::Report;
//!
//! let log = r#"{"ts":"2026-11-30T07:50:01.123Z","method":"GET","route":"/v1/pages/{id}","request_bytes":0,"status":200,"duration_ms":40,"attempts":1,"cache":"live","request_id":"r1"}
//! {"ts":"2026-11-30T07:51:12.000Z","method":"POST","route":"/v1/pages","request_bytes":2048,"status":502,"duration_ms":900,"attempts":1,"cache":"none","code":"bad_gateway"}
//! not a record
//! "#;
//! let report = Report::from_reader(log.as_bytes())?;
//! assert_eq!(report.records(), 2);
//! assert_eq!(report.bad_lines(), 1);
//! assert_eq!(report.totals().status_5xx, 1);
//! let json = report.to_json();
//! assert_eq!(json["by_status"][1]["code"], "bad_gateway");
//! print!("{}", report.to_text());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # The JSON document (`bulwark report --json`)
//!
//! One object; field names are stable, new fields may be added. Shares are fractions of the
//! row's `requests` (0 to 1, four decimals); times are UTC RFC 3339.
//!
//! ```text
//! {
//!   "version": 1,
//!   "lines": 120, "records": 118, "bad_lines": 2,
//!   "bad_line_examples": [{"line": 3, "reason": "not JSON (…)"}],        // the first 10
//!   "first": "2026-11-30T07:50:01.123Z", "last": "2026-11-30T09:12:00.000Z", // null when empty
//!   "totals": COUNTS,
//!   "upstream": {"attempts": 130, "retried": 8, "reconciled": 1,
//!                "cache": {"live": 80, "hit": 3, "stale": 2, "none": 33}},
//!   "by_hour":   [{"hour": "2026-11-30T07:00:00Z", …COUNTS}],            // oldest first
//!   "by_route":  [{"method": "GET", "route": "/v1/pages/{id}", …COUNTS}], // most errors first
//!   "by_status": [{"status": 502, "code": "bad_gateway", "requests": 8}], // code null when none
//!   "by_size":   [{"size": "<1 KiB", "min_bytes": 0, "max_bytes": 1023, …COUNTS}],
//!   "other": {"hours": 0, "routes": 0, "statuses": 0}                    // records past MAX_ROWS
//! }
//! COUNTS = "requests", "errors" (status ≥ 400), "status_429", "status_5xx",
//!          "error_share", "share_429", "share_5xx", "mean_duration_ms", "max_duration_ms"
//! ```
//! Size buckets: `<1 KiB`, `1–10 KiB`, `10–100 KiB`, `≥100 KiB` (`max_bytes` null); rows
//! past [`MAX_ROWS`] appear as `{"method": "*", "route": "(other)"}`, `{"status": 0, "code":
//! "(other)"}` and an hour of `null`.

pub mod cli;
mod read;
mod render;

use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, BufRead, BufReader, Read},
    path::Path,
};

use time::OffsetDateTime;

use crate::{
    proxy::record::{AccessRecord, CacheOutcome},
    report::read::{read_line, Line},
};

/// The longest line read; longer ones are counted bad and skipped.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The most rows a table keeps (hours, routes, statuses); later keys are counted together in
/// an `other` row.
pub const MAX_ROWS: usize = 10_000;
/// How many bad lines are described (the rest are only counted).
const BAD_EXAMPLES: usize = 10;
/// The longest route, method or code kept as a key; longer ones are cut.
const MAX_KEY_CHARS: usize = 200;

/// Requests counted in one row of a table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Records in the row.
    pub requests: u64,
    /// Of those, answered with a status of 400 or more.
    pub errors: u64,
    /// Answered 429.
    pub status_429: u64,
    /// Answered 500–599.
    pub status_5xx: u64,
    /// The sum of their `duration_ms`.
    pub duration_ms_total: u64,
    /// The longest `duration_ms`.
    pub duration_ms_max: u64,
}

impl Counts {
    fn add(&mut self, record: &AccessRecord) {
        self.requests += 1;
        self.errors += u64::from(record.status >= 400);
        self.status_429 += u64::from(record.status == 429);
        self.status_5xx += u64::from((500..600).contains(&record.status));
        self.duration_ms_total = self.duration_ms_total.saturating_add(record.duration_ms);
        self.duration_ms_max = self.duration_ms_max.max(record.duration_ms);
    }

    /// `errors / requests` (0 when empty).
    #[must_use]
    pub fn error_share(&self) -> f64 {
        share(self.errors, self.requests)
    }

    /// `status_429 / requests` (0 when empty).
    #[must_use]
    pub fn share_429(&self) -> f64 {
        share(self.status_429, self.requests)
    }

    /// `status_5xx / requests` (0 when empty).
    #[must_use]
    pub fn share_5xx(&self) -> f64 {
        share(self.status_5xx, self.requests)
    }

    /// The mean `duration_ms`, rounded down (0 when empty).
    #[must_use]
    pub const fn mean_duration_ms(&self) -> u64 {
        match self.requests {
            0 => 0,
            n => self.duration_ms_total / n,
        }
    }
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A request-size bucket of [`Report::by_size`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeBucket {
    /// `<1 KiB`, `1–10 KiB`, `10–100 KiB` or `≥100 KiB`.
    pub label: &'static str,
    /// The smallest body in the bucket, in bytes.
    pub min_bytes: u64,
    /// The largest, `None` for the last bucket.
    pub max_bytes: Option<u64>,
}

/// The buckets, smallest first: Notion rejects payloads over 500 KB, and bulk requests
/// (appending 100 blocks, creating pages with long content) are the large ones.
pub const SIZE_BUCKETS: [SizeBucket; 4] = [
    SizeBucket {
        label: "<1 KiB",
        min_bytes: 0,
        max_bytes: Some(1023),
    },
    SizeBucket {
        label: "1–10 KiB",
        min_bytes: 1024,
        max_bytes: Some(10 * 1024 - 1),
    },
    SizeBucket {
        label: "10–100 KiB",
        min_bytes: 10 * 1024,
        max_bytes: Some(100 * 1024 - 1),
    },
    SizeBucket {
        label: "≥100 KiB",
        min_bytes: 100 * 1024,
        max_bytes: None,
    },
];

fn size_bucket(bytes: u64) -> usize {
    SIZE_BUCKETS
        .iter()
        .position(|b| b.max_bytes.is_none_or(|max| bytes <= max))
        .unwrap_or(SIZE_BUCKETS.len() - 1)
}

/// A table of at most [`MAX_ROWS`] rows; records with a key beyond go to `other`.
#[derive(Debug, Clone)]
struct Table<K, V> {
    rows: BTreeMap<K, V>,
    other: V,
    other_records: u64,
}

impl<K: Ord, V: Default> Default for Table<K, V> {
    fn default() -> Self {
        Self {
            rows: BTreeMap::new(),
            other: V::default(),
            other_records: 0,
        }
    }
}

impl<K: Ord, V: Default> Table<K, V> {
    fn row(&mut self, key: K) -> &mut V {
        if self.rows.len() >= MAX_ROWS && !self.rows.contains_key(&key) {
            self.other_records += 1;
            return &mut self.other;
        }
        self.rows.entry(key).or_default()
    }
}

/// A bad line: its number (from 1) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// The line number, from 1.
    pub line: u64,
    /// Why it is not a record.
    pub reason: String,
}

/// The summary of an access log, built while reading it (see the [module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct Report {
    lines: u64,
    records: u64,
    bad_lines: u64,
    bad_examples: Vec<BadLine>,
    first: Option<OffsetDateTime>,
    last: Option<OffsetDateTime>,
    totals: Counts,
    attempts: u64,
    retried: u64,
    reconciled: u64,
    cache: [u64; 4],
    by_hour: Table<i64, Counts>,
    by_route: Table<(String, String), Counts>,
    by_status: Table<(u16, Option<String>), u64>,
    by_size: [Counts; 4],
}

impl Report {
    /// An empty report.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a whole log from `reader` (see the [module docs](self)).
    ///
    /// # Errors
    /// The reader's errors; bad lines are not errors.
    pub fn from_reader<R: Read>(reader: R) -> io::Result<Self> {
        let mut report = Self::new();
        report.read(BufReader::new(reader))?;
        Ok(report)
    }

    /// Reads the log at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened or read; the message names the path.
    pub fn from_path(path: &Path) -> io::Result<Self> {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let file = File::open(path).map_err(named)?;
        Self::from_reader(file).map_err(named)
    }

    /// Reads every line of `reader` into the report.
    ///
    /// # Errors
    /// The reader's errors; bad lines are not errors.
    pub fn read<R: BufRead>(&mut self, mut reader: R) -> io::Result<()> {
        let mut buf = Vec::with_capacity(512);
        loop {
            match read_line(&mut reader, &mut buf, MAX_LINE_BYTES)? {
                Line::End => return Ok(()),
                Line::TooLong => {
                    self.lines += 1;
                    self.bad(format!("longer than {MAX_LINE_BYTES} bytes"));
                }
                Line::Read => self.add_line(&buf),
            }
        }
    }

    /// Adds one line (without its newline): a record, a bad line, or nothing when blank.
    pub fn add_line(&mut self, line: &[u8]) {
        self.lines += 1;
        let Ok(text) = std::str::from_utf8(line) else {
            self.bad("not UTF-8".to_owned());
            return;
        };
        if text.trim().is_empty() {
            return;
        }
        match AccessRecord::parse(text) {
            Ok(record) => self.add(&record),
            Err(error) => self.bad(error.to_string()),
        }
    }

    fn bad(&mut self, reason: String) {
        self.bad_lines += 1;
        if self.bad_examples.len() < BAD_EXAMPLES {
            self.bad_examples.push(BadLine {
                line: self.lines,
                reason,
            });
        }
    }

    /// Adds one record.
    pub fn add(&mut self, record: &AccessRecord) {
        self.records += 1;
        self.first = Some(self.first.map_or(record.ts, |t| t.min(record.ts)));
        self.last = Some(self.last.map_or(record.ts, |t| t.max(record.ts)));
        self.totals.add(record);
        self.attempts += u64::from(record.attempts);
        self.retried += u64::from(record.attempts > 1);
        self.reconciled += u64::from(record.reconciled.is_some());
        self.cache[cache_index(record.cache)] += 1;
        self.by_hour
            .row(record.ts.unix_timestamp().div_euclid(3600))
            .add(record);
        self.by_route
            .row((cut(&record.method), cut(&record.route)))
            .add(record);
        *self
            .by_status
            .row((record.status, record.code.as_deref().map(cut))) += 1;
        self.by_size[size_bucket(record.request_bytes)].add(record);
    }

    /// Lines read (blank ones included).
    #[must_use]
    pub const fn lines(&self) -> u64 {
        self.lines
    }

    /// Records counted.
    #[must_use]
    pub const fn records(&self) -> u64 {
        self.records
    }

    /// Lines skipped because they are not records.
    #[must_use]
    pub const fn bad_lines(&self) -> u64 {
        self.bad_lines
    }

    /// The first few bad lines, and why.
    #[must_use]
    pub fn bad_line_examples(&self) -> &[BadLine] {
        &self.bad_examples
    }

    /// Every record together.
    #[must_use]
    pub const fn totals(&self) -> &Counts {
        &self.totals
    }

    /// The earliest and latest `ts`, when there are records.
    #[must_use]
    pub fn span(&self) -> Option<(OffsetDateTime, OffsetDateTime)> {
        self.first.zip(self.last)
    }

    /// Upstream attempts in all, and requests that took more than one.
    #[must_use]
    pub const fn attempts(&self) -> (u64, u64) {
        (self.attempts, self.retried)
    }

    /// Records whose answer came from `outcome`.
    #[must_use]
    pub const fn cache(&self, outcome: CacheOutcome) -> u64 {
        self.cache[cache_index(outcome)]
    }

    /// Records with a `reconciled` mark.
    #[must_use]
    pub const fn reconciled(&self) -> u64 {
        self.reconciled
    }

    /// One row per hour (UTC) with records, oldest first: the hour's start and its counts.
    pub fn by_hour(&self) -> impl Iterator<Item = (OffsetDateTime, &Counts)> {
        self.by_hour.rows.iter().filter_map(|(hour, counts)| {
            let start = OffsetDateTime::from_unix_timestamp(hour.saturating_mul(3600)).ok()?;
            Some((start, counts))
        })
    }

    /// One row per method and route, in that order.
    pub fn by_route(&self) -> impl Iterator<Item = (&str, &str, &Counts)> {
        self.by_route
            .rows
            .iter()
            .map(|((method, route), counts)| (method.as_str(), route.as_str(), counts))
    }

    /// Records per status and Notion error code, by status then code.
    pub fn by_status(&self) -> impl Iterator<Item = (u16, Option<&str>, u64)> {
        self.by_status
            .rows
            .iter()
            .map(|((status, code), n)| (*status, code.as_deref(), *n))
    }

    /// One row per [`SIZE_BUCKETS`] entry, smallest first.
    pub fn by_size(&self) -> impl Iterator<Item = (SizeBucket, &Counts)> {
        SIZE_BUCKETS.into_iter().zip(self.by_size.iter())
    }

    /// Records that fell past [`MAX_ROWS`]: hours, routes, statuses.
    #[must_use]
    pub const fn other(&self) -> (u64, u64, u64) {
        (
            self.by_hour.other_records,
            self.by_route.other_records,
            self.by_status.other_records,
        )
    }
}

const fn cache_index(outcome: CacheOutcome) -> usize {
    match outcome {
        CacheOutcome::Live => 0,
        CacheOutcome::Hit => 1,
        CacheOutcome::Stale => 2,
        CacheOutcome::None => 3,
    }
}

/// `s`, cut at [`MAX_KEY_CHARS`] characters.
fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_KEY_CHARS) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests;
