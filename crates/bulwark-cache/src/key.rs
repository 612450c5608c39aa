//! Cache keys: what makes two requests "the same".

use std::{
    fmt,
    hash::{BuildHasher, Hash, Hasher},
    sync::OnceLock,
};

use http::{header, HeaderName, Method, Request};

/// A request's cache key. It never holds a credential: `Authorization` is kept as a keyed hash.
///
/// Equal keys are equal in every part (method, target, path, `Authorization` hash, variant
/// hash); the hash of the whole is computed once, when the key is built, so the store and the
/// in-flight map hash one `u64` rather than the strings.
#[derive(Clone)]
pub struct CacheKey {
    pub(crate) method: Method,
    /// Scheme, authority, path and the query with its pairs sorted (or a custom key's text),
    /// followed by the path alone: one allocation for both.
    text: String,
    /// Where the target ends (and the path starts) in `text`.
    target_len: usize,
    /// Hash of `Authorization` (0 when absent).
    pub(crate) auth: u64,
    /// Hash of `Accept`, the vary headers and, for body-keyed requests, the body.
    pub(crate) variant: u64,
    /// Hash of all the above, with one per-process key.
    hash: u64,
}

impl CacheKey {
    /// The path part, as used for invalidation.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.text[self.target_len..]
    }

    /// The hash of the whole key (with the per-process key).
    pub(crate) fn hash_value(&self) -> u64 {
        self.hash
    }

    /// Scheme, authority, path and sorted query (or a custom key's text).
    pub(crate) fn target(&self) -> &str {
        &self.text[..self.target_len]
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        // `hash` first: unequal keys almost always differ there.
        self.hash == other.hash
            && self.auth == other.auth
            && self.variant == other.variant
            && self.target_len == other.target_len
            && self.method == other.method
            && self.text == other.text
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheKey")
            .field("method", &self.method)
            .field("target", &self.target())
            .field("path", &self.path())
            .field("auth", &self.auth)
            .field("variant", &self.variant)
            .finish()
    }
}

/// The seed of [`CacheKey`]'s own hash: one per process, so that equal keys hash alike
/// whichever layer built them, and random, so that nobody outside can aim at collisions.
///
/// `foldhash` rather than SipHash: this hash only places the key in the maps (equal hashes
/// are compared field by field), so a collision costs a comparison, never a wrong answer.
/// The credential and the variant (vary headers, a keyed `POST` body), which are compared by
/// their hashes alone, keep the layer's SipHash.
fn key_hasher() -> &'static foldhash::fast::RandomState {
    static HASHER: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    HASHER.get_or_init(foldhash::fast::RandomState::default)
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

/// The target: scheme, authority, path, and the query with its pairs sorted. The buffer has
/// room for the path to be appended by [`build`].
pub(crate) fn target<B>(req: &Request<B>) -> String {
    let uri = req.uri();
    let authority = uri.authority().map_or("", |a| a.as_str());
    let query = uri.query();
    let len = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + authority.len()
        + 2 * uri.path().len()
        + query.map_or(0, |q| q.len() + 1);
    let mut out = String::with_capacity(len);
    if let Some(scheme) = uri.scheme_str() {
        out.push_str(scheme);
        out.push_str("://");
    }
    out.push_str(authority);
    out.push_str(uri.path());
    if let Some(query) = query {
        out.push('?');
        if query.contains('&') {
            let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
            pairs.sort_unstable();
            let mut pairs = pairs.into_iter();
            if let Some(first) = pairs.next() {
                out.push_str(first);
            }
            for pair in pairs {
                out.push('&');
                out.push_str(pair);
            }
        } else {
            out.push_str(query);
        }
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
    let variant = h.finish();
    let target_len = target.len();
    let mut text = target;
    text.push_str(req.uri().path());
    let method = req.method().clone();
    let mut h = key_hasher().build_hasher();
    method.hash(&mut h);
    target_len.hash(&mut h);
    text.hash(&mut h);
    h.write_u64(auth);
    h.write_u64(variant);
    CacheKey {
        method,
        text,
        target_len,
        auth,
        variant,
        hash: h.finish(),
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
    fn target_and_path_share_one_string() {
        let s = RandomState::new();
        let r = Request::get("https://api.test/v1/x?b=2&&a=1")
            .body(())
            .unwrap();
        let k = build(&r, target(&r), &[], &s);
        assert_eq!(k.target(), "https://api.test/v1/x?a=1&b=2");
        assert_eq!(k.path(), "/v1/x");
        // A custom key's text and the same text as a path are different keys.
        let custom = build(&r, "/v1/x".to_owned(), &[], &s);
        assert_eq!((custom.target(), custom.path()), ("/v1/x", "/v1/x"));
        assert_ne!(k, custom);
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
