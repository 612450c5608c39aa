//! [`RedisStore`]: buckets in Redis, shared by every process that uses the same Redis and key
//! prefix.
//!
//! Each acquisition is **one round trip**: an `EVALSHA` of a Lua script that runs the same GCRA
//! as the local bucket (`gcra.rs`) atomically on one key, with Redis's own
//! clock (`TIME`), so processes whose clocks disagree still agree on the bucket. The key holds
//! the bucket's theoretical arrival time in microseconds and expires when the bucket would be
//! full again (plus a second), so idle buckets cost Redis nothing.
//!
//! If Redis does not answer within the store's [`timeout`](RedisStore::timeout) (or answers
//! with an error), the request is decided by the layer's local bucket instead, the outage is
//! logged once, and Redis is tried again at most once a second until it answers; then its
//! return is logged and every request goes to Redis again.

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use bulwark_http::{
    key_secret::{hex, KeySecret},
    redis_link::{self, RedisLink},
};
use redis::{Client, Script};

use crate::gcra::Gcra;

/// GCRA on one key, with Redis's clock; all times in microseconds.
///
/// `KEYS[1]`: the bucket (its TAT, absent when the bucket is full).
/// `ARGV`: emission interval, capacity (burst · interval), longest acceptable wait.
/// Returns `{admitted, wait, remaining, reset_after}`: an admitted request's slot is reserved
/// (`wait` 0 = go now); a refused one reserves nothing and `wait` is its retry-after.
const ACQUIRE: &str = r"
-- Redis < 5 needs this to write after TIME; later versions ignore it.
pcall(redis.replicate_commands)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - capacity - now
if wait < 0 then wait = 0 end
if wait > max_wait then
  return {0, wait, 0, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',
  math.ceil((new_tat - now) / 1000) + 1000)
local remaining = math.floor((capacity - (new_tat - now)) / interval)
if remaining < 0 then remaining = 0 end
return {1, wait, remaining, new_tat - now}
";

/// An upstream pause: nothing passes for `ARGV[1]` µs from now, then one request
/// (TAT = max(TAT, now + pause + capacity - interval)). `ARGV`: pause, interval, capacity.
const PAUSE: &str = r"
pcall(redis.replicate_commands)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local paused = now + tonumber(ARGV[1]) + tonumber(ARGV[3]) - tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if paused > tat then
  redis.call('SET', KEYS[1], string.format('%.0f', paused), 'PX',
    math.ceil((paused - now) / 1000) + 1000)
end
return 1
";

/// Lua numbers are doubles: integers are exact below 2^53 µs (285 years).
const MAX_MICROS: u64 = 1 << 53;

/// Buckets in Redis, shared by every layer — in any process — that uses the same Redis and key
/// prefix. Set it with [`TokenBucketLayer::store`](crate::TokenBucketLayer::store).
///
/// A request's bucket is the key `{key_prefix}` for the layer's shared bucket, and
/// `{key_prefix}:{32 hex}` for a [`keyed`](crate::TokenBucketLayer::keyed) layer's key: the
/// first 128 bits of HMAC-SHA-256 under the deployment's [`KeySecret`] of the key's `Display`.
/// Keys are often derived from a token or a client's address; a public hash of them would let
/// anyone who can list Redis's keys confirm a guess offline, the secret does not. Every
/// process sharing the buckets must be given the same secret. Each acquisition is one `EVALSHA` of a Lua script running GCRA on that
/// key with Redis's clock, so every process sees one limit: over any interval `t`, at most
/// `burst + rate·t` admissions in all. A request that must wait for its slot waits in its own
/// process; its slot is not given back if it leaves early.
///
/// The connection (a [`redis::aio::ConnectionManager`], which reconnects by itself) is made on
/// first use, so `new` never fails and never blocks.
///
/// # When Redis is down
/// A request whose acquisition fails or takes longer than [`timeout`](Self::timeout) is
/// decided by the layer's local bucket, exactly as without a store (the local bucket is kept
/// charged with this process's Redis admissions, so switching does not add a burst). The
/// outage is logged once (`warn`, target `bulwark_bucket`); meanwhile Redis is tried again at
/// most once a second, and its return is logged (`info`). No request waits more than
/// `timeout` for Redis, then at most `max_wait` for its token. Upstream pauses
/// ([`pause_on_retry_after`](crate::TokenBucketLayer::pause_on_retry_after)) are written to
/// Redis too, within the same timeout, before the throttled response is returned.
///
/// # Clone
/// Clones share the connection and the up/down state.
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use bulwark_bucket::{KeySecret, Rate, RedisStore, TokenBucketLayer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Every process with this layer shares Notion's 3 requests/second.
/// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
/// // The same secret in every process, e.g. from the environment; at least 16 bytes.
/// let secret = KeySecret::new(std::env::var("BULWARK_REDIS_SECRET")?)?;
/// let layer = TokenBucketLayer::new(Rate::per_second(3))
///     .max_wait(Duration::from_secs(10))
///     .store(RedisStore::new(client, "bulwark:notion", secret));
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    prefix: Arc<str>,
    secret: KeySecret,
    /// The connection and the up/down state, shared by clones.
    link: RedisLink,
    scripts: Arc<Scripts>,
}

