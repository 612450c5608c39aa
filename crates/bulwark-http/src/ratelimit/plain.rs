//! The dialects of one number per header: `X-RateLimit-*`, the draft's separate
//! `RateLimit-Limit` / `-Remaining` / `-Reset`, and `X-Usage-*`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

use super::{QuotaSource, RateLimitInfo};
use crate::retry_after::MAX_RETRY_AFTER;

/// Values above this in a `Reset` header are Unix timestamps, not seconds (2001-09-09).
const EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// The longest plan name kept, in bytes.
const PLAN_MAX: usize = 64;

/// The `X-Usage-*` headers of a response (the first line of each).
#[derive(Default)]
pub(super) struct Usage<'a> {
    pub(super) current: Option<&'a HeaderValue>,
    pub(super) quota: Option<&'a HeaderValue>,
    pub(super) remaining: Option<&'a HeaderValue>,
    pub(super) plan: Option<&'a HeaderValue>,
}

/// Sets what a `Limit` / `Remaining` / `Reset` triple says; `true` when it said anything.
pub(super) fn counts(
    info: &mut RateLimitInfo,
    limit: Option<&HeaderValue>,
    remaining: Option<&HeaderValue>,
    reset: Option<&HeaderValue>,
    now: SystemTime,
) -> bool {
    let mut any = false;
    if let Some(v) = text(limit).and_then(first_number) {
        info.limit = Some(v);
        any = true;
    }
    if let Some(v) = text(remaining).and_then(first_number) {
        info.remaining = Some(v);
        any = true;
    }
    if let Some(v) = text(reset).and_then(first_number) {
        info.reset = Some(reset_from(v, now));
        any = true;
    }
    any
}

/// `X-Usage-*`: `used` and `plan` always; `limit` and `remaining` (and no reset or window) when
/// this quota binds before what the rate-limit dialects said, or they said nothing.
pub(super) fn usage(info: &mut RateLimitInfo, usage: &Usage<'_>) {
    let used = text(usage.current).and_then(number);
    let quota = text(usage.quota).and_then(number);
    let remaining = text(usage.remaining)
        .and_then(number)
        .or_else(|| Some(quota?.saturating_sub(used?)));
    let plan = usage.plan.and_then(plan);
    let takes_over = match (info.remaining, remaining) {
        (Some(theirs), Some(ours)) => ours < theirs,
        (None, Some(_)) => true,
        (_, None) => quota.is_some() && info.source.is_none(),
    };
    if takes_over {
        info.limit = quota;
        info.remaining = remaining;
        info.reset = None;
        info.window = None;
        info.source = Some(QuotaSource::XUsage);
    } else if info.source.is_none() && (used.is_some() || plan.is_some()) {
        info.source = Some(QuotaSource::XUsage);
    }
    info.used = used;
    info.plan = plan;
}

fn text(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok()).map(str::trim)
}

/// A non-negative integer; one too large for a `u64` saturates.
pub(super) fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |n, b| {
        b.is_ascii_digit()
            .then(|| n.saturating_mul(10).saturating_add(u64::from(b - b'0')))
    })
}

/// Legacy headers sometimes list several windows (`"100, 100;w=60"`): take the first number.
fn first_number(s: &str) -> Option<u64> {
    let first = s.split([',', ';']).next()?;
    // Some servers send fractional resets ("1.5"): round up.
    match first.trim().split_once('.') {
        Some((whole, frac)) if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) => {
            let whole = number(whole)?;
            Some(whole.saturating_add(u64::from(frac.bytes().any(|b| b != b'0'))))
        }
        Some(_) => None,
        None => number(first),
    }
}

/// Seconds from `now`, or a Unix timestamp when above [`EPOCH_THRESHOLD`]; at most a year.
fn reset_from(value: u64, now: SystemTime) -> Duration {
    let value = Duration::from_secs(value);
    let wait = if value.as_secs() < EPOCH_THRESHOLD {
        value
    } else {
        // Measured without `UNIX_EPOCH + value`, which panics past what `SystemTime` holds.
        match now.duration_since(UNIX_EPOCH) {
            Ok(since_epoch) => value.saturating_sub(since_epoch),
            Err(before_epoch) => value.saturating_add(before_epoch.duration()),
        }
    };
    wait.min(MAX_RETRY_AFTER)
}

/// 1 to [`PLAN_MAX`] bytes of visible ASCII and inner spaces, else `None`.
fn plan(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes().trim_ascii();
    let ok = !bytes.is_empty()
        && bytes.len() <= PLAN_MAX
        && bytes.iter().all(|&b| b.is_ascii_graphic() || b == b' ');
    ok.then(|| std::str::from_utf8(bytes).ok().map(str::to_owned))
        .flatten()
}
