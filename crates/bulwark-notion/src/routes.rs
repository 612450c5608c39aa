//! Which Notion requests are safe to repeat and to cache.
//!
//! Notion's read-only POSTs (`search`, `data_sources/{id}/query`, `databases/{id}/query` and
//! other `…/query` routes) are idempotent in effect although POST is not by RFC 9110; the
//! preset retries and caches them. Writes are never treated so: `POST /v1/pages`,
//! `PATCH /v1/blocks/{id}/children`, anything under `/v1/comments`, `/v1/file_uploads` or
//! `/v1/oauth`. Notion ignores `Idempotency-Key`, so the header does not make a write
//! repeatable here.
//!
//! Paths may carry a prefix before `/v1/` (a proxy's mount point).

use http::{Method, Uri};

/// The part of `path` from `/v1/` on, or `None` when it is not a Notion API path or not
/// [plain](is_plain) anywhere, mount prefix included.
pub(crate) fn api_path(path: &str) -> Option<&str> {
    // Byte scans rather than substring searches: this runs on every request, twice.
    let end = path
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    let path = path[..end].trim_end_matches('/');
    if !is_plain(path) {
        return None;
    }
    let start = path.as_bytes().windows(4).position(|w| w == b"/v1/")?;
    Some(&path[start + 3..])
}

/// Paths a server might read differently from how they look (empty segments, percent-escapes,
/// dot segments) are never treated as read-only nor cached: fail safe. (`/v1%2fcomments/v1/x/query`
/// is `/v1/comments/…` to a server that decodes `%2f`; `/v1/./file_uploads/f1` is an upload.)
fn is_plain(route: &str) -> bool {
    // No segment is a dot segment, none after the first (the text before the leading `/`)
    // is empty (a `//`; the route has no trailing `/`), nothing is percent-escaped.
    !route.as_bytes().contains(&b'%')
        && route.split('/').enumerate().all(|(i, segment)| {
            segment != "." && segment != ".." && (i == 0 || !segment.is_empty())
        })
}

/// Routes that change state whatever the method: never repeated, never cached.
fn is_write_only_route(route: &str) -> bool {
    ["/comments", "/file_uploads", "/oauth"]
        .iter()
        .any(|prefix| {
            route
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// `true` for Notion's read-only POSTs: `/v1/search` and `/v1/…/query`.
///
/// ```
/// use bulwark_notion::routes::is_read_only_post;
///
/// assert!(is_read_only_post("/v1/search"));
/// assert!(is_read_only_post("/v1/data_sources/ds_1/query"));
/// assert!(is_read_only_post("/v1/databases/db_1/query"));
/// assert!(!is_read_only_post("/v1/pages"));
/// assert!(!is_read_only_post("/v1/blocks/b1/children"));
/// ```
#[must_use]
pub fn is_read_only_post(path: &str) -> bool {
    let Some(route) = api_path(path) else {
        return false;
    };
    if is_write_only_route(route) {
        return false;
    }
    route == "/search" || (route.ends_with("/query") && route.matches('/').count() >= 2)
}

/// The preset's idempotency rule beyond RFC 9110's methods: a POST to a read-only route.
#[must_use]
pub fn is_idempotent(method: &Method, uri: &Uri) -> bool {
    method == Method::POST && is_read_only_post(uri.path())
}

/// What the preset caches: GET and HEAD reads (except file uploads, OAuth, and paths that are
/// not plain) and the read-only POSTs.
#[must_use]
pub fn is_cacheable(method: &Method, uri: &Uri) -> bool {
    let Some(route) = api_path(uri.path()) else {
        return false;
    };
    match *method {
        Method::GET | Method::HEAD => {
            !(route.starts_with("/file_uploads") || route.starts_with("/oauth"))
        }
        Method::POST => is_read_only_post(uri.path()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(path: &str) -> Uri {
        path.parse().unwrap()
    }

    #[test]
    fn read_only_posts_are_idempotent_writes_are_not() {
        for path in [
            "/v1/search",
            "/v1/search/",
            "/v1/databases/abc/query",
            "/v1/data_sources/abc/query",
            "/prefix/v1/data_sources/abc/query",
            "/v1/data_sources/abc/templates/query",
            "/v1/search?x=1",
            "/v1/data_sources/abc/query?filter_properties=title",
        ] {
            assert!(is_idempotent(&Method::POST, &uri(path)), "{path}");
            assert!(is_cacheable(&Method::POST, &uri(path)), "{path}");
        }
        for path in [
            "/v1/pages",
            "/v1/pages/p1/move",
            "/v1/databases",
            "/v1/data_sources",
            "/v1/comments",
            "/v1/comments/query",
            "/v1/file_uploads",
            "/v1/file_uploads/f1/send",
            "/v1/file_uploads/query",
            "/v1/oauth/token",
            "/v1/oauth/query",
            "/v1/query",
            "/search",
            "/v1//comments/query",
            "/v1/comments%2Fx/query",
            "/v1/pages/../search",
        ] {
            assert!(!is_idempotent(&Method::POST, &uri(path)), "{path}");
            assert!(!is_cacheable(&Method::POST, &uri(path)), "{path}");
        }
        assert!(!is_idempotent(
            &Method::PATCH,
            &uri("/v1/blocks/b1/children")
        ));
        assert!(!is_idempotent(&Method::GET, &uri("/v1/search")));
    }

    #[test]
    fn gets_are_cached_except_uploads() {
        assert!(is_cacheable(&Method::GET, &uri("/v1/pages/p1")));
        assert!(is_cacheable(&Method::GET, &uri("/v1/users/me")));
        assert!(is_cacheable(
            &Method::GET,
            &uri("/v1/blocks/b1/children?page_size=10")
        ));
        assert!(!is_cacheable(&Method::GET, &uri("/v1/file_uploads/f1")));
        assert!(!is_cacheable(&Method::PATCH, &uri("/v1/pages/p1")));
        assert!(!is_cacheable(&Method::DELETE, &uri("/v1/blocks/b1")));
        assert!(!is_cacheable(&Method::GET, &uri("/healthz")));
    }
}
