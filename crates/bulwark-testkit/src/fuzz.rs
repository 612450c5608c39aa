//! A small seeded fuzzer for the `fuzz_*` tests of every bulwark crate's parsers.
//!
//! Each crate keeps its parsers private and fuzzes them from a `#[cfg(test)]` module with
//! `#[test] #[ignore]` tests named `fuzz_<parser>`, all run by one command:
//!
//! ```sh
//! cargo test --release --workspace --all-features fuzz_ -- --ignored --test-threads 2
//! ```
//!
//! [`run`] feeds a parser [`cases`] inputs (`BULWARK_FUZZ_CASES`, default 1,000,000), each
//! made by a generator from its own [`fastrand::Rng`], seeded from the run's seed
//! (`BULWARK_FUZZ_SEED`, default fixed per target) and the case's index, so one failing case
//! is reproduced alone with `BULWARK_FUZZ_SEED=… BULWARK_FUZZ_CASE=…`. It catches panics
//! (reporting the input), fails on an input slower than the deadline
//! (`BULWARK_FUZZ_DEADLINE_MS`, default 5,000), and a watchdog thread ends the process when
//! one input runs past the deadline without returning (a hang). The check decides what else
//! is a failure: it asserts the parser's properties. No shrinking.
//!
//! The generators here build inputs near a grammar: [`mutate`] a valid sample (bit flips,
//! deletions, duplications, [`TOKENS`] and [`NUMBERS`] spliced in), [`json`] with odd
//! numbers, escapes and deep nesting, [`path`] with `..`, `%2e`, `//` and long segments, and
//! plain [`bytes()`].
//!
//! The report is one line on standard error, written past the test harness's capture:
//! `fuzz_<name>: N cases, 0 panics, T s`.

use std::fmt::Debug;
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use fastrand::Rng;
// Not a paused runtime: the tokio clock is the wall clock here, as the deadline needs.
use tokio::time::Instant;

/// The environment variable that sets how many inputs each fuzz target gets.
pub const CASES_VAR: &str = "BULWARK_FUZZ_CASES";
/// The environment variable that sets the run's seed (decimal or `0x` hex).
pub const SEED_VAR: &str = "BULWARK_FUZZ_SEED";
/// The environment variable that runs one case alone (its index in the failing run).
pub const CASE_VAR: &str = "BULWARK_FUZZ_CASE";
/// The environment variable that sets the per-input deadline, in milliseconds.
pub const DEADLINE_VAR: &str = "BULWARK_FUZZ_DEADLINE_MS";
/// Inputs per target when [`CASES_VAR`] is not set.
pub const DEFAULT_CASES: u64 = 1_000_000;

/// How many inputs each fuzz target gets: [`CASES_VAR`], else [`DEFAULT_CASES`].
#[must_use]
pub fn cases() -> u64 {
    env_u64(CASES_VAR).unwrap_or(DEFAULT_CASES)
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim().replace('_', "");
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// What one fuzz target did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// Inputs run.
    pub cases: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// The slowest single input.
    pub slowest: Duration,
}

/// Runs `check` on [`cases`] inputs made by `generate`, and prints
/// `fuzz_<name>: N cases, 0 panics, T s` to standard error.
///
/// # Panics
/// When `check` panics (a property failed, or the parser panicked) or an input takes longer
/// than the deadline; the message gives the input, the seed and the case to reproduce it.
/// When an input never returns, the watchdog prints the same and exits the process.
pub fn run<I, G, C>(name: &str, generate: G, check: C) -> Report
where
    I: Debug,
    G: FnMut(&mut Rng) -> I,
    C: FnMut(&I),
{
    let (first, cases) = match env_u64(CASE_VAR) {
        Some(case) => (case, 1),
        None => (0, cases()),
    };
    run_with(name, first, cases, generate, check)
}

fn run_with<I, G, C>(name: &str, first: u64, cases: u64, mut generate: G, mut check: C) -> Report
where
    I: Debug,
    G: FnMut(&mut Rng) -> I,
    C: FnMut(&I),
{
    let seed = env_u64(SEED_VAR).unwrap_or_else(|| fnv1a(name.as_bytes()));
    let deadline = Duration::from_millis(env_u64(DEADLINE_VAR).unwrap_or(5_000));
    let current = Arc::new(AtomicU64::new(u64::MAX));
    let (done, watchdog) = watchdog(name, seed, deadline, Arc::clone(&current));
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for case in first..first.saturating_add(cases) {
        current.store(case, Ordering::Relaxed);
        let mut rng = Rng::with_seed(mix(seed, case));
        let input = generate(&mut rng);
        let at = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)));
        let took = at.elapsed();
        slowest = slowest.max(took);
        if let Err(panic) = outcome {
            drop(done);
            let _ = watchdog.join();
            let message = panic_message(&*panic);
            fail(name, seed, case, &input, &format!("panicked: {message}"));
        }
        if took > deadline {
            drop(done);
            let _ = watchdog.join();
            fail(name, seed, case, &input, &format!("took {took:?}"));
        }
    }
    drop(done);
    let _ = watchdog.join();
    let elapsed = started.elapsed();
    let _ = writeln!(
        std::io::stderr(),
        "fuzz_{name}: {cases} cases, 0 panics, {:.1} s (slowest input {:.2} ms, seed {seed:#x})",
        elapsed.as_secs_f64(),
        slowest.as_secs_f64() * 1e3,
    );
    Report {
        cases,
        elapsed,
        slowest,
    }
}

