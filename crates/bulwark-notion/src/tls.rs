//! [`https_connector`]: the one TLS setup of bulwark's HTTP clients — rustls with the `ring`
//! provider (no C toolchain needed) and the webpki roots, HTTPS or plain HTTP, HTTP/1.1.

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;

/// A connector for hyper-util's legacy `Client` that speaks HTTPS (rustls, `ring`, the webpki
/// roots, HTTP/1.1) to `https://` URLs and plain HTTP to `http://` ones (a FakeNotion on
/// loopback), over `http`, the TCP connector with your settings (a connect timeout, say).
/// What [`Client`](crate::Client) uses, and `bulwark proxy`'s upstream client.
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
