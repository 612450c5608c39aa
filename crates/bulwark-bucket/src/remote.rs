//! The Redis path's parts of the response future. Without the `redis` feature they are
//! uninhabited and zero-sized, so the local path carries nothing for them.

pub(crate) use imp::{quota, Acquiring, Pausing, Remote};
#[cfg(feature = "redis")]
pub(crate) use imp::{Asking, Exclusive, PausingUpstream, RemoteSlot};

#[cfg(feature = "redis")]
mod imp {
    use std::{
        future::Future,
        pin::Pin,
        sync::{Arc, Mutex, PoisonError},
        task::{Context, Poll},
        time::Duration,
    };

    use http::Request;

    use crate::redis_store::{Answer, Pending};

    /// Waiting for Redis's answer (boxed: the Redis path only).
    pub(crate) type Acquiring<S, B> = Box<Asking<S, B>>;

    /// A `Send` future that is also `Sync`, because it is only ever touched through `&mut`
    /// (the `Mutex` is never locked). So the `redis` feature takes nothing away from the
    /// response future's auto traits.
    pub(crate) struct Exclusive<T>(Mutex<Pending<T>>);

    impl<T> Exclusive<T> {
        pub(crate) fn new(future: Pending<T>) -> Self {
            Self(Mutex::new(future))
        }

        pub(crate) fn poll(
            &mut self,
            cx: &mut Context<'_>,
        ) -> Poll<<Pending<T> as Future>::Output> {
            let future: &mut Pin<_> = self.0.get_mut().unwrap_or_else(PoisonError::into_inner);
            future.as_mut().poll(cx)
        }
    }

    pub(crate) struct Asking<S, B> {
        pub(crate) future: Exclusive<Answer>,
        /// The bucket's Redis key.
        pub(crate) name: Arc<str>,
        pub(crate) request: Option<Request<B>>,
        /// The service readied for this request.
        pub(crate) inner: Option<S>,
    }

    /// Writing an upstream pause to Redis before returning the response.
    pub(crate) type Pausing<R> = Box<PausingUpstream<R>>;

    pub(crate) struct PausingUpstream<R> {
        pub(crate) future: Exclusive<()>,
        pub(crate) response: Option<R>,
    }

    /// The Redis bucket a request's slot came from.
    pub(crate) type Remote = Option<Box<RemoteSlot>>;

    pub(crate) struct RemoteSlot {
        pub(crate) name: Arc<str>,
        /// As Redis saw them when it admitted the request.
        pub(crate) remaining: u64,
        pub(crate) reset_after: Duration,
    }

    /// Remaining requests and time to full, as Redis saw them, if the slot came from Redis.
    pub(crate) fn quota(remote: &Remote) -> Option<(u64, Duration)> {
        remote
            .as_ref()
            .map(|slot| (slot.remaining, slot.reset_after))
    }
}

#[cfg(not(feature = "redis"))]
mod imp {
    use std::{convert::Infallible, marker::PhantomData, time::Duration};

    /// Cannot exist.
    pub(crate) struct Never<T> {
        pub(crate) never: Infallible,
        _types: PhantomData<fn() -> T>,
    }

    pub(crate) type Acquiring<S, B> = Never<(S, B)>;
    pub(crate) type Pausing<R> = Never<R>;
    pub(crate) type Remote = ();

    pub(crate) fn quota((): &Remote) -> Option<(u64, Duration)> {
        None
    }
}
