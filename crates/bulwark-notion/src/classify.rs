//! [`NotionClassifier`]: Notion's own reading of a response.

use std::{error::Error as StdError, time::Duration};

use bulwark_http::{classify_error_chain, Class, Classify, HttpClassifier};
use http::{HeaderMap, Response, StatusCode};

use crate::{
    error::{NotionError, NotionErrorCode},
    headers::from_edge,
};

/// Classifies Notion's answers: by status first, then by the body's `code`.
///
/// | answer | [`Class`] |
/// |---|---|
/// | 429 (`rate_limited`), 529 (`service_overload`) | `Throttled` (retried for any method, after `Retry-After`) |
/// | 500, 502, 503 (`service_unavailable`, `database_connection_unavailable`), 504 | `Transient` (retried when the request is idempotent) |
/// | any 5xx from Notion's edge proxy (`cf-ray` without `x-notion-request-id`, incl. 520–524) | `Transient` |
/// | 409 `conflict_error` | `Transient`, so retried only where retrying is safe |
/// | other 4xx | `Permanent`, whatever the `code` |
/// | other statuses with a known `code` (a 507, say) | that code's class (`service_unavailable` → `Transient`, …) |
/// | unknown codes | their status's HTTP meaning |
/// | errors (connect, timeout, reset) | as [`HttpClassifier`] |
///
/// The body `code` is read from the [`NotionError`] the preset's [`NotionBodyLayer`] attaches
/// to error responses as an extension; without it the status decides alone.
///
/// [`NotionBodyLayer`]: crate::NotionBodyLayer
///
/// ```
/// use bulwark_http::{Class, Classify};
/// use bulwark_notion::NotionClassifier;
/// use http::Response;
///
/// let conflict = Response::builder().status(409).body(()).unwrap();
/// assert_eq!(NotionClassifier.classify_response(&conflict), Class::Transient { retry_after: None });
///
/// let edge = Response::builder().status(522).header("cf-ray", "1-AMS").body(()).unwrap();
/// assert_eq!(NotionClassifier.classify_response(&edge), Class::Transient { retry_after: None });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotionClassifier;

impl NotionClassifier {
    /// Classifies a status, its headers and the body's code (when known).
    #[must_use]
    pub fn classify_parts(
        status: StatusCode,
        headers: &HeaderMap,
        code: Option<&NotionErrorCode>,
    ) -> Class {
        if status.as_u16() < 400 {
            return Class::Success;
        }
        let retry_after = bulwark_http::retry_after(headers);
        match status.as_u16() {
            429 | 529 => return Class::Throttled { retry_after },
            409 | 500 | 502 | 503 | 504 => return Class::Transient { retry_after },
            500..=599 if from_edge(headers) => return Class::Transient { retry_after },
            400..=499 => return Class::Permanent,
            _ => {}
        }
        match code.and_then(|code| code_class(code, retry_after)) {
            Some(class) => class,
            None => HttpClassifier::classify_status(status, retry_after),
        }
    }
}

/// The class a known code stands for.
fn code_class(code: &NotionErrorCode, retry_after: Option<Duration>) -> Option<Class> {
    use NotionErrorCode::*;
    Some(match code {
        RateLimited | ServiceOverload => Class::Throttled { retry_after },
        ConflictError
        | InternalServerError
        | BadGateway
        | ServiceUnavailable
        | DatabaseConnectionUnavailable
        | GatewayTimeout => Class::Transient { retry_after },
        InvalidJson | InvalidRequestUrl | InvalidRequest | InvalidGrant | ValidationError
        | MissingVersion | Unauthorized | RestrictedResource | ObjectNotFound => Class::Permanent,
        Unknown(_) => return None,
    })
}

impl Classify for NotionClassifier {
    fn classify_response<B>(&self, res: &Response<B>) -> Class {
        let code = res.extensions().get::<NotionError>().map(|e| &e.code);
        Self::classify_parts(res.status(), res.headers(), code)
    }

