//! [`FakeMark2Notion`]: the HTTP/1.1 server on loopback, and its accept loop.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::builder::FakeMark2NotionBuilder;
use super::handle::{self, Mark2NotionHandle};
use super::in_process::InProcessMark2Notion;

/// How long `shutdown` lets in-flight requests finish.
const GRACE: Duration = Duration::from_secs(1);

/// A running fake Mark2Notion on `127.0.0.1`.
///
/// Built with [`FakeMark2Notion::builder`]. The server runs on the Tokio
/// runtime that started it and stops on [`shutdown`](Self::shutdown) or when
/// this value is dropped; it owns every task it spawned.
pub struct FakeMark2Notion {
    addr: SocketAddr,
    core: InProcessMark2Notion,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for FakeMark2Notion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeMark2Notion")
            .field("addr", &self.addr)
            .field("state", &self.core.handle)
            .finish_non_exhaustive()
    }
}

impl FakeMark2Notion {
    /// A builder with the defaults: one API key `mk_test_key`, a quota of
    /// 1000 on the plan `free`, nothing used, no reset during the test.
    pub fn builder() -> FakeMark2NotionBuilder {
        FakeMark2NotionBuilder::default()
    }

    /// The base URL, `http://127.0.0.1:PORT` (no trailing slash); requests
    /// go to `{url}/api/convert` and `{url}/api/append`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The emulator behind the socket: the same state, reachable without one.
    #[must_use]
    pub fn core(&self) -> &InProcessMark2Notion {
        &self.core
    }

    /// The handle that observes and steers the server.
    #[must_use]
    pub fn handle(&self) -> Mark2NotionHandle {
        self.core.handle()
    }

    /// Stops accepting connections, lets in-flight requests finish (for at
    /// most a second), closes idle keep-alive connections and returns when
    /// every task of the server has ended.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                tracing::debug!(target: "bulwark_testkit", %error, "Mark2Notion server task ended abnormally");
            }
        }
    }

    pub(crate) async fn start(core: InProcessMark2Notion) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let task = tokio::spawn(serve(listener, core.handle(), stop));
        tracing::info!(target: "bulwark_testkit", %addr, "FakeMark2Notion listening");
        Ok(Self {
            addr,
            core,
            shutdown,
            task: Some(task),
        })
    }
}

impl Drop for FakeMark2Notion {
    /// Stops the server at once: the listener and every connection close.
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accepts connections until shutdown, then lets in-flight requests finish
/// for up to [`GRACE`]. Connection tasks live in a `JoinSet` owned here, so
/// aborting this task ends them all.
async fn serve(
    listener: TcpListener,
    handle: Mark2NotionHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, handle.clone(), shutdown.clone()));
                }
                Err(error) => {
                    tracing::warn!(target: "bulwark_testkit", %error, "Mark2Notion accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(GRACE, drain).await.is_err() {
        tracing::debug!(target: "bulwark_testkit", "aborting Mark2Notion connections still open after the grace period");
    }
}

/// Resolves once shutdown is requested (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve_connection(
    stream: TcpStream,
    handle: Mark2NotionHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let handle = handle.clone();
        async move { Ok::<_, Infallible>(handle::handle(&handle, request).await) }
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(target: "bulwark_testkit", %error, "Mark2Notion connection closed with an error");
    }
}
