//! [`TokenBucket`], the service made by [`TokenBucketLayer`](crate::TokenBucketLayer).

use std::{
    fmt,
    hash::Hash,
    sync::{atomic::Ordering, Arc},
    task::{Context, Poll},
    time::Duration,
};

use bulwark_http::{BoxError, Classify, RateLimited};
use http::{Request, Response};
use tower_service::Service;

use crate::{
    future::{admit_locally, Local, ResponseFuture},
    key::{KeyExtractor, Unkeyed},
    shared::{Hub, Mode, Shared},
    stats::BucketStats,
};

/// Rate-limits calls to `inner` (see the [crate docs](crate)).
pub struct TokenBucket<S, C, E = Unkeyed, K = ()> {
    inner: S,
    shared: Arc<Hub<K>>,
    classify: C,
    extractor: E,
}

impl<S, C, E, K> TokenBucket<S, C, E, K> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Hub<K>>, classify: C, extractor: E) -> Self {
        Self {
            inner,
            shared,
            classify,
            extractor,
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
}

impl<S, C, E, K: Hash + Eq + Send + Sync + 'static> TokenBucket<S, C, E, K> {
    /// Counters shared with the layer and its other services.
    #[must_use]
    pub fn stats(&self) -> BucketStats {
        self.shared.stats(self.shared.keys())
    }
}

impl<S: Clone, C: Clone, E: Clone, K> Clone for TokenBucket<S, C, E, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            classify: self.classify.clone(),
            extractor: self.extractor.clone(),
        }
    }
}

impl<S: fmt::Debug, C, E, K> fmt::Debug for TokenBucket<S, C, E, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBucket")
            .field("inner", &self.inner)
            .field("bucket", &self.shared)
            .finish_non_exhaustive()
    }
}

impl<S, C, E, K, B, ResB> Service<Request<B>> for TokenBucket<S, C, E, K>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    C: Classify,
    E: KeyExtractor<B, Key = K>,
    K: Hash + Eq + Send + Sync + 'static,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, C, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared: &Shared<K> = &self.shared;
        let gcra = match shared.mode {
            Mode::Limited(gcra) => gcra,
            Mode::Unlimited => {
                shared.counters().admitted.fetch_add(1, Ordering::Relaxed);
                let future = self.inner.call(req);
                return ResponseFuture::calling(
                    future,
                    None,
                    self.shared.lane(),
                    self.classify.clone(),
                );
            }
            Mode::Closed => {
                shared.counters().rejected.fetch_add(1, Ordering::Relaxed);
                let rejection = RateLimited::new(Duration::MAX).with_policy(shared.policy());
                return ResponseFuture::rejected(
                    rejection,
                    self.shared.lane(),
                    self.classify.clone(),
                );
            }
        };
        let key = self.extractor.extract(&req);
        #[cfg(feature = "redis")]
        if let Some(redis) = &shared.redis {
            if redis.store.should_ask() {
                let name = redis.bucket_name(key.as_ref());
                let future = redis
                    .store
                    .acquire(Arc::clone(&name), &gcra, shared.max_wait);
                // The readied service goes into the future; a clone stays behind.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                return ResponseFuture::acquiring(
                    future,
                    name,
                    req,
                    inner,
                    shared.bucket(key),
                    self.shared.lane(),
                    self.classify.clone(),
                );
            }
            // Redis is down and not due for another try.
            shared.counters().fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        let bucket = shared.bucket(key);
        let now = shared.now();
        match admit_locally(shared, &bucket, &gcra, now) {
            Local::Go => {
                shared.counters().admitted.fetch_add(1, Ordering::Relaxed);
                let future = self.inner.call(req);
                ResponseFuture::calling(
                    future,
                    Some(bucket),
                    self.shared.lane(),
                    self.classify.clone(),
                )
            }
            Local::Refuse(rejection) => {
                ResponseFuture::rejected(rejection, self.shared.lane(), self.classify.clone())
            }
            Local::Queue(ticket) => {
                // The readied service goes into the future; a clone stays behind.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::waiting(
                    ticket,
                    now.saturating_add(shared.max_wait),
                    req,
                    inner,
                    self.shared.lane(),
                    self.classify.clone(),
                )
            }
        }
    }
}
