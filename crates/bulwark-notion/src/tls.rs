//! [`https_connector`] and [`proxied_https_connector`]: the one TLS setup of bulwark's HTTP
//! clients — rustls with the `ring` provider (no C toolchain needed) and the webpki roots,
//! HTTPS or plain HTTP, HTTP/1.1 — directly or through corporate proxies.

use std::sync::Arc;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::{pki_types::CertificateDer, ClientConfig, RootCertStore};

use crate::connect::{ProxyConfig, ProxyConnector};

/// A connector for hyper-util's legacy `Client` that speaks HTTPS (rustls, `ring`, the webpki
/// roots, HTTP/1.1) to `https://` URLs and plain HTTP to `http://` ones (a FakeNotion on
/// loopback), over `http`, the TCP connector with your settings (a connect timeout, say).
/// It connects directly, whatever the environment says: [`proxied_https_connector`] honours
/// `HTTPS_PROXY` / `NO_PROXY`.
///
/// `http` is told to accept `https://` URLs (`enforce_http(false)`), which the TLS layer needs.
///
/// ```
/// use std::time::Duration;
/// use bulwark_http::BufferedBody;
/// use hyper_util::client::legacy::{connect::HttpConnector, Client};
/// use hyper_util::rt::TokioExecutor;
///
/// let mut http = HttpConnector::new();
/// http.set_connect_timeout(Some(Duration::from_secs(10)));
/// let https = bulwark_notion::https_connector(http)?;
/// let client = Client::builder(TokioExecutor::new()).build::<_, BufferedBody>(https);
/// # let _ = client;
/// # Ok::<_, rustls::Error>(())
/// ```
///
/// # Errors
/// The [`rustls::Error`] of a TLS setup that fails (the `ring` provider refusing the default
/// protocol versions; not seen in practice).
pub fn https_connector(
    mut http: HttpConnector,
) -> Result<HttpsConnector<HttpConnector>, rustls::Error> {
    http.enforce_http(false);
    Ok(HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// [`https_connector`] behind corporate proxies: the same TLS (rustls, `ring`, the webpki
/// roots, HTTP/1.1) over a [`ProxyConnector`], which tunnels through the proxy `proxy` names
/// for each destination (`CONNECT`, with the proxy URL's credentials) and connects directly
/// to the others. What [`Client`](crate::Client) uses (with [`ProxyConfig::from_env`] unless
/// told otherwise), and `bulwark proxy`'s upstream client.
///
/// ```
/// use bulwark_http::BufferedBody;
/// use bulwark_notion::ProxyConfig;
/// use hyper_util::client::legacy::{connect::HttpConnector, Client};
/// use hyper_util::rt::TokioExecutor;
///
/// // HTTPS_PROXY=http://user:password@proxy.corp.example:3128, NO_PROXY=localhost, …
/// let https = bulwark_notion::proxied_https_connector(HttpConnector::new(), ProxyConfig::from_env())?;
/// let client = Client::builder(TokioExecutor::new()).build::<_, BufferedBody>(https);
/// # let _ = client;
/// # Ok::<_, rustls::Error>(())
/// ```
///
/// # Errors
/// As [`https_connector`].
pub fn proxied_https_connector(
    http: HttpConnector,
    proxy: ProxyConfig,
) -> Result<HttpsConnector<ProxyConnector>, rustls::Error> {
    Ok(connector(
        tls_config(Vec::new())?,
        ProxyConnector::new(http, proxy),
    ))
}

/// rustls with `ring`, the safe default protocol versions, and the webpki roots plus `extra`.
pub(crate) fn tls_config(
    extra: Vec<CertificateDer<'static>>,
) -> Result<ClientConfig, rustls::Error> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra {
        roots.add(cert)?;
    }
    Ok(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// HTTPS or plain HTTP, HTTP/1.1, over `tcp`.
pub(crate) fn connector(tls: ClientConfig, tcp: ProxyConnector) -> HttpsConnector<ProxyConnector> {
    HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp)
}
