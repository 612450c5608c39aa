//! What the accept loop and the connections share: the settings, the preset, the upstream
//! client, the connection table and the counters (its own file, so `server` and
//! `connection` both import it and neither imports the other's internals).

use std::sync::{atomic::AtomicU64, Arc};

use bulwark_http::BufferedBody;
use bulwark_notion::{NotionLayer, ProxyConnector};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use tokio::sync::watch;

use crate::proxy::{config::ProxyConfig, conn::ConnTable, handler::Ctx};

/// The HTTP client behind the preset: plain HTTP, or HTTPS with rustls (ring, webpki roots),
/// through the environment's proxies (`HTTPS_PROXY`, `NO_PROXY`).
pub(crate) type UpstreamClient = Client<HttpsConnector<ProxyConnector>, BufferedBody>;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
}

/// What the accept loop and the connections share.
pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) notion: NotionLayer,
    pub(crate) client: UpstreamClient,
    pub(crate) table: Arc<ConnTable>,
    pub(crate) counters: Counters,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) ctx: Arc<Ctx>,
}