    fn classify_error(&self, err: &(dyn StdError + 'static)) -> Class {
        classify_error_chain(err)
    }
}

/// The preset's breaker classifier: [`NotionClassifier`], except that a 409 `conflict_error`
/// is the caller's data collision, not Notion failing, so it does not count towards opening
/// the breaker (one tenant's conflicting writes must not cut every tenant off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotionBreakerClassifier;

impl Classify for NotionBreakerClassifier {
    fn classify_response<B>(&self, res: &Response<B>) -> Class {
        if res.status() == StatusCode::CONFLICT {
            return Class::Permanent;
        }
        NotionClassifier.classify_response(res)
    }

    fn classify_error(&self, err: &(dyn StdError + 'static)) -> Class {
        NotionClassifier.classify_error(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::REQUEST_ID_HEADER;

    fn class(status: u16, headers: &[(&str, &str)], code: Option<&str>) -> Class {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let code = code.map(NotionErrorCode::from);
        NotionClassifier::classify_parts(StatusCode::from_u16(status).unwrap(), &map, code.as_ref())
    }

    const T: Class = Class::Transient { retry_after: None };

    #[test]
    fn the_table_row_by_row() {
        let wait = Some(Duration::from_secs(2));
        assert_eq!(class(200, &[], None), Class::Success);
        assert_eq!(
            class(429, &[("retry-after", "2")], Some("rate_limited")),
            Class::Throttled { retry_after: wait }
        );
        assert_eq!(
            class(529, &[], Some("service_overload")),
            Class::Throttled { retry_after: None }
        );
        for (status, code) in [
            (500, "internal_server_error"),
            (502, "bad_gateway"),
            (503, "service_unavailable"),
            (503, "database_connection_unavailable"),
            (504, "gateway_timeout"),
            (409, "conflict_error"),
        ] {
            assert_eq!(class(status, &[], Some(code)), T, "{status} {code}");
        }
        for status in [502, 520, 521, 522, 523, 524, 501] {
            assert_eq!(class(status, &[("cf-ray", "x-AMS")], None), T, "{status}");
        }
        for (status, code) in [
            (400, "validation_error"),
            (400, "invalid_json"),
            (400, "missing_version"),
            (401, "unauthorized"),
            (403, "restricted_resource"),
            (404, "object_not_found"),
        ] {
            assert_eq!(
                class(status, &[], Some(code)),
                Class::Permanent,
                "{status} {code}"
            );
        }
    }

    #[test]
    fn the_breaker_does_not_count_conflicts() {
        let conflict = Response::builder().status(409).body(()).unwrap();
        assert_eq!(
            NotionBreakerClassifier.classify_response(&conflict),
            Class::Permanent
        );
        let bad = Response::builder().status(502).body(()).unwrap();
        assert_eq!(NotionBreakerClassifier.classify_response(&bad), T);
    }

    #[test]
    fn status_first_then_code() {
        // Other 4xx are permanent whatever the code says: a 400 is never retried.
        assert_eq!(class(400, &[], Some("rate_limited")), Class::Permanent);
        assert_eq!(
            class(401, &[], Some("service_unavailable")),
            Class::Permanent
        );
        // A known code on an odd 5xx: the code's meaning.
        assert_eq!(
            class(501, &[], Some("service_overload")),
            Class::Throttled { retry_after: None }
        );
        assert_eq!(class(505, &[], Some("service_unavailable")), T);
        // An unknown code keeps its status meaning.
        assert_eq!(class(418, &[], Some("teapot")), Class::Permanent);
        assert_eq!(class(507, &[], Some("storage_full")), T);
        assert_eq!(class(501, &[], Some("storage_full")), Class::Permanent);
        // The status wins where the table names it.
        assert_eq!(class(502, &[], Some("validation_error")), T);
        // A 501 from the API itself (request id present) stays permanent.
        assert_eq!(
            class(501, &[("cf-ray", "x"), (REQUEST_ID_HEADER, "r")], None),
            Class::Permanent
        );
    }
}
