//! What goes on the wire: Notion-shaped JSON responses and error bodies, the
//! Cloudflare-style HTML page, UUID-like ids and ISO 8601 timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER, SERVER};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

/// The response body type of every answer the fake gives.
pub(crate) type Body = Full<Bytes>;

/// The header that carries the request id on every API answer.
pub(crate) const REQUEST_ID_HEADER: &str = "x-notion-request-id";

/// A fresh random UUID v4 in its hyphenated lowercase form.
pub(crate) fn new_id() -> String {
    let mut bytes = rand::random::<u128>().to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A Cloudflare `cf-ray` value: 16 hex digits and a data-centre code.
pub(crate) fn new_cf_ray() -> String {
    format!("{:016x}-SJC", rand::random::<u64>())
}

/// `2024-05-01T12:34:56.789Z`, as Notion formats `created_time`.
pub(crate) fn iso8601(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// The Notion error `code` and a message for an HTTP status.
///
/// Statuses without a Notion code of their own fall back to
/// `invalid_request` (4xx) or `internal_server_error` (everything else).
pub(crate) fn code_for_status(status: u16) -> (&'static str, &'static str) {
    match status {
        401 => ("unauthorized", "API token is invalid."),
        403 => (
            "restricted_resource",
            "Insufficient permissions for this endpoint.",
        ),
        404 => (
            "object_not_found",
            "Could not find the requested object. Make sure the relevant pages and databases are shared with your integration.",
        ),
        409 => (
            "conflict_error",
            "Conflict occurred while saving. Please try again.",
        ),
        429 => (
            "rate_limited",
            "You have been rate limited. Please try again in a few minutes.",
        ),
        500 => ("internal_server_error", "Unexpected error occurred."),
        502 => (
            "bad_gateway",
            "Notion encountered an issue while attempting to complete this request. Please try again.",
        ),
        503 => (
            "service_unavailable",
            "Notion is unavailable, please try again later. This can occur when the time to respond to a request takes longer than 60 seconds, the maximum request timeout.",
        ),
        504 => (
            "gateway_timeout",
            "Notion timed out while attempting to complete this request. Please try again later.",
        ),
        529 => (
            "service_overload",
            "Notion is currently overloaded. Please try again later.",
        ),
        400..=499 => ("invalid_request", "This request is not supported."),
        _ => ("internal_server_error", "Unexpected error occurred."),
    }
}

/// A status the fake can answer with: `status` itself when it is a valid
/// HTTP error status (400–599), `fallback` otherwise.
pub(crate) fn error_status(status: u16, fallback: StatusCode) -> StatusCode {
    if (400..=599).contains(&status) {
        StatusCode::from_u16(status).unwrap_or(fallback)
    } else {
        fallback
    }
}

fn base_response(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON answer with no request id (for the non-API status page).
pub(crate) fn plain_json(status: StatusCode, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    base_response(status, body, "application/json; charset=utf-8")
}

/// A JSON answer carrying `request_id` in the body (when it is an object)
/// and in the `x-notion-request-id` header.
pub(crate) fn json_response(
    status: StatusCode,
    request_id: &str,
    mut value: Value,
) -> Response<Body> {
    if let Value::Object(map) = &mut value {
        map.insert(
            "request_id".to_owned(),
            Value::String(request_id.to_owned()),
        );
    }
    let body = serde_json::to_vec(&value).unwrap_or_default();
    let mut response = base_response(status, body, "application/json; charset=utf-8");
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// A Notion error: `{"object":"error","status","code","message","request_id"}`.
pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
    request_id: &str,
) -> Response<Body> {
    let body = json!({
        "object": "error",
        "status": status.as_u16(),
        "code": code,
        "message": message.into(),
    });
    json_response(status, request_id, body)
}

/// The error Notion gives for `status`, with its usual code and message.
/// A 429 also carries `Retry-After: 1` and the rate-limit reason.
pub(crate) fn status_error(status: u16, request_id: &str) -> Response<Body> {
    let status = error_status(status, StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::TOO_MANY_REQUESTS {
        return rate_limited(1, request_id);
    }
    let (code, message) = code_for_status(status.as_u16());
    error_response(status, code, message, request_id)
}

/// 429 `rate_limited` with an integer `Retry-After` and
/// `additional_data.rate_limit_reason`.
pub(crate) fn rate_limited(retry_after_secs: u64, request_id: &str) -> Response<Body> {
    let (code, message) = code_for_status(429);
    let body = json!({
        "object": "error",
        "status": 429,
        "code": code,
        "message": message,
        "additional_data": { "rate_limit_reason": "public_api_request_rate_limit" },
    });
    let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, request_id, body);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// 400 `validation_error` with `message`.
pub(crate) fn validation_error(message: impl Into<String>, request_id: &str) -> Response<Body> {
    error_response(
        StatusCode::BAD_REQUEST,
        "validation_error",
        message,
        request_id,
    )
}

/// What Cloudflare's edge answers when the origin fails: an HTML page,
/// `server: cloudflare`, a `cf-ray` header and no `x-notion-request-id`.
pub(crate) fn cloudflare_html(status: u16) -> Response<Body> {
    let status = error_status(status, StatusCode::BAD_GATEWAY);
    let code = status.as_u16();
    let title = match code {
        500 => "Internal server error",
        502 => "Bad gateway",
        503 => "Service unavailable",
        504 => "Gateway time-out",
        520 => "Web server is returning an unknown error",
        521 => "Web server is down",
        522 => "Connection timed out",
        523 => "Origin is unreachable",
        524 => "A timeout occurred",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    let ray = new_cf_ray();
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head>\n<meta charset=\"UTF-8\" />\n\
         <title>api.notion.com | {code}: {title}</title>\n</head>\n<body>\n\
         <h1>{title}</h1>\n<p>Error code {code}</p>\n\
         <p>Cloudflare Ray ID: <strong>{ray}</strong></p>\n</body>\n</html>\n"
    );
    let mut response = base_response(status, html.into_bytes(), "text/html; charset=UTF-8");
    let headers = response.headers_mut();
    headers.insert(SERVER, HeaderValue::from_static("cloudflare"));
    if let Ok(value) = HeaderValue::from_str(&ray) {
        headers.insert("cf-ray", value);
    }
    response
}

/// A Notion rich-text array holding one plain text run.
pub(crate) fn plain_rich_text(content: &str) -> Value {
    json!([{
        "type": "text",
        "text": { "content": content, "link": null },
        "annotations": default_annotations(),
        "plain_text": content,
        "href": null,
    }])
}

/// Notion's default rich-text annotations.
pub(crate) fn default_annotations() -> Value {
    json!({
        "bold": false,
        "italic": false,
        "strikethrough": false,
        "underline": false,
        "code": false,
        "color": "default",
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(iso8601(t), "2023-11-14T22:13:20.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(iso8601(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn ids_look_like_uuid_v4() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert_ne!(id, new_id());
    }

    #[test]
    fn odd_statuses_fall_back() {
        assert_eq!(
            error_status(200, StatusCode::BAD_GATEWAY),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            error_status(1000, StatusCode::BAD_GATEWAY),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(error_status(529, StatusCode::BAD_GATEWAY).as_u16(), 529);
        assert_eq!(code_for_status(418).0, "invalid_request");
        assert_eq!(code_for_status(599).0, "internal_server_error");
    }
}
