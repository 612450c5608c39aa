//! [`TokenBucket`], the service made by [`TokenBucketLayer`](crate::TokenBucketLayer).

use std::{
    fmt,
    hash::Hash,
    mem,
    sync::{atomic::Ordering, Arc},
    task::{Context, Poll},
    time::Duration,
};

use bulwark_http::{BoxError, Classify, QuotaExhausted, RateLimited};
use http::{Request, Response};
use tower_service::Service;

use crate::{
    future::{admit_locally, Local, Refusal, ResponseFuture, Token},
    key::{KeyExtractor, Unkeyed},
    shared::{BucketRef, Hub, Mode, Policy, Shared},
    stats::BucketStats,
};

/// Rate-limits calls to `inner` (see the [crate docs](crate)).
///
/// # Readiness
/// `poll_ready` drives the inner service to readiness, as tower services do, and a request
/// admitted at once by `call` uses that readiness directly. A request that must wait for its
/// token (or is refused) gives it back at once — the readied inner service is dropped and a
/// clone takes its place — and its response future readies a clone of its own only once the
/// token is granted. So nothing below (a `ConcurrencyLimit` permit, a `Buffer` slot) is held
/// while a request waits. In reject mode (`max_wait` zero) and for a zero rate, `poll_ready`
/// is ready at once even while the inner service is not, so a refusal never waits for it; a
/// request admitted then waits for the inner service in its future. See the
/// [crate docs](crate#readiness).
pub struct TokenBucket<S, C, E = Unkeyed, K = ()> {
    inner: S,
    /// `inner` was driven to readiness by `poll_ready` and not called since.
    ready: bool,
    shared: Arc<Hub<K>>,
    classify: C,
    extractor: E,
    policy: Policy,
}

