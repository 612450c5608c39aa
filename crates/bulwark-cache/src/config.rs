//! [`Config`]: the settings [`StaleCacheLayer`](crate::StaleCacheLayer) hands to every
//! [`StaleCache`](crate::StaleCache) it makes, read by the service and its response futures.

use std::{sync::Arc, time::Duration};

use http::{HeaderName, Method, Request};

use crate::policy::Lifetimes;

/// Which requests are cached, by `(method, uri)` (in place of GET and HEAD).
pub(crate) type Predicate = Arc<dyn Fn(&Method, &http::Uri) -> bool + Send + Sync>;
/// A request's own cache-key text; `None` leaves the request uncached.
pub(crate) type KeyText<B> = Arc<dyn Fn(&Request<B>) -> Option<String> + Send + Sync>;

/// Settings shared by the layer's services.
pub(crate) struct Config<B> {
    pub(crate) defaults: Lifetimes,
    pub(crate) max_body_bytes: usize,
    pub(crate) cacheable: Option<Predicate>,
    pub(crate) key: Option<KeyText<B>>,
    pub(crate) vary: Vec<HeaderName>,
    pub(crate) coalesce: bool,
    pub(crate) coalesce_max_wait: Option<Duration>,
}
