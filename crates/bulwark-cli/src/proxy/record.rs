//! [`AccessRecord`]: one line of `bulwark proxy --access-log`, written by the proxy and read
//! back by `bulwark report`. Pure functions of their arguments.
//!
//! The line's format is documented on [`AccessRecord`].

use std::fmt;

use serde_json::{Map, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime, UtcOffset};

/// Where an answer came from, as the stale cache tells it (its `CacheStatus` extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheOutcome {
    /// `live`: the cache forwarded the request and this is the upstream's answer (or the
    /// answer of an identical request in flight that it waited for).
    Live,
    /// `hit`: a stored copy, still fresh; the upstream was not asked.
    Hit,
    /// `stale`: a stored copy past its freshness, served because the upstream failed or
    /// while it is being revalidated.
    Stale,
    /// `none`: the cache took no part — a request it never stores (a write), or an answer
    /// made before it (the proxy's own refusals, a body too large).
    None,
}

impl CacheOutcome {
    /// The name in the log: `live`, `hit`, `stale` or `none`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Hit => "hit",
            Self::Stale => "stale",
            Self::None => "none",
        }
    }

    /// The outcome a log names; `None` for an unknown name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "live" => Some(Self::Live),
            "hit" => Some(Self::Hit),
            "stale" => Some(Self::Stale),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

impl fmt::Display for CacheOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request as the access log records it: one line of `--access-log`.
///
/// A line is one JSON object, its fields in this order:
///
/// | field | type | |
/// |---|---|---|
/// | `ts` | string | when the request arrived: UTC, RFC 3339 with milliseconds (`2026-11-30T07:50:01.123Z`) |
/// | `method` | string | `GET`, `POST`, … |
/// | `route` | string | the route template: `/v1/pages/{id}`, `/v1/data_sources/{id}/query`; `-` off the API |
/// | `request_bytes` | integer | the request body's size |
/// | `status` | integer | the answer's status |
/// | `duration_ms` | integer | from the request's arrival to its answer's head |
/// | `attempts` | integer | upstream calls made for it (0: answered without asking Notion) |
/// | `cache` | string | `live`, `hit`, `stale` or `none` ([`CacheOutcome`]) |
/// | `request_id` | string, optional | the answer's `x-notion-request-id` |
/// | `code` | string, optional | the Notion error code of an error answer (`rate_limited`) |
/// | `reconciled` | string, optional | the answer's `bulwark-reconciled` header |
///
/// ```
/// use bulwark_cli::proxy::{AccessRecord, CacheOutcome};
///
/// let line = r#"{"ts":"2026-11-30T07:50:01.123Z","method":"GET","route":"/v1/pages/{id}","request_bytes":0,"status":502,"duration_ms":1840,"attempts":4,"cache":"live","code":"bad_gateway"}"#;
/// let record = AccessRecord::parse(line)?;
/// assert_eq!(record.status, 502);
/// assert_eq!(record.cache, CacheOutcome::Live);
/// assert_eq!(record.code.as_deref(), Some("bad_gateway"));
/// assert_eq!(record.to_line(), line);
/// # Ok::<(), bulwark_cli::proxy::BadRecord>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessRecord {
    /// When the request arrived, in UTC.
    pub ts: OffsetDateTime,
    /// The request method.
    pub method: String,
    /// The route template (`/v1/pages/{id}`), `-` for a target off the Notion API.
    pub route: String,
    /// The request body's size in bytes: what the proxy read, or the declared
    /// `Content-Length` of a request answered before its body was read.
    pub request_bytes: u64,
    /// The answer's status.
    pub status: u16,
    /// Milliseconds from the request's arrival to its answer's head.
    pub duration_ms: u64,
    /// Upstream calls made for this request: retries and reconciliation read-backs included,
    /// 0 when it was answered without asking Notion.
    pub attempts: u32,
    /// Where the answer came from.
    pub cache: CacheOutcome,
    /// The answer's `x-notion-request-id`: absent on bulwark's own answers (and on
    /// Cloudflare's edge errors).
    pub request_id: Option<String>,
    /// The Notion error code of an error answer (`rate_limited`, `bad_gateway`, …).
    pub code: Option<String>,
    /// The answer's `bulwark-reconciled` header (`found`, `verified`,
    /// `may-have-been-applied`).
    pub reconciled: Option<String>,
}

/// A line that is not an [`AccessRecord`], and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    reason: String,
}

impl BadRecord {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an access log record: {}", self.reason)
    }
}

impl std::error::Error for BadRecord {}

impl AccessRecord {
    /// A record of `method` `route` answered `status` at `ts`; every other field zero or
    /// absent, [`cache`](Self::cache) [`CacheOutcome::None`].
    #[must_use]
    pub fn new(
        ts: OffsetDateTime,
        method: impl Into<String>,
        route: impl Into<String>,
        status: u16,
    ) -> Self {
        Self {
            ts: ts.to_offset(UtcOffset::UTC),
            method: method.into(),
            route: route.into(),
            request_bytes: 0,
            status,
            duration_ms: 0,
            attempts: 0,
            cache: CacheOutcome::None,
            request_id: None,
            code: None,
            reconciled: None,
        }
    }

