//! The accept loop's helpers: a listener with a real backlog, which `accept` errors to shrug
//! off, and the back-off (with its logging) for the others.

use std::{io, net::SocketAddr, time::Duration};

use tokio::{
    net::{TcpListener, TcpSocket},
    time::Instant,
};

/// Connections the kernel queues for `accept` (std's and tokio's `bind` ask for 128, which a
/// burst of clients overflows while the accept loop works, and each overflow costs a client a
/// one-second SYN retransmission).
pub(crate) const LISTEN_BACKLOG: u32 = 1024;

/// A listener on `addr` with a [`LISTEN_BACKLOG`] queue (capped by the kernel's `somaxconn`).
pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accept errors that concern one connection only (it was reset before being accepted):
/// accept again at once.
pub(crate) fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// `EMFILE` / `ENFILE`: the process or the system is out of file descriptors (23 and 24 on
/// Linux, macOS and the BSDs; `WSAEMFILE` on Windows).
pub(crate) fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(23 | 24 | 10024))
}

/// The accept loop's back-off: 5 ms doubling to 500 ms (1 ms after closing idle connections
/// to free descriptors). An episode of failures ends at the next successful accept; its first
/// failure is a warning and its end an info line, at most once per [`Backoff::QUIET`] (later
/// episodes in that window log at debug, and the next warning counts them).
#[derive(Debug)]
pub(crate) struct Backoff {
    /// Failures in this episode (0: none running).
    failures: u64,
    since: Option<Instant>,
    /// Whether this episode was announced (so its end is too).
    announced: bool,
    last_warning: Option<Instant>,
    /// Episodes not announced since the last warning.
    quiet_episodes: u64,
}

impl Backoff {
    /// The least time between two warnings.
    const QUIET: Duration = Duration::from_secs(10);

    pub(crate) const fn new() -> Self {
        Self {
            failures: 0,
            since: None,
            announced: false,
            last_warning: None,
            quiet_episodes: 0,
        }
    }

    /// An accept failed; `evicted` idle connections were closed to make room. Returns how
    /// long to wait before accepting again.
    pub(crate) fn failed(&mut self, error: &io::Error, evicted: usize) -> Duration {
        self.failures += 1;
        if self.since.is_none() {
            let now = Instant::now();
            self.since = Some(now);
            self.announced = self.last_warning.is_none_or(|at| now - at >= Self::QUIET);
            if self.announced {
                self.last_warning = Some(now);
                tracing::warn!(target: "bulwark_cli", %error, evicted, episodes_since_last_warning = self.quiet_episodes, "accept failed; backing off and serving the open connections");
                self.quiet_episodes = 0;
            } else {
                self.quiet_episodes += 1;
                tracing::debug!(target: "bulwark_cli", %error, evicted, "accept failed");
            }
        }
        if evicted > 0 {
            // The evicted connections' descriptors are freed as soon as their tasks run.
            return Duration::from_millis(1);
        }
        let exp = self.failures.min(8) as u32;
        Duration::from_millis(5 * 2u64.pow(exp - 1)).min(Duration::from_millis(500))
    }

    /// An accept succeeded.
    pub(crate) fn recovered(&mut self) {
        if let Some(since) = self.since.take() {
            let ms = since.elapsed().as_millis() as u64;
            if self.announced {
                tracing::info!(target: "bulwark_cli", failures = self.failures, ms, "accepting again");
            } else {
                tracing::debug!(target: "bulwark_cli", failures = self.failures, ms, "accepting again");
            }
            self.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_to_a_cap_and_restarts() {
        let emfile = io::Error::from_raw_os_error(24);
        assert!(is_out_of_descriptors(&emfile));
        let mut backoff = Backoff::new();
        let waits: Vec<u64> = (0..9)
            .map(|_| backoff.failed(&emfile, 0).as_millis() as u64)
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 500, 500]);
        assert_eq!(backoff.failed(&emfile, 3), Duration::from_millis(1));
        backoff.recovered();
        assert_eq!(backoff.failed(&emfile, 0), Duration::from_millis(5));
        assert!(is_per_connection(&io::ErrorKind::ConnectionAborted.into()));
        assert!(!is_per_connection(&emfile));
    }
}
