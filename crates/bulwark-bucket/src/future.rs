//! [`ResponseFuture`] of [`TokenBucket`](crate::TokenBucket).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::atomic::Ordering,
    task::{ready, Context, Poll},
    time::Duration,
};

use bulwark_http::{
    ratelimit, BoxError, Class, Classify, QuotaExhausted, RateLimitInfo, RateLimited,
};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::{
    gcra::Gcra,
    quota::Crossing,
    remote::{self, Acquiring, Pausing, Remote},
    shared::{BucketRef, Lane, Mode, Policy, Shared},
    store::{LocalBucket, Queued, Ticket, Turn},
};
#[cfg(feature = "redis")]
use std::sync::Arc;

#[cfg(feature = "redis")]
use crate::{
    redis_store::{Answer, Pending},
    remote::{Asking, Exclusive, PausingUpstream, RemoteSlot},
};

pin_project! {
    /// Response future of [`TokenBucket`](crate::TokenBucket).
    ///
    /// Dropping it while it waits for its token takes it out of the bucket's queue, wherever
    /// it stands: the waiters behind it move up.
    ///
    /// A request that waited (or whose service was not ready when it was admitted) readies a
    /// clone of the inner service once its token is granted, then calls it: nothing below is
    /// held while it waits for the token.
    pub struct ResponseFuture<S, B, C, K>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
        bucket: Option<BucketRef>,
        // The Redis bucket the slot came from, if it did.
        remote: Remote,
        shared: Lane<K>,
        classify: C,
        policy: Policy,
        // When the request was admitted (the bucket's clock): only its answer may end a quota
        // lock set before then.
        admitted_at: u64,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Rejected { rejection: Option<Refusal> },
        // Asking Redis for a slot (only with a `RedisStore`).
        Acquiring { acquiring: Acquiring<S, B> },
        // Waiting for the token, then for a clone of the inner service to be ready. Boxed: the
        // sleep, the request and the service are hundreds of bytes, and every admitted call
        // would move them around with the future; waiting is the slow path anyway.
        Waiting { waiting: Pin<Box<Waiting<S, B>>> },
        Calling { #[pin] future: S::Future },
        // Writing an upstream pause to Redis (only with a `RedisStore`).
        Pausing { pausing: Pausing<S::Response> },
    }
}

pin_project! {
    #[project = WaitingProj]
    struct Waiting<S, B> {
        #[pin]
        sleep: Sleep,
        request: Option<Request<B>>,
        // A clone of the inner service, not readied until the token is granted.
        inner: Option<S>,
        token: Token,
        // The latest admission time (nanoseconds since the layer's creation): an upstream
        // pause that pushes the turn past it refuses the request instead.
        deadline: u64,
    }
}

/// Where a waiting request stands with its token.
#[derive(Debug)]
pub(crate) enum Token {
    /// A place in the local bucket's queue.
    Queued(Ticket),
    /// A slot Redis reserved: `sleep` is set to its time.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Reserved,
    /// Granted: what is left is readying the inner service.
    Taken,
}

