//! Notion's error responses: [`NotionError`], [`NotionErrorCode`], and
//! [`UnexpectedResponse`] for error responses that are not Notion's JSON (an edge proxy's
//! HTML page, a truncated body).

use std::{fmt, str::FromStr, time::Duration};

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::headers::from_edge;
pub use crate::headers::REQUEST_ID_HEADER;

/// Every error `code` Notion documents, and [`Unknown`](NotionErrorCode::Unknown) for the rest.
///
/// ```
/// use bulwark_notion::NotionErrorCode;
///
/// assert_eq!("rate_limited".parse::<NotionErrorCode>(), Ok(NotionErrorCode::RateLimited));
/// assert_eq!(NotionErrorCode::from("brand_new").as_str(), "brand_new");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotionErrorCode {
    /// 400: the body could not be decoded as JSON.
    InvalidJson,
    /// 400: the URL is not valid.
    InvalidRequestUrl,
    /// 400: the request is not supported.
    InvalidRequest,
    /// 400: an OAuth grant is invalid, expired or revoked.
    InvalidGrant,
    /// 400: the body does not match the expected schema.
    ValidationError,
    /// 400: the `Notion-Version` header is missing.
    MissingVersion,
    /// 401: the bearer token is invalid or revoked.
    Unauthorized,
    /// 403: the integration lacks access to the resource.
    RestrictedResource,
    /// 404: unknown id, or not shared with the integration.
    ObjectNotFound,
    /// 409: a data collision; try again with fresh parameters.
    ConflictError,
    /// 429: over the rate limit; wait `Retry-After`.
    RateLimited,
    /// 500: an unexpected error on Notion's side.
    InternalServerError,
    /// 502: Notion's gateway failed.
    BadGateway,
    /// 503: Notion is unavailable (also: the request exceeded Notion's 60 s maximum).
    ServiceUnavailable,
    /// 503: Notion's database is unavailable.
    DatabaseConnectionUnavailable,
    /// 504: Notion's gateway timed out.
    GatewayTimeout,
    /// 529: Notion is overloaded; handle like a 429.
    ServiceOverload,
    /// A code this version does not know; its status keeps its HTTP meaning.
    Unknown(String),
}

pub(crate) const CODES: [(&str, NotionErrorCode); 17] = [
    ("invalid_json", NotionErrorCode::InvalidJson),
    ("invalid_request_url", NotionErrorCode::InvalidRequestUrl),
    ("invalid_request", NotionErrorCode::InvalidRequest),
    ("invalid_grant", NotionErrorCode::InvalidGrant),
    ("validation_error", NotionErrorCode::ValidationError),
    ("missing_version", NotionErrorCode::MissingVersion),
    ("unauthorized", NotionErrorCode::Unauthorized),
    ("restricted_resource", NotionErrorCode::RestrictedResource),
    ("object_not_found", NotionErrorCode::ObjectNotFound),
    ("conflict_error", NotionErrorCode::ConflictError),
    ("rate_limited", NotionErrorCode::RateLimited),
    (
        "internal_server_error",
        NotionErrorCode::InternalServerError,
    ),
    ("bad_gateway", NotionErrorCode::BadGateway),
    ("service_unavailable", NotionErrorCode::ServiceUnavailable),
    (
        "database_connection_unavailable",
        NotionErrorCode::DatabaseConnectionUnavailable,
    ),
    ("gateway_timeout", NotionErrorCode::GatewayTimeout),
    ("service_overload", NotionErrorCode::ServiceOverload),
];

impl NotionErrorCode {
    /// Whether Notion documents this code (anything but [`Unknown`](Self::Unknown)).
    ///
    /// ```
    /// use bulwark_notion::NotionErrorCode;
    /// assert!(NotionErrorCode::from("rate_limited").is_known());
    /// assert!(!NotionErrorCode::from("something_new").is_known());
    /// ```
    #[must_use]
    pub const fn is_known(&self) -> bool {
        !matches!(self, Self::Unknown(_))
    }

