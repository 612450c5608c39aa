//! A [`Report`] as JSON (`--json`) and as aligned text tables.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::{
    proxy::record::{timestamp, CacheOutcome},
    report::{Counts, Report},
};

/// How many routes the text shows (the JSON has them all).
const TEXT_ROUTES: usize = 50;

impl Report {
    /// The JSON document described in the [module docs](crate::report).
    #[must_use]
    pub fn to_json(&self) -> Value {
        let (first, last) = match self.span() {
            Some((first, last)) => (json!(timestamp(first)), json!(timestamp(last))),
            None => (Value::Null, Value::Null),
        };
        let (attempts, retried) = self.attempts();
        let mut by_hour: Vec<Value> = self
            .by_hour()
            .map(|(hour, c)| row(json!({ "hour": hour_json(hour) }), c))
            .collect();
        let mut by_route: Vec<Value> = self
            .routes_by_errors()
            .into_iter()
            .map(|(method, route, c)| row(json!({ "method": method, "route": route }), c))
            .collect();
        let mut by_status: Vec<Value> = self
            .by_status()
            .map(|(status, code, n)| json!({ "status": status, "code": code, "requests": n }))
            .collect();
        let (other_hours, other_routes, other_statuses) = self.other();
        if other_hours > 0 {
            by_hour.push(row(json!({ "hour": null }), &self.by_hour.other));
        }
        if other_routes > 0 {
            by_route.push(row(
                json!({ "method": "*", "route": "(other)" }),
                &self.by_route.other,
            ));
        }
        if other_statuses > 0 {
            by_status
                .push(json!({ "status": 0, "code": "(other)", "requests": self.by_status.other }));
        }
        let by_size: Vec<Value> = self
            .by_size()
            .map(|(bucket, c)| {
                row(
                    json!({
                        "size": bucket.label,
                        "min_bytes": bucket.min_bytes,
                        "max_bytes": bucket.max_bytes,
                    }),
                    c,
                )
            })
            .collect();
        let bad: Vec<Value> = self
            .bad_line_examples()
            .iter()
            .map(|b| json!({ "line": b.line, "reason": b.reason }))
            .collect();
        json!({
            "version": 1,
            "lines": self.lines(),
            "records": self.records(),
            "bad_lines": self.bad_lines(),
            "bad_line_examples": bad,
            "first": first,
            "last": last,
            "totals": counts(self.totals()),
            "upstream": {
                "attempts": attempts,
                "retried": retried,
                "reconciled": self.reconciled(),
                "cache": {
                    "live": self.cache(CacheOutcome::Live),
                    "hit": self.cache(CacheOutcome::Hit),
                    "stale": self.cache(CacheOutcome::Stale),
                    "none": self.cache(CacheOutcome::None),
                },
            },
            "by_hour": by_hour,
            "by_route": by_route,
            "by_status": by_status,
            "by_size": by_size,
            "other": { "hours": other_hours, "routes": other_routes, "statuses": other_statuses },
        })
    }

    /// Routes with the most errors first, then the most requests, then by name.
    fn routes_by_errors(&self) -> Vec<(&str, &str, &Counts)> {
        let mut routes: Vec<_> = self.by_route().collect();
        routes.sort_by(|a, b| {
            (b.2.errors, b.2.requests)
                .cmp(&(a.2.errors, a.2.requests))
                .then_with(|| (a.0, a.1).cmp(&(b.0, b.1)))
        });
        routes
    }

    /// The report as text: a header, then aligned tables by hour, route, status and code, and
    /// request size. Characters that could drive a terminal are shown as `?`.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let t = self.totals();
        let _ = writeln!(out, "records     {}", self.records());
        if self.bad_lines() > 0 {
            let _ = writeln!(out, "bad lines   {} skipped", self.bad_lines());
            for bad in self.bad_line_examples() {
                let _ = writeln!(out, "  line {}: {}", bad.line, clean(&bad.reason));
            }
            let more = self.bad_lines() - self.bad_line_examples().len() as u64;
            if more > 0 {
                let _ = writeln!(out, "  … {more} more");
            }
        }
        let Some((first, last)) = self.span() else {
            out.push_str("no requests\n");
            return out;
        };
        let _ = writeln!(out, "from        {}", timestamp(first));
        let _ = writeln!(out, "to          {}", timestamp(last));
        let _ = writeln!(
            out,
            "errors      {} ({})   429: {} ({})   5xx: {} ({})",
            t.errors,
            percent(t.error_share()),
            t.status_429,
            percent(t.share_429()),
            t.status_5xx,
            percent(t.share_5xx())
        );
        let (attempts, retried) = self.attempts();
        let _ = writeln!(
            out,
            "upstream    {attempts} attempts, {retried} requests retried, {} reconciled; cache: {} live, {} hit, {} stale, {} none",
            self.reconciled(),
            self.cache(CacheOutcome::Live),
            self.cache(CacheOutcome::Hit),
            self.cache(CacheOutcome::Stale),
            self.cache(CacheOutcome::None),
        );

