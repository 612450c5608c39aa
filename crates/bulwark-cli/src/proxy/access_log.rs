//! `--access-log FILE`: one [`AccessRecord`] line per request, appended to a file by a writer
//! thread so that no request ever waits for the disk.
//!
//! The request path only formats its line and offers it to a bounded channel
//! ([`CHANNEL_LINES`] lines) with `try_send`: when the writer is that far behind (a stalled
//! disk, a full one), the line is dropped and counted ([`ProxyStats::access_log_dropped`]),
//! never waited for. The writer is a plain thread that owns the file: it gathers what the
//! channel holds and writes it out whenever the channel is empty (or 64 KiB have gathered),
//! so lines reach the file promptly at a low rate and in batches at a high one; a failed
//! write counts its lines lost ([`ProxyStats::access_log_write_errors`]) and the next batch
//! tries again. Shutdown ([`AccessLog::close`]) queues a close
//! behind the last lines and waits (bounded) for the writer to flush them.
//!
//! A thread rather than `tokio::fs`: tokio's file does each write on the blocking pool
//! anyway; one thread that owns the file and blocks on it is simpler and keeps the writes
//! in order.
//!
//! [`ProxyStats::access_log_dropped`]: crate::proxy::ProxyStats::access_log_dropped
//! [`ProxyStats::access_log_write_errors`]: crate::proxy::ProxyStats::access_log_write_errors

use std::{
    fs::OpenOptions,
    io::{self, Write},
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};

use crate::proxy::record::AccessRecord;

/// Lines the channel to the writer holds; beyond, lines are dropped (about 2 MiB of lines).
pub(crate) const CHANNEL_LINES: usize = 8192;

/// What the writer thread receives.
enum Msg {
    Line(String),
    /// Flush everything before this and stop; answer when done.
    Close(oneshot::Sender<()>),
}

/// Counters shared with the writer thread.
#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
    write_errors: AtomicU64,
}

/// The access log of one proxy: the sending side of the writer's channel.
#[derive(Debug)]
pub(crate) struct AccessLog {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line(_) => f.write_str("Line"),
            Self::Close(_) => f.write_str("Close"),
        }
    }
}

impl AccessLog {
    /// Opens `path` for appending (created if missing) and starts the writer thread.
    ///
    /// # Errors
    /// When the file cannot be opened or the thread cannot start; the message names the path.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Self::with_writer(file, CHANNEL_LINES)
    }

    /// The writer thread on any `Write` (tests use one that blocks).
    pub(crate) fn with_writer<W: Write + Send + 'static>(
        out: W,
        capacity: usize,
    ) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("bulwark-access-log".to_owned())
            .spawn(move || write_lines(out, rx, &thread_counters))?;
        Ok(Self { tx, counters })
    }

    /// Offers `record`'s line to the writer; drops (and counts) it when the channel is full
    /// or the writer gone. Never waits.
    pub(crate) fn log(&self, record: &AccessRecord) {
        let mut line = record.to_line();
        line.push('\n');
        if self.tx.try_send(Msg::Line(line)).is_err() {
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // At 1, 10, 100, …: loud enough to notice, never a flood.
            if is_power_of_ten(dropped) {
                tracing::warn!(target: "bulwark_cli", dropped, "access log behind: lines dropped");
            }
        }
    }

    /// Lines dropped because the writer was behind (or gone).
    pub(crate) fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Lines lost to write errors.
    pub(crate) fn write_errors(&self) -> u64 {
        self.counters.write_errors.load(Ordering::Relaxed)
    }

    /// Has the writer write and flush every line offered so far, then stop; waits at most
    /// `wait` for a place in the channel and as long again for the flush. Lines offered
    /// afterwards are dropped.
    pub(crate) async fn close(&self, wait: Duration) {
        let (done, flushed) = oneshot::channel();
        let queued = tokio::time::timeout(wait, self.tx.send(Msg::Close(done))).await;
        let flushed = match queued {
            Ok(Ok(())) => tokio::time::timeout(wait, flushed).await.is_ok(),
            _ => false,
        };
        let (dropped, write_errors) = (self.dropped(), self.write_errors());
        if !flushed {
            tracing::warn!(target: "bulwark_cli", "access log: the writer did not finish in time; its last lines may be lost");
        }
        if dropped > 0 || write_errors > 0 {
            tracing::warn!(target: "bulwark_cli", dropped, write_errors, "access log: lines lost");
        }
    }
}

fn is_power_of_ten(mut n: u64) -> bool {
    while n >= 10 && n % 10 == 0 {
        n /= 10;
    }
    n == 1
}

/// The most a writer collects before writing it out, even while lines keep coming.
const BATCH_BYTES: usize = 64 * 1024;

