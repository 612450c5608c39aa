//! Rendering our own servers' `RateLimit` and `RateLimit-Policy` fields.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use super::{RATELIMIT, RATELIMIT_POLICY};
use crate::retry_after::whole_secs_capped;

/// The largest integer an RFC 8941 structured field may carry (15 digits).
const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

/// Renders the IETF draft (08+) `RateLimit` and `RateLimit-Policy` fields for one policy.
///
/// `window` and `reset` are rounded up to whole seconds and, like `Retry-After`, capped at
/// [`MAX_RETRY_AFTER`](crate::MAX_RETRY_AFTER) (one year); `window` is at least 1 s.
/// `quota` and `remaining` are capped at 999 999 999 999 999, the largest integer a
/// structured field (RFC 8941) may carry. The policy is named `"default"`.
///
/// # Panics
/// Never, whatever the values (`Duration::MAX`, `u64::MAX` included).
///
/// ```
/// use std::time::Duration;
/// let mut headers = http::HeaderMap::new();
/// bulwark_http::ratelimit::insert_headers(&mut headers, 3, Duration::from_secs(1), 0, Duration::from_millis(200));
/// assert_eq!(headers["ratelimit-policy"], r#""default";q=3;w=1"#);
/// assert_eq!(headers["ratelimit"], r#""default";r=0;t=1"#);
///
/// // A zero rate's "never": capped, and still a valid structured field.
/// bulwark_http::ratelimit::insert_headers(&mut headers, u64::MAX, Duration::MAX, 0, Duration::MAX);
/// assert_eq!(headers["ratelimit-policy"], r#""default";q=999999999999999;w=31536000"#);
/// assert_eq!(headers["ratelimit"], r#""default";r=0;t=31536000"#);
/// ```
pub fn insert_headers(
    headers: &mut HeaderMap,
    quota: u64,
    window: Duration,
    remaining: u64,
    reset: Duration,
) {
    let quota = quota.min(SF_INTEGER_MAX);
    let remaining = remaining.min(SF_INTEGER_MAX);
    let window = whole_secs_capped(window).max(1);
    let reset = whole_secs_capped(reset);
    let policy = format!("\"default\";q={quota};w={window}");
    let state = format!("\"default\";r={remaining};t={reset}");
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert(RATELIMIT_POLICY, v);
    }
    if let Ok(v) = HeaderValue::from_str(&state) {
        headers.insert(RATELIMIT, v);
    }
}
