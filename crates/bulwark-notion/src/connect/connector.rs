//! [`ProxyConnector`]: direct connections, or `CONNECT` tunnels through the proxy a
//! [`ProxyConfig`] names, and [`ProxyError`] when a tunnel fails.

use std::{error::Error as StdError, fmt, future::Future, pin::Pin, task};

use bulwark_http::BoxError;
use http::{HeaderValue, Uri};
use hyper_util::{client::legacy::connect::HttpConnector, rt::TokioIo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tower::ServiceExt;
use tower_service::Service;

use super::config::ProxyConfig;

/// The TCP connector that honours a [`ProxyConfig`]: a destination that goes through a proxy
/// gets a `CONNECT` tunnel through it (with the proxy URL's credentials); any other is
/// connected to directly by the [`HttpConnector`]. Wrap it in hyper-rustls' `HttpsConnector`
/// for TLS over the tunnel, as [`proxied_https_connector`](crate::proxied_https_connector)
/// does.
///
/// Errors: a [`ProxyError`] when the proxy cannot be reached or refuses the tunnel (find it
/// in the error's `source()` chain), the [`HttpConnector`]'s error otherwise.
#[derive(Clone, Debug)]
pub struct ProxyConnector {
    http: HttpConnector,
    proxy: ProxyConfig,
}

impl ProxyConnector {
    /// Connects through `proxy`'s proxies with `http` (told to accept `https://` URLs,
    /// `enforce_http(false)`, which the TLS layer needs).
    #[must_use]
    pub fn new(mut http: HttpConnector, proxy: ProxyConfig) -> Self {
        http.enforce_http(false);
        Self { http, proxy }
    }

    /// The proxy settings.
    #[must_use]
    pub const fn proxy(&self) -> &ProxyConfig {
        &self.proxy
    }
}

/// The future of [`ProxyConnector`]'s `call`.
pub type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

impl Service<Uri> for ProxyConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut task::Context<'_>) -> task::Poll<Result<(), Self::Error>> {
        // Each call works on a clone of the `HttpConnector`, which is always ready.
        task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let http = self.http.clone();
        let Some(intercept) = self.proxy.intercept(&dst) else {
            return Box::pin(async move { http.oneshot(dst).await.map_err(Into::into) });
        };
        let auth = intercept.basic_auth().cloned();
        let proxy = intercept.uri().clone();
        Box::pin(async move {
            let target = target(&dst)?;
            tunnel(http, proxy, auth, target).await.map_err(Into::into)
        })
    }
}

/// The longest proxy answer to a `CONNECT` that is read.
const MAX_HEAD: usize = 8 * 1024;

/// Opens a `CONNECT` tunnel to `target` (`host:port`) through `proxy`.
async fn tunnel(
    http: HttpConnector,
    proxy: Uri,
    auth: Option<HeaderValue>,
    target: String,
) -> Result<TokioIo<TcpStream>, ProxyError> {
    let error = |kind, source: Option<BoxError>| ProxyError {
        proxy: proxy.clone(),
        target: target.clone(),
        kind,
        source,
    };
    let mut tcp = http
        .oneshot(proxy.clone())
        .await
        .map_err(|e| error(ProxyErrorKind::Unreachable, Some(e.into())))?
        .into_inner();
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n").into_bytes();
    if let Some(auth) = &auth {
        head.extend_from_slice(b"Proxy-Authorization: ");
        head.extend_from_slice(auth.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let io = |e: std::io::Error| error(ProxyErrorKind::Failed, Some(e.into()));
    tcp.write_all(&head).await.map_err(io)?;
    drop(head);

    let mut answer = Vec::with_capacity(256);
    let mut chunk = [0_u8; 1024];
    let end = loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if answer.len() > MAX_HEAD {
            return Err(error(
                ProxyErrorKind::Failed,
                Some("the proxy's answer head is too long".into()),
            ));
        }
        let n = tcp.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Err(error(
                ProxyErrorKind::Failed,
                Some("the proxy closed the connection before answering".into()),
            ));
        }
        answer.extend_from_slice(&chunk[..n]);
    };
    // `HTTP/1.1 200 Connection established`
    let status = answer
        .split(|&b| b == b'\r')
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
        .and_then(|line| {
            let mut words = line.splitn(3, ' ');
            let version = words.next()?;
            let code = words.next()?.parse::<u16>().ok()?;
            version.starts_with("HTTP/1.").then_some(code)
        });
    match status {
        // The client speaks first through a tunnel (the TLS hello, the request): anything
        // after the head is not the upstream's.
        Some(200..=299) if end == answer.len() => Ok(TokioIo::new(tcp)),
        Some(200..=299) => Err(error(
            ProxyErrorKind::Failed,
            Some("the proxy sent data after accepting the tunnel".into()),
        )),
        Some(407) => Err(error(ProxyErrorKind::AuthRequired, None)),
        Some(code) => Err(error(ProxyErrorKind::Refused(code), None)),
        None => Err(error(
            ProxyErrorKind::Failed,
            Some("the proxy's answer is not HTTP/1".into()),
        )),
    }
}