/// Watches `current`: when one case is still running after `deadline`, reports it and exits
/// the process (a hung parser cannot be interrupted). Stops when the returned sender drops.
fn watchdog(
    name: &str,
    seed: u64,
    deadline: Duration,
    current: Arc<AtomicU64>,
) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (done, stop) = mpsc::channel::<()>();
    let name = name.to_owned();
    let tick = Duration::from_millis(100);
    let handle = std::thread::spawn(move || {
        let (mut seen, mut ticks) = (u64::MAX, 0u32);
        // `recv_timeout` is the sleep: it wakes at once when the run ends.
        while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(tick) {
            let now = current.load(Ordering::Relaxed);
            if now == seen {
                ticks += 1;
            } else {
                (seen, ticks) = (now, 0);
            }
            if now != u64::MAX && tick * ticks > deadline {
                let _ = writeln!(
                    std::io::stderr(),
                    "fuzz_{name}: case {now} has run for over {deadline:?}: a hang. Reproduce with \
                     {SEED_VAR}={seed:#x} {CASE_VAR}={now}"
                );
                std::process::exit(101);
            }
        }
    });
    (done, handle)
}

fn fail<I: Debug>(name: &str, seed: u64, case: u64, input: &I, what: &str) -> ! {
    let mut shown = format!("{input:?}");
    if shown.len() > 4_000 {
        let mut end = 4_000;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown.truncate(end);
        shown.push_str("… (truncated)");
    }
    panic!(
        "fuzz_{name}: case {case} {what}\ninput: {shown}\nreproduce: {SEED_VAR}={seed:#x} \
         {CASE_VAR}={case} cargo test --release --all-features fuzz_{name} -- --ignored"
    );
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".to_owned())
}

/// FNV-1a: a fixed default seed per target name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64 of the seed and the case: independent streams for neighbouring cases.
fn mix(seed: u64, case: u64) -> u64 {
    let mut z = seed ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Byte strings that often break parsers: separators, escapes, dot segments, invalid UTF-8,
/// control bytes, multi-byte characters.
pub const TOKENS: &[&[u8]] = &[
    b"",
    b" ",
    b"\t",
    b",",
    b";",
    b"=",
    b"\"",
    b"\\",
    b"'",
    b"/",
    b"//",
    b".",
    b"..",
    b"/../",
    b"%",
    b"%2e",
    b"%2E%2e",
    b"%2f",
    b"%00",
    b"%zz",
    b"%+1",
    b"?",
    b"#",
    b"&",
    b"+",
    b"-",
    b":",
    b"\0",
    b"\r\n",
    b"\x7f",
    b"\xff",
    b"\xc3",
    b"\xc3\xa9",
    b"\xe2\x80\xa8",
    b"\xf0\x9f\x98\x80",
    b"\xed\xa0\x80",
    b"\\u0000",
    b"\\ud800",
    b"\\ud83d\\ude00",
    b"null",
    b"true",
    b"[",
    b"]",
    b"{",
    b"}",
];

/// Numbers as text at the edges: zero forms, signs, decimals, exponents, the limits of `u32`,
/// `i64` and `u64` and just past them, and absurdly long ones.
pub const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "00",
    "007",
    "1",
    "-1",
    "+1",
    "1.",
    ".5",
    "0.5",
    "1.0",
    "1.000000001",
    "1e3",
    "1E-400",
    "1e400",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "31536000",
    "31536001",
    "1000000000",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "9999999999999999999",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999999999999",
    "000000000000000000000000000000000000001",
    "1.7976931348623157e308",
    "NaN",
    "Infinity",
];

/// One item of `items`, chosen by `rng`.
///
/// # Panics
/// When `items` is empty.
pub fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}

/// Up to `max` random bytes; half the time drawn from printable ASCII only.
pub fn bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    let len = rng.usize(..=max);
    if rng.bool() {
        (0..len).map(|_| rng.u8(0x20..0x7f)).collect()
    } else {
        let mut out = vec![0; len];
        rng.fill(&mut out);
        out
    }
}

