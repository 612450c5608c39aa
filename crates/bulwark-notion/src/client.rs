//! [`Client`]: a ready Notion client — hyper-util with rustls (ring, webpki roots) behind the
//! [`NotionLayer`] preset.

use std::{
    collections::{HashSet, VecDeque},
    fmt,
    time::Duration,
};

use bulwark_cache::CacheBody;
use bulwark_http::{BoxError, BufferedBody, InvalidConfig, Rejection};
use futures_util::{stream, Stream};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client as HyperClient},
    rt::TokioExecutor,
};
use rustls::pki_types::{pem::PemObject, CertificateDer};
use serde_json::Value;
use tower::ServiceExt;

use crate::{
    builder::NotionLayerBuilder,
    connect::{ProxyConfig, ProxyConnector},
    error::{NotionError, UnexpectedResponse},
    layer::NotionLayer,
    reconcile::{MaybeApplied, Reconciled},
    rejection::rejection_error,
    service::Notion,
    tls::{connector, tls_config},
};

/// Notion's API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.notion.com";

type Https = HttpsConnector<ProxyConnector>;
type Inner = Notion<HyperClient<Https, BufferedBody>>;

/// Why a [`Client`] call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Notion answered with an error — or bulwark refused locally the way Notion would
    /// (`rate_limited` 429, `service_unavailable` 503; their `message` starts with
    /// `bulwark:`). Match on [`NotionError::code`].
    Api(Box<NotionError>),
    /// An answer that is neither a JSON result nor Notion's error body (an edge proxy's HTML
    /// page, say).
    UnexpectedResponse(UnexpectedResponse),
    /// The request never got an answer: connect failure, timeout, reset.
    Transport(BoxError),
    /// A write failed in a way that leaves open whether Notion applied it (a 5xx or a timeout
    /// that bulwark could not settle; see [`reconcile`](crate::reconcile)). Check before
    /// sending it again; [`MaybeApplied::notion`] holds Notion's error when it answered one.
    MaybeApplied(Box<MaybeApplied>),
    /// The request breaks one of Notion's documented size limits and was not sent (with
    /// [`check_limits`](crate::NotionLayerBuilder::check_limits) on).
    LimitExceeded(crate::limits::LimitExceeded),
    /// The request could not be built (a path or query that is not a valid URI).
    InvalidRequest(String),
}

impl Error {
    /// The Notion error, when this is one.
    #[must_use]
    pub fn notion(&self) -> Option<&NotionError> {
        match self {
            Self::Api(err) => Some(&**err),
            Self::MaybeApplied(err) => err.notion(),
            _ => None,
        }
    }

