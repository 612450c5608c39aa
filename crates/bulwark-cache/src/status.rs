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

/// `Cache-Status` members (RFC 9211 §2); the cache's name is `bulwark`.
///
/// `hit` means the upstream was not asked for this answer; `fwd=…` means it was. The member is
/// appended after any the upstream sent (a list field: one more field line is one more member).
pub(crate) mod values {
    use std::time::Duration;

    use http::{HeaderValue, StatusCode};

    /// A cacheable request with no usable copy, forwarded; the answer was stored.
    pub(crate) const MISS_STORED: HeaderValue =
        HeaderValue::from_static("bulwark; fwd=uri-miss; stored");
    /// A copy was there but too old to serve; forwarded, the answer stored in its place.
    pub(crate) const STALE_STORED: HeaderValue =
        HeaderValue::from_static("bulwark; fwd=stale; stored");
    /// A cacheable request with no usable copy, forwarded; the answer was not stored.
    pub(crate) const MISS: HeaderValue = HeaderValue::from_static("bulwark; fwd=uri-miss");
    /// A copy was there but too old; forwarded, the answer not stored.
    pub(crate) const STALE: HeaderValue = HeaderValue::from_static("bulwark; fwd=stale");
    /// Waited for an identical request in flight and got the copy it stored.
    pub(crate) const COLLAPSED: HeaderValue =
        HeaderValue::from_static("bulwark; fwd=uri-miss; collapsed");
    /// The upstream was asked and no response came back (refused, reset, timed out): a stored
    /// copy answered.
    pub(crate) const STALE_ERROR: HeaderValue =
        HeaderValue::from_static("bulwark; fwd=stale; detail=error");
    /// Waited for an identical request in flight, which failed: a stored copy answered.
    pub(crate) const STALE_COLLAPSED: HeaderValue =
        HeaderValue::from_static("bulwark; fwd=stale; collapsed");

    /// The answer for a forwarded request, by whether a (too old) copy was there and whether
    /// the answer was stored.
    pub(crate) const fn forwarded(had_copy: bool, stored: bool) -> HeaderValue {
        match (had_copy, stored) {
            (false, true) => MISS_STORED,
            (true, true) => STALE_STORED,
            (false, false) => MISS,
            (true, false) => STALE,
        }
    }

    /// A stored copy served without asking the upstream: `hit` with its remaining freshness
    /// (`ttl`, negative once stale), `detail=shared` when it came from the shared store.
    pub(crate) fn hit(fresh: Duration, age: Duration, shared: bool) -> HeaderValue {
        let detail = if shared { "; detail=shared" } else { "" };
        HeaderValue::from_str(&format!("bulwark; hit; ttl={}{detail}", ttl(fresh, age)))
            .unwrap_or(HeaderValue::from_static("bulwark; hit"))
    }

    /// The upstream was asked and failed, so a stored copy answered: `fwd=stale`, with the
    /// status the upstream gave, or `detail=error` when no response came back.
    pub(crate) fn stale_after_failure(status: Option<StatusCode>) -> HeaderValue {
        match status {
            Some(status) => HeaderValue::from_str(&format!(
                "bulwark; fwd=stale; fwd-status={}",
                status.as_u16()
            ))
            .unwrap_or(STALE_ERROR),
            None => STALE_ERROR,
        }
    }

    /// RFC 9211 `ttl`: whole seconds of freshness left, negative once stale (rounded away
    /// from zero, so a stale copy never reads `ttl=0`), saturating.
    pub(crate) fn ttl(fresh: Duration, age: Duration) -> i64 {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        if age < fresh {
            secs(fresh - age)
        } else {
            let over = age - fresh;
            let whole = secs(over).saturating_add(i64::from(over.subsec_nanos() > 0));
            -whole.max(1)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn ttl_counts_down_and_goes_negative() {
            let s = Duration::from_secs;
            assert_eq!(ttl(s(60), s(0)), 60);
            assert_eq!(ttl(s(60), Duration::from_millis(59_500)), 0);
            assert_eq!(ttl(s(60), s(60)), -1);
            assert_eq!(ttl(s(60), Duration::from_millis(61_200)), -2);
            assert_eq!(ttl(Duration::ZERO, s(5)), -5);
            assert_eq!(ttl(Duration::MAX, s(0)), i64::MAX);
            assert_eq!(ttl(Duration::ZERO, Duration::MAX), -i64::MAX);
        }

        #[test]
        fn members_are_rfc_9211() {
            let s = Duration::from_secs;
            assert_eq!(hit(s(60), s(10), false), "bulwark; hit; ttl=50");
            assert_eq!(
                hit(s(0), s(10), true),
                "bulwark; hit; ttl=-10; detail=shared"
            );
            assert_eq!(
                stale_after_failure(Some(StatusCode::BAD_GATEWAY)),
                "bulwark; fwd=stale; fwd-status=502"
            );
            assert_eq!(
                stale_after_failure(None),
                "bulwark; fwd=stale; detail=error"
            );
            assert_eq!(forwarded(false, true), "bulwark; fwd=uri-miss; stored");
            assert_eq!(forwarded(true, true), "bulwark; fwd=stale; stored");
            assert_eq!(forwarded(false, false), "bulwark; fwd=uri-miss");
            assert_eq!(forwarded(true, false), "bulwark; fwd=stale");
        }
    }
}