/// The Lua scripts (and their SHA-1s), built once per store.
struct Scripts {
    acquire: Script,
    pause: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the client: its connection info may hold a password.
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.prefix)
            .field("timeout", &self.link.timeout())
            .field("down", &self.link.is_down())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Buckets in the Redis that `client` points to, under keys that start with `key_prefix`,
    /// keyed buckets named with `secret`.
    ///
    /// Connects on first use (a failure then counts as Redis being down), so this never fails.
    #[must_use]
    pub fn new(client: Client, key_prefix: impl Into<String>, secret: KeySecret) -> Self {
        let prefix: String = key_prefix.into();
        Self {
            prefix: prefix.into(),
            secret,
            link: RedisLink::new(client, Duration::from_millis(100)),
            scripts: Arc::new(Scripts {
                acquire: Script::new(ACQUIRE),
                pause: Script::new(PAUSE),
            }),
        }
    }

    /// The longest a request waits for Redis (to connect, or to answer one script) before it
    /// is decided by the local bucket. Defaults to 100 ms.
    ///
    /// Set it before cloning the store: the store it returns starts a connection of its own.
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        Self {
            link: self.link.with_timeout(timeout),
            ..self
        }
    }

    /// The prefix of this store's keys.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether to ask Redis now: always while it answers; while it is down, once per
    /// [`RETRY_EVERY`](redis_link::RETRY_EVERY) (the request that wins the slot asks, the
    /// others go local at once).
    pub(crate) fn should_ask(&self) -> bool {
        self.link.should_ask()
    }

    /// Redis answered.
    pub(crate) fn mark_up(&self) {
        if self.link.mark_up() {
            tracing::info!(target: "bulwark_bucket", key_prefix = %self.prefix, "Redis answers again: the shared buckets are back in use");
        }
    }

    /// Redis did not answer: go local, and try again in a second.
    pub(crate) fn mark_down(&self, error: &Unavailable) {
        if self.link.mark_down() {
            tracing::warn!(target: "bulwark_bucket", key_prefix = %self.prefix, %error, "Redis unreachable: using the local buckets until it answers again");
        }
    }

    /// The Redis key of a bucket: the prefix for the shared bucket, `{prefix}:{MAC of key}`
    /// otherwise.
    pub(crate) fn bucket_name(&self, key: Option<String>) -> Arc<str> {
        match key {
            None => Arc::clone(&self.prefix),
            Some(key) => {
                let mut digest = self.secret.digest();
                digest.part(b"bulwark-bucket key");
                digest.part(key.as_bytes());
                format!("{}:{}", self.prefix, hex(&digest.finish()[..16])).into()
            }
        }
    }

    /// Runs `script` on `name` once (once more if the connection had dropped), within the
    /// timeout.
    async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        name: &str,
        args: [u64; 3],
    ) -> Result<T, Unavailable> {
        let call = |mut connection| {
            let mut invocation = script.prepare_invoke();
            invocation.key(name);
            for arg in args {
                invocation.arg(arg);
            }
            async move { invocation.invoke_async(&mut connection).await }
        };
        self.link.call(call).await.map_err(Unavailable::Link)
    }

    /// Asks Redis for one token from bucket `name`; never takes longer than the timeout.
    pub(crate) fn acquire(&self, name: Arc<str>, gcra: &Gcra, max_wait: u64) -> Pending<Answer> {
        let store = self.clone();
        let (interval, capacity) = micros_params(gcra);
        // Rounded down: a request never waits longer than max_wait.
        let max_wait = (max_wait / 1_000).min(MAX_MICROS);
        Box::pin(async move {
            let reply = store
                .eval::<Vec<i64>>(
                    &store.scripts.acquire,
                    &name,
                    [interval, capacity, max_wait],
                )
                .await?;
            let micros = |i: usize| Duration::from_micros(reply[i].try_into().unwrap_or(0));
            match reply.first() {
                Some(1) if reply.len() == 4 => Ok(Answer::Admit {
                    wait: micros(1),
                    remaining: reply[2].try_into().unwrap_or(0),
                    reset_after: micros(3),
                }),
                Some(0) if reply.len() == 4 => Ok(Answer::Refuse {
                    retry_after: micros(1),
                }),
                _ => Err(Unavailable::Reply(reply)),
            }
        })
    }

    /// Pauses bucket `name` for `wait` from now (Redis's now); never takes longer than the
    /// timeout.
    pub(crate) fn pause(&self, name: Arc<str>, gcra: &Gcra, wait: Duration) -> Pending<()> {
        let store = self.clone();
        let (interval, capacity) = micros_params(gcra);
        let wait = u64::try_from(wait.as_micros())
            .unwrap_or(u64::MAX)
            .min(MAX_MICROS);
        Box::pin(async move {
            store
                .eval::<i64>(&store.scripts.pause, &name, [wait, interval, capacity])
                .await
                .map(drop)
        })
    }
}