    /// The line, without its newline: the fields in the documented order, the optional ones
    /// only when present.
    #[must_use]
    pub fn to_line(&self) -> String {
        let mut line = String::with_capacity(224);
        line.push_str("{\"ts\":\"");
        line.push_str(&timestamp(self.ts));
        line.push_str("\",\"method\":");
        push_json_str(&mut line, &self.method);
        line.push_str(",\"route\":");
        push_json_str(&mut line, &self.route);
        line.push_str(&format!(
            ",\"request_bytes\":{},\"status\":{},\"duration_ms\":{},\"attempts\":{},\"cache\":\"{}\"",
            self.request_bytes, self.status, self.duration_ms, self.attempts, self.cache
        ));
        for (name, value) in [
            ("request_id", &self.request_id),
            ("code", &self.code),
            ("reconciled", &self.reconciled),
        ] {
            if let Some(value) = value {
                line.push_str(",\"");
                line.push_str(name);
                line.push_str("\":");
                push_json_str(&mut line, value);
            }
        }
        line.push('}');
        line
    }

    /// Reads a line back. `ts` (RFC 3339, any offset; kept in UTC), `method`, `route` and
    /// `status` are required; the numbers default to 0, `cache` to `none` (also for a name
    /// this version does not know), the optional strings to absent. Unknown fields are
    /// ignored, so older readers take newer lines.
    ///
    /// # Errors
    /// [`BadRecord`] when the line is not a JSON object, a required field is missing, or a
    /// field has the wrong type (a number out of range included).
    pub fn parse(line: &str) -> Result<Self, BadRecord> {
        let value: Value = serde_json::from_str(line.trim())
            .map_err(|e| BadRecord::new(format!("not JSON ({e})")))?;
        let Value::Object(map) = value else {
            return Err(BadRecord::new("not a JSON object"));
        };
        let ts = required_str(&map, "ts")?;
        let ts = OffsetDateTime::parse(ts, &Rfc3339)
            .map_err(|_| BadRecord::new("`ts` is not an RFC 3339 timestamp"))?;
        let status = u16::try_from(required_u64(&map, "status")?)
            .ok()
            .filter(|s| *s <= 999)
            .ok_or_else(|| BadRecord::new("`status` is out of range"))?;
        let mut record = Self::new(
            ts,
            required_str(&map, "method")?,
            required_str(&map, "route")?,
            status,
        );
        record.request_bytes = optional_u64(&map, "request_bytes")?;
        record.duration_ms = optional_u64(&map, "duration_ms")?;
        record.attempts = u32::try_from(optional_u64(&map, "attempts")?)
            .map_err(|_| BadRecord::new("`attempts` is out of range"))?;
        record.cache = match map.get("cache") {
            None | Some(Value::Null) => CacheOutcome::None,
            Some(Value::String(name)) => {
                CacheOutcome::from_name(name).unwrap_or(CacheOutcome::None)
            }
            Some(_) => return Err(BadRecord::new("`cache` is not a string")),
        };
        record.request_id = optional_str(&map, "request_id")?;
        record.code = optional_str(&map, "code")?;
        record.reconciled = optional_str(&map, "reconciled")?;
        Ok(record)
    }
}

/// `ts` in UTC as RFC 3339 with milliseconds: `2026-11-30T07:50:01.123Z`.
#[must_use]
pub(crate) fn timestamp(ts: OffsetDateTime) -> String {
    let t = ts.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Appends `s` as a JSON string (quoted, escaped).
fn push_json_str(out: &mut String, s: &str) {
    match serde_json::to_string(s) {
        Ok(json) => out.push_str(&json),
        // Unreachable: a `str` always serialises.
        Err(_) => out.push_str("\"\""),
    }
}

fn required_str<'a>(map: &'a Map<String, Value>, name: &str) -> Result<&'a str, BadRecord> {
    match map.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(BadRecord::new(format!("`{name}` is not a string"))),
        None => Err(BadRecord::new(format!("`{name}` is missing"))),
    }
}

fn required_u64(map: &Map<String, Value>, name: &str) -> Result<u64, BadRecord> {
    match map.get(name) {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| BadRecord::new(format!("`{name}` is not a non-negative integer"))),
        None => Err(BadRecord::new(format!("`{name}` is missing"))),
    }
}

fn optional_u64(map: &Map<String, Value>, name: &str) -> Result<u64, BadRecord> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(_) => required_u64(map, name),
    }
}

