//! The connection table: a cap on open client connections, what each one is doing, and which
//! one gives way when the table is full.
//!
//! A connection is *busy* from the moment hyper hands the service a request head until its
//! response body has been written (its [`RequestGuard`] is dropped), and *idle* otherwise —
//! waiting for a first request, between kept-alive requests, or stuck in a request head that
//! never ends (a slowloris). When the table is full, a new connection evicts the connection
//! idle the longest: stalled clients cannot lock out working ones, and a busy connection is
//! never cut. Only when every connection is busy is a new one refused. (Evictions come in
//! batches of one in 32 of the table, so that a flood pays for one scan of it per batch.)

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

/// The bit of [`ConnState::state`] set once a connection is evicted; the rest counts the
/// requests in flight.
const EVICTED: usize = 1 << (usize::BITS - 1);

/// Every open client connection, up to `max`.
#[derive(Debug)]
pub(crate) struct ConnTable {
    max: usize,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    /// Evicted connections whose tasks have not closed them yet: out of the table, but still
    /// holding a descriptor each.
    closing: AtomicUsize,
}

/// What [`ConnTable::admit`] decided.
#[derive(Debug)]
pub(crate) enum Admission {
    /// A slot was free.
    Admitted(ConnGuard),
    /// The connection idle the longest was evicted to make room.
    Evicted(ConnGuard),
    /// Every connection is busy: refuse this one.
    Full,
}

impl ConnTable {
    /// A table of at most `max` connections.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            closing: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Open connections.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Open connections with a request in flight.
    pub(crate) fn busy(&self) -> usize {
        self.lock().values().filter(|c| c.in_flight() > 0).count()
    }

    /// Takes a slot for a new connection. When the table is full, the connections idle the
    /// longest are evicted: one in 32 of the table (at least one), so that a flood of new
    /// connections pays for one scan per batch.
    pub(crate) fn admit(self: &Arc<Self>) -> Admission {
        let mut conns = self.lock();
        let evicted = if conns.len() >= self.max {
            // (Evicted connections leave the table at once but hold their descriptors until
            // their tasks close them: the accept loop waits while too many are closing, see
            // `draining`.)
            if conns.len() > self.max + self.max / 8 {
                return Admission::Full;
            }
            // A batch, so that a flood of new connections pays for one scan per batch, not
            // one per connection.
            if evict_oldest_idle(&mut conns, self.max / 32 + 1, &self.closing) == 0 {
                return Admission::Full;
            }
            true
        } else {
            false
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new());
        conns.insert(id, Arc::clone(&state));
        drop(conns);
        let guard = ConnGuard {
            table: Arc::clone(self),
            id,
            state,
        };
        if evicted {
            Admission::Evicted(guard)
        } else {
            Admission::Admitted(guard)
        }
    }

    /// Evicts up to `n` of the connections idle the longest (to free file descriptors when
    /// `accept` runs out of them); returns how many.
    pub(crate) fn evict_idle(&self, n: usize) -> usize {
        evict_oldest_idle(&mut self.lock(), n, &self.closing)
    }

    /// Whether more than an eighth of the table's worth of evicted connections still hold
    /// their descriptors (their tasks lag behind a flood of new connections on a loaded
    /// machine): the accept loop lets them close before taking more, so the descriptors held
    /// stay near the cap instead of reaching the process's limit.
    pub(crate) fn draining(&self) -> bool {
        self.closing.load(Ordering::Acquire) > self.max / 8
    }
}

/// Evicts up to `n` idle connections, the longest idle first, removing them from `conns`.
fn evict_oldest_idle(
    conns: &mut HashMap<u64, Arc<ConnState>>,
    n: usize,
    closing: &AtomicUsize,
) -> usize {
    let mut idle: Vec<(Instant, u64)> = conns
        .iter()
        .filter(|(_, c)| c.in_flight() == 0 && !c.is_evicted())
        .map(|(id, c)| (c.idle_since(), *id))
        .collect();
    idle.sort_unstable();
    let mut evicted = 0;
    for (_, id) in idle {
        if evicted == n {
            break;
        }
        if conns.get(&id).is_some_and(|c| c.try_evict()) {
            conns.remove(&id);
            closing.fetch_add(1, Ordering::AcqRel);
            evicted += 1;
        }
    }
    evicted
}

/// One connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    table: Arc<ConnTable>,
    id: u64,
    state: Arc<ConnState>,
}

impl ConnGuard {
    /// The connection's shared state.
    pub(crate) const fn state(&self) -> &Arc<ConnState> {
        &self.state
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.state.is_evicted() {
            // The connection's task is done with it: its descriptor is closed with it.
            self.table.closing.fetch_sub(1, Ordering::AcqRel);
        }
        let mut conns = self.table.lock();
        if conns
            .get(&self.id)
            .is_some_and(|c| Arc::ptr_eq(c, &self.state))
        {
            conns.remove(&self.id);
        }
    }
}