impl<S, B, C, K> fmt::Debug for ResponseFuture<S, B, C, K>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, C, K> ResponseFuture<S, B, C, K>
where
    S: Service<Request<B>>,
{
    pub(crate) fn rejected(
        rejection: Refusal,
        shared: Lane<K>,
        classify: C,
        policy: Policy,
    ) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(rejection),
            },
            bucket: None,
            remote: Remote::default(),
            shared,
            classify,
            policy,
            admitted_at: 0,
        }
    }

    pub(crate) fn calling(
        future: S::Future,
        bucket: Option<BucketRef>,
        shared: Lane<K>,
        classify: C,
        policy: Policy,
        admitted_at: u64,
    ) -> Self {
        Self {
            state: State::Calling { future },
            bucket,
            remote: Remote::default(),
            shared,
            classify,
            policy,
            admitted_at,
        }
    }

    /// Waits for `token`, then readies `inner` (a clone, not readied) and calls it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn waiting(
        token: Token,
        deadline: u64,
        request: Request<B>,
        inner: S,
        bucket: Option<BucketRef>,
        shared: Lane<K>,
        classify: C,
        policy: Policy,
    ) -> Self {
        Self {
            state: State::Waiting {
                waiting: Box::pin(Waiting::new(token, deadline, request, inner)),
            },
            bucket,
            remote: Remote::default(),
            shared,
            classify,
            policy,
            // Stamped when the token is granted.
            admitted_at: 0,
        }
    }

    #[cfg(feature = "redis")]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn acquiring(
        future: Pending<Answer>,
        name: Arc<str>,
        request: Request<B>,
        inner: S,
        bucket: BucketRef,
        shared: Lane<K>,
        classify: C,
        policy: Policy,
    ) -> Self {
        Self {
            state: State::Acquiring {
                acquiring: Box::new(Asking {
                    future: Exclusive::new(future),
                    name,
                    request: Some(request),
                    inner: Some(inner),
                }),
            },
            bucket: Some(bucket),
            remote: None,
            shared,
            classify,
            policy,
            admitted_at: 0,
        }
    }
}

impl<S, B> Waiting<S, B> {
    fn new(token: Token, deadline: u64, request: Request<B>, inner: S) -> Self {
        Self {
            sleep: tokio::time::sleep_until(Instant::now()),
            request: Some(request),
            inner: Some(inner),
            token,
            deadline,
        }
    }

    /// For a slot Redis reserved at `at`.
    #[cfg(feature = "redis")]
    fn reserved(at: Instant, request: Request<B>, inner: S) -> Self {
        Self {
            sleep: tokio::time::sleep_until(at),
            request: Some(request),
            inner: Some(inner),
            token: Token::Reserved,
            deadline: u64::MAX,
        }
    }
}

