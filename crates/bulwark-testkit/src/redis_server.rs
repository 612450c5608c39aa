//! [`RedisServer`]: a real `redis-server` child process on a free loopback port, for tests of
//! the Redis stores.

use std::{
    future::Future,
    io::{self, Write},
    net::TcpListener,
    panic::Location,
    process::{Child, Command, Stdio},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{sleep, timeout},
};

/// How many times [`RedisServer::restart`] sends `PING` before it gives up.
const PING_TRIES: u32 = 100;
/// The longest one `PING` (connect, write, read) may take.
const PING_TIMEOUT: Duration = Duration::from_millis(500);
/// The pause between two `PING`s.
const PING_PAUSE: Duration = Duration::from_millis(50);

/// Set to `1` (any value but empty or `0`), a test that needs `redis-server` and does not find
/// it fails instead of skipping. `.ci/run` sets it.
pub const REQUIRE_REDIS_VAR: &str = "BULWARK_REQUIRE_REDIS";

/// Set to a file path, every test that got a real server from
/// [`RedisServer::start_or_skip`] appends one line (`{file} {test}`) to it, so CI can say how
/// many Redis tests really ran.
pub const REDIS_TEST_LOG_VAR: &str = "BULWARK_REDIS_TEST_LOG";

/// A `redis-server` child process on a loopback port, killed on drop.
///
/// It runs without persistence (`--save "" --appendonly no`), so a restart starts empty.
///
/// Tests get one with [`start_or_skip`](Self::start_or_skip): when `redis-server` is not on
/// `PATH` (Debian: `apt-get install redis-server`) the test prints a `SKIPPED` line that the
/// test harness does not capture and returns before its assertions — unless
/// [`BULWARK_REQUIRE_REDIS`](REQUIRE_REDIS_VAR) is set, as in CI, where a missing Redis is a
/// failure. [`start`](Self::start) always panics without it.
///
/// # Example
/// ```no_run
/// use bulwark_testkit::RedisServer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let Some(mut server) = RedisServer::start_or_skip().await else {
///     return; // redis-server is not installed: skipped, and said so on stderr
/// };
/// let url = server.url(); // redis://127.0.0.1:{port}/
/// server.kill(); // Redis is down
/// server.restart().await; // up again, on the same port, empty
/// # let _ = url;
/// # }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers `PING`.
    ///
    /// # Panics
    /// If `redis-server` cannot be run, exits at start, or does not answer `PING` after 100
    /// tries (each bounded by 500 ms, 50 ms apart).
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.restart().await;
        server
    }

    /// Starts a server like [`start`](Self::start) when `redis-server` is on `PATH`.
    ///
    /// Without it, writes `SKIPPED {file} {test}: redis-server not found …` straight to the
    /// process's stderr (not captured by the test harness, so `cargo test` shows it) and
    /// resolves to `None`: the caller returns before asserting anything. With
    /// [`BULWARK_REQUIRE_REDIS`](REQUIRE_REDIS_VAR) set it panics instead. When
    /// [`BULWARK_REDIS_TEST_LOG`](REDIS_TEST_LOG_VAR) names a file, a started server appends the
    /// caller's file and test name to it.
    ///
    /// # Panics
    /// As [`start`](Self::start), and when `redis-server` is missing while it is required.
    #[track_caller]
    pub fn start_or_skip() -> impl Future<Output = Option<Self>> {
        let caller = Location::caller();
        let test = std::thread::current()
            .name()
            .unwrap_or("a Redis test")
            .to_owned();
        let who = format!("{} {test}", caller.file());
        async move {
            if !Self::is_installed() {
                assert!(
                    !required(),
                    "{who}: redis-server is not on PATH but {REQUIRE_REDIS_VAR} is set \
                     (Debian: apt-get install redis-server)"
                );
                let _ = writeln!(
                    io::stderr(),
                    "SKIPPED {who}: redis-server not found — install redis-server, or set \
                     {REQUIRE_REDIS_VAR}=1 to make this an error"
                );
                return None;
            }
            let server = Self::start().await;
            if let Some(path) = std::env::var_os(REDIS_TEST_LOG_VAR).filter(|p| !p.is_empty()) {
                let line = format!("{who}\n");
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .and_then(|mut f| f.write_all(line.as_bytes()))
                    .unwrap_or_else(|e| panic!("cannot append to {path:?}: {e}"));
            }
            Some(server)
        }
    }

    /// Whether `redis-server` can be run (it is on `PATH` and answers `--version`).
    #[must_use]
    pub fn is_installed() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill)) and waits until
    /// it answers `PING`.
    ///
    /// # Panics
    /// If it is still running, or as [`start`](Self::start).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `redis-server` ({e}): these tests need it on PATH \
                     (Debian: apt-get install redis-server; .ci/run installs it)"
                )
            });
        self.child = Some(child);
        for _ in 0..PING_TRIES {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("redis-server on port {port} exited at start: {status}");
            }
            if let Ok(Ok(true)) = timeout(PING_TIMEOUT, ping(self.port)).await {
                return;
            }
            sleep(PING_PAUSE).await;
        }
        panic!("redis-server on port {port} did not answer PING after {PING_TRIES} tries");
    }

    /// Kills the server (if it runs) and waits for it to exit; the port stays this server's
    /// for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's port on `127.0.0.1`.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/`, for `redis::Client::open`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A `redis://` URL on a loopback port nothing listens on (free when asked; the OS does
    /// not hand it out again at once), for tests of an absent Redis.
    #[must_use]
    pub fn unused_url() -> String {
        format!("redis://127.0.0.1:{}/", free_port())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether [`REQUIRE_REDIS_VAR`] asks for a real Redis.
fn required() -> bool {
    std::env::var(REQUIRE_REDIS_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A port nothing listens on (free when asked; the OS does not hand it out again at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// Whether the server on `port` answers an inline `PING` with `+PONG`.
async fn ping(port: u16) -> io::Result<bool> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(b"PING\r\n").await?;
    let mut reply = Vec::new();
    let mut buf = [0; 64];
    while !reply.ends_with(b"\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    Ok(reply == b"+PONG\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_kills_and_restarts_on_the_same_port() {
        let Some(mut server) = RedisServer::start_or_skip().await else {
            return;
        };
        let port = server.port();
        assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/"));
        assert!(ping(port).await.unwrap());
        server.kill();
        assert!(ping(port).await.is_err(), "nothing listens after kill");
        server.restart().await;
        assert_eq!(server.port(), port);
        assert!(ping(port).await.unwrap());
        assert_ne!(RedisServer::unused_url(), server.url());
    }
}