/// `host:port` of `dst` for `CONNECT`, the port spelt out (80 for `http://`, else 443).
fn target(dst: &Uri) -> Result<String, BoxError> {
    let host = dst.host().ok_or("the destination URL has no host")?;
    let port = dst
        .port_u16()
        .unwrap_or(if dst.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    Ok(format!("{host}:{port}"))
}

/// A connect through a proxy failed: the proxy could not be reached, or it refused the
/// `CONNECT` tunnel. Its `Display` names the proxy without its credentials.
///
/// The preset classifies it like any connect failure: the request never reached Notion.
#[derive(Debug)]
pub struct ProxyError {
    proxy: Uri,
    target: String,
    kind: ProxyErrorKind,
    source: Option<BoxError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyErrorKind {
    Unreachable,
    AuthRequired,
    Refused(u16),
    Failed,
}

impl ProxyError {
    /// The proxy, without its credentials (`http://proxy.corp.example:3128/`).
    #[must_use]
    pub const fn proxy(&self) -> &Uri {
        &self.proxy
    }

    /// Whether the proxy answered `407 Proxy Authentication Required`: the credentials in
    /// the proxy URL are missing or wrong.
    #[must_use]
    pub fn is_auth_required(&self) -> bool {
        self.kind == ProxyErrorKind::AuthRequired
    }

    /// The status the proxy refused the tunnel with (407, 403, 502, …), if it answered one.
    #[must_use]
    pub const fn status(&self) -> Option<u16> {
        match self.kind {
            ProxyErrorKind::AuthRequired => Some(407),
            ProxyErrorKind::Refused(code) => Some(code),
            ProxyErrorKind::Unreachable | ProxyErrorKind::Failed => None,
        }
    }

    /// Whether the proxy itself could not be reached (TCP connect failed).
    #[must_use]
    pub fn is_unreachable(&self) -> bool {
        self.kind == ProxyErrorKind::Unreachable
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (proxy, target) = (&self.proxy, &self.target);
        match self.kind {
            ProxyErrorKind::Unreachable => write!(f, "could not connect to the proxy {proxy}"),
            ProxyErrorKind::AuthRequired => write!(
                f,
                "the proxy {proxy} answered 407 Proxy Authentication Required to CONNECT {target}: the user and password in the proxy URL are missing or wrong"
            ),
            ProxyErrorKind::Refused(code) => write!(
                f,
                "the proxy {proxy} refused to CONNECT {target} with {code} (list the host in NO_PROXY if it is to be reached directly)"
            ),
            ProxyErrorKind::Failed => write!(f, "the CONNECT tunnel through {proxy} to {target} failed"),
        }
    }
}

impl StdError for ProxyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &'static str) -> Uri {
        Uri::from_static(s)
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let builder = ProxyConfig::builder().https("http://u:hunter2@proxy:3128");
        assert!(!format!("{builder:?}").contains("hunter2"));
        let proxy = builder.build().unwrap();
        let shown = format!("{proxy:?}");
        assert!(
            shown.contains("http://proxy:3128/") && !shown.contains("hunter2"),
            "{shown}"
        );
        let connector = ProxyConnector::new(HttpConnector::new(), proxy);
        assert!(!format!("{connector:?}").contains("hunter2"));
    }

    #[test]
    fn a_missing_port_is_the_scheme_default() {
        assert_eq!(
            target(&uri("http://example.com/a")).unwrap(),
            "example.com:80"
        );
        assert_eq!(
            target(&uri("https://example.com")).unwrap(),
            "example.com:443"
        );
        assert_eq!(target(&uri("https://[::1]:8443/")).unwrap(), "[::1]:8443");
    }
}