/// `sample` after one to four mutations: a bit flipped, a byte replaced, inserted or
/// removed, a range deleted, duplicated or cut off, one of [`TOKENS`], [`NUMBERS`] or
/// `dictionary` spliced in, or a run of digits replaced by one of [`NUMBERS`]. At most 64 KiB.
pub fn mutate(rng: &mut Rng, sample: &[u8], dictionary: &[&[u8]]) -> Vec<u8> {
    let mut out = sample.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(..=out.len());
        match rng.u8(..11) {
            0 if !out.is_empty() => {
                let i = rng.usize(..out.len());
                out[i] ^= 1 << rng.u8(..8);
            }
            1 if !out.is_empty() => {
                let i = rng.usize(..out.len());
                out[i] = rng.u8(..);
            }
            2 => out.insert(at, rng.u8(..)),
            3 => {
                let end = rng.usize(at..=out.len());
                out.drain(at..end);
            }
            4 => {
                let end = rng.usize(at..=out.len().min(at + 64));
                let copy = out[at..end].to_vec();
                let to = rng.usize(..=out.len());
                out.splice(
                    to..to,
                    copy.into_iter().cycle().take((end - at) * rng.usize(1..4)),
                );
            }
            5 => out.truncate(at),
            6 | 7 if !dictionary.is_empty() => {
                out.splice(at..at, pick(rng, dictionary).iter().copied());
            }
            6 | 7 => {
                out.splice(at..at, pick(rng, TOKENS).iter().copied());
            }
            8 => {
                out.splice(at..at, pick(rng, NUMBERS).bytes());
            }
            9 => {
                if let Some(start) = out.iter().position(u8::is_ascii_digit) {
                    let end = out[start..]
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .map_or(out.len(), |n| start + n);
                    out.splice(start..end, pick(rng, NUMBERS).bytes());
                }
            }
            _ => {
                out.splice(at..at, pick(rng, TOKENS).iter().copied());
            }
        }
    }
    out.truncate(64 * 1024);
    out
}

/// `sample` after [`mutate`], as text (invalid UTF-8 replaced).
pub fn mutate_str(rng: &mut Rng, sample: &str, dictionary: &[&[u8]]) -> String {
    String::from_utf8_lossy(&mutate(rng, sample.as_bytes(), dictionary)).into_owned()
}

/// A JSON text, usually valid: odd numbers ([`NUMBERS`], random integers and floats),
/// strings with escapes, surrogate pairs, lone surrogates and raw control characters,
/// duplicate keys, random whitespace, and now and then nesting far past serde_json's
/// recursion limit. `depth` bounds ordinary nesting.
pub fn json(rng: &mut Rng, depth: usize) -> String {
    let mut out = String::new();
    if rng.u8(..50) == 0 {
        let deep = rng.usize(100..400);
        let (open, close) = if rng.bool() {
            ("[", "]")
        } else {
            ("{\"a\":", "}")
        };
        for _ in 0..deep {
            out.push_str(open);
        }
        out.push('1');
        for _ in 0..deep {
            out.push_str(close);
        }
        return out;
    }
    json_value(rng, depth, &mut out);
    out
}

fn ws(rng: &mut Rng, out: &mut String) {
    if rng.u8(..4) == 0 {
        out.push_str(pick(rng, &[" ", "\n", "\t", "\r\n  ", ""]));
    }
}

fn json_value(rng: &mut Rng, depth: usize, out: &mut String) {
    ws(rng, out);
    let kinds = if depth == 0 { 5 } else { 7 };
    match rng.u8(..kinds) {
        0 => out.push_str(pick(rng, &["null", "true", "false"])),
        1 => json_number(rng, out),
        2..=4 => json_string(rng, out),
        5 => {
            out.push('[');
            for i in 0..rng.usize(..5) {
                if i > 0 {
                    out.push(',');
                }
                json_value(rng, depth - 1, out);
            }
            ws(rng, out);
            out.push(']');
        }
        _ => {
            out.push('{');
            let mut keys: Vec<String> = Vec::new();
            for i in 0..rng.usize(..6) {
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                let key = match keys.last() {
                    Some(last) if rng.u8(..6) == 0 => last.clone(),
                    _ => {
                        let mut key = String::new();
                        json_string(rng, &mut key);
                        key
                    }
                };
                out.push_str(&key);
                keys.push(key);
                ws(rng, out);
                out.push(':');
                json_value(rng, depth - 1, out);
            }
            ws(rng, out);
            out.push('}');
        }
    }
}

