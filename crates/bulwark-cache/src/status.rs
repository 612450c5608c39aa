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

/// The `Cache-Status` cache name.
pub(crate) const CACHE_NAME: &str = "bulwark";
