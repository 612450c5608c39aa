//! Writes whose answer was ambiguous, settled: [`Reconciled`], [`MaybeApplied`] and the
//! [`Reconcile`] service the preset puts between its cache and its retry layer.
//!
//! A write that fails *ambiguously* — a 500/502/503/504 or 409, an edge proxy's 5xx, a timeout
//! or a reset ([`Class::Transient`]) — may or may not have been applied by Notion. Notion has
//! no idempotency keys, so the preset never sends such a write again blindly. Instead:
//!
//! | write | after an ambiguous failure | answer |
//! |---|---|---|
//! | `POST /v1/pages` into a data source, with [`dedupe_creates_by`] set and that property in the body | queries the parent for a page whose property equals the body's value | found: that page, `200`, `bulwark-reconciled: found`; certainly absent: the create is sent again (at most twice in all); the lookup fails: the failure, marked `may-have-been-applied` |
//! | `PATCH /v1/pages/{id}` (on by default, [`reconcile_page_updates`]) | reads the page back and compares what the update set | all set: the page, `200`, `bulwark-reconciled: verified`; something differs: sent again (a page update replaces values, so this cannot apply anything twice); cannot tell: the failure, marked `may-have-been-applied` |
//! | any other write (appending blocks, comments, file uploads, …) | nothing: it cannot be checked | the failure, marked `may-have-been-applied` |
//!
//! A write sent again that then succeeds is marked `resent`; one that failed again although
//! the lookup showed it absent is marked `not-applied` (certainly not applied: safe to send
//! again). The mark is the response extension [`Reconciled`] and the header
//! [`RECONCILED_HEADER`]; a write that failed with an error rather than an answer (a timeout,
//! a reset) comes back as a [`MaybeApplied`] error wrapping the original one.
//!
//! Reads pass through untouched, and the lookups are live (never from the stale cache).
//!
//! **Limit:** the lookup sees what Notion has committed when it asks. A write still in flight
//! inside Notion when the attempt timed out could commit after a lookup found nothing; the
//! second create would then make a second page. The preset's 60 s attempt timeout is Notion's
//! own maximum, which makes this unlikely, not impossible.
//!
//! [`dedupe_creates_by`]: crate::NotionLayerBuilder::dedupe_creates_by
//! [`reconcile_page_updates`]: crate::NotionLayerBuilder::reconcile_page_updates

use std::{
    error::Error as StdError,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bulwark_http::{BoxError, BufferedBody, Class, Classify};
use http::{header, request::Parts, HeaderName, HeaderValue, Method, Request, Response, Uri};
use pin_project_lite::pin_project;
use serde_json::{json, Map, Value};
use tokio::time::Instant;
use tower::ServiceExt;
use tower_service::Service;

use crate::{classify::NotionClassifier, error::NotionError, routes};

/// The header that carries [`Reconciled`] on an answer: `found`, `resent`, `verified`,
/// `not-applied` or `may-have-been-applied`.
pub const RECONCILED_HEADER: HeaderName = HeaderName::from_static("bulwark-reconciled");

/// How many times a write found certainly unapplied is sent again.
const MAX_RESENDS: usize = 2;

/// The least time settling a write may take, even for a write told not to wait for the
/// circuit (lookups go through the token bucket too).
const MIN_SETTLE: Duration = Duration::from_secs(5);

/// How bulwark settled a write whose answer was ambiguous (a response extension, also sent
/// as the [`RECONCILED_HEADER`] header). See the [module docs](self).
///
/// ```
/// use bulwark_notion::Reconciled;
///
/// assert_eq!(Reconciled::Found.as_str(), "found");
/// assert!(Reconciled::Verified.is_success());
/// assert!(!Reconciled::MayHaveBeenApplied.is_success());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reconciled {
    /// The create had been applied: the answer is the page it made, found by the dedupe
    /// property.
    Found,
    /// The write had certainly not been applied; it was sent again and this is that answer.
    Resent,
    /// The page update had been applied: the answer is the page, read back.
    Verified,
    /// The write failed and had certainly not been applied: sending it again is safe.
    NotApplied,
    /// The write failed in a way that leaves open whether Notion applied it. Check before
    /// sending it again.
    MayHaveBeenApplied,
}

