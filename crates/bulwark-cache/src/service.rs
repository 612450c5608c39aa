//! [`StaleCache`], the service made by [`StaleCacheLayer`](crate::StaleCacheLayer).
//!
//! The fresh-hit path answers from memory with a ready future (no allocation but the
//! response, no clone of the inner service). A miss is a boxed `async` block: it waits on the
//! network anyway, and its steps (coalescing, the call, reading the body, storing, falling
//! back to a stale copy) read far better as one `async` function than as a hand-written state
//! machine.
//!
//! Readiness (see the crate docs, `# Readiness`): `poll_ready` is always ready; a request that
//! goes upstream readies its own clone of the inner service right before the call.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bulwark_http::{BoxError, Class, Classify};
use bytes::{Bytes, BytesMut};
use http::{header, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::{sync::watch, time::Instant};
use tower_service::Service;

use crate::{
    body::CacheBody,
    config::Config,
    key::{self, CacheKey, KeyBody},
    metrics::StaleReason,
    policy::{self, Directives},
    shared::{self, SharedKey},
    stats::{CacheStats, Counters},
    status::{values, CacheStatus, CACHE_STATUS},
    store::{Entry, Leader, Outcome, Store},
};

/// Serves the last good response when the upstream fails (see the [crate docs](crate)).
///
/// Always ready: `poll_ready` never waits for the inner service. A request that goes upstream
/// waits for a clone of the inner service to be ready in its response future, so requests
/// answered from memory and requests waiting for an identical one in flight hold none of the
/// inner service's capacity (see [Readiness](crate#readiness)). An error from the inner
/// service's readiness is handled like an error from its call: classified, and answered with a
/// stale copy when it is a failure and a copy is young enough.
pub struct StaleCache<S, C, B> {
    inner: S,
    config: Arc<Config<B>>,
    store: Arc<Store>,
    classify: C,
}

impl<S, C, B> StaleCache<S, C, B> {
    pub(crate) fn from_parts(
        inner: S,
        config: Arc<Config<B>>,
        store: Arc<Store>,
        classify: C,
    ) -> Self {
        Self {
            inner,
            config,
            store,
            classify,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
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

    /// Counters shared with the layer and its other services.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.store.stats()
    }
}

impl<S: Clone, C: Clone, B> Clone for StaleCache<S, C, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
            store: Arc::clone(&self.store),
            classify: self.classify.clone(),
        }
    }
}

impl<S: fmt::Debug, C, B> fmt::Debug for StaleCache<S, C, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaleCache")
            .field("inner", &self.inner)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

type Boxed<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

/// Response future of [`StaleCache`].
pub struct ResponseFuture<ResB> {
    kind: Kind<ResB>,
}

enum Kind<ResB> {
    Ready(Option<Response<CacheBody<ResB>>>),
    Boxed(Boxed<Response<CacheBody<ResB>>>),
}

impl<ResB> fmt::Debug for ResponseFuture<ResB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

// Nothing in it is ever pinned: the ready response is moved out, the boxed future is pinned
// on the heap.
impl<ResB> Unpin for ResponseFuture<ResB> {}

impl<ResB> Future for ResponseFuture<ResB> {
    type Output = Result<Response<CacheBody<ResB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().kind {
            Kind::Ready(res) => {
                Poll::Ready(res.take().ok_or_else(|| "polled after completion".into()))
            }
            Kind::Boxed(fut) => fut.as_mut().poll(cx),
        }
    }
}