impl<S, C, E, K> TokenBucket<S, C, E, K> {
    pub(crate) fn from_parts(
        inner: S,
        shared: Arc<Hub<K>>,
        classify: C,
        extractor: E,
        policy: Policy,
    ) -> Self {
        Self {
            inner,
            ready: false,
            shared,
            classify,
            extractor,
            policy,
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

    /// Whether a call can be decided without the inner service: then `poll_ready` does not
    /// wait for it.
    fn decides_without_inner(&self) -> bool {
        match self.shared.mode {
            Mode::Closed => true,
            Mode::Unlimited => false,
            Mode::Limited(_) => self.policy.max_wait == 0,
        }
    }
}

impl<S, C, E, K: Hash + Eq + Send + Sync + 'static> TokenBucket<S, C, E, K> {
    /// Counters shared with the layer and its other services.
    #[must_use]
    pub fn stats(&self) -> BucketStats {
        self.shared.stats(self.shared.keys_held())
    }
}

impl<S: Clone, C: Clone, E: Clone, K> Clone for TokenBucket<S, C, E, K> {
    fn clone(&self) -> Self {
        Self {
            // A clone of a readied service is not ready (tower's convention).
            inner: self.inner.clone(),
            ready: false,
            shared: Arc::clone(&self.shared),
            classify: self.classify.clone(),
            extractor: self.extractor.clone(),
            policy: self.policy,
        }
    }
}

impl<S: fmt::Debug, C, E, K> fmt::Debug for TokenBucket<S, C, E, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBucket")
            .field("inner", &self.inner)
            .field("ready", &self.ready)
            .field("bucket", &self.shared)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What `call` decided, before it touches the inner service.
enum Decision {
    /// Admitted now (at this time on the bucket's clock).
    Go(Option<BucketRef>, u64),
    Refuse(RateLimited),
    /// The upstream's quota is used up: refused at once.
    Exhausted(QuotaExhausted),
    /// A place in the queue, and the latest admission time.
    Queue(crate::store::Ticket, u64),
    /// Asking Redis.
    #[cfg(feature = "redis")]
    Ask {
        future: crate::redis_store::Pending<crate::redis_store::Answer>,
        name: Arc<str>,
        bucket: BucketRef,
    },
}

impl<S: Clone, C, E, K> TokenBucket<S, C, E, K> {
    /// Takes the inner service's readiness back, if `poll_ready` took it: the readied service
    /// is dropped (releasing whatever it held, a `ConcurrencyLimit` permit say) and a fresh
    /// clone takes its place.
    fn release(&mut self, ready: bool) {
        if ready {
            let fresh = self.inner.clone();
            drop(mem::replace(&mut self.inner, fresh));
        }
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
        if self.ready {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                self.ready = true;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
            // Fail fast: a refusal must not wait for the inner service. An admitted request
            // readies a clone in its future.
            Poll::Pending if self.decides_without_inner() => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let ready = mem::take(&mut self.ready);
        let decision = self.decide(&req);
        let lane = self.shared.lane();
        match decision {
            Decision::Go(bucket, admitted_at) if ready => {
                // The hot path: no clone, no allocation.
                self.shared
                    .counters()
                    .admitted
                    .fetch_add(1, Ordering::Relaxed);
                self.shared.metrics.admitted();
                let future = self.inner.call(req);
                ResponseFuture::calling(
                    future,
                    bucket,
                    lane,
                    self.classify.clone(),
                    self.policy,
                    admitted_at,
                )
            }
            // Admitted, but `poll_ready` returned early (reject mode) or was not called: the
            // future readies a clone.
            Decision::Go(bucket, _) => ResponseFuture::waiting(
                Token::Taken,
                u64::MAX,
                req,
                self.inner.clone(),
                bucket,
                lane,
                self.classify.clone(),
                self.policy,
            ),
            Decision::Refuse(rejection) => {
                self.release(ready);
                ResponseFuture::rejected(
                    Refusal::Limited(rejection),
                    lane,
                    self.classify.clone(),
                    self.policy,
                )
            }
            Decision::Exhausted(exhausted) => {
                self.release(ready);
                ResponseFuture::rejected(
                    Refusal::Exhausted(exhausted),
                    lane,
                    self.classify.clone(),
                    self.policy,
                )
            }
            Decision::Queue(ticket, deadline) => {
                let inner = self.inner.clone();
                self.release(ready);
                let bucket = BucketRef::Own(Arc::clone(ticket.bucket()));
                ResponseFuture::waiting(
                    Token::Queued(ticket),
                    deadline,
                    req,
                    inner,
                    Some(bucket),
                    lane,
                    self.classify.clone(),
                    self.policy,
                )
            }
            #[cfg(feature = "redis")]
            Decision::Ask {
                future,
                name,
                bucket,
            } => {
                // Waiting for Redis is waiting too: nothing readied is held meanwhile.
                let inner = self.inner.clone();
                self.release(ready);
                ResponseFuture::acquiring(
                    future,
                    name,
                    req,
                    inner,
                    bucket,
                    lane,
                    self.classify.clone(),
                    self.policy,
                )
            }
        }
    }
}

impl<S, C, E, K> TokenBucket<S, C, E, K>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    /// Asks the bucket about `req`.
    #[inline]
    fn decide<B>(&self, req: &Request<B>) -> Decision
    where
        E: KeyExtractor<B, Key = K>,
    {
        let shared: &Shared<K> = &self.shared;
        let gcra = match shared.mode {
            Mode::Limited(gcra) => gcra,
            Mode::Unlimited => return Decision::Go(None, 0),
            // A zero rate: "never", which a refusal says as one year (`MAX_RETRY_AFTER`).
            Mode::Closed => return Decision::Refuse(shared.reject(Duration::MAX)),
        };
        let key = self.extractor.extract(req);
        let max_wait = self.policy.max_wait;
        #[cfg(feature = "redis")]
        let redis_name = shared.redis.as_ref().and_then(|redis| {
            redis
                .store
                .should_ask()
                .then(|| redis.bucket_name(key.as_ref()))
        });
        let bucket = shared.bucket(key);
        let now = shared.now();
        // An upstream quota known to be used up: refused at once, before any token is taken.
        if let Some(refusal) = bucket
            .get(shared)
            .quota
            .refusal(now, self.policy.quota_recheck)
        {
            return Decision::Exhausted(shared.exhausted(refusal));
        }
        #[cfg(feature = "redis")]
        if let Some(redis) = &shared.redis {
            if let Some(name) = redis_name {
                let future = redis.store.acquire(Arc::clone(&name), &gcra, max_wait);
                return Decision::Ask {
                    future,
                    name,
                    bucket,
                };
            }
            // Redis is down and not due for another try.
            shared.counters().fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        match admit_locally(shared, &bucket, &gcra, now, max_wait) {
            Local::Go => Decision::Go(Some(bucket), now),
            Local::Refuse(rejection) => Decision::Refuse(rejection),
            Local::Queue(ticket) => Decision::Queue(ticket, now.saturating_add(max_wait)),
        }
    }
}
