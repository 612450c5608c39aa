//! [`ProxyConfig`]: which destinations go through which proxy, from the environment or
//! explicit settings, checked, and shown without credentials.

use std::{fmt, sync::Arc};

use bulwark_http::InvalidConfig;
use http::Uri;
use hyper_util::client::proxy::matcher::{Intercept, Matcher};

/// The environment variables [`ProxyConfig::from_env`] reads, each name tried upper case first.
const ENV: [(&str, &str); 4] = [
    ("ALL_PROXY", "all_proxy"),
    ("HTTPS_PROXY", "https_proxy"),
    ("HTTP_PROXY", "http_proxy"),
    ("NO_PROXY", "no_proxy"),
];

/// Which destinations go through which HTTP proxy: the `HTTPS_PROXY`, `HTTP_PROXY`,
/// `ALL_PROXY` and `NO_PROXY` rules of curl and reqwest.
///
/// - `https://` destinations go through the `https` proxy, else the `all` one;
///   `http://` destinations through the `http` proxy, else the `all` one.
/// - `no_proxy` is a comma-separated list of hosts that connect directly: a domain matches
///   itself and its subdomains (`corp.example` and `.corp.example` both match
///   `api.corp.example`), IP addresses and networks (`10.0.0.0/8`) match addresses, `*`
///   matches everything. Loopback is not exempt by itself: list `localhost,127.0.0.1` to
///   reach a local FakeNotion directly.
/// - A proxy URL is `http://[user:password@]host[:port]` (`http://` is assumed when missing;
///   percent-encode `@`, `:` and `%` in the user and password). The credentials go to the
///   proxy as `Proxy-Authorization: Basic …` on each `CONNECT`; they never appear in `Debug`
///   output, errors or logs. `https://` (TLS to the proxy) and SOCKS proxies are not supported.
///
/// Cloning is cheap (the rules are shared).
///
/// ```
/// use bulwark_notion::ProxyConfig;
/// use http::Uri;
///
/// let proxy = ProxyConfig::builder()
///     .https("http://alice:s3cret@proxy.corp.example:3128")
///     .no_proxy("localhost, 127.0.0.1, .internal.example")
///     .build()?;
/// let via = proxy.proxy_for(&Uri::from_static("https://api.notion.com/v1/users/me"));
/// assert_eq!(via.unwrap(), "http://proxy.corp.example:3128/");
/// assert!(proxy.proxy_for(&Uri::from_static("https://localhost:8443/")).is_none());
/// assert!(!format!("{proxy:?}").contains("s3cret"));
/// # Ok::<_, bulwark_http::InvalidConfig>(())
/// ```
#[derive(Clone)]
pub struct ProxyConfig {
    matcher: Arc<Matcher>,
    /// The `http` and `https` proxies without credentials, and `no_proxy`, for `Debug`.
    shown: Arc<Shown>,
}

#[derive(Debug, Default)]
struct Shown {
    http: Option<String>,
    https: Option<String>,
    no_proxy: String,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("http", &self.shown.http)
            .field("https", &self.shown.https)
            .field("no_proxy", &self.shown.no_proxy)
            .finish()
    }
}

impl Default for ProxyConfig {
    /// [`ProxyConfig::none`].
    fn default() -> Self {
        Self::none()
    }
}

impl ProxyConfig {
    /// No proxy: every destination is connected to directly.
    #[must_use]
    pub fn none() -> Self {
        Self {
            matcher: Arc::new(Matcher::builder().build()),
            shown: Arc::new(Shown::default()),
        }
    }

    /// Every destination through the proxy at `url` (`http://[user:password@]host:port`).
    ///
    /// # Errors
    /// As [`ProxyConfigBuilder::build`].
    pub fn all(url: impl Into<String>) -> Result<Self, InvalidConfig> {
        Self::builder().all(url).build()
    }

    /// A builder for explicit settings, the same ones the environment gives.
    pub fn builder() -> ProxyConfigBuilder {
        ProxyConfigBuilder::default()
    }

