//! [`Mark2NotionError`]: Mark2Notion's error bodies as a type.
//!
//! Mark2Notion answers errors in one of two shapes: `{"status":"fail","data":{field: message}}`
//! for a 400 (one message per bad field), and `{"status":"error","message":…}` for the others
//! — with a `data` block holding the usage when a 429 says the quota is used up.

use std::{collections::BTreeMap, fmt};

use http::{HeaderMap, StatusCode};
use serde_json::Value;

/// The usage block of a quota 429: `{"current_usage":1000,"quota":1000,"plan":"free",
/// "requests_remaining":0}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaUsage {
    /// Calls counted in the current billing period.
    pub current_usage: Option<u64>,
    /// Calls allowed per billing period.
    pub quota: Option<u64>,
    /// The subscription plan (`free`, …).
    pub plan: Option<String>,
    /// Calls left in the period.
    pub requests_remaining: Option<u64>,
}

/// What went wrong, as Mark2Notion said it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mark2NotionErrorKind {
    /// `"status":"fail"` (400): the request's fields, each with its message.
    Fail {
        /// Field name → message, as sent.
        fields: BTreeMap<String, String>,
    },
    /// `"status":"error"`: a message, and the usage when the quota is used up.
    Error {
        /// Mark2Notion's message (`Missing x-api-key`, `Usage quota exceeded …`).
        message: String,
        /// The usage block of a quota 429.
        usage: Option<QuotaUsage>,
    },
    /// The body was not one of Mark2Notion's error shapes (a proxy's HTML page, say).
    Unexpected,
}

/// An error answer of Mark2Notion, parsed.
///
/// ```
/// use bulwark_notion::mark2notion::Mark2NotionError;
/// use http::{HeaderMap, StatusCode};
///
/// let body = br#"{"status":"error","message":"Usage quota exceeded for current billing period","data":{"current_usage":1000,"quota":1000,"plan":"free","requests_remaining":0}}"#;
/// let err = Mark2NotionError::from_body(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), body);
/// assert!(err.is_quota_exhausted());
/// assert_eq!(err.usage().and_then(|u| u.plan.as_deref()), Some("free"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mark2NotionError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body's meaning.
    pub kind: Mark2NotionErrorKind,
}

/// Messages and names longer than this are cut (a hostile body cannot grow our memory).
const MAX_TEXT: usize = 1024;

fn text(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Some(s[..end].to_owned())
}