fn is_unsafe(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

impl<S, C, B, ResB> Service<Request<B>> for StaleCache<S, C, B>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    C: Classify,
    B: KeyBody + Send + 'static,
    ResB: Body<Data = Bytes> + Send + Unpin + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<CacheBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<ResB>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The inner service's readiness is taken on a clone, only by a request about to call it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let config = &self.config;
        let cacheable = match &config.cacheable {
            Some(predicate) => predicate(req.method(), req.uri()),
            None => matches!(*req.method(), Method::GET | Method::HEAD),
        };
        let body_keyable =
            matches!(*req.method(), Method::GET | Method::HEAD) || req.body().key_bytes().is_some();
        let key_text = if cacheable && body_keyable {
            match &config.key {
                Some(f) => f(&req),
                None => Some(key::target(&req)),
            }
        } else {
            None
        };
        let Some(key_text) = key_text else {
            self.store.metrics.bypass();
            return passthrough(self.inner.clone(), req, Arc::clone(&self.store));
        };
        let key = key::build(&req, key_text, &config.vary, &self.store.hasher);
        let now = Instant::now();
        let mut had_copy = false;
        if let Some(entry) = self.store.cache.get(&key) {
            let age = entry.age(now);
            let l = entry.lifetimes;
            if age < l.fresh {
                Counters::bump(&self.store.counters.hits);
                self.store.metrics.fresh();
                tracing::debug!(target: "bulwark_cache", age_s = age.as_secs(), "fresh hit");
                return ready(entry.respond_fresh(age, now));
            }
            if age < l.served_at_once() {
                Counters::bump(&self.store.counters.stale_served);
                self.store.metrics.stale(StaleReason::Revalidating, age);
                tracing::debug!(target: "bulwark_cache", age_s = age.as_secs(), "stale while revalidating");
                let shared = shared::key(&self.store, &req, &key, &config.vary);
                revalidate(
                    self.inner.clone(),
                    req,
                    key,
                    shared,
                    Arc::clone(config),
                    Arc::clone(&self.store),
                    self.classify.clone(),
                );
                let cache_status = values::hit(l.fresh, age, false);
                return ready(entry.respond(CacheStatus::Stale { age }, cache_status, now));
            }
            had_copy = true;
        }
        Counters::bump(&self.store.counters.misses);
        self.store.metrics.miss();
        let shared = shared::key(&self.store, &req, &key, &config.vary);
        let fut = miss(
            self.inner.clone(),
            req,
            key,
            had_copy,
            shared,
            Arc::clone(config),
            Arc::clone(&self.store),
            self.classify.clone(),
        );
        ResponseFuture {
            kind: Kind::Boxed(Box::pin(fut)),
        }
    }
}

fn ready<ResB>(res: Response<CacheBody<ResB>>) -> ResponseFuture<ResB> {
    ResponseFuture {
        kind: Kind::Ready(Some(res)),
    }
}

/// Waits for `inner` (a clone, never readied) to be ready, then calls it.
async fn ready_and_call<S, R>(inner: &mut S, req: R) -> Result<S::Response, BoxError>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    std::future::poll_fn(|cx| inner.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    inner.call(req).await.map_err(Into::into)
}

/// Not cached: sent as is; a successful unsafe request invalidates cached reads of its path.
fn passthrough<S, B, ResB>(mut inner: S, req: Request<B>, store: Arc<Store>) -> ResponseFuture<ResB>
where
    S: Service<Request<B>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
    ResB: Send + 'static,
{
    let invalidate = is_unsafe(req.method()).then(|| req.uri().path().to_owned());
    ResponseFuture {
        kind: Kind::Boxed(Box::pin(async move {
            let res = ready_and_call(&mut inner, req).await?;
            if let Some(path) = invalidate.filter(|_| res.status().is_success()) {
                tracing::debug!(target: "bulwark_cache", path, "invalidated by a write");
                shared::invalidate_path(&store, &path).await;
                store.cache.retain(|k: &CacheKey, _| {
                    let keep = k.path() != path;
                    if !keep {
                        Counters::bump(&store.counters.evictions);
                    }
                    keep
                });
            }
            Ok(res.map(|b| CacheBody::live(None, b)))
        })),
    }
}

/// Why a stored copy answers instead of the upstream.
#[derive(Debug, Clone, Copy)]
enum Fallback {
    /// The upstream was asked and failed (with this status, if it answered).
    Failed(Option<StatusCode>),
    /// The request was refused before it reached the upstream (an open breaker, a bucket in
    /// reject mode): nothing was forwarded.
    Refused,
    /// An identical request in flight, which this one waited for, failed.
    Collapsed,
}

impl Fallback {
    /// The fallback for a failed attempt of class `class` (a response with `status`, or an
    /// error).
    fn of(class: Class, status: Option<StatusCode>) -> Self {
        match class {
            Class::Rejected { .. } => Self::Refused,
            _ => Self::Failed(status),
        }
    }
}

/// Serves a stale copy on failure, if one is young enough.
fn stale_copy<ResB>(
    store: &Store,
    key: &CacheKey,
    why: Fallback,
) -> Option<Response<CacheBody<ResB>>> {
    let entry = store.cache.get(key)?;
    let now = Instant::now();
    let age = entry.age(now);
    let l = entry.lifetimes;
    if age >= l.served_on_error() {
        return None;
    }
    Counters::bump(&store.counters.stale_served);
    let cache_status = match why {
        Fallback::Failed(status) => values::stale_after_failure(status),
        Fallback::Refused => values::hit(l.fresh, age, false),
        Fallback::Collapsed => values::STALE_COLLAPSED,
    };
    let reason = match why {
        Fallback::Failed(_) => StaleReason::UpstreamFailed,
        Fallback::Refused => StaleReason::RefusedLocally,
        Fallback::Collapsed => StaleReason::CoalescedFailed,
    };
    store.metrics.stale(reason, age);
    tracing::info!(target: "bulwark_cache", age_s = age.as_secs(), age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX), reason = reason.as_str(), "served a stale copy");
    Some(entry.respond(CacheStatus::Stale { age }, cache_status, now))
}