        out.push_str("\nBy hour (UTC)\n");
        let mut table = Table::new(&["hour"]);
        for (hour, c) in self.by_hour() {
            table.row(vec![hour_text(hour)], c);
        }
        if self.other().0 > 0 {
            table.row(vec!["(other)".to_owned()], &self.by_hour.other);
        }
        out.push_str(&table.render());

        out.push_str("\nBy route (most errors first)\n");
        let mut table = Table::new(&["method", "route"]);
        let routes = self.routes_by_errors();
        for (method, route, c) in routes.iter().take(TEXT_ROUTES) {
            table.row(vec![clean(method), clean(route)], c);
        }
        if self.other().1 > 0 {
            table.row(
                vec!["*".to_owned(), "(other)".to_owned()],
                &self.by_route.other,
            );
        }
        out.push_str(&table.render());
        if routes.len() > TEXT_ROUTES {
            let _ = writeln!(
                out,
                "  … {} more routes (--json has them all)",
                routes.len() - TEXT_ROUTES
            );
        }

        out.push_str("\nErrors by status and code\n");
        let mut table = Table::plain(&["status", "code", "requests", "of errors"], 2);
        for (status, code, n) in self.by_status().filter(|(s, _, _)| *s >= 400) {
            let of_errors = crate::report::share(n, t.errors);
            table.rows.push(vec![
                status.to_string(),
                clean(code.unwrap_or("-")),
                n.to_string(),
                percent(of_errors),
            ]);
        }
        if self.other().2 > 0 {
            table.rows.push(vec![
                "*".to_owned(),
                "(other)".to_owned(),
                self.by_status.other.to_string(),
                String::new(),
            ]);
        }
        if table.rows.is_empty() {
            out.push_str("  none\n");
        } else {
            out.push_str(&table.render());
        }

        out.push_str("\nBy request size (large bulk requests last)\n");
        let mut table = Table::new(&["size"]);
        for (bucket, c) in self.by_size() {
            table.row(vec![bucket.label.to_owned()], c);
        }
        out.push_str(&table.render());
        out
    }
}

/// `fields` (an object) followed by the counts.
fn row(fields: Value, c: &Counts) -> Value {
    let mut map = match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if let Value::Object(counts) = counts(c) {
        map.extend(counts);
    }
    Value::Object(map)
}

fn counts(c: &Counts) -> Value {
    json!({
        "requests": c.requests,
        "errors": c.errors,
        "status_429": c.status_429,
        "status_5xx": c.status_5xx,
        "error_share": round4(c.error_share()),
        "share_429": round4(c.share_429()),
        "share_5xx": round4(c.share_5xx()),
        "mean_duration_ms": c.mean_duration_ms(),
        "max_duration_ms": c.duration_ms_max,
    })
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// `2026-11-30T07:00:00Z`.
fn hour_json(hour: OffsetDateTime) -> String {
    let mut t = timestamp(hour);
    t.truncate(19);
    t.push('Z');
    t
}

/// `2026-11-30 07:00`.
fn hour_text(hour: OffsetDateTime) -> String {
    let t = timestamp(hour);
    format!("{} {}", &t[..10], &t[11..16])
}

/// `s` with control characters (terminal escapes) replaced by `?`.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A text table: the first `text_columns` columns left-aligned, the rest right-aligned.
struct Table {
    headers: Vec<String>,
    text_columns: usize,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Key columns `keys`, then the counts columns.
    fn new(keys: &[&str]) -> Self {
        let mut headers: Vec<String> = keys.iter().map(|&k| k.to_owned()).collect();
        headers.extend(
            [
                "requests",
                "errors",
                "429",
                "429 share",
                "5xx",
                "5xx share",
                "mean ms",
                "max ms",
            ]
            .map(str::to_owned),
        );
        Self {
            headers,
            text_columns: keys.len(),
            rows: Vec::new(),
        }
    }

    fn plain(headers: &[&str], text_columns: usize) -> Self {
        Self {
            headers: headers.iter().map(|&h| h.to_owned()).collect(),
            text_columns,
            rows: Vec::new(),
        }
    }

    fn row(&mut self, mut keys: Vec<String>, c: &Counts) {
        keys.extend([
            c.requests.to_string(),
            c.errors.to_string(),
            c.status_429.to_string(),
            percent(c.share_429()),
            c.status_5xx.to_string(),
            percent(c.share_5xx()),
            c.mean_duration_ms().to_string(),
            c.duration_ms_max.to_string(),
        ]);
        self.rows.push(keys);
    }

    fn render(&self) -> String {
        let width = |i: usize| {
            std::iter::once(&self.headers)
                .chain(&self.rows)
                .filter_map(|r| r.get(i))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let mut out = String::new();
        for cells in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::from(" ");
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push(' ');
                if i < self.text_columns {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                } else {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
                line.push(' ');
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}