impl Reconciled {
    /// The header value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Found => "found",
            Self::Resent => "resent",
            Self::Verified => "verified",
            Self::NotApplied => "not-applied",
            Self::MayHaveBeenApplied => "may-have-been-applied",
        }
    }

    /// Whether the write is known to be applied, exactly once (the answer is a success).
    #[must_use]
    pub const fn is_success(self) -> bool {
        matches!(self, Self::Found | Self::Resent | Self::Verified)
    }

    /// Reads the mark a response carries: its extension, else its header (a proxy's answer).
    #[must_use]
    pub fn of<B>(res: &Response<B>) -> Option<Self> {
        if let Some(mark) = res.extensions().get::<Self>() {
            return Some(*mark);
        }
        let value = res.headers().get(RECONCILED_HEADER)?.to_str().ok()?;
        [
            Self::Found,
            Self::Resent,
            Self::Verified,
            Self::NotApplied,
            Self::MayHaveBeenApplied,
        ]
        .into_iter()
        .find(|mark| mark.as_str() == value)
    }
}

impl fmt::Display for Reconciled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A write that failed after it may have been applied: a timeout, a reset, or an ambiguous
/// error answer that bulwark could not settle.
///
/// The preset returns it as the error (wrapping the transport error) when the write got no
/// answer; the [`Client`](crate::Client) also returns it for ambiguous error answers. Its
/// [`source`](StdError::source) is the original failure.
///
/// ```
/// use bulwark_notion::MaybeApplied;
///
/// let err = MaybeApplied::new("POST", "/v1/pages", "timed out".into(), None);
/// assert!(err.to_string().contains("may have been applied"));
/// assert_eq!(err.path(), "/v1/pages");
/// ```
#[derive(Debug)]
pub struct MaybeApplied {
    method: String,
    path: String,
    lookup: Option<String>,
    source: BoxError,
}

impl MaybeApplied {
    /// A write `method path` that failed with `source`; `lookup` says why bulwark could not
    /// settle it (`None`: nothing was tried).
    #[must_use]
    pub fn new(
        method: impl Into<String>,
        path: impl Into<String>,
        source: BoxError,
        lookup: Option<String>,
    ) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            lookup,
            source,
        }
    }

    /// The write's method.
    #[must_use]
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The write's path.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Why bulwark could not tell whether it was applied, when it tried.
    #[must_use]
    pub fn lookup_failure(&self) -> Option<&str> {
        self.lookup.as_deref()
    }

    /// The Notion error answer, when the failure was one.
    #[must_use]
    pub fn notion(&self) -> Option<&NotionError> {
        self.source.downcast_ref::<NotionError>()
    }

    /// The original failure.
    #[must_use]
    pub fn cause(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }
}

impl fmt::Display for MaybeApplied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} may have been applied by Notion: {}",
            self.method, self.path, self.source
        )?;
        if let Some(why) = &self.lookup {
            write!(f, " (bulwark could not check: {why})")?;
        }
        Ok(())
    }
}

impl StdError for MaybeApplied {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// What [`Reconcile`] does, set by the preset's builder.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReconcileConfig {
    /// The property whose value identifies a created page (`dedupe_creates_by`).
    pub(crate) dedupe_by: Option<Arc<str>>,
    /// Read back ambiguous page updates.
    pub(crate) page_updates: bool,
}

/// The service that settles ambiguous writes (see the [module docs](self)); the preset puts
/// it between its stale cache and its retry layer.
pub struct Reconcile<S> {
    inner: S,
    config: Arc<ReconcileConfig>,
}

impl<S> Reconcile<S> {
    pub(crate) const fn new(inner: S, config: Arc<ReconcileConfig>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for Reconcile<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S> fmt::Debug for Reconcile<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconcile")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

type Res = Response<BufferedBody>;
type BoxFuture = Pin<Box<dyn Future<Output = Result<Res, BoxError>> + Send>>;

pin_project! {
    /// The future of [`Reconcile`]: a read's own future, or a write being settled.
    pub struct ReconcileFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Read { #[pin] inner: F },
        Write { inner: BoxFuture },
    }
}

impl<F> fmt::Debug for ReconcileFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            State::Read { .. } => "ReconcileFuture::Read",
            State::Write { .. } => "ReconcileFuture::Write",
        })
    }
}

impl<F> Future for ReconcileFuture<F>
where
    F: Future<Output = Result<Res, BoxError>>,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Read { inner } => inner.poll(cx),
            StateProj::Write { inner } => inner.as_mut().poll(cx),
        }
    }
}

