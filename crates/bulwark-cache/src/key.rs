//! Cache keys: what makes two requests "the same".

use std::hash::{BuildHasher, Hash, Hasher};

use http::{header, HeaderName, Method, Request};

/// A request's cache key. It never holds a credential: `Authorization` is kept as a keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub(crate) method: Method,
    /// Scheme, authority, path and the query with its pairs sorted (or a custom key's text).
    pub(crate) target: String,
    /// The path alone, for invalidation after an unsafe request to the same URI.
    pub(crate) path: String,
    /// Hash of `Authorization` (0 when absent).
    pub(crate) auth: u64,
    /// Hash of `Accept`, the vary headers and, for body-keyed requests, the body.
    pub(crate) variant: u64,
}

impl CacheKey {
    /// The path part, as used for invalidation.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Bodies the key can read (to key `POST` queries by their body). A cacheable request other
/// than GET or HEAD whose body is not readable is not cached: two different bodies must never
/// share a key.
pub trait KeyBody {
    /// The body's bytes, if it holds them.
    fn key_bytes(&self) -> Option<&[u8]>;
}

impl KeyBody for bulwark_http::BufferedBody {
    fn key_bytes(&self) -> Option<&[u8]> {
        Some(self.as_ref())
    }
}

impl KeyBody for bytes::Bytes {
    fn key_bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
}

impl KeyBody for String {
    fn key_bytes(&self) -> Option<&[u8]> {
        Some(self.as_bytes())
    }
}

impl KeyBody for Vec<u8> {
    fn key_bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
}

impl KeyBody for &'static str {
    fn key_bytes(&self) -> Option<&[u8]> {
        Some(self.as_bytes())
    }
}

impl KeyBody for () {
    fn key_bytes(&self) -> Option<&[u8]> {
        None
    }
}

impl<D> KeyBody for http_body_util::Empty<D> {
    fn key_bytes(&self) -> Option<&[u8]> {
        None
    }
}

/// `Full` does not show its bytes: GETs are cached, body-keyed POSTs are not (use
/// [`BufferedBody`](bulwark_http::BufferedBody) for those).
impl<D> KeyBody for http_body_util::Full<D> {
    fn key_bytes(&self) -> Option<&[u8]> {
        None
    }
}

/// The target: scheme, authority, path, and the query with its pairs sorted.
pub(crate) fn target<B>(req: &Request<B>) -> String {
    let uri = req.uri();
    let mut out = String::with_capacity(uri.to_string().len());
    if let Some(scheme) = uri.scheme_str() {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(authority) = uri.authority() {
        out.push_str(authority.as_str());
    }
    out.push_str(uri.path());
    if let Some(query) = uri.query() {
        let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
        pairs.sort_unstable();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

pub(crate) fn build<B: KeyBody, S: BuildHasher>(
    req: &Request<B>,
    target: String,
    vary: &[HeaderName],
    hasher: &S,
) -> CacheKey {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .map_or(0, |v| hasher.hash_one(v.as_bytes()));
    let mut h = hasher.build_hasher();
    for name in std::iter::once(&header::ACCEPT).chain(vary) {
        name.as_str().hash(&mut h);
        for v in req.headers().get_all(name) {
            v.as_bytes().hash(&mut h);
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if let Some(body) = req.body().key_bytes() {
            body.hash(&mut h);
        }
    }
    CacheKey {
        method: req.method().clone(),
        path: req.uri().path().to_owned(),
        target,
        auth,
        variant: h.finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;

    #[test]
    fn query_order_does_not_matter_and_tokens_are_hashed() {
        let s = RandomState::new();
        let a = Request::get("https://api.test/v1/x?b=2&a=1")
            .header("authorization", "Bearer secret")
            .body(())
            .unwrap();
        let b = Request::get("https://api.test/v1/x?a=1&b=2")
            .header("authorization", "Bearer secret")
            .body(())
            .unwrap();
        let ka = build(&a, target(&a), &[], &s);
        assert_eq!(ka, build(&b, target(&b), &[], &s));
        assert!(!format!("{ka:?}").contains("secret"));
        let c = Request::get("https://api.test/v1/x?a=1&b=2")
            .header("authorization", "Bearer other")
            .body(())
            .unwrap();
        assert_ne!(ka, build(&c, target(&c), &[], &s));
    }

    #[test]
    fn post_bodies_are_part_of_the_key() {
        let s = RandomState::new();
        let q = |body: &'static str| Request::post("/v1/search").body(body).unwrap();
        let (a, b) = (q(r#"{"query":"a"}"#), q(r#"{"query":"b"}"#));
        assert_ne!(
            build(&a, target(&a), &[], &s),
            build(&b, target(&b), &[], &s)
        );
    }
}
