//! The plain HTTP client for what is not the Notion API (the status page, the webhook):
//! hyper-util's legacy client over [`bulwark_notion::proxied_https_connector`] (rustls with
//! `ring`, the webpki roots, plain HTTP allowed: loopback in tests; `HTTPS_PROXY` /
//! `NO_PROXY` honoured), like `bulwark_notion::Client`.

use std::{error::Error as StdError, time::Duration};

use bulwark_notion::{ProxyConfig, ProxyConnector};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};

/// The client type.
pub(crate) type HttpClient<B> = Client<HttpsConnector<ProxyConnector>, B>;

/// A client for `http://` and `https://` URLs whose connections give up after
/// `connect_timeout`.
///
/// # Errors
/// When rustls cannot be set up with the `ring` provider.
pub(crate) fn client<B>(connect_timeout: Duration) -> Result<HttpClient<B>, String>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    let https = bulwark_notion::proxied_https_connector(http, ProxyConfig::from_env())
        .map_err(|err| format!("TLS setup failed: {err}"))?;
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// `outer: inner: innermost`, skipping repeats.
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}