impl<S> Service<Request<BufferedBody>> for Reconcile<S>
where
    S: Service<Request<BufferedBody>, Response = Res, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Res;
    type Error = BoxError;
    type Future = ReconcileFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<BufferedBody>) -> Self::Future {
        let Some(write) = Write::of(&req, &self.config) else {
            return ReconcileFuture {
                state: State::Read {
                    inner: self.inner.call(req),
                },
            };
        };
        // The ready service sends the write; a clone sends what follows.
        let copy = Sent::of(&req);
        let first = self.inner.call(req);
        let again = self.inner.clone();
        ReconcileFuture {
            state: State::Write {
                inner: Box::pin(settle(first, again, copy, write)),
            },
        }
    }
}

/// What kind of write a request is.
#[derive(Debug, Clone)]
enum Write {
    /// `POST /v1/pages` with a lookup that finds the page it makes (dedupe on).
    Create(Lookup),
    /// `PATCH /v1/pages/{id}`, read back to verify (`page_updates` on).
    PageUpdate {
        page: String,
        expected: Map<String, Value>,
    },
    /// Any other write: marked only.
    Other,
}

/// How to find the page a create makes.
#[derive(Debug, Clone)]
struct Lookup {
    parent: Parent,
    filter: Value,
}

#[derive(Debug, Clone)]
enum Parent {
    DataSource(String),
    Database(String),
}

impl Write {
    /// The write `req` is, or `None` for a read.
    fn of(req: &Request<BufferedBody>, config: &ReconcileConfig) -> Option<Self> {
        let method = req.method();
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) || routes::is_idempotent(method, req.uri())
        {
            return None;
        }
        let route = routes::api_path(req.uri().path());
        let segments: Vec<&str> = route
            .map(|r| r.trim_start_matches('/').split('/').collect())
            .unwrap_or_default();
        let body = || serde_json::from_slice::<Value>(req.body().as_ref()).ok();
        match (method, segments.as_slice()) {
            (&Method::POST, ["pages"]) => config
                .dedupe_by
                .as_deref()
                .and_then(|property| Some(Self::Create(Lookup::of(&body()?, property)?)))
                .or(Some(Self::Other)),
            (&Method::PATCH, ["pages", id]) if config.page_updates => body()
                .and_then(|body| expected_update(&body))
                .map(|expected| Self::PageUpdate {
                    page: (*id).to_owned(),
                    expected,
                })
                .or(Some(Self::Other)),
            _ => Some(Self::Other),
        }
    }
}

impl Lookup {
    /// The lookup for a create `body` deduplicated by `property`, when the body has a parent
    /// data source or database and a value for the property that a filter can match.
    fn of(body: &Value, property: &str) -> Option<Self> {
        let parent = body.get("parent")?;
        let parent = if let Some(id) = parent.get("data_source_id").and_then(Value::as_str) {
            Parent::DataSource(id.to_owned())
        } else {
            Parent::Database(parent.get("database_id")?.as_str()?.to_owned())
        };
        let value = body.get("properties")?.get(property)?;
        let (kind, condition) = property_condition(value)?;
        let filter = json!({
            "filter": {"property": property, kind: {"equals": condition}},
            "sorts": [{"timestamp": "created_time", "direction": "ascending"}],
            "page_size": 1,
        });
        Some(Self { parent, filter })
    }
}

/// A property value's type and the value an `equals` filter compares it with; `None` for
/// types or values a filter cannot pin down (an empty text, say).
fn property_condition(value: &Value) -> Option<(&'static str, Value)> {
    let kind = value_type(value)?;
    let inner = value.get(kind)?;
    let condition = match kind {
        "title" | "rich_text" => Value::String(plain_text(inner)?),
        "number" => inner.as_number().map(|n| Value::Number(n.clone()))?,
        "select" => Value::String(inner.get("name")?.as_str()?.to_owned()),
        "url" | "email" | "phone_number" => Value::String(inner.as_str()?.to_owned()),
        _ => return None,
    };
    if condition.as_str() == Some("") {
        return None;
    }
    Some((kind, condition))
}

/// The property types [`Reconcile`] understands.
const KNOWN_TYPES: [&str; 13] = [
    "title",
    "rich_text",
    "number",
    "select",
    "status",
    "multi_select",
    "checkbox",
    "url",
    "email",
    "phone_number",
    "date",
    "relation",
    "people",
];

