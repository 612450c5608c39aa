//! Which requests are safe to send twice.
//!
//! RFC 9110 §9.2.2 makes GET, HEAD, OPTIONS, TRACE, PUT and DELETE idempotent. A request that
//! carries an `Idempotency-Key` header is idempotent too: the server deduplicates it. Beyond
//! that an API knows its own read-only POSTs (Notion's `search` and `…/query`), so
//! [`Idempotency::allow`] widens the rule with a predicate.

use std::{fmt, sync::Arc};

use http::{HeaderName, Method, Request, Uri};

/// The `Idempotency-Key` header (IETF draft `draft-ietf-httpapi-idempotency-key-header`).
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

type Predicate = dyn Fn(&Method, &Uri) -> bool + Send + Sync;

/// Decides whether a request may be repeated after an ambiguous failure.
///
/// Cheap to clone (an `Arc` at most).
///
/// # Example
/// ```
/// use bulwark_http::Idempotency;
/// use http::{Method, Request};
///
/// let rule = Idempotency::rfc9110().allow(|method, uri| {
///     method == Method::POST && uri.path() == "/v1/search"
/// });
/// let search = Request::post("https://api.example/v1/search").body(()).unwrap();
/// let create = Request::post("https://api.example/v1/pages").body(()).unwrap();
/// let keyed = Request::post("https://api.example/v1/pages")
///     .header("idempotency-key", "8e03978e")
///     .body(())
///     .unwrap();
/// assert!(rule.is_idempotent(&search));
/// assert!(!rule.is_idempotent(&create));
/// assert!(rule.is_idempotent(&keyed));
/// ```
#[derive(Clone, Default)]
pub struct Idempotency {
    predicate: Option<Arc<Predicate>>,
    ignore_key: bool,
}

impl Idempotency {
    /// RFC 9110 methods plus `Idempotency-Key`; the default.
    #[must_use]
    pub const fn rfc9110() -> Self {
        Self {
            predicate: None,
            ignore_key: false,
        }
    }

    /// RFC 9110 methods only: an `Idempotency-Key` header does not make a request repeatable.
    ///
    /// For APIs that ignore the header (Notion does): honouring it there would repeat a
    /// write the server cannot recognise as a repeat.
    #[must_use]
    pub const fn methods_only() -> Self {
        Self {
            predicate: None,
            ignore_key: true,
        }
    }

    /// Also treats requests for which `predicate(method, uri)` is `true` as idempotent.
    ///
    /// Calling it again keeps the earlier predicates: a request is idempotent when any allows it.
    #[must_use]
    pub fn allow<F>(self, predicate: F) -> Self
    where
        F: Fn(&Method, &Uri) -> bool + Send + Sync + 'static,
    {
        let predicate: Arc<Predicate> = match self.predicate {
            None => Arc::new(predicate),
            Some(earlier) => Arc::new(move |m: &Method, u: &Uri| earlier(m, u) || predicate(m, u)),
        };
        Self {
            predicate: Some(predicate),
            ignore_key: self.ignore_key,
        }
    }

    /// `true` when `method` is idempotent by RFC 9110 §9.2.2.
    #[must_use]
    pub fn is_idempotent_method(method: &Method) -> bool {
        matches!(
            *method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        )
    }

    /// `true` when `req` may be repeated after a failure that may have been applied.
    #[must_use]
    pub fn is_idempotent<B>(&self, req: &Request<B>) -> bool {
        Self::is_idempotent_method(req.method())
            || (!self.ignore_key && req.headers().contains_key(IDEMPOTENCY_KEY))
            || self
                .predicate
                .as_ref()
                .is_some_and(|p| p(req.method(), req.uri()))
    }
}

impl fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("predicate", &self.predicate.as_ref().map(|_| "Fn"))
            .field("ignore_key", &self.ignore_key)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method) -> Request<()> {
        Request::builder()
            .method(method)
            .uri("/x")
            .body(())
            .unwrap()
    }

    #[test]
    fn rfc9110_methods() {
        let rule = Idempotency::rfc9110();
        for m in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
            Method::PUT,
            Method::DELETE,
        ] {
            assert!(rule.is_idempotent(&req(m.clone())), "{m}");
        }
        for m in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert!(!rule.is_idempotent(&req(m.clone())), "{m}");
        }
    }

    #[test]
    fn predicates_accumulate() {
        let rule = Idempotency::rfc9110()
            .allow(|_, u| u.path() == "/a")
            .allow(|_, u| u.path() == "/b");
        let post = |p: &str| Request::post(p).body(()).unwrap();
        assert!(rule.is_idempotent(&post("/a")));
        assert!(rule.is_idempotent(&post("/b")));
        assert!(!rule.is_idempotent(&post("/c")));
    }
}
