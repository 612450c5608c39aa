//! The shared second level (Redis), as seen by the service. Without the `redis` feature every
//! part is `()` or a no-op, so the in-memory paths carry nothing for it.

pub(crate) use imp::{delete, invalidate_path, key, load, no_remote, save, Remote, SharedKey};

#[cfg(feature = "redis")]
mod imp {
    use http::{HeaderName, Request};

    use crate::{
        key::CacheKey,
        redis_store::{self, RedisStore, Unavailable},
        stats::Counters,
        store::{Entry, Store},
        KeyBody,
    };

    /// The layer's Redis store, if it has one.
    pub(crate) type Remote = Option<RedisStore>;

    pub(crate) fn no_remote() -> Remote {
        None
    }

    /// Where a request's copy lives in Redis (`None` without a store).
    pub(crate) type SharedKey = Option<redis_store::SharedKey>;

    pub(crate) fn key<B: KeyBody>(
        store: &Store,
        req: &Request<B>,
        key: &CacheKey,
        vary: &[HeaderName],
    ) -> SharedKey {
        store
            .remote
            .as_ref()
            .map(|remote| remote.shared_key(req, key, vary))
    }

    fn count<T>(store: &Store, result: Result<T, Unavailable>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                Counters::bump(&store.counters.shared_unavailable);
                tracing::debug!(target: "bulwark_cache", %error, "Redis not used");
                None
            }
        }
    }

    /// The copy in Redis, if there is one and Redis answers in time.
    pub(crate) async fn load(store: &Store, key: &SharedKey) -> Option<Entry> {
        let (Some(remote), Some(key)) = (&store.remote, key) else {
            return None;
        };
        let entry = count(store, remote.load(key).await).flatten()?;
        Counters::bump(&store.counters.shared_loads);
        Some(entry)
    }

    pub(crate) async fn save(store: &Store, key: &SharedKey, entry: &Entry) {
        if let (Some(remote), Some(key)) = (&store.remote, key) {
            count(store, remote.save(key, entry).await);
        }
    }

    pub(crate) async fn delete(store: &Store, key: &SharedKey) {
        if let (Some(remote), Some(key)) = (&store.remote, key) {
            count(store, remote.delete(key).await);
        }
    }

    pub(crate) async fn invalidate_path(store: &Store, path: &str) {
        if let Some(remote) = &store.remote {
            count(store, remote.invalidate_path(path).await);
        }
    }
}

#[cfg(not(feature = "redis"))]
mod imp {
    use http::{HeaderName, Request};

    use crate::{
        key::CacheKey,
        store::{Entry, Store},
        KeyBody,
    };

    /// No shared level (a unit struct rather than `()`, so it reads as a value).
    #[derive(Debug, Clone)]
    pub(crate) struct Remote;

    pub(crate) fn no_remote() -> Remote {
        Remote
    }

    /// No shared key.
    #[derive(Debug)]
    pub(crate) struct SharedKey;

    #[inline]
    pub(crate) fn key<B: KeyBody>(
        _store: &Store,
        _req: &Request<B>,
        _key: &CacheKey,
        _vary: &[HeaderName],
    ) -> SharedKey {
        SharedKey
    }

    #[inline]
    pub(crate) async fn load(_store: &Store, _key: &SharedKey) -> Option<Entry> {
        None
    }

    #[inline]
    pub(crate) async fn save(_store: &Store, _key: &SharedKey, _entry: &Entry) {}

    #[inline]
    pub(crate) async fn delete(_store: &Store, _key: &SharedKey) {}

    #[inline]
    pub(crate) async fn invalidate_path(_store: &Store, _path: &str) {}
}