    /// The settings of the environment, as curl and reqwest read them: `HTTPS_PROXY`,
    /// `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, each upper case first, then lower case.
    ///
    /// A value that is not a usable proxy URL (unparsable, `https://` or SOCKS) is ignored
    /// with a warning that names the variable, not its value. Nothing is read when
    /// `REQUEST_METHOD` is set (a CGI program, where `HTTP_PROXY` may come from a request's
    /// `Proxy:` header: "httpoxy"), as hyper-util and curl do.
    #[must_use]
    pub fn from_env() -> Self {
        if std::env::var_os("REQUEST_METHOD").is_some() {
            return Self::none();
        }
        let value = |(upper, lower): (&'static str, &'static str)| {
            [upper, lower]
                .into_iter()
                .find_map(|name| std::env::var(name).ok().map(|value| (name, value)))
        };
        let [all, https, http, no] = ENV.map(value);
        let usable = |found: Option<(&'static str, String)>| {
            let (name, value) = found?;
            if value.trim().is_empty() {
                return None;
            }
            match redact(&value) {
                Ok(_) => Some(value),
                Err(why) => {
                    tracing::warn!(variable = name, "proxy setting ignored: {why}");
                    None
                }
            }
        };
        let mut builder = Self::builder();
        if let Some(url) = usable(all) {
            builder = builder.all(url);
        }
        if let Some(url) = usable(https) {
            builder = builder.https(url);
        }
        if let Some(url) = usable(http) {
            builder = builder.http(url);
        }
        if let Some((_, no)) = no {
            builder = builder.no_proxy(no);
        }
        // Every URL left was checked above.
        builder.build().unwrap_or_else(|_| Self::none())
    }

    /// The proxy that `dst` goes through (without its credentials), or `None` when `dst` is
    /// connected to directly.
    #[must_use]
    pub fn proxy_for(&self, dst: &Uri) -> Option<Uri> {
        self.matcher
            .intercept(dst)
            .map(|intercept| intercept.uri().clone())
    }

    /// hyper-util's answer for `dst`: the proxy and its credentials.
    pub(super) fn intercept(&self, dst: &Uri) -> Option<Intercept> {
        self.matcher.intercept(dst)
    }

    /// Whether no destination goes through a proxy.
    #[must_use]
    pub fn is_none(&self) -> bool {
        self.shown.http.is_none() && self.shown.https.is_none()
    }
}

/// Builds a [`ProxyConfig`] from explicit values, read as the environment variables of the
/// same names are. Unset values mean "no proxy" for that scheme.
#[derive(Default)]
#[must_use]
pub struct ProxyConfigBuilder {
    all: Option<String>,
    http: Option<String>,
    https: Option<String>,
    no_proxy: String,
}

impl fmt::Debug for ProxyConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |url: &Option<String>| url.as_deref().map(|url| redact(url).ok());
        f.debug_struct("ProxyConfigBuilder")
            .field("all", &shown(&self.all))
            .field("http", &shown(&self.http))
            .field("https", &shown(&self.https))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl ProxyConfigBuilder {
    /// The proxy for every destination not given its own (`ALL_PROXY`).
    pub fn all(mut self, url: impl Into<String>) -> Self {
        self.all = Some(url.into());
        self
    }

    /// The proxy for `http://` destinations (`HTTP_PROXY`). Defaults to [`all`](Self::all).
    pub fn http(mut self, url: impl Into<String>) -> Self {
        self.http = Some(url.into());
        self
    }

    /// The proxy for `https://` destinations, Notion's (`HTTPS_PROXY`). Defaults to
    /// [`all`](Self::all).
    pub fn https(mut self, url: impl Into<String>) -> Self {
        self.https = Some(url.into());
        self
    }

    /// Hosts connected to directly (`NO_PROXY`): comma-separated domains (with their
    /// subdomains), IP addresses, networks (`10.0.0.0/8`), or `*` for all. Defaults to none.
    pub fn no_proxy(mut self, hosts: impl Into<String>) -> Self {
        self.no_proxy = hosts.into();
        self
    }

    /// The configuration.
    ///
    /// # Errors
    /// [`InvalidConfig`] (field `proxy`, with a reason that does not quote the URL) when a
    /// proxy URL is not a valid URL, has no host, or is not an `http://` one (`https://` and
    /// SOCKS proxies are not supported).
    pub fn build(self) -> Result<ProxyConfig, InvalidConfig> {
        let check = |url: &Option<String>| -> Result<Option<String>, InvalidConfig> {
            match url.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(url) => redact(url)
                    .map(Some)
                    .map_err(|why| InvalidConfig::new("proxy", why)),
            }
        };
        let all = check(&self.all)?;
        let http = check(&self.http)?.or_else(|| all.clone());
        let https = check(&self.https)?.or(all);
        let mut matcher = Matcher::builder().no(self.no_proxy.as_str());
        if let Some(url) = &self.all {
            matcher = matcher.all(url.trim());
        }
        if let Some(url) = &self.http {
            matcher = matcher.http(url.trim());
        }
        if let Some(url) = &self.https {
            matcher = matcher.https(url.trim());
        }
        Ok(ProxyConfig {
            matcher: Arc::new(matcher.build()),
            shown: Arc::new(Shown {
                http,
                https,
                no_proxy: self.no_proxy,
            }),
        })
    }
}