    /// Whether the request may have been applied although it failed: always `false` except
    /// for [`Error::MaybeApplied`].
    #[must_use]
    pub const fn may_have_been_applied(&self) -> bool {
        matches!(self, Self::MaybeApplied(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Api(err) => err.fmt(f),
            Self::UnexpectedResponse(err) => err.fmt(f),
            Self::Transport(err) => write!(f, "Notion request failed: {err}"),
            Self::MaybeApplied(err) => err.fmt(f),
            Self::LimitExceeded(err) => err.fmt(f),
            Self::InvalidRequest(why) => write!(f, "invalid Notion request: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Api(err) => Some(&**err),
            Self::UnexpectedResponse(err) => Some(err),
            Self::Transport(err) => Some(&**err),
            Self::MaybeApplied(err) => Some(&**err),
            Self::LimitExceeded(err) => Some(err),
            Self::InvalidRequest(_) => None,
        }
    }
}

/// A Notion client with the preset built in.
///
/// Paths are relative to `/v1/` (`"users/me"`, `"/v1/users/me"` and `"/users/me"` are the
/// same). Bodies and results are `serde_json::Value`. Cloning is cheap and clones share the
/// bucket, breaker, budget and cache.
///
/// ```no_run
/// use bulwark_notion::Client;
/// use futures_util::TryStreamExt;
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let notion = Client::new(std::env::var("NOTION_TOKEN")?)?;
/// let me = notion.get("users/me", json!({})).await?;
/// println!("{}", me["name"]);
/// let rows: Vec<_> = notion
///     .paginate("data_sources/ds_1/query", json!({ "page_size": 100 }))
///     .try_collect()
///     .await?;
/// println!("{} rows", rows.len());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    service: Inner,
    layer: NotionLayer,
    base_url: String,
    proxy: ProxyConfig,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("proxy", &self.proxy)
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`]: base URL, network settings (proxy, extra root certificates, connect
/// timeout) and preset settings.
#[must_use]
pub struct ClientBuilder {
    base_url: String,
    connect_timeout: Duration,
    /// `None`: [`ProxyConfig::from_env`] when built.
    proxy: Option<ProxyConfig>,
    root_certificates_pem: Vec<Vec<u8>>,
    preset: NotionLayerBuilder,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("connect_timeout", &self.connect_timeout)
            .field(
                "proxy",
                match &self.proxy {
                    Some(proxy) => proxy,
                    None => &"from the environment" as &dyn fmt::Debug,
                },
            )
            .field("root_certificates_pem", &self.root_certificates_pem.len())
            .field("preset", &self.preset)
            .finish()
    }
}

impl ClientBuilder {
    /// Where requests go. Defaults to [`DEFAULT_BASE_URL`]; `http://` is allowed (FakeNotion,
    /// a local proxy).
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// How long the TCP connect may take (the TLS handshake is bounded by the preset's
    /// attempt timeout). Defaults to 10 s. A
    /// connect failure never reached Notion, so the preset retries it for any request.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The proxies to go through. Defaults to the environment's, read when the client is
    /// built ([`ProxyConfig::from_env`]: `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`,
    /// as curl and reqwest read them).
    ///
    /// Through a proxy, every connection is a `CONNECT` tunnel (TLS to Notion runs inside
    /// it, so the proxy sees neither the token nor the data unless it inspects TLS — then see
    /// [`add_root_certificates_pem`](Self::add_root_certificates_pem)). The proxy URL's
    /// credentials are sent as `Proxy-Authorization` and never appear in `Debug` output,
    /// errors or logs. A proxy that refuses the tunnel gives [`Error::Transport`] with a
    /// [`ProxyError`](crate::ProxyError) in its `source()` chain (407 for missing or wrong
    /// credentials).
    ///
    /// ```
    /// use bulwark_notion::{Client, ProxyConfig};
    ///
    /// let notion = Client::builder("secret_abc")
    ///     .proxy(ProxyConfig::all("http://alice:s3cret@proxy.corp.example:3128")?)
    ///     .build()?;
    /// assert!(!format!("{notion:?}").contains("s3cret"));
    /// # Ok::<_, bulwark_http::InvalidConfig>(())
    /// ```
    pub fn proxy(mut self, proxy: ProxyConfig) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Connects directly whatever the environment says (`.proxy(ProxyConfig::none())`).
    pub fn no_proxy(self) -> Self {
        self.proxy(ProxyConfig::none())
    }

    /// Trusts the root certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----`
    /// blocks) besides the webpki (Mozilla) roots: a corporate CA of a proxy that inspects
    /// TLS, or a test CA. Can be called more than once. Defaults to the webpki roots alone.
    ///
    /// ```no_run
    /// let notion = bulwark_notion::Client::builder("secret_abc")
    ///     .add_root_certificates_pem(std::fs::read("/etc/corp/ca.pem")?)
    ///     .build()?;
    /// # let _ = notion;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates_pem.push(pem.into());
        self
    }

    /// Adjusts the preset (retry, breaker, bucket, cache, headers, timeouts).
    pub fn preset(mut self, f: impl FnOnce(NotionLayerBuilder) -> NotionLayerBuilder) -> Self {
        self.preset = f(self.preset);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`InvalidConfig`]: `base_url` not an absolute `http(s)` URL, `connect_timeout` zero,
    /// `root_certificates_pem` holding no certificate or one that is not valid, the TLS
    /// setup failing, or any error of [`NotionLayerBuilder::build`].
    pub fn build(self) -> Result<Client, InvalidConfig> {
        // `https://api.notion.com/v1` is accepted too: paths are joined under `/v1/` anyway.
        let base_url = self.base_url.trim_end_matches('/');
        let base_url = base_url
            .strip_suffix("/v1")
            .unwrap_or(base_url)
            .trim_end_matches('/')
            .to_owned();
        let uri: http::Uri = base_url
            .parse()
            .map_err(|_| InvalidConfig::new("base_url", "not a valid URL"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(InvalidConfig::new(
                "base_url",
                "must be an absolute http:// or https:// URL",
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(InvalidConfig::new("connect_timeout", "must be above zero"));
        }
        let layer = self.preset.build()?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(self.connect_timeout));
        let roots = root_certificates(&self.root_certificates_pem)?;
        let tls = tls_config(roots).map_err(|e| InvalidConfig::new("tls", e.to_string()))?;
        let proxy = self.proxy.unwrap_or_else(ProxyConfig::from_env);
        let https = connector(tls, ProxyConnector::new(http, proxy.clone()));
        let client = HyperClient::builder(TokioExecutor::new()).build(https);
        let service = tower_layer::Layer::layer(&layer, client);
        Ok(Client {
            service,
            layer,
            base_url,
            proxy,
        })
    }
}

impl Client {
    /// A client for `token` with the preset's defaults, talking to [`DEFAULT_BASE_URL`].
    ///
    /// # Errors
    /// [`InvalidConfig`] when the token is empty or not valid in a header.
    pub fn new(token: impl Into<String>) -> Result<Self, InvalidConfig> {
        Self::builder(token).build()
    }

    /// A builder for `token`.
    pub fn builder(token: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: DEFAULT_BASE_URL.to_owned(),
            connect_timeout: Duration::from_secs(10),
            proxy: None,
            root_certificates_pem: Vec::new(),
            preset: NotionLayer::builder().token(token),
        }
    }

    /// The preset in use: [`NotionLayer::stats`], [`NotionLayer::breaker`].
    pub const fn layer(&self) -> &NotionLayer {
        &self.layer
    }

    /// The proxy settings in use (the environment's unless the builder was given others).
    pub const fn proxy(&self) -> &ProxyConfig {
        &self.proxy
    }

    /// The base URL requests go to.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET path`, with `query`'s fields (an object; `{}` or `null` for none) as the query
    /// string; arrays repeat the key.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get(&self, path: &str, query: Value) -> Result<Value, Error> {
        self.send(Method::GET, path, query).await
    }

