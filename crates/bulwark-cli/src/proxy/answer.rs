//! The answers the proxy makes itself, all in Notion's error format
//! (`{"object":"error","status",…,"code",…,"message",…,"request_id":…}`), so an SDK reads
//! them like any Notion error.
//!
//! Bodies are built by `bulwark-notion`'s rejection renderer ([`render_rejection`] for a body
//! that is too large) or its [`NotionError`] (taken from [`rejection_error`], which gives it
//! a Notion-shaped request id, a UUID v4, and then given this answer's status, code and
//! message). Like bulwark's other refusals they carry no `x-notion-request-id`: that header
//! says an answer came from Notion.

use std::error::Error as StdError;

use bulwark_http::{BodyTooLarge, BoxError, BufferedBody, Rejection};
use bulwark_notion::{rejection_error, render_rejection, NotionErrorCode};
use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderValue, Response, StatusCode};

use crate::proxy::body::BodyTimeout;

/// A Notion-shaped error answer.
pub(crate) fn notion_error(
    status: StatusCode,
    code: NotionErrorCode,
    message: impl Into<String>,
) -> Response<BufferedBody> {
    let mut error = rejection_error(&Rejection::Internal);
    error.status = status;
    error.code = code;
    error.message = message.into();
    error.retry_after = None;
    let mut res = Response::new(BufferedBody::from(error.to_json().to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    res
}

/// `400 invalid_request_url`: the path is not the Notion API's.
pub(crate) fn not_api() -> Response<BufferedBody> {
    notion_error(
        StatusCode::BAD_REQUEST,
        NotionErrorCode::InvalidRequestUrl,
        "Invalid request URL. bulwark forwards only the Notion API, under /v1/.",
    )
}

/// `400 invalid_request`: CONNECT or TRACE.
pub(crate) fn method_refused(method: &http::Method) -> Response<BufferedBody> {
    notion_error(
        StatusCode::BAD_REQUEST,
        NotionErrorCode::InvalidRequest,
        format!(
            "bulwark: {method} is not supported; this is a reverse proxy for the Notion API, not a forward proxy."
        ),
    )
}

/// `400 invalid_request`: an absolute-form target naming another host.
pub(crate) fn foreign_authority() -> Response<BufferedBody> {
    notion_error(
        StatusCode::BAD_REQUEST,
        NotionErrorCode::InvalidRequest,
        "bulwark: requests for other hosts are not forwarded; send `GET /v1/…` to this proxy.",
    )
}

/// `414 invalid_request`: the request target is longer than `limit` bytes.
pub(crate) fn uri_too_long(limit: usize) -> Response<BufferedBody> {
    notion_error(
        StatusCode::URI_TOO_LONG,
        NotionErrorCode::InvalidRequest,
        format!("bulwark: the request URI exceeds {limit} bytes."),
    )
}

/// The answer for a request hyper refused while parsing its head (400, 414 or 431), `None`
/// for any other status.
pub(crate) fn parse_error(status: u16, max_header_bytes: usize) -> Option<Response<BufferedBody>> {
    let (status, message) = match status {
        400 => (
            StatusCode::BAD_REQUEST,
            "bulwark: the request could not be parsed as HTTP/1.1.".to_owned(),
        ),
        414 => (
            StatusCode::URI_TOO_LONG,
            "bulwark: the request URI is too long.".to_owned(),
        ),
        431 => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("bulwark: the request headers exceed {max_header_bytes} bytes, or 100 fields."),
        ),
        _ => return None,
    };
    Some(notion_error(
        status,
        NotionErrorCode::InvalidRequest,
        message,
    ))
}

/// `503 service_unavailable` with `Retry-After: 1`: every connection slot is busy.
pub(crate) fn at_capacity(max_connections: usize) -> Response<BufferedBody> {
    let mut res = notion_error(
        StatusCode::SERVICE_UNAVAILABLE,
        NotionErrorCode::ServiceUnavailable,
        format!(
            "bulwark: the proxy is at its limit of {max_connections} connections, all busy; try again shortly."
        ),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

/// The answer for a request whose body could not be read: `413 validation_error` when it is
/// too large (as `bulwark-notion` renders [`BodyTooLarge`]), `408 invalid_request` when it
/// did not arrive in time, else `400 invalid_request` (malformed chunked encoding, a body
/// shorter than its `Content-Length`). Never a 5xx: the client's request is at fault, and
/// Notion's SDKs retry 5xx answers.
pub(crate) fn body_error(err: &BoxError) -> Response<BufferedBody> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(&**err);
    while let Some(e) = next {
        if let Some(large) = e.downcast_ref::<BodyTooLarge>() {
            return close(render_rejection(&Rejection::BodyTooLarge(*large)));
        }
        if let Some(timeout) = e.downcast_ref::<BodyTimeout>() {
            return close(notion_error(
                StatusCode::REQUEST_TIMEOUT,
                NotionErrorCode::InvalidRequest,
                format!(
                    "bulwark: the request body did not arrive within {} ms.",
                    timeout.after.as_millis()
                ),
            ));
        }
        next = e.source();
    }
    close(notion_error(
        StatusCode::BAD_REQUEST,
        NotionErrorCode::InvalidRequest,
        "bulwark: the request body could not be read (malformed chunked encoding, or shorter than its Content-Length).",
    ))
}

/// Adds `Connection: close`: the rest of the request cannot be trusted, so the connection
/// ends after this answer.
pub(crate) fn close(mut res: Response<BufferedBody>) -> Response<BufferedBody> {
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// `res` as HTTP/1.1 bytes with `Content-Length` and `Connection: close`, for answers
/// written on a socket that hyper does not serve.
pub(crate) fn to_wire(res: &Response<BufferedBody>) -> Bytes {
    let body = res.body().as_ref();
    let status = res.status();
    let mut out = BytesMut::with_capacity(256 + body.len());
    out.put_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    for (name, value) in res.headers() {
        if name == header::CONTENT_LENGTH || name == header::CONNECTION {
            continue;
        }
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.put_slice(body);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(res: &Response<BufferedBody>) -> serde_json::Value {
        serde_json::from_slice(res.body().as_ref()).unwrap()
    }

    #[test]
    fn own_answers_are_notion_errors_with_a_uuid_request_id() {
        let res = not_api();
        assert_eq!(res.status(), 400);
        assert!(res.headers().get("x-notion-request-id").is_none());
        let body = json(&res);
        assert_eq!(body["object"], "error");
        assert_eq!(body["status"], 400);
        assert_eq!(body["code"], "invalid_request_url");
        let id = body["request_id"].as_str().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "a UUID v4: {id}");
        assert_ne!(json(&not_api())["request_id"], body["request_id"]);
    }

    #[test]
    fn body_errors_are_the_clients_fault() {
        let err: BoxError = BodyTooLarge::new(10).into();
        let res = body_error(&err);
        assert_eq!(res.status(), 413);
        assert_eq!(json(&res)["code"], "validation_error");
        let err: BoxError = "invalid chunk size".into();
        let res = body_error(&err);
        assert_eq!(res.status(), 400);
        assert_eq!(json(&res)["code"], "invalid_request");
        assert_eq!(res.headers()["connection"], "close");
    }

    #[test]
    fn wire_form() {
        let wire = to_wire(&at_capacity(3));
        let text = std::str::from_utf8(&wire).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nretry-after: 1\r\n"));
        assert!(text.contains("\r\nconnection: close\r\n\r\n{"));
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(text.contains(&format!("content-length: {}\r\n", body.len())));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(body).unwrap()["code"],
            "service_unavailable"
        );
    }
}