/// A store bound to a layer: how the layer's keys name their buckets.
pub(crate) struct Binding<K> {
    pub(crate) store: RedisStore,
    key: fn(&K) -> String,
}

impl<K> Binding<K> {
    pub(crate) fn new(store: RedisStore, key: fn(&K) -> String) -> Self {
        Self { store, key }
    }

    /// The Redis key of the bucket for `key` (the shared one for `None`).
    pub(crate) fn bucket_name(&self, key: Option<&K>) -> Arc<str> {
        self.store.bucket_name(key.map(self.key))
    }
}

impl<K> Clone for Binding<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            key: self.key,
        }
    }
}

impl<K> fmt::Debug for Binding<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.store.fmt(f)
    }
}

/// A Redis call in flight (boxed: the Redis path only).
pub(crate) type Pending<T> = Pin<Box<dyn Future<Output = Result<T, Unavailable>> + Send>>;

/// Redis's answer to one acquisition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Go after `wait` (the slot is reserved).
    Admit {
        wait: Duration,
        /// Requests that could still go at once.
        remaining: u64,
        /// Until the bucket is full again.
        reset_after: Duration,
    },
    /// No slot within `max_wait`; nothing was reserved.
    Refuse { retry_after: Duration },
}

/// Why Redis did not decide.
#[derive(Debug)]
pub(crate) enum Unavailable {
    /// Redis failed or did not answer in time.
    Link(redis_link::Unavailable),
    Reply(Vec<i64>),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Link(e) => e.fmt(f),
            Self::Reply(r) => write!(f, "unexpected script reply {r:?}"),
        }
    }
}

/// Interval and capacity in whole microseconds, rounded up (never faster than asked).
fn micros_params(gcra: &Gcra) -> (u64, u64) {
    let burst = gcra.capacity / gcra.interval;
    let interval = gcra.interval.div_ceil(1_000).clamp(1, MAX_MICROS);
    (interval, interval.saturating_mul(burst).min(MAX_MICROS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_round_up_to_whole_microseconds() {
        let g = Gcra::new(3, Duration::from_secs(1), 3);
        assert_eq!(micros_params(&g), (333_334, 1_000_002));
        let g = Gcra::new(10, Duration::from_secs(1), 5);
        assert_eq!(micros_params(&g), (100_000, 500_000));
        // Faster than a microsecond: one per microsecond.
        let g = Gcra::new(1_000_000_000, Duration::from_secs(1), 2);
        assert_eq!(micros_params(&g), (1, 2));
    }

    #[test]
    fn bucket_names() {
        let client = Client::open("redis://127.0.0.1:1/").unwrap();
        let secret = KeySecret::new("a deployment secret, 32 bytes..").unwrap();
        let store = RedisStore::new(client.clone(), "app", secret);
        assert_eq!(&*store.bucket_name(None), "app");
        // Standard HMAC-SHA-256 (checked with Python's hmac), never the key itself.
        assert_eq!(
            &*store.bucket_name(Some("k".into())),
            "app:388f069096a58c9f2b9328f3058ce040"
        );
        let other = RedisStore::new(client, "app", KeySecret::new([7u8; 16]).unwrap());
        assert_ne!(
            other.bucket_name(Some("k".into())),
            store.bucket_name(Some("k".into()))
        );
        let binding = Binding::new(store, |k: &u32| k.to_string());
        assert_eq!(
            binding.bucket_name(Some(&7)),
            binding.store.bucket_name(Some("7".into()))
        );
        assert_eq!(
            format!("{:?}", binding.store),
            r#"RedisStore { key_prefix: "app", timeout: 100ms, down: false, .. }"#
        );
    }
}
