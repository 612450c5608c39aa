//! The control API under `/_fake/`: lets a process that does not own the
//! [`FakeNotion`](crate::FakeNotion) value (a script driving an SDK, a shell)
//! switch faults over HTTP.
//!
//! These routes need no token, are never rate-limited, delayed, faulted or
//! recorded, and answer plain JSON (not Notion's error shape):
//!
//! | route | body | effect | answer |
//! |---|---|---|---|
//! | `GET /_fake/outage` | – | – | `{"on": bool}` |
//! | `POST /_fake/outage` | `{"on": true\|false}` | [`FaultHandle::outage`] | `{"on": bool}` |
//! | `POST /_fake/reset` | none | [`FaultHandle::clear`] | `{"reset": true}` |
//!
//! Anything else under `/_fake/` is 404; a known route with another method
//! is 405 with `Allow`; a bad outage body is 400. Every answer carries
//! `{"error": "…"}` when it is not a success.

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW};
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::fault::FaultHandle;
use crate::wire::{plain_json, Body};

/// The path prefix of the control API.
pub(crate) const PREFIX: &str = "/_fake/";

/// The largest control body read.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Whether `path` belongs to the control API (`/_fake` or `/_fake/…`).
pub(crate) fn is_control(path: &str) -> bool {
    path == "/_fake" || path.starts_with(PREFIX)
}

/// Answers one control request.
pub(crate) fn handle(
    faults: &FaultHandle,
    method: &Method,
    path: &str,
    body: Option<&Bytes>,
) -> Response<Body> {
    let route = path.strip_suffix('/').unwrap_or(path);
    match (route, method) {
        ("/_fake/outage", &Method::GET) => outage_state(faults),
        ("/_fake/outage", &Method::POST) => set_outage(faults, body),
        ("/_fake/outage", _) => not_allowed("GET, POST"),
        ("/_fake/reset", &Method::POST) => {
            faults.clear();
            tracing::info!(target: "bulwark_testkit", "faults cleared through /_fake/reset");
            plain_json(StatusCode::OK, &json!({"reset": true}))
        }
        ("/_fake/reset", _) => not_allowed("POST"),
        _ => error(
            StatusCode::NOT_FOUND,
            "unknown control route; known: GET|POST /_fake/outage, POST /_fake/reset",
        ),
    }
}

fn outage_state(faults: &FaultHandle) -> Response<Body> {
    plain_json(StatusCode::OK, &json!({"on": faults.is_outage()}))
}

fn set_outage(faults: &FaultHandle, body: Option<&Bytes>) -> Response<Body> {
    let Some(body) = body else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "control body too large or unreadable",
        );
    };
    let on = match serde_json::from_slice::<Value>(body) {
        Ok(value) => value.get("on").and_then(Value::as_bool),
        Err(_) => None,
    };
    let Some(on) = on else {
        return error(
            StatusCode::BAD_REQUEST,
            r#"expected a JSON body {"on": true} or {"on": false}"#,
        );
    };
    faults.outage(on);
    tracing::info!(target: "bulwark_testkit", on, "outage switched through /_fake/outage");
    outage_state(faults)
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    plain_json(status, &json!({"error": message}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(faults: &FaultHandle, method: Method, path: &str, body: &str) -> u16 {
        let body = Bytes::from(body.to_owned());
        handle(faults, &method, path, Some(&body)).status().as_u16()
    }

    #[test]
    fn routes_and_methods() {
        let h = FaultHandle::default();
        assert!(is_control("/_fake/outage"));
        assert!(is_control("/_fake"));
        assert!(!is_control("/_fakery"));
        assert!(!is_control("/v1/_fake/outage"));

        assert_eq!(
            status(&h, Method::POST, "/_fake/outage", r#"{"on":true}"#),
            200
        );
        assert!(h.is_outage());
        assert_eq!(status(&h, Method::GET, "/_fake/outage/", ""), 200);
        assert_eq!(
            status(&h, Method::POST, "/_fake/outage", r#"{"on":1}"#),
            400
        );
        assert_eq!(status(&h, Method::POST, "/_fake/outage", "not json"), 400);
        assert!(h.is_outage(), "a bad body changes nothing");
        let none = handle(&h, &Method::POST, "/_fake/outage", None);
        assert_eq!(none.status(), 413);

        assert_eq!(status(&h, Method::GET, "/_fake/reset", ""), 405);
        assert_eq!(status(&h, Method::POST, "/_fake/reset", ""), 200);
        assert!(!h.is_outage());
        let put = handle(&h, &Method::PUT, "/_fake/outage", None);
        assert_eq!(put.status(), 405);
        assert_eq!(put.headers()[ALLOW], "GET, POST");
        assert_eq!(status(&h, Method::POST, "/_fake/nope", ""), 404);
        assert_eq!(status(&h, Method::POST, "/_fake", ""), 404);
    }
}