/// A property value's type: its `type`, else the one known type key it has.
fn value_type(value: &Value) -> Option<&'static str> {
    let obj = value.as_object()?;
    if let Some(kind) = obj.get("type").and_then(Value::as_str) {
        return KNOWN_TYPES.into_iter().find(|k| *k == kind);
    }
    let mut kinds = KNOWN_TYPES.into_iter().filter(|k| obj.contains_key(*k));
    let kind = kinds.next()?;
    kinds.next().is_none().then_some(kind)
}

/// The plain text of a rich-text array (`plain_text`, else `text.content`).
fn plain_text(items: &Value) -> Option<String> {
    let mut text = String::new();
    for item in items.as_array()? {
        let part = item
            .get("plain_text")
            .or_else(|| item.get("text").and_then(|t| t.get("content")))
            .and_then(Value::as_str)?;
        text.push_str(part);
    }
    Some(text)
}

/// What a page update sets, when every part of it can be compared with the page read back:
/// `properties` of [`KNOWN_TYPES`], `in_trash`/`archived`, `is_locked`.
fn expected_update(body: &Value) -> Option<Map<String, Value>> {
    let body = body.as_object()?;
    let mut expected = Map::new();
    for (key, value) in body {
        match key.as_str() {
            "properties" => {
                for (name, value) in value.as_object()? {
                    value_type(value)?;
                    expected.insert(format!("properties.{name}"), value.clone());
                }
            }
            "in_trash" | "archived" | "is_locked" => {
                expected.insert(key.clone(), Value::Bool(value.as_bool()?));
            }
            _ => return None,
        }
    }
    Some(expected)
}

/// Whether `page` (as Notion returns it) holds everything in `expected`; `None` when some
/// part cannot be compared.
fn update_applied(page: &Value, expected: &Map<String, Value>) -> Option<bool> {
    let props = page.get("properties")?.as_object()?;
    for (key, want) in expected {
        let same = match key.strip_prefix("properties.") {
            None => {
                let field = if key == "archived" { "in_trash" } else { key };
                let have = page.get(field).or_else(|| page.get("archived"));
                have.and_then(Value::as_bool) == want.as_bool()
            }
            Some(name) => {
                let have = props.get(name).or_else(|| {
                    props
                        .values()
                        .find(|p| p.get("id").and_then(Value::as_str) == Some(name))
                });
                let Some(have) = have else {
                    return Some(false);
                };
                same_value(have, want)?
            }
        };
        if !same {
            return Some(false);
        }
    }
    Some(true)
}

/// Whether the property value `have` (read back) equals what `want` (sent) set.
fn same_value(have: &Value, want: &Value) -> Option<bool> {
    let kind = value_type(want)?;
    if value_type(have) != Some(kind) {
        return Some(false);
    }
    let (have, want) = (have.get(kind)?, want.get(kind).unwrap_or(&Value::Null));
    let names = |v: &Value, key: &str| -> Option<Vec<String>> {
        let mut out: Vec<String> = v
            .as_array()?
            .iter()
            .map(|item| item.get(key).and_then(Value::as_str).map(str::to_owned))
            .collect::<Option<_>>()?;
        out.sort_unstable();
        Some(out)
    };
    Some(match kind {
        "title" | "rich_text" => plain_text(have)? == plain_text(want)?,
        "number" => match (have.as_f64(), want.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= f64::EPSILON * a.abs().max(1.0),
            (a, b) => a.is_none() && b.is_none(),
        },
        "select" | "status" => {
            if want.is_null() {
                have.is_null()
            } else if let Some(name) = want.get("name") {
                have.get("name") == Some(name)
            } else {
                have.get("id") == Some(want.get("id")?)
            }
        }
        "multi_select" => {
            let key = if want.as_array()?.iter().all(|o| o.get("name").is_some()) {
                "name"
            } else {
                "id"
            };
            names(have, key)? == names(want, key)?
        }
        "relation" | "people" => names(have, "id")? == names(want, "id")?,
        "date" => {
            if want.is_null() {
                have.is_null()
            } else {
                have.get("start") == want.get("start")
                    && have.get("end").unwrap_or(&Value::Null)
                        == want.get("end").unwrap_or(&Value::Null)
            }
        }
        // checkbox, url, email, phone_number: the value itself.
        _ => have == want,
    })
}

