//! Tokens: [`token_key`], the stable hash that picks a request's bucket (one per token, the
//! token itself never kept), and the token as the builder takes it.

use std::hash::Hasher;

use bulwark_http::BufferedBody;
use http::{header, Request};

/// Picks a request's bucket: a stable hash of its `Authorization` header (one bucket per
/// token, and the token itself is never kept); `None` (no header) uses the shared bucket.
pub type TokenKey = fn(&Request<BufferedBody>) -> Option<u64>;

/// A stable (cross-process) 64-bit hash of a request's `Authorization` header.
///
/// SipHash with a fixed key, so every process sharing a Redis bucket picks the same key for
/// the same token; the token is never stored or logged.
#[must_use]
pub fn token_key(req: &Request<BufferedBody>) -> Option<u64> {
    let auth = req.headers().get(header::AUTHORIZATION)?;
    let mut hasher =
        siphasher::sip::SipHasher13::new_with_keys(0x6275_6c77_6172_6b21, 0x6e6f_7469_6f6e);
    hasher.write(auth.as_bytes());
    Some(hasher.finish())
}

/// `token` without surrounding space or a `Bearer ` prefix.
pub(crate) fn bare_token(token: &str) -> &str {
    let token = token.trim();
    match token.get(..6) {
        Some(prefix)
            if prefix.eq_ignore_ascii_case("bearer")
                && token[6..].chars().next().is_none_or(char::is_whitespace) =>
        {
            token[6..].trim()
        }
        _ => token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_keys_are_stable_and_distinct() {
        let req = |auth: &str| {
            Request::get("/v1/users/me")
                .header("authorization", auth)
                .body(BufferedBody::default())
                .unwrap()
        };
        assert_eq!(token_key(&req("Bearer a")), token_key(&req("Bearer a")));
        assert_ne!(token_key(&req("Bearer a")), token_key(&req("Bearer b")));
        assert_eq!(token_key(&Request::new(BufferedBody::default())), None);
    }
}