enum Role {
    Lead(Leader),
    Follow(watch::Receiver<Outcome>),
}

#[allow(clippy::too_many_arguments)] // one call site each in `call` and `revalidate`
async fn miss<S, C, B, ResB>(
    mut inner: S,
    req: Request<B>,
    key: CacheKey,
    had_copy: bool,
    shared: SharedKey,
    config: Arc<Config<B>>,
    store: Arc<Store>,
    classify: C,
) -> Result<Response<CacheBody<ResB>>, BoxError>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    C: Classify,
    ResB: Body<Data = Bytes> + Unpin,
    ResB::Error: Into<BoxError>,
{
    let mut leader = None;
    // Coalescing: one leader per key calls the upstream; the others wait for its outcome.
    // Bounded: each round either leads, or waits for a leader that then finishes or drops.
    if config.coalesce && config.coalesce_max_wait != Some(std::time::Duration::ZERO) {
        loop {
            let role = match store.lead_or_follow(&key) {
                Ok(leader) => Role::Lead(leader),
                Err(rx) => Role::Follow(rx),
            };
            match role {
                Role::Lead(l) => {
                    leader = Some(l);
                    break;
                }
                Role::Follow(mut rx) => {
                    tracing::debug!(target: "bulwark_cache", "following a coalesced request");
                    let settled = rx.wait_for(|o| *o != Outcome::Pending);
                    match config.coalesce_max_wait {
                        None => drop(settled.await),
                        Some(wait) => {
                            if tokio::time::timeout(wait, settled).await.is_err() {
                                break; // the leader is slow: go to the upstream alone
                            }
                        }
                    }
                    let outcome = *rx.borrow();
                    match outcome {
                        Outcome::Stored(at) => {
                            if let Some(entry) = store.cache.get(&key).filter(|e| e.stored_at >= at)
                            {
                                tracing::debug!(
                                    target: "bulwark_cache",
                                    "answered by the coalesced request"
                                );
                                return Ok(entry.respond(
                                    CacheStatus::Live,
                                    values::COLLAPSED,
                                    Instant::now(),
                                ));
                            }
                        }
                        Outcome::NotStored => {
                            if let Some(stale) = stale_copy(&store, &key, Fallback::Collapsed) {
                                return Ok(stale);
                            }
                            break; // go to the upstream alone
                        }
                        Outcome::Pending => {} // the leader was dropped: try to lead
                    }
                }
            }
        }
    }
    let finish = |leader: Option<Leader>, outcome| {
        if let Some(l) = leader {
            l.finish(outcome);
        }
    };
    // The shared level: a fresh copy there answers; any copy there is kept in memory, where
    // a failure below finds it.
    if let Some(entry) = shared::load(&store, &shared).await {
        let now = Instant::now();
        let age = entry.age(now);
        let fresh = age < entry.lifetimes.fresh;
        let entry = Arc::new(entry);
        if store.cache.get(&key).is_none_or(|mine| mine.age(now) > age) {
            store.insert(key.clone(), Arc::clone(&entry));
        }
        if fresh {
            Counters::bump(&store.counters.hits);
            tracing::debug!(target: "bulwark_cache", age_s = age.as_secs(), "fresh hit from Redis");
            finish(leader, Outcome::Stored(entry.stored_at));
            let cache_status = values::hit(entry.lifetimes.fresh, age, true);
            return Ok(entry.respond(CacheStatus::Fresh { age }, cache_status, now));
        }
    }
    // Only now, about to call, take the inner service's readiness (on this request's clone).
    let result = ready_and_call(&mut inner, req).await;
    let class = match &result {
        Ok(res) => classify.classify_response(res),
        Err(err) => classify.classify_error(&**err),
    };
    match result {
        Ok(res) if res.status().is_success() => {
            let directives = Directives::parse(res.headers());
            let declared = res
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if directives.no_store
                || res.headers().contains_key(header::SET_COOKIE)
                || declared.is_some_and(|n| n > config.max_body_bytes as u64)
            {
                finish(leader, Outcome::NotStored);
                return Ok(live(res.map(|b| CacheBody::live(None, b)), had_copy));
            }
            let (parts, mut body) = res.into_parts();
            // The first data frame is kept as it is (most bodies are one frame); only a
            // second one starts a copy.
            let mut first: Option<Bytes> = None;
            let mut buf = BytesMut::new();
            loop {
                match body.frame().await {
                    None => break,
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            match first.take() {
                                None if buf.is_empty() => first = Some(data),
                                Some(earlier) => {
                                    buf.extend_from_slice(&earlier);
                                    buf.extend_from_slice(&data);
                                }
                                None => buf.extend_from_slice(&data),
                            }
                        }
                        let read = first.as_ref().map_or(buf.len(), Bytes::len);
                        if read > config.max_body_bytes {
                            finish(leader, Outcome::NotStored);
                            let prefix = first.take().unwrap_or_else(|| buf.split().freeze());
                            let res =
                                Response::from_parts(parts, CacheBody::live(Some(prefix), body));
                            return Ok(live(res, had_copy));
                        }
                    }
                    Some(Err(err)) => {
                        // The body broke mid-way: a failure like any other.
                        finish(leader, Outcome::NotStored);
                        return match stale_copy(&store, &key, Fallback::Failed(None)) {
                            Some(stale) => Ok(stale),
                            None => Err(err.into()),
                        };
                    }
                }
            }
            let body = first.unwrap_or_else(|| buf.freeze());
            let mut headers = parts.headers.clone();
            headers.remove(header::TRANSFER_ENCODING);
            headers.remove(header::CONNECTION);
            let entry = Entry {
                status: parts.status,
                initial_age: policy::upstream_age(&headers),
                headers,
                body: body.clone(),
                stored_at: Instant::now(),
                lifetimes: policy::lifetimes(&directives, config.defaults),
                hit_head: crate::store::HitHead::default(),
            };
            let entry = Arc::new(entry);
            let stored_at = entry.stored_at;
            store.insert(key, Arc::clone(&entry));
            Counters::bump(&store.counters.stores);
            store.metrics.stored();
            finish(leader, Outcome::Stored(stored_at));
            shared::save(&store, &shared, &entry).await;
            let mut res = Response::from_parts(parts, CacheBody::buffered(body));
            res.headers_mut()
                .append(CACHE_STATUS, values::forwarded(had_copy, true));
            res.extensions_mut().insert(CacheStatus::Live);
            Ok(res)
        }
        Ok(res) => {
            finish(leader, Outcome::NotStored);
            let status = res.status();
            if matches!(status.as_u16(), 401 | 403 | 404 | 410) {
                // A revoked token or an unshared page stops getting data.
                if store.cache.remove(&key).is_some() {
                    Counters::bump(&store.counters.evictions);
                }
                shared::delete(&store, &shared).await;
                tracing::debug!(target: "bulwark_cache", status = status.as_u16(), "evicted");
            } else if is_failure(class) {
                if let Some(stale) = stale_copy(&store, &key, Fallback::of(class, Some(status))) {
                    return Ok(stale);
                }
            }
            Ok(live(res.map(|b| CacheBody::live(None, b)), had_copy))
        }
        Err(err) => {
            finish(leader, Outcome::NotStored);
            if is_failure(class) {
                if let Some(stale) = stale_copy(&store, &key, Fallback::of(class, None)) {
                    return Ok(stale);
                }
            }
            Err(err)
        }
    }
}

