//! [`RedisStore`]: a second level behind the in-memory store, shared by every process that
//! uses the same Redis and key prefix.
//!
//! * **Keys** are stable across processes that share the deployment's [`KeySecret`]:
//!   HMAC-SHA-256 under that secret of the method, the key text, the `Authorization` value,
//!   `Accept`, the vary headers and, for body-keyed requests, the body, each length-prefixed.
//!   The first 128 bits name the entry; the other 128 are stored in the entry and checked on
//!   load. The token itself is never written, and without the secret a key name cannot be
//!   checked against a guessed token.
//! * **Entries** are a small length-prefixed binary record (see [`encode`]): status, headers,
//!   body, the wall-clock time it was written (UNIX ms: processes share no monotonic clock),
//!   its age then, and its lifetimes. Written with `PX` = what is left of fresh +
//!   max(stale-if-error, stale-while-revalidate), so Redis drops it when no layer could use it.
//! * **Invalidation**: each entry's key is added to a set per path (`{prefix}:p:{digest}`), so
//!   a successful write deletes every copy of its path, like the in-memory store does.
//! * **Down**: a call that fails or outlasts the timeout counts as a miss; the outage is logged
//!   once, Redis is tried again at most once a second, and its return is logged.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bulwark_http::key_secret::{hex, KeySecret};
use bulwark_http::redis_link::RedisLink;
pub(crate) use bulwark_http::redis_link::Unavailable;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use redis::{Client, Cmd, FromRedisValue};
use tokio::time::Instant;

use crate::{
    key::{CacheKey, KeyBody},
    policy::Lifetimes,
    store::Entry,
};

/// First part of every entry digest (so an entry name never equals a path-set name).
const ENTRY_DOMAIN: &[u8] = b"bulwark-cache entry";
/// First part of every path-set digest.
const PATH_DOMAIN: &[u8] = b"bulwark-cache path";

/// First bytes of an encoded entry: format version 1.
const MAGIC: &[u8; 4] = b"BWC\x01";

/// Stores the entry `KEYS[1]` (`ARGV[1]`, for `ARGV[2]` ms) and adds it to its path's set
/// `KEYS[2]`, which lives as long as its longest-lived entry.
const SAVE: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
";

/// Deletes every entry in the path set `KEYS[1]`, then the set.
const INVALIDATE_PATH: &str = r"
local keys = redis.call('SMEMBERS', KEYS[1])
for _, k in ipairs(keys) do redis.call('DEL', k) end
redis.call('DEL', KEYS[1])
return #keys
";