/// The writer thread: collects lines, writes them out whenever the channel is empty (or the
/// batch is large), stops on `Close` or when every sender is gone.
fn write_lines<W: Write>(mut out: W, mut rx: mpsc::Receiver<Msg>, counters: &Counters) {
    let mut batch = Batch::default();
    let mut next = rx.blocking_recv();
    while let Some(msg) = next.take() {
        match msg {
            Msg::Line(line) => {
                batch.bytes.extend_from_slice(line.as_bytes());
                batch.lines += 1;
                if batch.bytes.len() >= BATCH_BYTES {
                    batch.write_to(&mut out, counters);
                }
            }
            Msg::Close(done) => {
                batch.write_to(&mut out, counters);
                let _ = done.send(());
                return;
            }
        }
        next = match rx.try_recv() {
            Ok(msg) => Some(msg),
            Err(_) => {
                batch.write_to(&mut out, counters);
                rx.blocking_recv()
            }
        };
    }
    batch.write_to(&mut out, counters);
}

/// Lines waiting to be written.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: u64,
    /// The last write failed (to warn once per failing streak).
    failing: bool,
}

impl Batch {
    /// Writes and flushes the batch; on failure its lines are counted lost. Empties it.
    fn write_to<W: Write>(&mut self, out: &mut W, counters: &Counters) {
        if self.lines == 0 {
            return;
        }
        match out.write_all(&self.bytes).and_then(|()| out.flush()) {
            Ok(()) => {
                if self.failing {
                    tracing::info!(target: "bulwark_cli", "access log: writing again");
                }
                self.failing = false;
            }
            Err(error) => {
                counters
                    .write_errors
                    .fetch_add(self.lines, Ordering::Relaxed);
                if !self.failing {
                    tracing::warn!(target: "bulwark_cli", %error, "access log: cannot write; lines are lost");
                }
                self.failing = true;
            }
        }
        self.bytes.clear();
        self.lines = 0;
        if self.bytes.capacity() > 4 * BATCH_BYTES {
            self.bytes.shrink_to(BATCH_BYTES);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{mpsc as std_mpsc, Mutex};

    use time::OffsetDateTime;

    use super::*;

    /// A `Write` that reports each write and waits for permission before the first one.
    struct Gate {
        entered: std_mpsc::Sender<()>,
        open: Mutex<std_mpsc::Receiver<()>>,
        waited: bool,
        out: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if !self.waited {
                self.waited = true;
                let _ = self.entered.send(());
                let _ = self.open.lock().unwrap().recv();
            }
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn record(n: u64) -> AccessRecord {
        let mut r = AccessRecord::new(OffsetDateTime::UNIX_EPOCH, "GET", "/v1/users", 200);
        r.request_bytes = n;
        r
    }

    #[tokio::test]
    async fn a_stalled_writer_drops_lines_and_never_blocks() {
        let (entered_tx, entered) = std_mpsc::channel();
        let (open, open_rx) = std_mpsc::channel();
        let out = Arc::new(Mutex::new(Vec::new()));
        let gate = Gate {
            entered: entered_tx,
            open: Mutex::new(open_rx),
            waited: false,
            out: Arc::clone(&out),
        };
        let log = AccessLog::with_writer(gate, 4).unwrap();
        log.log(&record(0));
        // The writer holds line 0 and is stuck in the disk: 4 lines fit, 96 are dropped.
        entered.recv_timeout(Duration::from_secs(20)).unwrap();
        for n in 1..=100 {
            log.log(&record(n));
        }
        assert_eq!(log.dropped(), 96);
        open.send(()).unwrap();
        log.close(Duration::from_secs(20)).await;
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let sizes: Vec<u64> = text
            .lines()
            .map(|l| AccessRecord::parse(l).unwrap().request_bytes)
            .collect();
        assert_eq!(sizes, vec![0, 1, 2, 3, 4]);
        // After the close, lines are dropped, not queued.
        log.log(&record(101));
        assert_eq!(log.dropped(), 97);
        assert_eq!(log.write_errors(), 0);
    }

    /// A `Write` that always fails.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }

        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::other("disk on fire"))
        }
    }

    #[tokio::test]
    async fn write_errors_are_counted_not_fatal() {
        let log = AccessLog::with_writer(Broken, 16).unwrap();
        for n in 0..3 {
            log.log(&record(n));
        }
        log.close(Duration::from_secs(20)).await;
        assert_eq!(log.write_errors(), 3);
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn powers_of_ten() {
        let hits: Vec<u64> = (0..=1000).filter(|n| is_power_of_ten(*n)).collect();
        assert_eq!(hits, vec![1, 10, 100, 1000]);
    }
}