fn json_number(rng: &mut Rng, out: &mut String) {
    match rng.u8(..4) {
        0 => out.push_str(pick(rng, NUMBERS)),
        1 => out.push_str(&rng.i64(..).to_string()),
        2 => out.push_str(&rng.u64(..).to_string()),
        _ => out.push_str(&format!("{}", f64::from_bits(rng.u64(..))).to_lowercase()),
    }
}

fn json_string(rng: &mut Rng, out: &mut String) {
    out.push('"');
    for _ in 0..rng.usize(..12) {
        match rng.u8(..12) {
            0 => out.push_str(pick(
                rng,
                &["\\\"", "\\\\", "\\/", "\\n", "\\t", "\\b", "\\f", "\\r"],
            )),
            1 => out.push_str(pick(
                rng,
                &[
                    "\\u00e9",
                    "\\u0000",
                    "\\ud83d\\ude00",
                    "\\ud800",
                    "\\udc00x",
                    "\\u12",
                ],
            )),
            2 => out.push(rng.char('\u{80}'..='\u{10ffff}')),
            3 => out.push(pick(
                rng,
                &['é', '😀', '\u{2028}', '\u{feff}', '\u{1}', '\u{7f}'],
            )),
            4 if rng.u8(..8) == 0 => out.push(pick(rng, &['"', '\\', '\n'])),
            _ => out.push(rng.alphanumeric()),
        }
    }
    out.push('"');
}

/// A request path: `/` and segments chosen from `segments` (Notion's routes, say) mixed with
/// empty, `.`, `..`, percent-escaped dots and slashes, bad escapes, unicode and 300-byte
/// segments, sometimes with a prefix before `/v1` or a query.
pub fn path(rng: &mut Rng, segments: &[&str]) -> String {
    const ODD: &[&str] = &[
        "", ".", "..", "%2e", "%2E", "%2e%2e", "%2E%2e", ".%2e", "%2f", "%2F", "%5c", "%", "%zz",
        "%00", "v1", "é", "%C3%A9", "a b", "~", ";x", "\\", "query", "search", "comments",
    ];
    let mut out = String::new();
    if rng.u8(..8) == 0 {
        out.push_str(pick(
            rng,
            &["/prefix", "/a/b", "/v1/x", "//", "/..", "/%2e%2e"],
        ));
    }
    let count = rng.usize(..7);
    for i in 0..count {
        out.push('/');
        match rng.u8(..10) {
            0..=1 => out.push_str(pick(rng, ODD)),
            2 => {
                let len = rng.usize(200..400);
                out.extend(std::iter::repeat_n('a', len));
            }
            3 => out.extend((0..rng.usize(1..40)).map(|_| rng.alphanumeric())),
            _ if i == 0 && rng.u8(..4) != 0 => out.push_str("v1"),
            _ if !segments.is_empty() => out.push_str(pick(rng, segments)),
            _ => out.push_str(pick(rng, ODD)),
        }
    }
    if rng.u8(..6) == 0 {
        out.push('/');
    }
    if out.is_empty() || rng.u8(..16) == 0 {
        out.insert(0, '/');
    }
    if rng.u8(..6) == 0 {
        out.push('?');
        out.push_str(pick(
            rng,
            &["", "a=1", "page_size=5&start_cursor=x", "x=%2e%2e/"],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_case_and_reports() {
        let mut seen = 0;
        let report = run_cases("self_test", 500, |rng| rng.u64(..), |_| seen += 1);
        assert_eq!((report.cases, seen), (500, 500));
    }

    #[test]
    #[should_panic(expected = "fuzz_self_panic: case")]
    fn a_panicking_check_fails_with_its_input() {
        run_cases("self_panic", 100, |rng| rng.u8(..), |&b| assert!(b < 200));
    }

    #[test]
    fn cases_are_reproducible_alone() {
        let (a, b) = (mix(7, 41), mix(7, 42));
        assert_ne!(a, b);
        assert_eq!(
            Rng::with_seed(mix(7, 41)).u64(..),
            Rng::with_seed(a).u64(..)
        );
    }

    #[test]
    fn generators_stay_in_bounds() {
        let mut rng = Rng::with_seed(1);
        for _ in 0..2_000 {
            assert!(mutate(&mut rng, b"max-age=60", &[b"no-store"]).len() <= 64 * 1024);
            assert!(bytes(&mut rng, 16).len() <= 16);
            assert!(path(&mut rng, &["pages"]).starts_with('/'));
            let _ = json(&mut rng, 4);
        }
    }

    /// `run` with an explicit case count (tests must not read the environment).
    fn run_cases<I: Debug>(
        name: &str,
        cases: u64,
        generate: impl FnMut(&mut Rng) -> I,
        check: impl FnMut(&I),
    ) -> Report {
        run_with(name, 0, cases, generate, check)
    }
}
