//! [`RedisLink`]: the connection to Redis and its up/down state, shared by the Redis stores of
//! `bulwark-bucket` and `bulwark-cache` (feature `redis`).
//!
//! A link connects on first use (a [`redis::aio::ConnectionManager`] with no retries of its
//! own and the link's timeout to connect and to answer), bounds every call by that timeout,
//! and tracks whether Redis answers: while it does not, it is asked again at most once a
//! second. The link decides nothing else and logs nothing: [`mark_up`](RedisLink::mark_up)
//! and [`mark_down`](RedisLink::mark_down) say when the state changed, and each store logs
//! that under its own target.

use std::{
    fmt,
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    Client, RedisError,
};
use tokio::{sync::OnceCell, time::Instant};

/// While Redis is down, it is tried again at most this often.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// A lazily made connection to one Redis, with a timeout per call and the up/down state.
///
/// # Clone
/// Clones share the connection and the up/down state.
#[derive(Clone)]
pub struct RedisLink {
    timeout: Duration,
    state: Arc<State>,
}

/// What clones share.
struct State {
    client: Client,
    connection: OnceCell<ConnectionManager>,
    /// Redis failed last time it was asked.
    down: AtomicBool,
    /// While down: when Redis may be tried again (nanoseconds since `start`).
    retry_at: AtomicU64,
    start: Instant,
}

impl fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the client: its connection info may hold a password.
        f.debug_struct("RedisLink")
            .field("timeout", &self.timeout)
            .field("down", &self.is_down())
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// A link to the Redis that `client` points to, waiting at most `timeout` per call (to
    /// connect, or to answer). Connects on first use, so this never fails and never blocks.
    #[must_use]
    pub fn new(client: Client, timeout: Duration) -> Self {
        Self {
            timeout,
            state: Arc::new(State {
                client,
                connection: OnceCell::new(),
                down: AtomicBool::new(false),
                retry_at: AtomicU64::new(0),
                start: Instant::now(),
            }),
        }
    }

    /// A new link to the same Redis with another timeout: its own connection (made on first
    /// use) and a fresh up/down state, shared with none of this link's clones.
    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self::new(self.state.client.clone(), timeout)
    }

    /// The longest one call waits for Redis.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether Redis failed the last time it was asked.
    #[must_use]
    pub fn is_down(&self) -> bool {
        self.state.down.load(Ordering::Relaxed)
    }

    /// Whether to ask Redis now: always while it answers; while it is down, once per
    /// [`RETRY_EVERY`] (the caller that wins the slot asks, the others are told no at once).
    #[must_use]
    pub fn should_ask(&self) -> bool {
        let state = &*self.state;
        if !state.down.load(Ordering::Relaxed) {
            return true;
        }
        let now = state.elapsed();
        let retry_at = state.retry_at.load(Ordering::Relaxed);
        now >= retry_at
            && state
                .retry_at
                .compare_exchange(
                    retry_at,
                    now.saturating_add(nanos(RETRY_EVERY)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Redis answered. Returns `true` if it was down until now (log its return), once per
    /// outage.
    #[must_use = "log Redis's return when this is true"]
    pub fn mark_up(&self) -> bool {
        self.state.down.swap(false, Ordering::Relaxed)
    }

    /// Redis did not answer: it is not asked again for [`RETRY_EVERY`]. Returns `true` if it
    /// was up until now (log the outage), once per outage.
    #[must_use = "log the outage when this is true"]
    pub fn mark_down(&self) -> bool {
        let state = &*self.state;
        state.retry_at.fetch_max(
            state.elapsed().saturating_add(nanos(RETRY_EVERY)),
            Ordering::Relaxed,
        );
        !state.down.swap(true, Ordering::Relaxed)
    }

    /// Runs `call` on the connection once, once more if the connection had dropped (the
    /// manager has reconnected by then), all within the timeout. Does not consult or change
    /// the up/down state: see [`should_ask`](Self::should_ask), [`mark_up`](Self::mark_up),
    /// [`mark_down`](Self::mark_down).
    ///
    /// # Errors
    /// [`Unavailable::Redis`] if connecting or the call failed, [`Unavailable::Timeout`] if it
    /// took longer than the timeout.
    pub async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, Unavailable>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let attempts = async {
            let mut retried = false;
            loop {
                let connection = self.connection().await?;
                match call(connection).await {
                    Err(error) if !retried && is_connection_error(&error) => retried = true,
                    result => return result,
                }
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(Unavailable::Redis(error)),
            Err(_) => Err(Unavailable::Timeout(self.timeout)),
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        let state = &*self.state;
        state
            .connection
            .get_or_try_init(|| {
                // No retries of its own: a request never waits for a reconnection loop, and
                // while Redis is down we retry once a second anyway.
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(self.timeout);
                ConnectionManager::new_with_config(state.client.clone(), config)
            })
            .await
            .cloned()
    }
}

impl State {
    fn elapsed(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.start))
    }
}

/// Why Redis did not answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Unavailable {
    /// Down, and not yet due for another try: not asked.
    Skipped,
    /// Connecting or the call failed.
    Redis(RedisError),
    /// No answer within this timeout.
    Timeout(Duration),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Skipped => f.write_str("down, not asked"),
            Self::Redis(e) => e.fmt(f),
            Self::Timeout(t) => write!(f, "no answer within {t:?}"),
        }
    }
}

impl std::error::Error for Unavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Redis(e) => Some(e),
            Self::Skipped | Self::Timeout(_) => None,
        }
    }
}

fn is_connection_error(error: &RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> RedisLink {
        RedisLink::new(
            Client::open("redis://127.0.0.1:1/").unwrap(),
            Duration::from_millis(100),
        )
    }

    #[test]
    fn debug_hides_the_client() {
        let link = RedisLink::new(
            Client::open("redis://:secret@127.0.0.1:1/").unwrap(),
            Duration::from_millis(100),
        );
        let debug = format!("{link:?}");
        assert_eq!(debug, "RedisLink { timeout: 100ms, down: false, .. }");
    }

    #[tokio::test(start_paused = true)]
    async fn down_is_asked_once_per_second_and_each_change_reported_once() {
        let link = link();
        assert!(link.should_ask() && link.should_ask(), "up: always asked");
        assert!(!link.mark_up(), "was not down");
        assert!(link.mark_down(), "the outage is reported");
        assert!(!link.mark_down(), "once");
        assert!(link.is_down());
        assert!(!link.should_ask(), "not within the second");
        tokio::time::advance(RETRY_EVERY).await;
        assert!(link.should_ask(), "one caller after a second");
        assert!(!link.should_ask(), "only one");
        let clone = link.clone();
        assert!(clone.mark_up(), "the return is reported, to every clone");
        assert!(!link.mark_up(), "once");
        assert!(link.should_ask());
        // Another timeout: its own state.
        assert!(link.mark_down());
        let other = link.with_timeout(Duration::from_secs(1));
        assert!(!other.is_down() && other.should_ask());
        assert_eq!(other.timeout(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_are_bounded_by_the_timeout() {
        let link = link();
        let result: Result<(), _> = link
            .call(|_| std::future::pending::<Result<(), RedisError>>())
            .await;
        // Connecting to port 1 is refused at once, or the timeout hits: either way no answer.
        match result {
            Err(Unavailable::Redis(_) | Unavailable::Timeout(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            Unavailable::Timeout(Duration::from_millis(100)).to_string(),
            "no answer within 100ms"
        );
        assert_eq!(Unavailable::Skipped.to_string(), "down, not asked");
    }
}