impl<S, B, C, K, ResB> Future for ResponseFuture<S, B, C, K>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    C: Classify,
{
    type Output = Result<Response<ResB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Rejected { rejection } => {
                    return Poll::Ready(Err(match rejection.take() {
                        Some(Refusal::Limited(r)) => r.into(),
                        Some(Refusal::Exhausted(r)) => r.into(),
                        None => "polled after completion".into(),
                    }));
                }
                StateProj::Acquiring { acquiring } => {
                    #[cfg(not(feature = "redis"))]
                    match acquiring.never {}
                    #[cfg(feature = "redis")]
                    {
                        let answer = ready!(acquiring.future.poll(cx));
                        let (Some(request), Some(inner)) =
                            (acquiring.request.take(), acquiring.inner.take())
                        else {
                            return Poll::Ready(Err("polled after completion".into()));
                        };
                        let name = Arc::clone(&acquiring.name);
                        let shared: &Shared<K> = this.shared;
                        let (Mode::Limited(gcra), Some(bucket), Some(redis)) =
                            (shared.mode, this.bucket.as_ref(), shared.redis.as_ref())
                        else {
                            return Poll::Ready(Err(
                                "bulwark-bucket: Redis path without a bucket".into()
                            ));
                        };
                        let next = match answer {
                            Ok(answer) => {
                                redis.store.mark_up();
                                if let Answer::Admit {
                                    remaining,
                                    reset_after,
                                    ..
                                } = answer
                                {
                                    bucket.get(shared).charge(&gcra, shared.now());
                                    *this.remote = Some(Box::new(RemoteSlot {
                                        name,
                                        remaining,
                                        reset_after,
                                    }));
                                }
                                decide_remotely(shared, answer, request, inner)
                            }
                            Err(error) => {
                                redis.store.mark_down(&error);
                                shared.counters().fallbacks.fetch_add(1, Ordering::Relaxed);
                                let max_wait = this.policy.max_wait;
                                decide_locally(shared, bucket, gcra, request, inner, max_wait)
                            }
                        };
                        this.state.set(next);
                    }
                }
                StateProj::Pausing { pausing } => {
                    #[cfg(not(feature = "redis"))]
                    match pausing.never {}
                    #[cfg(feature = "redis")]
                    {
                        let result = ready!(pausing.future.poll(cx));
                        if let Some(redis) = this.shared.redis.as_ref() {
                            match result {
                                Ok(()) => redis.store.mark_up(),
                                Err(error) => redis.store.mark_down(&error),
                            }
                        }
                        return Poll::Ready(match pausing.response.take() {
                            Some(response) => Ok(response),
                            None => Err("polled after completion".into()),
                        });
                    }
                }
                StateProj::Waiting { waiting } => {
                    let WaitingProj {
                        mut sleep,
                        request,
                        inner,
                        token,
                        deadline,
                    } = waiting.as_mut().project();
                    // A request that waited for its token may find the quota used up since.
                    let waited = !matches!(token, Token::Taken);
                    match token {
                        Token::Taken => {}
                        // A slot Redis reserved: its time is fixed.
                        Token::Reserved => {
                            ready!(sleep.as_mut().poll(cx));
                            *token = Token::Taken;
                        }
                        Token::Queued(ticket) => {
                            let shared: &Shared<K> = this.shared;
                            let Mode::Limited(gcra) = shared.mode else {
                                return Poll::Ready(Err(
                                    "bulwark-bucket: queued without a limit".into()
                                ));
                            };
                            loop {
                                let now = shared.now();
                                match ticket.turn(&gcra, now, cx.waker()) {
                                    Turn::Go => break,
                                    Turn::Wait => return Poll::Pending,
                                    Turn::SleepUntil(due) if due > *deadline => {
                                        // Paused past what this caller agreed to wait: refused,
                                        // and out of the queue at once (dropping the ticket).
                                        let wait = Duration::from_nanos(due.saturating_sub(now));
                                        *token = Token::Taken;
                                        request.take();
                                        inner.take();
                                        return Poll::Ready(Err(shared.reject(wait).into()));
                                    }
                                    Turn::SleepUntil(due) => {
                                        let at = shared.instant_at(due);
                                        if sleep.deadline() != at {
                                            sleep.as_mut().reset(at);
                                        }
                                        ready!(sleep.as_mut().poll(cx));
                                    }
                                }
                            }
                            *token = Token::Taken;
                        }
                    }
                    let shared: &Shared<K> = this.shared;
                    let now = shared.now();
                    if waited {
                        if let Some(bucket) = this.bucket.as_ref() {
                            let lock = &bucket.get(shared).quota;
                            if let Some(refusal) = lock.refusal(now, this.policy.quota_recheck) {
                                request.take();
                                inner.take();
                                return Poll::Ready(Err(shared.exhausted(refusal).into()));
                            }
                        }
                    }
                    *this.admitted_at = now;
                    // The token is granted: now, and only now, the inner service's readiness.
                    let Some(service) = inner.as_mut() else {
                        return Poll::Ready(Err("polled after completion".into()));
                    };
                    if let Err(error) = ready!(service.poll_ready(cx)) {
                        request.take();
                        inner.take();
                        return Poll::Ready(Err(error.into()));
                    }
                    let (Some(request), Some(mut inner)) = (request.take(), inner.take()) else {
                        return Poll::Ready(Err("polled after completion".into()));
                    };
                    this.shared
                        .counters()
                        .admitted
                        .fetch_add(1, Ordering::Relaxed);
                    this.shared.metrics.admitted();
                    let future = inner.call(request);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let mut res = ready!(future.poll(cx)).map_err(Into::into)?;
                    let shared: &Shared<K> = this.shared;
                    if let (Some(bucket), Mode::Limited(gcra)) = (this.bucket.as_ref(), shared.mode)
                    {
                        let bucket = bucket.get(shared);
                        let mut paused = None;
                        let mut exhausted = false;
                        if this.policy.pause_on_retry_after {
                            match this.classify.classify_response(&res) {
                                Class::Throttled {
                                    retry_after: Some(wait),
                                } => {
                                    pause(shared, bucket, &gcra, wait);
                                    paused = Some(wait);
                                }
                                Class::QuotaExhausted { resets_in } => {
                                    lock_quota(shared, bucket, this.policy, resets_in);
                                    exhausted = true;
                                }
                                // Any success ends a lock set before this request was
                                // admitted, usage headers or not (one load when unlocked).
                                Class::Success if bucket.quota.is_set() => {
                                    let _ = bucket.quota.allowance(None, *this.admitted_at, None);
                                }
                                _ => {}
                            }
                        }
                        if !exhausted && this.policy.warn_below_permille.is_some() {
                            watch_allowance(shared, bucket, this.policy, &res, *this.admitted_at);
                        }
                        if this.policy.emit_headers {
                            // Redis's view when it admitted the request, or the local bucket's.
                            let quota = remote::quota(this.remote);
                            let (remaining, reset_after) = quota.unwrap_or_else(|| {
                                let now = shared.now();
                                let tat = bucket.tat();
                                (
                                    gcra.remaining(tat, now),
                                    Duration::from_nanos(gcra.reset_after(tat, now)),
                                )
                            });
                            let policy = shared.policy();
                            ratelimit::insert_headers(
                                res.headers_mut(),
                                policy.quota,
                                policy.window,
                                remaining,
                                reset_after,
                            );
                        }
                        #[cfg(feature = "redis")]
                        if let (Some(wait), Some(slot), Some(redis)) =
                            (paused, this.remote.as_ref(), shared.redis.as_ref())
                        {
                            // Everyone on this Redis bucket pauses too.
                            let future = redis.store.pause(Arc::clone(&slot.name), &gcra, wait);
                            this.state.set(State::Pausing {
                                pausing: Box::new(PausingUpstream {
                                    future: Exclusive::new(future),
                                    response: Some(res),
                                }),
                            });
                            continue;
                        }
                        #[cfg(not(feature = "redis"))]
                        let _ = paused;
                    }
                    return Poll::Ready(Ok(res));
                }
            }
        }
    }
}