    /// The code as Notion spells it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        if let Self::Unknown(code) = self {
            return code;
        }
        CODES
            .iter()
            .find(|(_, c)| c == self)
            .map_or("unknown", |(name, _)| name)
    }

    /// The HTTP status Notion documents for this code (`None` for unknown codes).
    #[must_use]
    pub const fn status(&self) -> Option<StatusCode> {
        let code = match self {
            Self::InvalidJson
            | Self::InvalidRequestUrl
            | Self::InvalidRequest
            | Self::InvalidGrant
            | Self::ValidationError
            | Self::MissingVersion => 400,
            Self::Unauthorized => 401,
            Self::RestrictedResource => 403,
            Self::ObjectNotFound => 404,
            Self::ConflictError => 409,
            Self::RateLimited => 429,
            Self::InternalServerError => 500,
            Self::BadGateway => 502,
            Self::ServiceUnavailable | Self::DatabaseConnectionUnavailable => 503,
            Self::GatewayTimeout => 504,
            Self::ServiceOverload => 529,
            Self::Unknown(_) => return None,
        };
        match StatusCode::from_u16(code) {
            Ok(status) => Some(status),
            Err(_) => None,
        }
    }
}

impl From<&str> for NotionErrorCode {
    fn from(code: &str) -> Self {
        CODES
            .iter()
            .find(|(name, _)| *name == code)
            .map_or_else(|| Self::Unknown(code.to_owned()), |(_, c)| c.clone())
    }
}

impl FromStr for NotionErrorCode {
    type Err = std::convert::Infallible;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(code))
    }
}

impl fmt::Display for NotionErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error response from the Notion API (or one rendered the Notion way by bulwark).
///
/// Parsed from any error response with [`NotionError::from_response`]: the request id comes
/// from the body, else from `x-notion-request-id`.
///
/// ```
/// use bulwark_notion::{NotionError, NotionErrorCode};
/// use http::{HeaderMap, StatusCode};
///
/// let body = br#"{"object":"error","status":404,"code":"object_not_found",
///                 "message":"Could not find page.","request_id":"r-1"}"#;
/// let err = NotionError::from_response(StatusCode::NOT_FOUND, &HeaderMap::new(), body).unwrap();
/// assert_eq!(err.code, NotionErrorCode::ObjectNotFound);
/// assert_eq!(err.request_id.as_deref(), Some("r-1"));
///
/// // An edge proxy's HTML page is a clear error, never a panic.
/// let html = b"<html><body>502 Bad Gateway</body></html>";
/// assert!(NotionError::from_response(StatusCode::BAD_GATEWAY, &HeaderMap::new(), html).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NotionError {
    /// The HTTP status of the response.
    pub status: StatusCode,
    /// The body's `code`.
    pub code: NotionErrorCode,
    /// The body's `message`.
    pub message: String,
    /// The body's `request_id`, else the `x-notion-request-id` header.
    pub request_id: Option<String>,
    /// The body's `additional_data` (e.g. `rate_limit_reason` on a 429).
    pub additional_data: Option<Value>,
    /// The `Retry-After` header, when the response carried one.
    pub retry_after: Option<Duration>,
}

impl NotionError {
    /// Parses an error response's status, headers and body.
    ///
    /// # Errors
    /// [`UnexpectedResponse`] when the body is not a JSON object with a string `code` (an
    /// HTML page from Notion's edge proxy, an empty or truncated body).
    pub fn from_response(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Self, UnexpectedResponse> {
        let header_id = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let parsed = serde_json::from_slice::<Value>(body).ok();
        let code = parsed
            .as_ref()
            .and_then(|v| v.get("code"))
            .and_then(Value::as_str);
        let (Some(json), Some(code)) = (parsed.as_ref(), code) else {
            return Err(UnexpectedResponse::new(status, headers, body));
        };
        Ok(Self {
            status,
            code: NotionErrorCode::from(code),
            message: json
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            request_id: json
                .get("request_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or(header_id),
            additional_data: json.get("additional_data").cloned(),
            retry_after: bulwark_http::retry_after(headers),
        })
    }

    /// The error as Notion's JSON body (`object`, `status`, `code`, `message`, `request_id`,
    /// and `additional_data` when present).
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut body = serde_json::json!({
            "object": "error",
            "status": self.status.as_u16(),
            "code": self.code.as_str(),
            "message": self.message,
        });
        if let Some(id) = &self.request_id {
            body["request_id"] = Value::from(id.as_str());
        }
        if let Some(data) = &self.additional_data {
            body["additional_data"] = data.clone();
        }
        body
    }
}

impl fmt::Display for NotionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Notion API error {} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )?;
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for NotionError {}

