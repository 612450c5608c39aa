//! [`Upstream`]: the parsed upstream URL, which never prints its credentials.

use std::fmt;

use bulwark_http::InvalidConfig;
use http::{
    uri::{Authority, Scheme},
    Uri,
};

use crate::proxy::route;

/// Where requests go: the upstream's scheme, host and port, and its path prefix (if any).
///
/// Credentials in the URL (`http://user:password@host`) are dropped: they are never sent
/// upstream (Notion authenticates each request by its bearer token) and never printed —
/// `Display` and `Debug` show `http://<redacted>@host`.
///
/// ```
/// use bulwark_cli::proxy::Upstream;
///
/// let up = Upstream::parse("https://api.notion.com/")?;
/// assert_eq!(up.to_string(), "https://api.notion.com");
/// let up = Upstream::parse("http://user:pw@127.0.0.1:7777/prefix/")?;
/// assert_eq!(up.to_string(), "http://<redacted>@127.0.0.1:7777/prefix");
/// assert!(up.has_credentials());
///
/// let err = Upstream::parse("ftp://user:pw@example.com").unwrap_err();
/// assert!(!err.to_string().contains("pw"));
/// # Ok::<(), bulwark_http::InvalidConfig>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    prefix: String,
    credentials: bool,
}

impl Upstream {
    /// Parses `http://HOST[:PORT][/PREFIX]` or `https://…` (a trailing `/` is ignored).
    ///
    /// # Errors
    /// See [`ProxyConfig::new`](crate::proxy::ProxyConfig::new).
    pub fn parse(url: &str) -> Result<Self, InvalidConfig> {
        let url = url.trim();
        let invalid =
            |why: &str| InvalidConfig::new("upstream", format!("{}: {why}", redact_url(url)));
        if url.contains('#') {
            return Err(invalid("a fragment (#…) is not allowed"));
        }
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| invalid("needs a scheme: http:// or https://"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(invalid("must be http:// or https://"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("needs a host: http://HOST[:PORT]"))?;
        let (credentials, host_port) = match authority.as_str().rsplit_once('@') {
            Some((_, host_port)) => (true, host_port),
            None => (false, authority.as_str()),
        };
        let authority: Authority = host_port
            .parse()
            .map_err(|_| invalid("needs a host: http://HOST[:PORT]"))?;
        if authority.host().is_empty() {
            return Err(invalid("needs a host: http://HOST[:PORT]"));
        }
        let port = match host_port.rsplit_once(':') {
            Some((_, port)) if !host_port.ends_with(']') => Some(port),
            _ => None,
        };
        if port.is_some_and(|p| p.parse::<u16>().is_err()) {
            return Err(invalid("the port must be a number from 0 to 65535"));
        }
        if uri.query().is_some() {
            return Err(invalid("a query (?…) is not allowed"));
        }
        let prefix = uri.path().trim_end_matches('/');
        if !prefix.is_empty() && !route::is_clean_path(prefix) {
            return Err(invalid(
                "the path prefix must not have empty, `.` or `..` segments",
            ));
        }
        Ok(Self {
            scheme,
            authority,
            prefix: prefix.to_owned(),
            credentials,
        })
    }

    /// `http` or `https`.
    pub const fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// Host and port, without credentials.
    pub const fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The path prefix without a trailing `/` (empty when there is none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the URL carried credentials (which are dropped).
    pub const fn has_credentials(&self) -> bool {
        self.credentials
    }

    /// The upstream URI for a normalised `path_and_query` (`/v1/…`).
    pub(crate) fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{path_and_query}", self.prefix))
            .build()
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credentials = if self.credentials { "<redacted>@" } else { "" };
        write!(
            f,
            "{}://{credentials}{}{}",
            self.scheme, self.authority, self.prefix
        )
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upstream({self})")
    }
}

/// `url` with any `user:password@` replaced by `<redacted>@`, for messages about a URL that
/// may not even parse.
///
/// ```
/// use bulwark_cli::proxy::redact_url;
///
/// assert_eq!(redact_url("http://u:pw@h:1/p?q"), "http://<redacted>@h:1/p?q");
/// assert_eq!(redact_url("u:pw@h"), "<redacted>@h");
/// assert_eq!(redact_url("https://api.notion.com"), "https://api.notion.com");
/// ```
#[must_use]
pub fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).map_or(rest.len(), |i| i);
    match rest[..end].rfind('@') {
        Some(at) => format!("{}<redacted>{}", &url[..start], &rest[at..]),
        None => url.to_owned(),
    }
}