/// The next state after Redis's answer. `inner` is a clone, not readied: an admitted request
/// readies it (after its reserved wait) in the waiting state.
#[cfg(feature = "redis")]
fn decide_remotely<S, B, K>(
    shared: &Shared<K>,
    answer: Answer,
    request: Request<B>,
    inner: S,
) -> State<S, B>
where
    S: Service<Request<B>>,
{
    match answer {
        Answer::Refuse { retry_after } => State::Rejected {
            rejection: Some(Refusal::Limited(shared.reject(retry_after))),
        },
        Answer::Admit { wait, .. } if wait.is_zero() => State::Waiting {
            waiting: Box::pin(Waiting::new(Token::Taken, u64::MAX, request, inner)),
        },
        // Redis reserved the slot; it is not given back if the waiter leaves.
        Answer::Admit { wait, .. } => {
            let wait_ns = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
            shared.note_wait(wait_ns);
            let at = Instant::now()
                .checked_add(wait)
                .unwrap_or_else(|| shared.instant_at(u64::MAX));
            State::Waiting {
                waiting: Box::pin(Waiting::reserved(at, request, inner)),
            }
        }
    }
}

/// The next state when Redis did not answer: what the local bucket says.
#[cfg(feature = "redis")]
fn decide_locally<S, B, K>(
    shared: &Shared<K>,
    bucket: &BucketRef,
    gcra: Gcra,
    request: Request<B>,
    inner: S,
    max_wait: u64,
) -> State<S, B>
where
    S: Service<Request<B>>,
{
    let now = shared.now();
    let token = match admit_locally(shared, bucket, &gcra, now, max_wait) {
        Local::Go => Token::Taken,
        Local::Refuse(rejection) => {
            return State::Rejected {
                rejection: Some(Refusal::Limited(rejection)),
            }
        }
        Local::Queue(ticket) => Token::Queued(ticket),
    };
    let deadline = now.saturating_add(max_wait);
    State::Waiting {
        waiting: Box::pin(Waiting::new(token, deadline, request, inner)),
    }
}