/// `url` as `http://host:port/`, without credentials, when it is a usable proxy URL; else why
/// not, without quoting it.
fn redact(url: &str) -> Result<String, &'static str> {
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|_| "the proxy URL is not a valid URL")?;
    match uri.scheme_str() {
        None | Some("http") => {}
        Some("https") => {
            return Err("https:// proxies (TLS to the proxy) are not supported: use http://")
        }
        Some(_) => return Err("only http:// proxies are supported (not SOCKS)"),
    }
    let authority = uri.authority().ok_or("the proxy URL has no host")?;
    // hyper-util splits the credentials at the first `@`, as here.
    let host_port = match authority.as_str().split_once('@') {
        Some((_, host_port)) if host_port.contains('@') => {
            return Err("percent-encode `@` in the proxy user or password (%40)")
        }
        Some((_, host_port)) => host_port,
        None => authority.as_str(),
    };
    if host_port.is_empty() || host_port.starts_with(':') {
        return Err("the proxy URL has no host");
    }
    Ok(format!("http://{host_port}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &'static str) -> Uri {
        Uri::from_static(s)
    }

    #[test]
    fn schemes_pick_their_proxy_and_all_fills_in() {
        let proxy = ProxyConfig::builder()
            .all("http://all.example:1")
            .https("http://secure.example:2")
            .build()
            .unwrap();
        assert_eq!(
            proxy.proxy_for(&uri("https://api.notion.com/")).unwrap(),
            "http://secure.example:2/"
        );
        assert_eq!(
            proxy.proxy_for(&uri("http://plain.example/")).unwrap(),
            "http://all.example:1/"
        );
    }

    #[test]
    fn no_proxy_matches_domains_subdomains_and_networks() {
        let proxy = ProxyConfig::builder()
            .all("proxy.example:3128")
            .no_proxy("corp.example, 10.0.0.0/8,localhost")
            .build()
            .unwrap();
        for direct in [
            "https://corp.example/",
            "https://api.corp.example/",
            "http://10.1.2.3:8080/",
            "http://localhost:3000/",
        ] {
            assert!(
                proxy.proxy_for(&direct.parse().unwrap()).is_none(),
                "{direct}"
            );
        }
        assert_eq!(
            proxy.proxy_for(&uri("https://notcorp.example/")).unwrap(),
            "http://proxy.example:3128/"
        );
    }

    #[test]
    fn unusable_urls_are_refused_without_quoting_them() {
        for url in [
            "socks5://user:hunter2@proxy:1080",
            "https://user:hunter2@proxy:443",
            "http://user:hun@ter2@proxy:3128",
            "http://user:hunter2@:3128",
            "not a url hunter2",
        ] {
            let err = ProxyConfig::all(url).unwrap_err();
            assert_eq!(err.field(), "proxy");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn none_proxies_nothing() {
        let proxy = ProxyConfig::none();
        assert!(proxy.is_none());
        assert!(proxy.proxy_for(&uri("https://api.notion.com/")).is_none());
    }
}