/// What is needed to send a request again, or a lookup in its name.
#[derive(Debug, Clone)]
struct Sent {
    parts: Parts,
    body: BufferedBody,
}

impl Sent {
    fn of(req: &Request<BufferedBody>) -> Self {
        let mut builder = Request::builder()
            .method(req.method().clone())
            .uri(req.uri().clone())
            .version(req.version());
        if let Some(headers) = builder.headers_mut() {
            headers.clone_from(req.headers());
        }
        let (mut parts, ()) = builder
            .body(())
            .unwrap_or_else(|_| Request::new(()))
            .into_parts();
        parts.extensions = req.extensions().clone();
        Self {
            parts,
            body: req.body().clone(),
        }
    }

    fn request(&self) -> Request<BufferedBody> {
        Request::from_parts(self.parts.clone(), self.body.clone())
    }

    /// A read of `route` (under the same origin and mount prefix), with the write's
    /// credentials and headers.
    fn read(
        &self,
        method: Method,
        route: &str,
        body: Option<&Value>,
    ) -> Option<Request<BufferedBody>> {
        let uri = &self.parts.uri;
        let path = uri.path();
        let prefix = &path[..path.find("/v1/")?];
        let mut target = String::new();
        if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
            target.push_str(scheme);
            target.push_str("://");
            target.push_str(authority.as_str());
        }
        target.push_str(prefix);
        target.push_str("/v1/");
        target.push_str(route);
        let uri: Uri = target.parse().ok()?;
        let mut parts = self.parts.clone();
        parts.method = method;
        parts.uri = uri;
        parts.headers.remove(header::TRANSFER_ENCODING);
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = match body {
            Some(body) => {
                let bytes = serde_json::to_vec(body).ok()?;
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                BufferedBody::from(bytes)
            }
            None => {
                parts.headers.remove(header::CONTENT_TYPE);
                BufferedBody::empty()
            }
        };
        Some(Request::from_parts(parts, body))
    }

    /// How long settling the write may take: as long as it may wait for an open circuit
    /// ([`CircuitWait`](bulwark_breaker::CircuitWait), set by the preset), at least
    /// [`MIN_SETTLE`].
    fn budget(&self) -> Duration {
        self.parts
            .extensions
            .get::<bulwark_breaker::CircuitWait>()
            .map_or(crate::defaults::WRITE_MAX_WAIT, |wait| wait.0)
            .max(MIN_SETTLE)
    }

    fn describe(&self) -> (String, String) {
        (
            self.parts.method.to_string(),
            self.parts.uri.path().to_owned(),
        )
    }
}

/// Whether a result leaves open that the write was applied.
fn ambiguous(result: &Result<Res, BoxError>) -> bool {
    matches!(
        NotionClassifier.classify_result(result),
        Class::Transient { .. }
    )
}

/// What a lookup or read-back showed.
enum Seen {
    /// Applied: the page, and the request id of the answer that showed it.
    Applied(Value, Option<HeaderValue>),
    /// Certainly not applied.
    Absent,
    /// Could not tell, and why.
    Unknown(String),
}

