//! [`Mark2NotionClassifier`]: Mark2Notion's answers in bulwark's classes.

use std::error::Error as StdError;

use bulwark_http::{classify_error_chain, retry_after, Class, Classify, HttpClassifier};
use http::Response;

/// Mark2Notion's table, per its error documentation:
///
/// | answer | class |
/// |---|---|
/// | 400 (`fail`), 401, 403 (a missing or invalid key, no subscription), 404, 413 | `Permanent` |
/// | 429 with `X-Usage-Remaining: 0` (the monthly quota) | `QuotaExhausted { resets_in: None }`: never retried, the breaker unmoved, the bucket refuses locally |
/// | 429 with allowance left | `Throttled` |
/// | 5xx | `Transient` |
///
/// Errors are classified as everywhere in bulwark ([`classify_error_chain`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mark2NotionClassifier;

impl Classify for Mark2NotionClassifier {
    fn classify_response<B>(&self, res: &Response<B>) -> Class {
        match res.status().as_u16() {
            400 | 401 | 403 | 404 | 413 => Class::Permanent,
            429 => HttpClassifier::classify_429(res.headers(), retry_after(res.headers())),
            _ => HttpClassifier.classify_response(res),
        }
    }

    fn classify_error(&self, err: &(dyn StdError + 'static)) -> Class {
        classify_error_chain(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(status: u16, headers: &[(&str, &str)]) -> Class {
        let mut res = Response::builder().status(status);
        for (k, v) in headers {
            res = res.header(*k, *v);
        }
        Mark2NotionClassifier.classify_response(&res.body(()).unwrap())
    }

    #[test]
    fn the_documented_table() {
        for permanent in [400, 401, 403, 404, 413] {
            assert_eq!(class(permanent, &[]), Class::Permanent, "{permanent}");
        }
        let exhausted = [
            ("x-usage-current", "1000"),
            ("x-usage-quota", "1000"),
            ("x-usage-remaining", "0"),
            ("x-usage-plan", "free"),
        ];
        assert_eq!(
            class(429, &exhausted),
            Class::QuotaExhausted { resets_in: None }
        );
        assert_eq!(
            class(429, &[("x-usage-remaining", "3")]),
            Class::Throttled { retry_after: None }
        );
        assert_eq!(class(500, &[]), Class::Transient { retry_after: None });
        assert_eq!(
            class(503, &exhausted),
            Class::Transient { retry_after: None }
        );
        assert_eq!(class(200, &exhausted), Class::Success);
    }
}