fn optional_str(map: &Map<String, Value>, name: &str) -> Result<Option<String>, BadRecord> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(BadRecord::new(format!("`{name}` is not a string"))),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::{Date, Month};

    use super::*;

    /// 2026-11-30 `h:m:s.ms` at `offset` hours.
    fn at(h: u8, m: u8, s: u8, ms: u16, offset: i8) -> OffsetDateTime {
        Date::from_calendar_date(2026, Month::November, 30)
            .unwrap()
            .with_hms_milli(h, m, s, ms)
            .unwrap()
            .assume_offset(UtcOffset::from_hms(offset, 0, 0).unwrap())
    }

    fn sample() -> AccessRecord {
        let mut r = AccessRecord::new(
            at(7, 50, 1, 123, 0) + time::Duration::microseconds(456),
            "POST",
            "/v1/data_sources/{id}/query",
            429,
        );
        r.request_bytes = 1234;
        r.duration_ms = 1001;
        r.attempts = 2;
        r.cache = CacheOutcome::Live;
        r.request_id = Some("a1b2\"c3".to_owned());
        r.code = Some("rate_limited".to_owned());
        r
    }

    #[test]
    fn a_line_has_the_documented_fields_in_order() {
        assert_eq!(
            sample().to_line(),
            r#"{"ts":"2026-11-30T07:50:01.123Z","method":"POST","route":"/v1/data_sources/{id}/query","request_bytes":1234,"status":429,"duration_ms":1001,"attempts":2,"cache":"live","request_id":"a1b2\"c3","code":"rate_limited"}"#
        );
    }

    #[test]
    fn a_line_reads_back() {
        let r = sample();
        let mut back = AccessRecord::parse(&r.to_line()).unwrap();
        assert_eq!(back.ts.millisecond(), 123);
        back.ts = r.ts;
        assert_eq!(back, r);
    }

    #[test]
    fn timestamps_are_utc_with_millis() {
        assert_eq!(timestamp(at(3, 4, 5, 6, 2)), "2026-11-30T01:04:05.006Z");
        let r = AccessRecord::parse(
            r#"{"ts":"2026-01-02T03:04:05+02:00","method":"GET","route":"/v1/users","status":200}"#,
        )
        .unwrap();
        assert_eq!(r.ts.offset(), UtcOffset::UTC);
        assert_eq!(r.ts.hour(), 1);
        assert_eq!(r.cache, CacheOutcome::None);
        assert_eq!((r.attempts, r.request_bytes, r.duration_ms), (0, 0, 0));
    }

    #[test]
    fn bad_lines_say_why() {
        for (line, why) in [
            ("", "not JSON"),
            ("not json", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (
                r#"{"method":"GET","route":"/v1/users","status":200}"#,
                "`ts` is missing",
            ),
            (
                r#"{"ts":"yesterday","method":"GET","route":"/","status":200}"#,
                "RFC 3339",
            ),
            (
                r#"{"ts":"2026-01-02T03:04:05Z","method":"GET","route":"/","status":"200"}"#,
                "`status` is not",
            ),
            (
                r#"{"ts":"2026-01-02T03:04:05Z","method":"GET","route":"/","status":70000}"#,
                "out of range",
            ),
            (
                r#"{"ts":"2026-01-02T03:04:05Z","method":"GET","route":"/","status":200,"attempts":-1}"#,
                "`attempts` is not",
            ),
            (
                r#"{"ts":"2026-01-02T03:04:05Z","method":"GET","route":"/","status":200,"cache":1}"#,
                "`cache` is not",
            ),
            (
                r#"{"ts":"2026-01-02T03:04:05Z","method":1,"route":"/","status":200}"#,
                "`method` is not",
            ),
        ] {
            let err = AccessRecord::parse(line).unwrap_err();
            assert!(err.to_string().contains(why), "{line}: {err}");
        }
    }

    #[test]
    fn unknown_fields_and_cache_names_are_tolerated() {
        let r = AccessRecord::parse(
            r#"{"ts":"2026-01-02T03:04:05.5Z","method":"GET","route":"/v1/users","status":200,"cache":"warp","future":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(r.cache, CacheOutcome::None);
    }

    proptest! {
        /// Whatever the strings, a record reads back as written.
        #[test]
        fn records_round_trip(method in "\\PC{0,12}", route in "\\PC{0,40}", id in proptest::option::of("\\PC{0,40}"),
                              status in 0u16..1000, bytes: u64, ms: u64, attempts: u32, millis in 0u16..1000) {
            let ts = at(7, 50, 1, millis, 0);
            let mut r = AccessRecord::new(ts, method, route, status);
            r.request_bytes = bytes;
            r.duration_ms = ms;
            r.attempts = attempts;
            r.request_id = id;
            r.cache = CacheOutcome::Stale;
            let line = r.to_line();
            prop_assert!(!line.contains('\n'));
            prop_assert_eq!(AccessRecord::parse(&line).unwrap(), r);
        }

        /// Parsing never panics.
        #[test]
        fn parsing_never_panics(line in "\\PC{0,200}") {
            let _ = AccessRecord::parse(&line);
        }
    }
}
