use proptest::prelude::*;
use serde_json::json;

use super::*;

/// A hand-written log: two hours, a 429 burst, 5xx, a large bulk request, and bad lines of
/// every kind (not JSON, a missing field, a wrong type, not UTF-8, too long, blank).
fn hand_written() -> Vec<u8> {
    let mut log = Vec::new();
    let mut line = |s: &str| {
        log.extend_from_slice(s.as_bytes());
        log.push(b'\n');
    };
    line(
        r#"{"ts":"2026-11-30T07:50:01.123Z","method":"GET","route":"/v1/pages/{id}","request_bytes":0,"status":200,"duration_ms":40,"attempts":1,"cache":"live","request_id":"r1"}"#,
    );
    line(
        r#"{"ts":"2026-11-30T07:50:02.000Z","method":"GET","route":"/v1/pages/{id}","request_bytes":0,"status":200,"duration_ms":20,"attempts":0,"cache":"hit","request_id":"r1"}"#,
    );
    line("this is not json");
    line(
        r#"{"ts":"2026-11-30T07:55:00.000Z","method":"POST","route":"/v1/data_sources/{id}/query","request_bytes":300,"status":429,"duration_ms":1500,"attempts":4,"cache":"live","request_id":"r2","code":"rate_limited"}"#,
    );
    line("");
    line(r#"{"method":"GET","route":"/v1/users","status":200}"#);
    line(
        r#"{"ts":"2026-11-30T08:01:00.000Z","method":"PATCH","route":"/v1/blocks/{id}/children","request_bytes":150000,"status":502,"duration_ms":9000,"attempts":1,"cache":"none","code":"bad_gateway","reconciled":"may-have-been-applied"}"#,
    );
    line(
        r#"{"ts":"2026-11-30T08:02:00.000Z","method":"PATCH","route":"/v1/blocks/{id}/children","request_bytes":120000,"status":502,"duration_ms":3000,"attempts":1,"cache":"none"}"#,
    );
    line(
        r#"{"ts":"2026-11-30T08:03:00.000Z","method":"GET","route":"/v1/pages/{id}","request_bytes":0,"status":200,"duration_ms":5,"attempts":2,"cache":"stale","request_id":"r1"}"#,
    );
    line(
        r#"{"ts":"2026-11-30T08:04:00.000Z","method":"POST","route":"/v1/pages","request_bytes":2048,"status":"201","duration_ms":5}"#,
    );
    line(
        r#"{"ts":"2026-11-30T08:05:00.000Z","method":"POST","route":"/v1/pages","request_bytes":5000,"status":503,"duration_ms":2,"attempts":0,"cache":"none","code":"service_unavailable"}"#,
    );
    log.extend_from_slice(b"\xff\xfe not utf-8\n");
    log.extend_from_slice(&vec![b'x'; MAX_LINE_BYTES + 10]);
    log.extend_from_slice(b"\n  \r\n");
    // The last line has no newline.
    log.extend_from_slice(br#"{"ts":"2026-11-30T08:59:59.999Z","method":"GET","route":"/v1/users/me","status":401,"code":"unauthorized"}"#);
    log
}

#[test]
fn a_hand_written_log_with_bad_lines() {
    let report = Report::from_reader(hand_written().as_slice()).unwrap();
    assert_eq!(report.lines(), 15);
    assert_eq!(report.records(), 8);
    assert_eq!(report.bad_lines(), 5);
    let bad: Vec<(u64, &str)> = report
        .bad_line_examples()
        .iter()
        .map(|b| (b.line, b.reason.as_str()))
        .collect();
    assert_eq!(bad[0].0, 3);
    assert!(bad[0].1.contains("not JSON"), "{bad:?}");
    assert_eq!(bad[1], (6, "not an access log record: `ts` is missing"));
    assert_eq!(
        bad[2],
        (
            10,
            "not an access log record: `status` is not a non-negative integer"
        )
    );
    assert_eq!(bad[3], (12, "not UTF-8"));
    assert_eq!(bad[4], (13, "longer than 65536 bytes"));

    let t = report.totals();
    assert_eq!(
        (t.requests, t.errors, t.status_429, t.status_5xx),
        (8, 5, 1, 3)
    );
    assert_eq!(t.duration_ms_max, 9000);
    assert_eq!(report.attempts(), (9, 2));
    assert_eq!(report.reconciled(), 1);
    assert_eq!(report.cache(CacheOutcome::Live), 2);
    assert_eq!(report.cache(CacheOutcome::Hit), 1);
    assert_eq!(report.cache(CacheOutcome::Stale), 1);
    assert_eq!(report.cache(CacheOutcome::None), 4);

    let hours: Vec<(u8, u64, u64, u64)> = report
        .by_hour()
        .map(|(h, c)| (h.hour(), c.requests, c.status_429, c.status_5xx))
        .collect();
    assert_eq!(hours, vec![(7, 3, 1, 0), (8, 5, 0, 3)]);

    let routes: Vec<(&str, &str, u64, u64)> = report
        .by_route()
        .map(|(m, r, c)| (m, r, c.requests, c.errors))
        .collect();
    assert_eq!(
        routes,
        vec![
            ("GET", "/v1/pages/{id}", 3, 0),
            ("GET", "/v1/users/me", 1, 1),
            ("PATCH", "/v1/blocks/{id}/children", 2, 2),
            ("POST", "/v1/data_sources/{id}/query", 1, 1),
            ("POST", "/v1/pages", 1, 1),
        ]
    );

    let statuses: Vec<(u16, Option<&str>, u64)> = report.by_status().collect();
    assert_eq!(
        statuses,
        vec![
            (200, None, 3),
            (401, Some("unauthorized"), 1),
            (429, Some("rate_limited"), 1),
            (502, None, 1),
            (502, Some("bad_gateway"), 1),
            (503, Some("service_unavailable"), 1),
        ]
    );

    let sizes: Vec<(&str, u64, u64)> = report
        .by_size()
        .map(|(b, c)| (b.label, c.requests, c.status_5xx))
        .collect();
    assert_eq!(
        sizes,
        vec![
            ("<1 KiB", 5, 0),
            ("1–10 KiB", 1, 1),
            ("10–100 KiB", 0, 0),
            ("≥100 KiB", 2, 2)
        ]
    );
}

#[test]
fn the_json_document_has_the_documented_shape() {
    let report = Report::from_reader(hand_written().as_slice()).unwrap();
    let json = report.to_json();
    assert_eq!(json["version"], 1);
    assert_eq!(json["records"], 8);
    assert_eq!(json["bad_lines"], 5);
    assert_eq!(json["bad_line_examples"][0]["line"], 3);
    assert_eq!(json["first"], "2026-11-30T07:50:01.123Z");
    assert_eq!(json["last"], "2026-11-30T08:59:59.999Z");
    assert_eq!(
        json["totals"],
        json!({
            "requests": 8, "errors": 5, "status_429": 1, "status_5xx": 3,
            "error_share": 0.625, "share_429": 0.125, "share_5xx": 0.375,
            "mean_duration_ms": 1695, "max_duration_ms": 9000,
        })
    );
    assert_eq!(
        json["upstream"],
        json!({"attempts": 9, "retried": 2, "reconciled": 1,
               "cache": {"live": 2, "hit": 1, "stale": 1, "none": 4}})
    );
    assert_eq!(json["by_hour"][0]["hour"], "2026-11-30T07:00:00Z");
    assert_eq!(json["by_hour"][0]["share_429"], 0.3333);
    assert_eq!(json["by_hour"][1]["share_5xx"], 0.6);
    // Most errors first.
    assert_eq!(json["by_route"][0]["route"], "/v1/blocks/{id}/children");
    assert_eq!(json["by_route"][0]["method"], "PATCH");
    assert_eq!(json["by_route"][0]["errors"], 2);
    assert_eq!(
        json["by_status"][3],
        json!({"status": 502, "code": null, "requests": 1})
    );
    assert_eq!(json["by_size"][3]["size"], "≥100 KiB");
    assert_eq!(json["by_size"][3]["min_bytes"], 102_400);
    assert_eq!(json["by_size"][3]["max_bytes"], serde_json::Value::Null);
    assert_eq!(json["by_size"][0]["max_bytes"], 1023);
    assert_eq!(
        json["other"],
        json!({"hours": 0, "routes": 0, "statuses": 0})
    );
}

#[test]
fn the_text_has_aligned_tables() {
    let report = Report::from_reader(hand_written().as_slice()).unwrap();
    let text = report.to_text();
    assert!(
        text.starts_with(
            "records     8\nbad lines   5 skipped\n  line 3: not an access log record: not JSON"
        ),
        "{text}"
    );
    assert!(
        text.contains("\n  line 13: longer than 65536 bytes\n"),
        "{text}"
    );
    assert!(
        text.contains("errors      5 (62.5%)   429: 1 (12.5%)   5xx: 3 (37.5%)"),
        "{text}"
    );
    let hours: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "By hour (UTC)")
        .skip(1)
        .take(3)
        .collect();
    assert_eq!(
        hours,
        vec![
            "  hour              requests  errors  429  429 share  5xx  5xx share  mean ms  max ms",
            "  2026-11-30 07:00         3       1    1      33.3%    0       0.0%      520    1500",
            "  2026-11-30 08:00         5       4    0       0.0%    3      60.0%     2401    9000",
        ]
    );
    assert!(
        text.contains("\n  502     bad_gateway                 1      20.0%\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  PATCH   /v1/blocks/{id}/children            2       2"),
        "{text}"
    );
    assert!(
        text.contains("\n  ≥100 KiB           2       2    0"),
        "{text}"
    );
}

#[test]
fn text_never_passes_terminal_escapes() {
    let mut report = Report::new();
    report.add_line(
        br#"{"ts":"2026-11-30T07:50:01Z","method":"GET","route":"/v1/\u001b[31mred","status":500,"code":"x"}"#,
    );
    assert_eq!(report.records(), 1);
    let text = report.to_text();
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("/v1/?[31mred"), "{text}");
}