    /// `POST path` with `body` as JSON.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn post(&self, path: &str, body: Value) -> Result<Value, Error> {
        self.send(Method::POST, path, body).await
    }

    /// `PATCH path` with `body` as JSON.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn patch(&self, path: &str, body: Value) -> Result<Value, Error> {
        self.send(Method::PATCH, path, body).await
    }

    /// `DELETE path` (`body` as JSON unless `null` or `{}`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete(&self, path: &str, body: Value) -> Result<Value, Error> {
        self.send(Method::DELETE, path, body).await
    }

    /// Every result of a paginated endpoint, following `next_cursor` until `has_more` is
    /// false. `search` and `…/query` are POSTed with `start_cursor` in the body; other paths
    /// (`blocks/{id}/children`, `users`, `comments`) are read with GET and `start_cursor` in
    /// the query. The stream ends after the first error (which it yields), with an error if
    /// Notion repeats a cursor (no endless loop) or the answer has no `results` list.
    pub fn paginate(
        &self,
        path: &str,
        body: Value,
    ) -> impl Stream<Item = Result<Value, Error>> + Send + 'static {
        let method = if crate::routes::is_read_only_post(&self.api_path(path)) {
            Method::POST
        } else {
            Method::GET
        };
        let state = Pages {
            client: self.clone(),
            path: path.to_owned(),
            method,
            body: if body.is_null() {
                Value::Object(serde_json::Map::new())
            } else {
                body
            },
            cursor: None,
            seen: HashSet::new(),
            buffer: VecDeque::new(),
            done: false,
        };
        stream::unfold(state, |mut state| async move {
            loop {
                if let Some(item) = state.buffer.pop_front() {
                    return Some((Ok(item), state));
                }
                if state.done {
                    return None;
                }
                match state.next_page().await {
                    Ok(()) => {}
                    Err(err) => {
                        state.done = true;
                        state.buffer.clear();
                        return Some((Err(err), state));
                    }
                }
            }
        })
    }

    fn api_path(&self, path: &str) -> String {
        let rest = path.trim_start_matches('/');
        let rest = rest.strip_prefix("v1/").unwrap_or(rest);
        format!("/v1/{rest}")
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> Result<Value, Error> {
        let req = self.request(method.clone(), path, body)?;
        let res = self
            .service
            .clone()
            .oneshot(req)
            .await
            .map_err(local_error)?;
        read(res, &method, &self.api_path(path)).await
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Value,
    ) -> Result<Request<BufferedBody>, Error> {
        if path.contains(['#', '?']) || !path.is_ascii() || path.contains(char::is_whitespace) {
            return Err(Error::InvalidRequest(format!(
                "{path:?}: give the path alone, in ASCII without spaces (percent-encode ids if needed); query fields go in the JSON argument"
            )));
        }
        let mut url = format!("{}{}", self.base_url, self.api_path(path));
        let empty = body.is_null() || body.as_object().is_some_and(serde_json::Map::is_empty);
        let mut req = Request::builder().method(method.clone());
        let body = if method == Method::GET || method == Method::HEAD {
            if !empty {
                let Some(fields) = body.as_object() else {
                    return Err(Error::InvalidRequest(
                        "a GET's query must be a JSON object".to_owned(),
                    ));
                };
                let mut query = form_urlencoded::Serializer::new(String::new());
                for (key, value) in fields {
                    match value {
                        Value::Null => {}
                        Value::Array(items) => {
                            for item in items {
                                query.append_pair(key, &scalar(item));
                            }
                        }
                        other => {
                            query.append_pair(key, &scalar(other));
                        }
                    }
                }
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&query.finish());
            }
            BufferedBody::default()
        } else if empty && method == Method::DELETE {
            BufferedBody::default()
        } else {
            req = req.header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            // Notion wants an object: `null` is sent as `{}`.
            BufferedBody::from(if body.is_null() {
                "{}".to_owned()
            } else {
                body.to_string()
            })
        };
        req.uri(url)
            .body(body)
            .map_err(|e| Error::InvalidRequest(e.to_string()))
    }
}