/// A forwarded answer that was not stored: `Cache-Status` says so, after any upstream member.
fn live<B>(mut res: Response<B>, had_copy: bool) -> Response<B> {
    res.headers_mut()
        .append(CACHE_STATUS, values::forwarded(had_copy, false));
    res.extensions_mut().insert(CacheStatus::Live);
    res
}

fn is_failure(class: Class) -> bool {
    matches!(
        class,
        Class::Transient { .. }
            | Class::Unreachable
            | Class::Throttled { .. }
            | Class::Rejected { .. }
    )
}

/// Refreshes `key` in the background, unless a refresh (or any miss) is already in flight.
fn revalidate<S, C, B, ResB>(
    inner: S,
    req: Request<B>,
    key: CacheKey,
    shared: SharedKey,
    config: Arc<Config<B>>,
    store: Arc<Store>,
    classify: C,
) where
    S: Service<Request<B>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    C: Classify,
    B: Send + 'static,
    ResB: Body<Data = Bytes> + Send + Unpin + 'static,
    ResB::Error: Into<BoxError>,
{
    if store.in_flight(&key) {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    // `miss` takes the inner service's readiness itself, right before its call.
    handle.spawn(async move {
        let _ = miss(inner, req, key, true, shared, config, store, classify).await;
    });
}
