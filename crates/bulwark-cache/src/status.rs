//! How an answer came about: [`CacheStatus`], also sent as RFC 9211 `Cache-Status`.

use std::time::Duration;

/// A response extension saying where the answer came from.
///
/// ```
/// # use bulwark_cache::CacheStatus;
/// # fn check(res: &http::Response<()>) {
/// match res.extensions().get::<CacheStatus>() {
///     Some(CacheStatus::Stale { age }) => println!("served a {}s old copy: the upstream failed", age.as_secs()),
///     _ => {}
/// }
/// # }
/// # check(&http::Response::new(()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// From the upstream, now.
    Live,
    /// A stored copy still fresh (within `fresh_for` or the upstream's `max-age`).
    Fresh {
        /// How old the copy is.
        age: Duration,
    },
    /// A stored copy served because the upstream failed (or while it is being revalidated).
    Stale {
        /// How old the copy is.
        age: Duration,
    },
}

/// The `Cache-Status` header (RFC 9211).
pub(crate) const CACHE_STATUS: http::HeaderName = http::HeaderName::from_static("cache-status");

/// `Cache-Status` values; the cache's name is `bulwark`.
pub(crate) mod values {
    use http::HeaderValue;

    pub(crate) const HIT: HeaderValue = HeaderValue::from_static("bulwark; hit");
    pub(crate) const HIT_SHARED: HeaderValue =
        HeaderValue::from_static("bulwark; hit; detail=shared");
    pub(crate) const STALE_REVALIDATING: HeaderValue =
        HeaderValue::from_static("bulwark; hit; fwd=stale");
    pub(crate) const STALE_ERROR: HeaderValue =
        HeaderValue::from_static("bulwark; hit; fwd=stale; detail=error");
    pub(crate) const COLLAPSED: HeaderValue =
        HeaderValue::from_static("bulwark; fwd=miss; collapsed");
    pub(crate) const STORED: HeaderValue = HeaderValue::from_static("bulwark; fwd=miss; stored");

    /// `fwd=stale` with the status the upstream answered.
    pub(crate) fn stale_status(status: http::StatusCode) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "bulwark; hit; fwd=stale; fwd-status={}",
            status.as_u16()
        ))
        .unwrap_or(STALE_ERROR)
    }
}