/// A second level behind the in-memory store, in Redis, shared by every layer — in any
/// process — that uses the same Redis and key prefix. Set it with
/// [`StaleCacheLayer::store`](crate::StaleCacheLayer::store).
///
/// * A request that memory cannot answer looks in Redis first (one `GET`): a copy still fresh
///   there is served without calling the upstream; any copy found is kept in memory, so when
///   the upstream then fails, another process's copy is served stale, marked as usual.
/// * Every stored response is written to Redis too (one `EVAL`), with a TTL of what is left of
///   its fresh + max(stale-if-error, stale-while-revalidate) windows.
/// * A 401/403/404/410 deletes the request's copy in Redis too; a successful write deletes
///   every copy of its path.
/// * Fresh hits from memory never touch Redis.
///
/// The connection (a [`redis::aio::ConnectionManager`], which reconnects by itself) is made on
/// first use, so `new` never fails and never blocks.
///
/// # Key names and the secret
/// Entries are named by HMAC-SHA-256 under the deployment's [`KeySecret`] of what keys the
/// request (its method, target, `Authorization`, `Accept`, vary headers, body for keyed
/// POSTs): `{prefix}:e:{32 hex}`; the keys of one path's copies are listed in
/// `{prefix}:p:{32 hex}`. The token is never written, and someone who can read Redis but not
/// the secret cannot confirm a guessed token against the key names (a public hash would let
/// them). Every process sharing the cache must be given the same secret; changing it orphans
/// the stored copies (Redis drops them when their TTL ends).
///
/// # When Redis is down
/// A call that fails or takes longer than [`timeout`](Self::timeout) counts as a miss: the
/// request is answered as without a store (memory, then the upstream, then a stale copy from
/// memory). The outage is logged once (`warn`, target `bulwark_cache`); meanwhile Redis is
/// tried again at most once a second (the other requests skip it at once), and its return is
/// logged (`info`). No request waits more than `timeout` per Redis call (at most two per
/// request: a lookup, then a write or a delete).
///
/// # Limitations
/// One Redis (or a primary): the path sets hold keys of several slots, so Redis Cluster is not
/// supported. A copy in Redis that is past fresh but within stale-while-revalidate is not
/// served at once: the request goes live (and falls back to that copy if the upstream fails).
/// A process sees another's newer copy only once its own is no longer fresh. Anyone who can
/// read the Redis can read the cached responses: give it the protection the data needs.
///
/// # Clone
/// Clones share the connection and the up/down state.
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use bulwark_cache::{KeySecret, RedisStore, StaleCacheLayer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Every process with this layer serves the others' copies when Notion fails.
/// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
/// // The same secret in every process, e.g. from the environment; at least 16 bytes.
/// let secret = KeySecret::new(std::env::var("BULWARK_REDIS_SECRET")?)?;
/// let cache: StaleCacheLayer = StaleCacheLayer::new()
///     .stale_if_error(Duration::from_secs(300))
///     .store(RedisStore::new(client, "bulwark:notion-cache", secret));
/// # let _ = cache;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    prefix: Arc<str>,
    secret: KeySecret,
    /// The connection and the up/down state, shared by clones.
    link: RedisLink,
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

/// Where one request's copy lives in Redis.
#[derive(Debug)]
pub(crate) struct SharedKey {
    /// `{prefix}:e:{digest}`.
    entry: String,
    /// `{prefix}:p:{digest of the path}`.
    paths: String,
    /// A second digest of the same parts, stored in the entry and checked on load.
    check: [u8; 16],
}

impl RedisStore {
    /// Entries in the Redis that `client` points to, under keys that start with `key_prefix`
    /// and are named with `secret` (see [Key names and the secret](Self#key-names-and-the-secret)).
    ///
    /// Connects on first use (a failure then counts as Redis being down), so this never fails.
    #[must_use]
    pub fn new(client: Client, key_prefix: impl Into<String>, secret: KeySecret) -> Self {
        let prefix: String = key_prefix.into();
        Self {
            prefix: prefix.into(),
            secret,
            link: RedisLink::new(client, Duration::from_millis(100)),
        }
    }

    /// The longest a request waits for one Redis call (to connect, or to answer) before it
    /// counts as a miss. Defaults to 100 ms.
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

    /// The Redis keys of `req`'s copy (`key` was built from it).
    pub(crate) fn shared_key<B: KeyBody>(
        &self,
        req: &Request<B>,
        key: &CacheKey,
        vary: &[HeaderName],
    ) -> SharedKey {
        let mut digest = self.secret.digest();
        let mut part = |bytes: &[u8]| digest.part(bytes);
        part(ENTRY_DOMAIN);
        part(key.method.as_str().as_bytes());
        part(key.target().as_bytes());
        match req.headers().get(header::AUTHORIZATION) {
            Some(v) => {
                part(b"a");
                part(v.as_bytes());
            }
            None => part(b"-"),
        }
        for name in std::iter::once(&header::ACCEPT).chain(vary) {
            part(name.as_str().as_bytes());
            let values = req.headers().get_all(name);
            part(&(values.iter().count() as u64).to_le_bytes());
            for v in values {
                part(v.as_bytes());
            }
        }
        if key.method != Method::GET && key.method != Method::HEAD {
            if let Some(body) = req.body().key_bytes() {
                part(b"b");
                part(body);
            }
        }
        let digest = digest.finish();
        let (name, check) = digest.split_at(16);
        SharedKey {
            entry: format!("{}:e:{}", self.prefix, hex(name)),
            paths: self.path_set(key.path()),
            check: check.try_into().unwrap_or_default(),
        }
    }

    /// The Redis set holding the keys of `path`'s copies.
    pub(crate) fn path_set(&self, path: &str) -> String {
        let mut digest = self.secret.digest();
        digest.part(PATH_DOMAIN);
        digest.part(path.as_bytes());
        format!("{}:p:{}", self.prefix, hex(&digest.finish()[..16]))
    }

    /// The copy stored under `key`, if any is there and readable; its age is brought up to
    /// date with the wall clock.
    pub(crate) async fn load(&self, key: &SharedKey) -> Result<Option<Entry>, Unavailable> {
        let mut get = redis::cmd("GET");
        get.arg(&key.entry);
        let value: Option<Vec<u8>> = self.run(&get).await?;
        let entry = value.and_then(|v| decode(&v, &key.check, unix_ms(SystemTime::now())));
        Ok(entry)
    }

    /// Writes `entry` under `key`, unless no layer could use it any more.
    pub(crate) async fn save(&self, key: &SharedKey, entry: &Entry) -> Result<(), Unavailable> {
        let age = entry.age(Instant::now());
        // At most 2^32 s (each lifetime is capped at 2^31 s): Redis refuses a `PX` past `i64`.
        let most = crate::MAX_LIFETIME.saturating_mul(2);
        let ttl = millis(entry.lifetimes.useful().saturating_sub(age).min(most));
        if ttl == 0 {
            return Ok(());
        }
        let bytes = encode(entry, &key.check, age, unix_ms(SystemTime::now()));
        let mut eval = redis::cmd("EVAL");
        eval.arg(SAVE)
            .arg(2)
            .arg(&key.entry)
            .arg(&key.paths)
            .arg(bytes.as_ref())
            .arg(ttl);
        self.run::<i64>(&eval).await.map(drop)
    }

    /// Deletes the copy under `key`.
    pub(crate) async fn delete(&self, key: &SharedKey) -> Result<(), Unavailable> {
        let mut del = redis::cmd("DEL");
        del.arg(&key.entry);
        self.run::<i64>(&del).await.map(drop)
    }

    /// Deletes every copy of `path`.
    pub(crate) async fn invalidate_path(&self, path: &str) -> Result<(), Unavailable> {
        let mut eval = redis::cmd("EVAL");
        eval.arg(INVALIDATE_PATH).arg(1).arg(self.path_set(path));
        self.run::<i64>(&eval).await.map(drop)
    }

    /// Runs `cmd` once (once more if the connection had dropped), within the timeout; skipped
    /// while Redis is down and not due for another try. Logs the outage and the return.
    async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Unavailable> {
        if !self.link.should_ask() {
            return Err(Unavailable::Skipped);
        }
        let call = |mut connection| async move { cmd.query_async::<T>(&mut connection).await };
        match self.link.call(call).await {
            Ok(value) => {
                if self.link.mark_up() {
                    tracing::info!(target: "bulwark_cache", key_prefix = %self.prefix, "Redis answers again: the shared cache is back in use");
                }
                Ok(value)
            }
            Err(error) => {
                if self.link.mark_down() {
                    tracing::warn!(target: "bulwark_cache", key_prefix = %self.prefix, %error, "Redis unreachable: the cache uses memory only until it answers again");
                }
                Err(error)
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, millis)
}

/// An entry as stored in Redis, all integers big-endian:
///
/// ```text
/// "BWC\x01"  written_at_ms:u64  age_ms:u64  fresh_ms:u64  swr_ms:u64  sie_ms:u64
/// status:u16  check:[u8; 16]  header_count:u32  (name_len:u32 name value_len:u32 value)*
/// body_len:u32 body
/// ```
///
/// `written_at_ms` is the writer's wall clock (UNIX ms) and `age_ms` the entry's age then.
pub(crate) fn encode(entry: &Entry, check: &[u8; 16], age: Duration, now_ms: u64) -> Bytes {
    let headers: usize = entry
        .headers
        .iter()
        .map(|(k, v)| 8 + k.as_str().len() + v.len())
        .sum();
    let mut out = BytesMut::with_capacity(4 + 40 + 2 + 16 + 4 + headers + 4 + entry.body.len());
    out.put_slice(MAGIC);
    out.put_u64(now_ms);
    out.put_u64(millis(age));
    let l = entry.lifetimes;
    for d in [l.fresh, l.stale_while_revalidate, l.stale_if_error] {
        out.put_u64(millis(d));
    }
    out.put_u16(entry.status.as_u16());
    out.put_slice(check);
    out.put_u32(u32::try_from(entry.headers.len()).unwrap_or(u32::MAX));
    for (name, value) in &entry.headers {
        put_bytes(&mut out, name.as_str().as_bytes());
        put_bytes(&mut out, value.as_bytes());
    }
    put_bytes(&mut out, &entry.body);
    out.freeze()
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    // Bodies are bounded by max_body_bytes, headers by the HTTP stack: far under 4 GiB.
    out.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    out.put_slice(bytes);
}

/// The entry in `bytes`, if it is well-formed and its check matches; `None` otherwise (an
/// unknown version, another writer's key, a truncated value).
pub(crate) fn decode(bytes: &[u8], check: &[u8; 16], now_ms: u64) -> Option<Entry> {
    let mut buf = bytes;
    if buf.len() < 4 + 40 + 2 + 16 + 4 || &buf[..4] != MAGIC {
        return None;
    }
    buf.advance(4);
    let written_at = buf.get_u64();
    let age = Duration::from_millis(buf.get_u64());
    let mut lifetime = || Duration::from_millis(buf.get_u64());
    let lifetimes = Lifetimes {
        fresh: lifetime(),
        stale_while_revalidate: lifetime(),
        stale_if_error: lifetime(),
    };
    let status = StatusCode::from_u16(buf.get_u16()).ok()?;
    if &buf[..16] != check {
        return None;
    }
    buf.advance(16);
    let count = buf.get_u32();
    let mut headers = HeaderMap::new();
    for _ in 0..count {
        let name = HeaderName::from_bytes(take(&mut buf)?).ok()?;
        let value = HeaderValue::from_bytes(take(&mut buf)?).ok()?;
        // More distinct names than a `HeaderMap` holds: not an entry bulwark wrote.
        headers.try_append(name, value).ok()?;
    }
    let body = Bytes::copy_from_slice(take(&mut buf)?);
    if !buf.is_empty() {
        return None;
    }
    // A writer whose clock is ahead: no younger than it was when written.
    let since = Duration::from_millis(now_ms.saturating_sub(written_at));
    Some(Entry {
        status,
        headers,
        body,
        stored_at: Instant::now(),
        initial_age: age.saturating_add(since),
        lifetimes,
        hit_head: crate::store::HitHead::default(),
    })
}

fn take<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    if buf.len() < 4 {
        return None;
    }
    let len = usize::try_from(buf.get_u32()).ok()?;
    if buf.len() < len {
        return None;
    }
    let (head, tail) = buf.split_at(len);
    *buf = tail;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        Entry {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"{\"ok\":true}"),
            stored_at: Instant::now(),
            initial_age: Duration::from_secs(3),
            lifetimes: Lifetimes {
                fresh: Duration::from_secs(10),
                stale_while_revalidate: Duration::from_secs(20),
                stale_if_error: Duration::from_secs(300),
            },
            hit_head: crate::store::HitHead::default(),
        }
    }

    #[test]
    fn entries_round_trip_with_their_age_brought_up_to_date() {
        let e = entry();
        let check = [7; 16];
        let bytes = encode(&e, &check, Duration::from_secs(3), 1_000_000);
        let d = decode(&bytes, &check, 1_002_500).unwrap();
        assert_eq!(d.status, e.status);
        assert_eq!(d.headers, e.headers);
        assert_eq!(d.body, e.body);
        assert_eq!(d.lifetimes, e.lifetimes);
        assert_eq!(d.initial_age, Duration::from_millis(5_500));
        // A writer's clock ahead of ours: the age it wrote, not less.
        let d = decode(&bytes, &check, 999_000).unwrap();
        assert_eq!(d.initial_age, Duration::from_secs(3));
    }

    #[test]
    fn malformed_or_foreign_values_are_misses() {
        let e = entry();
        let bytes = encode(&e, &[7; 16], Duration::ZERO, 0);
        assert!(decode(&bytes, &[8; 16], 0).is_none(), "another key's check");
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes[..len], &[7; 16], 0).is_none(),
                "truncated at {len}"
            );
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(decode(&longer, &[7; 16], 0).is_none());
        let mut other_version = bytes.to_vec();
        other_version[3] = 2;
        assert!(decode(&other_version, &[7; 16], 0).is_none());
    }

    #[test]
    fn keys_are_stable_and_never_hold_the_token() {
        let secret = KeySecret::new("a deployment secret, 32 bytes..").unwrap();
        let client = Client::open("redis://127.0.0.1:1/").unwrap();
        let store = RedisStore::new(client.clone(), "app", secret);
        let req = |auth: &'static str| {
            Request::get("https://api.test/v1/pages/1?b=2&a=1")
                .header("authorization", auth)
                .body(())
                .unwrap()
        };
        let key_of = |r: &Request<()>| {
            let hasher = std::collections::hash_map::RandomState::new();
            let k = crate::key::build(r, crate::key::target(r), &[], &hasher);
            store.shared_key(r, &k, &[])
        };
        let a = key_of(&req("Bearer secret"));
        // Another process (another RandomState) computes the same key.
        let again = key_of(&req("Bearer secret"));
        assert_eq!(
            (&a.entry, &a.paths, a.check),
            (&again.entry, &again.paths, again.check)
        );
        // Fixed by the format for a given secret (other processes, other builds): these must
        // never change; the path set is standard HMAC-SHA-256, checked with Python's hmac.
        assert_eq!(a.paths, store.path_set("/v1/pages/1"));
        assert_eq!(a.entry, "app:e:d2e2e969662a60d9b3015a9c818b6e07");
        assert_eq!(a.paths, "app:p:9868c7de43888bdcc11d993640cf5bc5");
        assert!(a.entry.starts_with("app:e:") && a.entry.len() == "app:e:".len() + 32);
        assert!(!format!("{a:?}").contains("secret"));
        let b = key_of(&req("Bearer other"));
        assert_ne!(a.entry, b.entry);
        assert_eq!(a.paths, b.paths);
        // Another deployment's secret names everything differently: a key name cannot be
        // checked against a guessed token without the secret.
        let other = RedisStore::new(client, "app", KeySecret::new([7u8; 32]).unwrap());
        let o = {
            let r = req("Bearer secret");
            let k = crate::key::build(
                &r,
                crate::key::target(&r),
                &[],
                &std::collections::hash_map::RandomState::new(),
            );
            other.shared_key(&r, &k, &[])
        };
        assert_ne!((&a.entry, &a.paths, a.check), (&o.entry, &o.paths, o.check));
        assert_eq!(
            format!("{store:?}"),
            r#"RedisStore { key_prefix: "app", timeout: 100ms, down: false, .. }"#
        );
    }
}