#[test]
fn an_empty_log() {
    let report = Report::from_reader(&b""[..]).unwrap();
    assert_eq!(report.records(), 0);
    assert_eq!(report.to_text(), "records     0\nno requests\n");
    let json = report.to_json();
    assert_eq!(json["first"], serde_json::Value::Null);
    assert_eq!(json["by_size"][0]["requests"], 0);
    assert_eq!(json["totals"]["share_5xx"], 0.0);
}

#[test]
fn tables_stop_growing_at_max_rows() {
    let mut report = Report::new();
    for i in 0..(MAX_ROWS as u64 + 5) {
        let mut record = AccessRecord::new(
            OffsetDateTime::UNIX_EPOCH + time::Duration::hours(i64::try_from(i).unwrap()),
            "GET",
            format!("/v1/r{i}"),
            200,
        );
        record.code = Some(format!("c{i}"));
        report.add(&record);
    }
    assert_eq!(report.by_hour().count(), MAX_ROWS);
    assert_eq!(report.by_route().count(), MAX_ROWS);
    assert_eq!(report.by_status().count(), MAX_ROWS);
    assert_eq!(report.other(), (5, 5, 5));
    let json = report.to_json();
    assert_eq!(json["by_route"].as_array().unwrap().len(), MAX_ROWS + 1);
    assert_eq!(json["other"]["routes"], 5);
    assert!(report
        .to_text()
        .contains("more routes (--json has them all)"));
}

proptest! {
    /// Whatever the bytes, reading never panics and every line is a record, bad, or blank.
    #[test]
    fn any_input_is_tolerated(lines in proptest::collection::vec(
        prop_oneof![
            "\\PC{0,80}",
            Just(r#"{"ts":"2026-11-30T07:50:01Z","method":"GET","route":"/v1/users","status":200}"#.to_owned()),
            Just(r#"{"ts":"2026-11-30T07:50:01Z","method":"GET","route":"/v1/users","status":1e3}"#.to_owned()),
        ], 0..20)) {
        let input = lines.join("\n");
        let report = Report::from_reader(input.as_bytes()).unwrap();
        let blank = lines.iter().filter(|l| l.trim().is_empty()).count() as u64;
        let counted = if input.is_empty() { 0 } else { report.lines() };
        prop_assert!(report.records() + report.bad_lines() + blank >= counted);
        prop_assert_eq!(report.totals().requests, report.records());
        let _ = report.to_text();
        let _ = report.to_json();
    }
}
