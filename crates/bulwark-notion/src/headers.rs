//! Notion's headers: what the preset sends on a request that has none of its own
//! (`Notion-Version`, `User-Agent`), and what says who answered — Notion's API sets
//! [`REQUEST_ID_HEADER`] on every answer, its edge proxy (Cloudflare) sets `cf-ray` and no
//! request id ([`from_edge`]). Read by the builder and the service (to send them), by the error
//! types (to say where an unexpected answer came from) and by the classifier (an edge 5xx is
//! transient).

use http::{HeaderMap, HeaderName};

use crate::defaults;

/// The `Notion-Version` the preset sends unless told otherwise ([`defaults::NOTION_VERSION`]).
pub const DEFAULT_NOTION_VERSION: &str = defaults::NOTION_VERSION;

/// The `Notion-Version` header name.
pub const NOTION_VERSION: HeaderName = HeaderName::from_static("notion-version");

/// The `User-Agent` the preset sends unless the request has one ([`defaults::USER_AGENT`]).
pub const DEFAULT_USER_AGENT: &str = defaults::USER_AGENT;

/// The request id header Notion sets on every answer from its API.
pub const REQUEST_ID_HEADER: &str = "x-notion-request-id";

/// `true` when a response came from Notion's edge proxy, not its API: `cf-ray` present and
/// `x-notion-request-id` absent.
///
/// ```
/// use http::HeaderMap;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("cf-ray", "8f-AMS".parse().unwrap());
/// assert!(bulwark_notion::from_edge(&headers));
/// headers.insert("x-notion-request-id", "r-1".parse().unwrap());
/// assert!(!bulwark_notion::from_edge(&headers));
/// ```
#[must_use]
pub fn from_edge(headers: &HeaderMap) -> bool {
    headers.contains_key("cf-ray") && !headers.contains_key(REQUEST_ID_HEADER)
}