async fn settle<S>(first: S::Future, inner: S, copy: Sent, write: Write) -> Result<Res, BoxError>
where
    S: Service<Request<BufferedBody>, Response = Res, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut result = first.await;
    let mut resends = 0;
    let mut deadline = None;
    loop {
        if !ambiguous(&result) {
            return if resends > 0 {
                Ok(mark(result?, Reconciled::Resent))
            } else {
                result
            };
        }
        if matches!(write, Write::Other) {
            return maybe_applied(result, &copy, None);
        }
        // Settling takes at most as long as the write may wait for an open circuit.
        let deadline = *deadline.get_or_insert_with(|| Instant::now().checked_add(copy.budget()));
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            let why = format!("gave up settling it after {:?}", copy.budget());
            return maybe_applied(result, &copy, Some(why));
        }
        let svc = inner.clone();
        let look = async {
            match &write {
                Write::Create(lookup) => find_created(svc, &copy, lookup).await,
                Write::PageUpdate { page, expected } => read_back(svc, &copy, page, expected).await,
                Write::Other => Seen::Unknown(String::new()),
            }
        };
        let seen = match left {
            None => look.await,
            Some(left) => tokio::time::timeout(left, look).await.unwrap_or_else(|_| {
                Seen::Unknown(format!("the lookup took longer than {:?}", copy.budget()))
            }),
        };
        match seen {
            Seen::Applied(page, request_id) => {
                let how = match write {
                    Write::Create(_) => Reconciled::Found,
                    _ => Reconciled::Verified,
                };
                tracing::info!(
                    target: "bulwark_notion",
                    path = copy.parts.uri.path(),
                    reconciled = how.as_str(),
                    "bulwark: the ambiguous write was applied; answered from the lookup"
                );
                return Ok(answer(&page, request_id, how));
            }
            Seen::Unknown(why) => return maybe_applied(result, &copy, Some(why)),
            Seen::Absent
                if resends == MAX_RESENDS || deadline.is_some_and(|d| Instant::now() >= d) =>
            {
                return match result {
                    Ok(res) => Ok(mark(res, Reconciled::NotApplied)),
                    Err(err) => Err(err),
                };
            }
            Seen::Absent => {
                resends += 1;
                tracing::debug!(
                    target: "bulwark_notion",
                    path = copy.parts.uri.path(),
                    resends,
                    "bulwark: the ambiguous write was not applied; sending it again"
                );
                result = inner.clone().oneshot(copy.request()).await;
            }
        }
    }
}

/// Sends a lookup `req` and reads its JSON answer.
async fn fetch<S>(
    inner: S,
    req: Option<Request<BufferedBody>>,
) -> Result<(Value, Option<HeaderValue>), String>
where
    S: Service<Request<BufferedBody>, Response = Res, Error = BoxError> + Clone,
{
    let req = req.ok_or_else(|| "the write's URL cannot be turned into a lookup".to_owned())?;
    let path = req.uri().path().to_owned();
    match inner.oneshot(req).await {
        Err(err) => Err(format!("{path}: {err}")),
        Ok(res) if !res.status().is_success() => {
            Err(format!("{path} answered {}", res.status().as_u16()))
        }
        Ok(res) => {
            let request_id = res
                .headers()
                .get(crate::headers::REQUEST_ID_HEADER)
                .cloned();
            serde_json::from_slice::<Value>(res.body().as_ref())
                .map(|json| (json, request_id))
                .map_err(|_| format!("{path} answered something that is not JSON"))
        }
    }
}

/// Queries the create's parent for the page it would have made.
async fn find_created<S>(inner: S, copy: &Sent, lookup: &Lookup) -> Seen
where
    S: Service<Request<BufferedBody>, Response = Res, Error = BoxError> + Clone,
{
    let data_source = match &lookup.parent {
        Parent::DataSource(id) => id.clone(),
        Parent::Database(id) if uses_databases_query(copy) => {
            let req = copy.read(
                Method::POST,
                &format!("databases/{id}/query"),
                Some(&lookup.filter),
            );
            return found(fetch(inner.clone(), req).await);
        }
        Parent::Database(id) => {
            let req = copy.read(Method::GET, &format!("databases/{id}"), None);
            match fetch(inner.clone(), req).await {
                Err(why) => return Seen::Unknown(why),
                Ok((db, _)) => match db.get("data_sources").and_then(Value::as_array) {
                    Some(sources) if sources.len() == 1 => {
                        match sources[0].get("id").and_then(Value::as_str) {
                            Some(id) => id.to_owned(),
                            None => {
                                return Seen::Unknown(
                                    "the database lists a data source without an id".to_owned(),
                                )
                            }
                        }
                    }
                    _ => {
                        return Seen::Unknown(
                            "the parent database does not have exactly one data source".to_owned(),
                        )
                    }
                },
            }
        }
    };
    let req = copy.read(
        Method::POST,
        &format!("data_sources/{data_source}/query"),
        Some(&lookup.filter),
    );
    found(fetch(inner.clone(), req).await)
}

/// Whether the write speaks a `Notion-Version` before data sources (`databases/{id}/query`).
fn uses_databases_query(copy: &Sent) -> bool {
    copy.parts
        .headers
        .get(crate::headers::NOTION_VERSION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v < crate::defaults::NOTION_VERSION)
}