/// An error response that is not Notion's JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnexpectedResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// `x-notion-request-id`, when present.
    pub request_id: Option<String>,
    /// `true` when the answer came from Notion's edge proxy (`cf-ray` without
    /// `x-notion-request-id`), not from the API.
    pub from_edge: bool,
    /// The response's `Content-Type`, when present.
    pub content_type: Option<String>,
    /// The start of the body (at most 200 characters, lossily decoded).
    pub snippet: String,
}

impl UnexpectedResponse {
    /// Describes a response whose body could not be read as a Notion error or result.
    #[must_use]
    pub fn new(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(&body[..body.len().min(800)]);
        let snippet: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect();
        Self {
            status,
            request_id: headers
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            from_edge: from_edge(headers),
            content_type: headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            snippet: snippet.trim().to_owned(),
        }
    }
}

impl fmt::Display for UnexpectedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unexpected response {} from {}",
            self.status.as_u16(),
            if self.from_edge {
                "Notion's edge proxy (cf-ray, no x-notion-request-id)"
            } else {
                "the Notion API"
            }
        )?;
        if let Some(ct) = &self.content_type {
            write!(f, ", content-type {ct}")?;
        }
        if self.snippet.is_empty() {
            f.write_str(", empty body")
        } else {
            write!(f, ": {}", self.snippet)
        }
    }
}

impl std::error::Error for UnexpectedResponse {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for (name, code) in &CODES {
            assert_eq!(NotionErrorCode::from(*name), *code);
            assert_eq!(code.as_str(), *name);
            assert!(code.status().is_some());
        }
        let unknown = NotionErrorCode::from("something_new");
        assert_eq!(unknown, NotionErrorCode::Unknown("something_new".into()));
        assert_eq!(unknown.status(), None);
    }

    #[test]
    fn request_id_falls_back_to_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, "hdr-1".parse().unwrap());
        headers.insert("retry-after", "3".parse().unwrap());
        let body = br#"{"object":"error","status":429,"code":"rate_limited","message":"slow down","additional_data":{"rate_limit_reason":"public_api_request_rate_limit"}}"#;
        let err =
            NotionError::from_response(StatusCode::TOO_MANY_REQUESTS, &headers, body).unwrap();
        assert_eq!(err.request_id.as_deref(), Some("hdr-1"));
        assert_eq!(err.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(
            err.additional_data.unwrap()["rate_limit_reason"],
            "public_api_request_rate_limit"
        );
    }

    #[test]
    fn bodies_that_are_not_notion_errors_are_clear_errors() {
        let mut headers = HeaderMap::new();
        headers.insert("cf-ray", "8a1b2c3d4e5f-AMS".parse().unwrap());
        headers.insert("content-type", "text/html".parse().unwrap());
        for body in [
            &b"<html>\n<h1>502 Bad Gateway</h1></html>"[..],
            b"",
            b"{",
            b"[]",
            b"{\"code\":5}",
            b"\xff\xfe\x00",
            b"null",
        ] {
            let err = NotionError::from_response(StatusCode::BAD_GATEWAY, &headers, body)
                .expect_err("not a Notion error");
            assert!(err.from_edge);
            assert!(!err.to_string().is_empty());
            assert!(!err.snippet.contains('\n'));
        }
    }

    #[test]
    fn to_json_is_notions_shape() {
        let err = NotionError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: NotionErrorCode::ServiceUnavailable,
            message: "down".into(),
            request_id: Some("r".into()),
            additional_data: None,
            retry_after: None,
        };
        let json = err.to_json();
        assert_eq!(json["object"], "error");
        assert_eq!(json["status"], 503);
        assert_eq!(json["code"], "service_unavailable");
        assert_eq!(json["request_id"], "r");
    }
}