/// What one connection is doing, shared by its task, its IO and its requests.
#[derive(Debug)]
pub(crate) struct ConnState {
    /// Requests in flight, and [`EVICTED`].
    state: AtomicUsize,
    /// Whether a byte arrived since the connection last became idle.
    read_since_idle: AtomicBool,
    /// Requests handed to the service whose response head has not been written yet.
    awaiting_heads: AtomicUsize,
    /// When the connection last became idle (accepted, or its last response written).
    idle_since: Mutex<Instant>,
    /// Woken on eviction and whenever a request starts or ends.
    changed: Notify,
}

impl ConnState {
    fn new() -> Self {
        Self {
            state: AtomicUsize::new(0),
            read_since_idle: AtomicBool::new(false),
            awaiting_heads: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            changed: Notify::new(),
        }
    }

    /// Requests in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.state.load(Ordering::Acquire) & !EVICTED
    }

    /// Whether the connection was evicted (its task closes it).
    pub(crate) fn is_evicted(&self) -> bool {
        self.state.load(Ordering::Acquire) & EVICTED != 0
    }

    /// Evicts the connection if it is idle.
    fn try_evict(&self) -> bool {
        let evicted = self
            .state
            .compare_exchange(0, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if evicted {
            self.changed.notify_one();
        }
        evicted
    }

    fn idle_since(&self) -> Instant {
        *self
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A request head reached the service: busy until the guard is dropped.
    pub(crate) fn start_request(self: &Arc<Self>) -> RequestGuard {
        self.state.fetch_add(1, Ordering::AcqRel);
        self.awaiting_heads.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
        RequestGuard {
            state: Arc::clone(self),
        }
    }

    /// Bytes arrived from the client.
    pub(crate) fn bytes_read(&self) {
        if !self.read_since_idle.load(Ordering::Relaxed) {
            self.read_since_idle.store(true, Ordering::Relaxed);
        }
    }

    /// A response head was written; `false` when no request was waiting for one (so hyper
    /// wrote it on its own).
    pub(crate) fn head_written(&self) -> bool {
        self.awaiting_heads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Whether every response head asked for has been written.
    pub(crate) fn no_heads_awaited(&self) -> bool {
        self.awaiting_heads.load(Ordering::Acquire) == 0
    }

    /// When the connection is to be closed for idleness, if it is idle and no byte arrived
    /// since it became so.
    pub(crate) fn idle_deadline(&self, idle_timeout: Duration) -> Option<Instant> {
        if self.in_flight() != 0 || self.read_since_idle.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.idle_since() + idle_timeout)
    }

    /// Waits for an eviction, or a request to start or end.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// Marks a request in flight; dropping it marks it done.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    state: Arc<ConnState>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let before = self.state.state.fetch_sub(1, Ordering::AcqRel);
        if before & !EVICTED == 1 {
            *self
                .state
                .idle_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Instant::now();
            self.state.read_since_idle.store(false, Ordering::Relaxed);
        }
        self.state.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(admission: Admission) -> ConnGuard {
        match admission {
            Admission::Admitted(g) | Admission::Evicted(g) => g,
            Admission::Full => panic!("table full"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_evicts_the_longest_idle_connection() {
        let table = ConnTable::new(2);
        let first = guard(table.admit());
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = guard(table.admit());
        // The first connection served a request and became idle later than the second.
        let request = first.state().start_request();
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(request);
        let third = table.admit();
        assert!(matches!(third, Admission::Evicted(_)));
        assert!(second.state().is_evicted());
        assert!(!first.state().is_evicted());
        assert_eq!(table.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn busy_connections_are_never_evicted() {
        let table = ConnTable::new(2);
        let a = guard(table.admit());
        let b = guard(table.admit());
        let _ra = a.state().start_request();
        let rb = b.state().start_request();
        assert!(matches!(table.admit(), Admission::Full));
        assert_eq!(table.evict_idle(10), 0);
        drop(rb);
        let c = guard(table.admit());
        assert!(b.state().is_evicted() && !a.state().is_evicted());
        drop(c);
        assert_eq!(table.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_deadline_follows_requests_and_reads() {
        let table = ConnTable::new(1);
        let g = guard(table.admit());
        let s = g.state();
        let idle = Duration::from_secs(5);
        assert_eq!(s.idle_deadline(idle), Some(Instant::now() + idle));
        let request = s.start_request();
        assert_eq!(s.idle_deadline(idle), None);
        assert!(s.head_written());
        assert!(!s.head_written(), "one head per request");
        tokio::time::advance(Duration::from_secs(2)).await;
        drop(request);
        assert_eq!(s.idle_deadline(idle), Some(Instant::now() + idle));
        s.bytes_read();
        assert_eq!(s.idle_deadline(idle), None);
    }
}