/// What the local bucket says about a request at `now`.
pub(crate) enum Local {
    /// A token was free and nobody waits: go now.
    Go,
    /// Its turn does not come within `max_wait`.
    Refuse(RateLimited),
    /// A place in the queue.
    Queue(Ticket),
}

/// Asks `bucket` for a token at `now`: at once, a place in its queue if its turn comes within
/// `max_wait` nanoseconds, or a refusal.
#[inline]
pub(crate) fn admit_locally<K>(
    shared: &Shared<K>,
    bucket: &BucketRef,
    gcra: &Gcra,
    now: u64,
    max_wait: u64,
) -> Local {
    let local = bucket.get(shared);
    if local.try_acquire(gcra, now) {
        return Local::Go;
    }
    match LocalBucket::enqueue(&bucket.to_arc(shared), gcra, now, max_wait) {
        None => Local::Go,
        Some(Queued::Refuse(wait)) => Local::Refuse(shared.reject(Duration::from_nanos(wait))),
        Some(Queued::Wait { ticket, wait }) => {
            shared.note_wait(wait);
            Local::Queue(ticket)
        }
    }
}

/// Why a request was refused without being sent.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// No token within `max_wait`.
    Limited(RateLimited),
    /// The upstream's quota is used up.
    Exhausted(QuotaExhausted),
}

/// A response said the quota is used up: the bucket refuses until the reset (or the next
/// recheck).
fn lock_quota<K>(
    shared: &Shared<K>,
    bucket: &LocalBucket,
    policy: &Policy,
    resets_in: Option<Duration>,
) {
    let newly = bucket
        .quota
        .lock(resets_in, shared.now(), policy.quota_recheck);
    shared.metrics.quota_share(0.0);
    // One warning per lock, not one per answer of the requests that were in flight.
    if newly {
        tracing::warn!(
            target: "bulwark_bucket",
            resets_in_s = resets_in.map(|d| d.as_secs()),
            recheck_s = policy.quota_recheck / 1_000_000_000,
            "upstream quota exhausted: refusing locally until it resets"
        );
    }
}

/// Reads the usage headers of an answer: allowance shown ends a quota lock; a share under
/// the threshold warns once per crossing.
fn watch_allowance<K, B>(
    shared: &Shared<K>,
    bucket: &LocalBucket,
    policy: &Policy,
    res: &Response<B>,
    admitted_at: u64,
) {
    let Some(info) = RateLimitInfo::from_response(res) else {
        return;
    };
    let share = info.share_left();
    if info.remaining == Some(0) {
        // The last unit went on this call; the next answer (a 429) says more.
        if let Some(share) = share {
            shared.metrics.quota_share(share);
        }
        return;
    }
    let threshold = policy
        .warn_below_permille
        .map(|permille| f64::from(permille) / 1000.0);
    let crossing = bucket.quota.allowance(share, admitted_at, threshold);
    if let Some(share) = share {
        shared.metrics.quota_share(share);
    }
    if crossing == Crossing::FellBelow {
        tracing::warn!(
            target: "bulwark_bucket",
            remaining = info.remaining,
            limit = info.limit,
            plan = info.plan.as_deref(),
            source = info.source.map(|s| s.as_str()),
            "upstream allowance low"
        );
    }
}

fn pause<K>(shared: &Shared<K>, bucket: &LocalBucket, gcra: &Gcra, wait: Duration) {
    let until = shared
        .now()
        .saturating_add(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX));
    bucket.pause(gcra, until);
    shared.counters().paused.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(target: "bulwark_bucket", pause_ms = wait.as_millis() as u64, "upstream Retry-After: bucket paused");
    shared.metrics.paused();
}