impl Mark2NotionError {
    /// Parses an error answer's body. Never fails: a body that is not Mark2Notion's is
    /// [`Mark2NotionErrorKind::Unexpected`]. The usage headers (`X-Usage-*`) fill a quota 429
    /// whose body carries no usage block.
    #[must_use]
    pub fn from_body(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let kind = match serde_json::from_slice::<Value>(body) {
            Ok(json) => match json.get("status").and_then(Value::as_str) {
                Some("fail") => Mark2NotionErrorKind::Fail {
                    fields: json
                        .get("data")
                        .and_then(Value::as_object)
                        .map(|data| {
                            data.iter()
                                .take(64)
                                .filter_map(|(k, v)| {
                                    Some((text(&Value::String(k.clone()))?, text(v)?))
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                },
                Some("error") => Mark2NotionErrorKind::Error {
                    message: json.get("message").and_then(text).unwrap_or_default(),
                    usage: json
                        .get("data")
                        .filter(|d| d.is_object())
                        .map(|d| QuotaUsage {
                            current_usage: d.get("current_usage").and_then(Value::as_u64),
                            quota: d.get("quota").and_then(Value::as_u64),
                            plan: d.get("plan").and_then(text),
                            requests_remaining: d.get("requests_remaining").and_then(Value::as_u64),
                        })
                        .or_else(|| usage_from_headers(status, headers)),
                },
                _ => Mark2NotionErrorKind::Unexpected,
            },
            Err(_) => Mark2NotionErrorKind::Unexpected,
        };
        Self { status, kind }
    }

    /// The usage block, when the answer carried one.
    #[must_use]
    pub fn usage(&self) -> Option<&QuotaUsage> {
        match &self.kind {
            Mark2NotionErrorKind::Error { usage, .. } => usage.as_ref(),
            _ => None,
        }
    }

    /// A 429 saying the quota is used up (`requests_remaining: 0`): waiting for minutes will
    /// not help; the next billing period (or a bigger plan) will.
    #[must_use]
    pub fn is_quota_exhausted(&self) -> bool {
        self.status == StatusCode::TOO_MANY_REQUESTS
            && self
                .usage()
                .is_some_and(|u| u.requests_remaining == Some(0))
    }
}

/// The usage block a quota 429 implies from its `X-Usage-*` headers.
fn usage_from_headers(status: StatusCode, headers: &HeaderMap) -> Option<QuotaUsage> {
    if status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let info = bulwark_http::RateLimitInfo::from_headers(headers);
    (info.source == Some(bulwark_http::ratelimit::QuotaSource::XUsage)).then(|| QuotaUsage {
        current_usage: info.used,
        quota: info.limit,
        plan: info.plan.clone(),
        requests_remaining: info.remaining,
    })
}

impl fmt::Display for Mark2NotionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mark2Notion answered {}", self.status.as_u16())?;
        match &self.kind {
            Mark2NotionErrorKind::Fail { fields } => {
                f.write_str(": invalid request")?;
                for (field, message) in fields {
                    write!(f, "; {field}: {message}")?;
                }
                Ok(())
            }
            Mark2NotionErrorKind::Error { message, usage } => {
                write!(f, ": {message}")?;
                if let Some(QuotaUsage {
                    current_usage: Some(used),
                    quota: Some(quota),
                    ..
                }) = usage
                {
                    write!(f, " ({used} of {quota} used)")?;
                }
                Ok(())
            }
            Mark2NotionErrorKind::Unexpected => f.write_str(": not a Mark2Notion error body"),
        }
    }
}

impl std::error::Error for Mark2NotionError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, body: &str) -> Mark2NotionError {
        Mark2NotionError::from_body(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn each_documented_shape() {
        let fail = parse(
            400,
            r#"{"status":"fail","data":{"markdown":"Missing or invalid markdown content"}}"#,
        );
        let Mark2NotionErrorKind::Fail { fields } = &fail.kind else {
            panic!("{fail:?}")
        };
        assert_eq!(fields["markdown"], "Missing or invalid markdown content");
        assert!(fail.to_string().contains("markdown: Missing"));

        let auth = parse(401, r#"{"status":"error","message":"Missing x-api-key"}"#);
        assert_eq!(
            auth.kind,
            Mark2NotionErrorKind::Error {
                message: "Missing x-api-key".into(),
                usage: None
            }
        );
        assert!(!auth.is_quota_exhausted());

        let quota = parse(
            429,
            r#"{"status":"error","message":"Usage quota exceeded for current billing period","data":{"current_usage":1000,"quota":1000,"plan":"free","requests_remaining":0}}"#,
        );
        assert!(quota.is_quota_exhausted());
        assert_eq!(quota.usage().unwrap().quota, Some(1000));
        assert!(quota.to_string().contains("1000 of 1000 used"));

        assert_eq!(parse(502, "<html>").kind, Mark2NotionErrorKind::Unexpected);
    }

    #[test]
    fn usage_headers_fill_a_quota_429_without_a_block() {
        let mut headers = HeaderMap::new();
        headers.insert("x-usage-current", "10".parse().unwrap());
        headers.insert("x-usage-quota", "10".parse().unwrap());
        headers.insert("x-usage-remaining", "0".parse().unwrap());
        headers.insert("x-usage-plan", "pro".parse().unwrap());
        let err = Mark2NotionError::from_body(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            br#"{"status":"error","message":"quota"}"#,
        );
        assert!(err.is_quota_exhausted());
        assert_eq!(err.usage().unwrap().plan.as_deref(), Some("pro"));
    }

    #[test]
    fn hostile_bodies_never_panic_and_stay_bounded() {
        let long = "é".repeat(5000);
        let err = parse(
            400,
            &format!(r#"{{"status":"fail","data":{{"f":"{long}"}}}}"#),
        );
        let Mark2NotionErrorKind::Fail { fields } = &err.kind else {
            panic!()
        };
        assert!(fields["f"].len() <= MAX_TEXT);
        for body in [
            "",
            "null",
            "[]",
            r#"{"status":5}"#,
            r#"{"status":"error","data":7}"#,
        ] {
            let _ = parse(500, body).to_string();
        }
    }
}
