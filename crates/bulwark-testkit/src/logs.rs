//! [`CapturedLogs`]: what a test's code logged through `tracing`, as text to search.

use std::{
    fmt, io,
    sync::{Arc, Mutex},
};

use tracing::subscriber::DefaultGuard;

use crate::lock;

/// The `tracing` output of the current thread, captured as plain text (no colours) at `INFO`
/// and above, for tests that check what a layer logged (a Redis store saying it degraded, then
/// recovered).
///
/// The subscriber is the thread's default for as long as the guard of
/// [`capture`](Self::capture) lives: use it on a current-thread runtime (`#[tokio::test]`'s
/// default), where every task polls on the test's thread. Clones share one buffer.
///
/// ```
/// use bulwark_testkit::CapturedLogs;
///
/// let logs = CapturedLogs::default();
/// {
///     let _guard = logs.capture();
///     tracing::warn!(target: "bulwark_bucket", "Redis unreachable");
///     tracing::debug!("below INFO: not captured");
/// }
/// tracing::warn!("after the guard: not captured");
/// assert_eq!(logs.count("Redis unreachable"), 1);
/// assert!(!logs.text().contains("captured"));
/// ```
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl fmt::Debug for CapturedLogs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapturedLogs")
            .field("bytes", &lock(&self.0).len())
            .finish()
    }
}

impl CapturedLogs {
    /// Makes a subscriber writing into this buffer the current thread's default until the
    /// returned guard is dropped.
    #[must_use = "capturing stops when the guard is dropped"]
    pub fn capture(&self) -> DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Like [`capture`](Self::capture), but everything down to `TRACE`, with each span's
    /// fields printed again when it closes (so fields recorded late, such as a request's
    /// `attempts` or `outcome`, are in the text too): for tests that check what is *never*
    /// logged, at any level.
    #[must_use = "capturing stops when the guard is dropped"]
    pub fn capture_all(&self) -> DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Everything captured so far.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }

    /// How many times `needle` occurs in what was captured.
    #[must_use]
    pub fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
}

impl io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