fn found(answer: Result<(Value, Option<HeaderValue>), String>) -> Seen {
    match answer {
        Err(why) => Seen::Unknown(why),
        Ok((json, request_id)) => match json.get("results").and_then(Value::as_array) {
            None => Seen::Unknown("the lookup's answer has no results".to_owned()),
            Some(results) => match results.first() {
                Some(page) => Seen::Applied(page.clone(), request_id),
                None => Seen::Absent,
            },
        },
    }
}

/// Reads the page back and compares it with what the update set.
async fn read_back<S>(inner: S, copy: &Sent, page: &str, expected: &Map<String, Value>) -> Seen
where
    S: Service<Request<BufferedBody>, Response = Res, Error = BoxError> + Clone,
{
    let req = copy.read(Method::GET, &format!("pages/{page}"), None);
    match fetch(inner.clone(), req).await {
        Err(why) => Seen::Unknown(why),
        Ok((json, request_id)) => match update_applied(&json, expected) {
            Some(true) => Seen::Applied(json, request_id),
            Some(false) => Seen::Absent,
            None => {
                Seen::Unknown("the page read back cannot be compared with the update".to_owned())
            }
        },
    }
}

/// The answer for a write found applied: `page` as a 200.
fn answer(page: &Value, request_id: Option<HeaderValue>, how: Reconciled) -> Res {
    let body = serde_json::to_vec(page).unwrap_or_default();
    let mut res = Response::new(BufferedBody::from(body));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(id) = request_id {
        headers.insert(crate::headers::REQUEST_ID_HEADER, id);
    }
    mark(res, how)
}

fn mark(mut res: Res, how: Reconciled) -> Res {
    res.headers_mut()
        .insert(RECONCILED_HEADER, HeaderValue::from_static(how.as_str()));
    res.extensions_mut().insert(how);
    res
}

