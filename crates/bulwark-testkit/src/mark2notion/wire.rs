//! Mark2Notion's answers on the wire: its JSend-style bodies (`success`,
//! `fail`, `error`), written by hand so that keys keep the documented order,
//! and the `X-Usage-*` headers.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;

use super::usage::Usage;

/// `X-Usage-Current`: successful calls counted this billing period.
pub const USAGE_CURRENT: &str = "x-usage-current";
/// `X-Usage-Quota`: calls allowed per billing period.
pub const USAGE_QUOTA: &str = "x-usage-quota";
/// `X-Usage-Remaining`: calls left this billing period.
pub const USAGE_REMAINING: &str = "x-usage-remaining";
/// `X-Usage-Plan`: the account's plan.
pub const USAGE_PLAN: &str = "x-usage-plan";

/// One answer before it becomes a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: String,
    /// The usage the `X-Usage-*` headers report; `None` omits them.
    pub(crate) usage: Option<Usage>,
}

impl Answer {
    /// `{"status":"error","message":…}`.
    pub(crate) fn error(status: StatusCode, message: &str, usage: Option<Usage>) -> Self {
        Self {
            status,
            body: format!(r#"{{"status":"error","message":{}}}"#, string(message)),
            usage,
        }
    }

    /// `{"status":"fail","data":{field: message, …}}`, fields in the given order.
    pub(crate) fn fail(status: StatusCode, fields: &[(&str, &str)], usage: Usage) -> Self {
        let data: Vec<String> = fields
            .iter()
            .map(|(field, message)| format!("{}:{}", string(field), string(message)))
            .collect();
        Self {
            status,
            body: format!(r#"{{"status":"fail","data":{{{}}}}}"#, data.join(",")),
            usage: Some(usage),
        }
    }

    /// `{"status":"success","data":…}` with `data` already JSON.
    pub(crate) fn success(data: &str, usage: Usage) -> Self {
        Self {
            status: StatusCode::OK,
            body: format!(r#"{{"status":"success","data":{data}}}"#),
            usage: Some(usage),
        }
    }

    /// The 429 of an exhausted quota, byte for byte as documented.
    pub(crate) fn quota_exceeded(usage: Usage) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            body: format!(
                concat!(
                    r#"{{"status":"error","message":"Usage quota exceeded for current billing period","#,
                    r#""data":{{"current_usage":{},"quota":{},"plan":{},"requests_remaining":{}}}}}"#
                ),
                usage.current,
                usage.quota,
                string(&usage.plan),
                usage.remaining()
            ),
            usage: Some(usage),
        }
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(usage) = self.usage {
            headers.insert(USAGE_CURRENT, HeaderValue::from(usage.current));
            headers.insert(USAGE_QUOTA, HeaderValue::from(usage.quota));
            headers.insert(USAGE_REMAINING, HeaderValue::from(usage.remaining()));
            // A plan name that is no valid header value is left out rather than panicking.
            if let Ok(plan) = HeaderValue::from_str(&usage.plan) {
                headers.insert(USAGE_PLAN, plan);
            }
        }
        response
    }
}

/// A JSON string literal.
fn string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(current: u64) -> Usage {
        Usage {
            current,
            quota: 1000,
            plan: "free".into(),
        }
    }

    #[test]
    fn the_429_body_is_exact() {
        let answer = Answer::quota_exceeded(usage(1000));
        assert_eq!(
            answer.body,
            r#"{"status":"error","message":"Usage quota exceeded for current billing period","data":{"current_usage":1000,"quota":1000,"plan":"free","requests_remaining":0}}"#
        );
        let response = answer.into_response();
        assert_eq!(response.headers()[USAGE_REMAINING], "0");
        assert!(response.headers().get(http::header::RETRY_AFTER).is_none());
    }

    #[test]
    fn bodies_escape_and_keep_their_order() {
        let fail = Answer::fail(
            StatusCode::BAD_REQUEST,
            &[("markdown", "a \"b\""), ("pageId", "c")],
            usage(1),
        );
        assert_eq!(
            fail.body,
            r#"{"status":"fail","data":{"markdown":"a \"b\"","pageId":"c"}}"#
        );
        let error = Answer::error(StatusCode::UNAUTHORIZED, "Missing x-api-key", None);
        assert_eq!(
            error.body,
            r#"{"status":"error","message":"Missing x-api-key"}"#
        );
        assert!(error.into_response().headers().get(USAGE_CURRENT).is_none());
    }

    #[test]
    fn a_plan_that_is_no_header_value_is_left_out() {
        let mut odd = usage(1);
        odd.plan = "line\nbreak".into();
        let response = Answer::success("{}", odd).into_response();
        assert!(response.headers().get(USAGE_PLAN).is_none());
        assert_eq!(response.headers()[USAGE_CURRENT], "1");
    }
}