/// The certificates of every PEM given to `add_root_certificates_pem`.
fn root_certificates(pems: &[Vec<u8>]) -> Result<Vec<CertificateDer<'static>>, InvalidConfig> {
    let mut certs = Vec::new();
    for pem in pems {
        let before = certs.len();
        for cert in CertificateDer::pem_slice_iter(pem) {
            certs.push(cert.map_err(|e| {
                InvalidConfig::new("root_certificates_pem", format!("not valid PEM: {e}"))
            })?);
        }
        if certs.len() == before {
            return Err(InvalidConfig::new(
                "root_certificates_pem",
                "holds no `BEGIN CERTIFICATE` block",
            ));
        }
    }
    Ok(certs)
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A layer error as the client reports it: local refusals the Notion way.
fn local_error(err: BoxError) -> Error {
    match Rejection::from_error(&*err) {
        rejection @ (Rejection::CircuitOpen(_) | Rejection::RateLimited(_)) => {
            {
                let mut err = rejection_error(&rejection);
                // Not from Notion: no request id to quote to Notion's support.
                err.request_id = None;
                Error::Api(Box::new(err))
            }
        }
        _ => match err.downcast::<MaybeApplied>() {
            Ok(maybe) => Error::MaybeApplied(maybe),
            Err(err) => match err.downcast::<crate::limits::LimitExceeded>() {
                Ok(exceeded) => Error::LimitExceeded(*exceeded),
                Err(err) => Error::Transport(err),
            },
        },
    }
}

async fn read(
    res: Response<CacheBody<BufferedBody>>,
    method: &Method,
    path: &str,
) -> Result<Value, Error> {
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.map_err(Error::Transport)?.to_bytes();
    let maybe_applied =
        parts.extensions.get::<Reconciled>() == Some(&Reconciled::MayHaveBeenApplied);
    if parts.status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|_| {
            Error::UnexpectedResponse(UnexpectedResponse::new(
                parts.status,
                &parts.headers,
                &bytes,
            ))
        });
    }
    let status = if parts.status.as_u16() < 400 {
        StatusCode::BAD_GATEWAY
    } else {
        parts.status
    };
    let parsed = match parts.extensions.get::<NotionError>() {
        Some(err) => Ok(err.clone()),
        None => NotionError::from_response(status, &parts.headers, &bytes),
    };
    if maybe_applied {
        let source: BoxError = match parsed {
            Ok(err) => Box::new(err),
            Err(unexpected) => Box::new(unexpected),
        };
        return Err(Error::MaybeApplied(Box::new(MaybeApplied::new(
            method.as_str(),
            path,
            source,
            None,
        ))));
    }
    match parsed {
        Ok(err) => Err(Error::Api(Box::new(err))),
        Err(unexpected) => Err(Error::UnexpectedResponse(unexpected)),
    }
}

struct Pages {
    client: Client,
    path: String,
    method: Method,
    body: Value,
    cursor: Option<String>,
    seen: HashSet<String>,
    buffer: VecDeque<Value>,
    done: bool,
}

impl Pages {
    async fn next_page(&mut self) -> Result<(), Error> {
        let mut body = self.body.clone();
        if let (Some(cursor), Some(fields)) = (&self.cursor, body.as_object_mut()) {
            fields.insert("start_cursor".to_owned(), Value::from(cursor.as_str()));
        }
        let page = self
            .client
            .send(self.method.clone(), &self.path, body)
            .await?;
        let Some(Value::Array(results)) = page.get("results") else {
            self.done = true;
            return Err(Error::InvalidRequest(format!(
                "{} is not a paginated endpoint: its answer has no `results` list",
                self.path
            )));
        };
        self.buffer.extend(results.iter().cloned());
        let has_more = page
            .get("has_more")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let next = page
            .get("next_cursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match (has_more, next) {
            (true, Some(next)) => {
                if !self.seen.insert(next.clone()) {
                    self.done = true;
                    self.buffer.clear();
                    return Err(Error::InvalidRequest(format!(
                        "Notion returned the cursor {next} twice; stopping the pagination"
                    )));
                }
                self.cursor = Some(next);
            }
            _ => self.done = true,
        }
        Ok(())
    }
}