/// The failure, marked as possibly applied: an answer gets the mark, an error is wrapped.
fn maybe_applied(
    result: Result<Res, BoxError>,
    copy: &Sent,
    why: Option<String>,
) -> Result<Res, BoxError> {
    match result {
        Ok(res) => {
            if let Some(why) = why {
                tracing::warn!(
                    target: "bulwark_notion",
                    path = copy.parts.uri.path(),
                    why,
                    "bulwark: cannot tell whether the write was applied"
                );
            }
            Ok(mark(res, Reconciled::MayHaveBeenApplied))
        }
        Err(err) => {
            let (method, path) = copy.describe();
            Err(Box::new(MaybeApplied::new(method, path, err, why)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, path: &str, body: Value) -> Request<BufferedBody> {
        Request::builder()
            .method(method)
            .uri(format!("http://notion.test{path}"))
            .header("authorization", "Bearer t")
            .body(BufferedBody::from(body.to_string()))
            .unwrap()
    }

    fn config(dedupe: Option<&str>) -> ReconcileConfig {
        ReconcileConfig {
            dedupe_by: dedupe.map(Arc::from),
            page_updates: true,
        }
    }

    #[test]
    fn writes_are_told_apart_from_reads() {
        let cfg = config(Some("External ID"));
        assert!(Write::of(&req(Method::GET, "/v1/pages/p", json!({})), &cfg).is_none());
        assert!(Write::of(&req(Method::POST, "/v1/search", json!({})), &cfg).is_none());
        let create = json!({
            "parent": {"data_source_id": "ds_1"},
            "properties": {"External ID": {"rich_text": [{"text": {"content": "x-1"}}]}}
        });
        let Some(Write::Create(lookup)) = Write::of(&req(Method::POST, "/v1/pages", create), &cfg)
        else {
            panic!("a create with the property is deduplicated");
        };
        assert_eq!(
            lookup.filter["filter"],
            json!({"property": "External ID", "rich_text": {"equals": "x-1"}})
        );
        // Without the property, or without the option: marked only.
        let bare = json!({"parent": {"data_source_id": "ds_1"}, "properties": {}});
        assert!(matches!(
            Write::of(&req(Method::POST, "/v1/pages", bare.clone()), &cfg),
            Some(Write::Other)
        ));
        assert!(matches!(
            Write::of(&req(Method::POST, "/v1/pages", bare), &config(None)),
            Some(Write::Other)
        ));
        let update = json!({"properties": {"Name": {"title": [{"text": {"content": "a"}}]}}});
        assert!(matches!(
            Write::of(&req(Method::PATCH, "/v1/pages/p1", update.clone()), &cfg),
            Some(Write::PageUpdate { .. })
        ));
        // An icon cannot be compared: marked only.
        let icon = json!({"icon": {"emoji": "🚀"}});
        assert!(matches!(
            Write::of(&req(Method::PATCH, "/v1/pages/p1", icon), &cfg),
            Some(Write::Other)
        ));
        assert!(matches!(
            Write::of(&req(Method::PATCH, "/v1/blocks/b/children", update), &cfg),
            Some(Write::Other)
        ));
    }

    #[test]
    fn filters_follow_the_property_type() {
        let cond = |v: Value| property_condition(&v);
        assert_eq!(
            cond(json!({"title": [{"text": {"content": "a"}}, {"plain_text": "b"}]})),
            Some(("title", json!("ab")))
        );
        assert_eq!(cond(json!({"number": 7})), Some(("number", json!(7))));
        assert_eq!(
            cond(json!({"type": "select", "select": {"name": "A"}})),
            Some(("select", json!("A")))
        );
        assert_eq!(
            cond(json!({"url": "https://x"})),
            Some(("url", json!("https://x")))
        );
        assert_eq!(cond(json!({"rich_text": []})), None);
        assert_eq!(cond(json!({"checkbox": true})), None);
        assert_eq!(cond(json!({"files": []})), None);
        assert_eq!(cond(json!("x")), None);
    }

    #[test]
    fn updates_compare_with_the_page_read_back() {
        let page = json!({
            "in_trash": false,
            "properties": {
                "Name": {"id": "title", "type": "title", "title": [{"plain_text": "new", "text": {"content": "new"}}]},
                "N": {"id": "abcd", "type": "number", "number": 3},
                "S": {"id": "s", "type": "select", "select": {"id": "o1", "name": "A"}},
                "M": {"id": "m", "type": "multi_select", "multi_select": [{"name": "y"}, {"name": "x"}]},
                "D": {"id": "d", "type": "date", "date": {"start": "2024-01-01", "end": null}},
                "C": {"id": "c", "type": "checkbox", "checkbox": true},
            }
        });
        let expect = |body: Value| expected_update(&body).unwrap();
        let applied = expect(json!({"properties": {
            "Name": {"title": [{"text": {"content": "new"}}]},
            "abcd": {"number": 3},
            "S": {"select": {"name": "A"}},
            "M": {"multi_select": [{"name": "x"}, {"name": "y"}]},
            "D": {"date": {"start": "2024-01-01"}},
            "C": {"checkbox": true},
        }, "archived": false}));
        assert_eq!(update_applied(&page, &applied), Some(true));
        let old =
            expect(json!({"properties": {"Name": {"title": [{"text": {"content": "old"}}]}}}));
        assert_eq!(update_applied(&page, &old), Some(false));
        let trashed = expect(json!({"in_trash": true}));
        assert_eq!(update_applied(&page, &trashed), Some(false));
        let missing = expect(json!({"properties": {"Other": {"number": 1}}}));
        assert_eq!(update_applied(&page, &missing), Some(false));
        assert!(expected_update(&json!({"properties": {"F": {"files": []}}})).is_none());
        assert!(expected_update(&json!({"cover": null})).is_none());
    }

    #[test]
    fn lookups_keep_the_origin_the_mount_and_the_credentials() {
        let mut write = Request::post("http://proxy.test/notion/v1/pages")
            .header("authorization", "Bearer t")
            .header("content-length", "99")
            .body(BufferedBody::from("{}"))
            .unwrap();
        write.extensions_mut().insert(7_u8);
        let copy = Sent::of(&write);
        let read = copy
            .read(
                Method::POST,
                "data_sources/ds_1/query",
                Some(&json!({"a": 1})),
            )
            .unwrap();
        assert_eq!(
            read.uri(),
            "http://proxy.test/notion/v1/data_sources/ds_1/query"
        );
        assert_eq!(read.headers()["authorization"], "Bearer t");
        assert_eq!(read.headers()["content-length"], "7");
        assert_eq!(read.extensions().get::<u8>(), Some(&7));
        let get = copy.read(Method::GET, "pages/p", None).unwrap();
        assert!(get.body().is_empty());
        assert!(get.headers().get("content-length").is_none());
        assert_eq!(copy.request().uri(), "http://proxy.test/notion/v1/pages");
    }
}
