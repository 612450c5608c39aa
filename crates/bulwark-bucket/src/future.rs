//! [`ResponseFuture`] of [`TokenBucket`](crate::TokenBucket).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    task::{ready, Context, Poll},
    time::Duration,
};

use bulwark_http::{ratelimit, BoxError, Class, Classify, RateLimited};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::{
    gcra::Gcra,
    shared::{Mode, Shared},
    store::{Grant, LocalBucket},
};

/// A reserved slot: given back if the waiter leaves before using it.
pub(crate) struct Reservation {
    bucket: Arc<LocalBucket>,
    grant: Grant,
    gcra: Gcra,
    used: bool,
}

impl Reservation {
    pub(crate) fn new(bucket: Arc<LocalBucket>, grant: Grant, gcra: Gcra) -> Self {
        Self {
            bucket,
            grant,
            gcra,
            used: false,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.used {
            self.bucket.give_back(&self.gcra, self.grant);
        }
    }
}

pin_project! {
    /// Response future of [`TokenBucket`](crate::TokenBucket).
    ///
    /// Dropping it while it waits for its token gives the token back where possible.
    pub struct ResponseFuture<S, B, C, K>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
        bucket: Option<Arc<LocalBucket>>,
        shared: Arc<Shared<K>>,
        classify: C,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Rejected { rejection: Option<RateLimited> },
        Waiting {
            #[pin]
            sleep: Sleep,
            request: Option<Request<B>>,
            inner: Option<S>,
            reservation: Option<Reservation>,
        },
        Calling { #[pin] future: S::Future },
    }
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
    pub(crate) fn rejected(rejection: RateLimited, shared: Arc<Shared<K>>, classify: C) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(rejection),
            },
            bucket: None,
            shared,
            classify,
        }
    }

    pub(crate) fn calling(
        future: S::Future,
        bucket: Option<Arc<LocalBucket>>,
        shared: Arc<Shared<K>>,
        classify: C,
    ) -> Self {
        Self {
            state: State::Calling { future },
            bucket,
            shared,
            classify,
        }
    }

    pub(crate) fn waiting(
        until: Instant,
        request: Request<B>,
        inner: S,
        reservation: Reservation,
        shared: Arc<Shared<K>>,
        classify: C,
    ) -> Self {
        let bucket = Some(Arc::clone(&reservation.bucket));
        Self {
            state: State::Waiting {
                sleep: tokio::time::sleep_until(until),
                request: Some(request),
                inner: Some(inner),
                reservation: Some(reservation),
            },
            bucket,
            shared,
            classify,
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
                        Some(r) => r.into(),
                        None => "polled after completion".into(),
                    }));
                }
                StateProj::Waiting {
                    sleep,
                    request,
                    inner,
                    reservation,
                } => {
                    ready!(sleep.poll(cx));
                    let (Some(request), Some(mut inner)) = (request.take(), inner.take()) else {
                        return Poll::Ready(Err("polled after completion".into()));
                    };
                    if let Some(mut reservation) = reservation.take() {
                        reservation.used = true;
                    }
                    this.shared
                        .counters
                        .admitted
                        .fetch_add(1, Ordering::Relaxed);
                    let future = inner.call(request);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let mut res = ready!(future.poll(cx)).map_err(Into::into)?;
                    let shared = &**this.shared;
                    if let (Some(bucket), Mode::Limited(gcra)) = (this.bucket.as_ref(), shared.mode)
                    {
                        if shared.pause_on_retry_after {
                            if let Class::Throttled {
                                retry_after: Some(wait),
                            } = this.classify.classify_response(&res)
                            {
                                pause(shared, bucket, &gcra, wait);
                            }
                        }
                        if shared.emit_headers {
                            let now = shared.now();
                            let tat = bucket.tat();
                            let policy = shared.policy();
                            ratelimit::insert_headers(
                                res.headers_mut(),
                                policy.quota,
                                policy.window,
                                gcra.remaining(tat, now),
                                Duration::from_nanos(gcra.reset_after(tat, now)),
                            );
                        }
                    }
                    return Poll::Ready(Ok(res));
                }
            }
        }
    }
}

fn pause<K>(shared: &Shared<K>, bucket: &LocalBucket, gcra: &Gcra, wait: Duration) {
    let until = shared
        .now()
        .saturating_add(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX));
    bucket.pause(gcra, until);
    shared.counters.paused.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(target: "bulwark_bucket", pause_ms = wait.as_millis() as u64, "upstream Retry-After: bucket paused");
    #[cfg(feature = "metrics")]
    metrics::counter!("bulwark_bucket_paused_total").increment(1);
}
