//! [`ConnIo`]: the client socket as hyper sees it. It tells the connection's state when bytes
//! arrive, and replaces the bare answers hyper writes on its own with Notion-shaped ones.
//!
//! hyper answers a request head it cannot parse by itself, before any service sees it:
//! `400 Bad Request` (a malformed request line or header, a bad `Content-Length` or
//! `Transfer-Encoding`), `414 URI Too Long`, `431 Request Header Fields Too Large`, each with
//! an empty body, then closes the connection. It offers no hook for that answer, so `ConnIo`
//! recognises it on the way out: a write that starts a `400`/`414`/`431` head with
//! `content-length: 0` while no request handed to the service awaits its answer can only be
//! hyper's own. That write is swallowed and the Notion-shaped answer is written instead (with
//! `Connection: close`); when the connection is dropped, unread input is drained for up to a
//! second (`linger`) so the client gets the answer rather than a reset.
//!
//! Best effort, never wrong: when hyper's answer shares a write with the tail of the previous
//! response (a slow client on a kept-alive connection), or a response head is split across
//! writes, it goes out as hyper wrote it. A response the service made is never replaced,
//! since its request awaits a head.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
};

use crate::proxy::{answer, conn::ConnState};

/// How long a connection whose answer replaced hyper's drains the client's unread input.
const LINGER: Duration = Duration::from_secs(1);
/// How much unread input it drains at most.
const LINGER_BYTES: usize = 256 * 1024;

/// The client socket, watched (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct ConnIo {
    /// `None` only once dropped.
    stream: Option<TcpStream>,
    conn: Arc<ConnState>,
    max_header_bytes: usize,
    /// Our replacement for hyper's answer, and how much of it is written.
    replacement: Option<(Bytes, usize)>,
}

impl ConnIo {
    pub(crate) const fn new(
        stream: TcpStream,
        conn: Arc<ConnState>,
        max_header_bytes: usize,
    ) -> Self {
        Self {
            stream: Some(stream),
            conn,
            max_header_bytes,
            replacement: None,
        }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.stream
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// The status of hyper's own answer, if `head` is one (see the [module docs](self)).
    fn hypers_own_answer(&self, head: &[u8]) -> Option<u16> {
        if !self.conn.no_heads_awaited() {
            return None;
        }
        let rest = head.strip_prefix(b"HTTP/1.1 ")?;
        let status = match rest.get(..4)? {
            b"400 " => 400,
            b"414 " => 414,
            b"431 " => 431,
            _ => return None,
        };
        let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
        head[..end + 2]
            .windows(21)
            .any(|w| w == b"\r\ncontent-length: 0\r\n")
            .then_some(status)
    }

    /// Looks at the start of a write: replaces hyper's own answer (returns `true`), or counts
    /// a response head.
    fn inspect(&mut self, first: &[u8]) -> bool {
        if self.replacement.is_some() {
            return true;
        }
        if let Some(status) = self.hypers_own_answer(first) {
            if let Some(res) = answer::parse_error(status, self.max_header_bytes) {
                tracing::info!(target: "bulwark_cli", method = "-", route = "-", status, "request refused by the HTTP/1.1 parser");
                self.replacement = Some((answer::to_wire(&res), 0));
                return true;
            }
        }
        false
    }

    /// Writes what is left of the replacement answer.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = self.replacement.as_ref().map(|(b, w)| (b.clone(), *w)) {
            if written == bytes.len() {
                break;
            }
            let n = ready!(self.stream()?.poll_write(cx, &bytes[written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if let Some((_, w)) = self.replacement.as_mut() {
                *w += n;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Counts a response head once it was (at least partly) written.
    fn written(&self, first: &[u8], n: usize) {
        // A final head: not a `1xx` (hyper's own `100 Continue`).
        if n > 0 && first.starts_with(b"HTTP/1.") && first.get(9..10).is_none_or(|d| d != b"1") {
            self.conn.head_written();
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(this.stream()?.poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.conn.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.inspect(buf) {
            // hyper's bytes are taken (and dropped); ours go out now or on the next flush.
            if let Poll::Ready(Err(e)) = this.poll_replacement(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(this.stream()?.poll_write(cx, buf))?;
        this.written(buf, n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let first: &[u8] = bufs.iter().find(|b| !b.is_empty()).map_or(&[], |b| b);
        if this.inspect(first) {
            if let Poll::Ready(Err(e)) = this.poll_replacement(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        let n = ready!(this.stream()?.poll_write_vectored(cx, bufs))?;
        this.written(first, n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        this.stream()?.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        this.stream()?.poll_shutdown(cx)
    }
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        let Some((bytes, written)) = self.replacement.take() else {
            return;
        };
        let Some(stream) = self.stream.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream, bytes.slice(written..), LINGER));
        }
    }
}

/// Finishes writing `rest`, closes the sending side, and reads what the client still sends
/// for up to `within` (at most [`LINGER_BYTES`]), so that closing a socket with unread input
/// does not reset the connection before the client has read the answer.
pub(crate) async fn linger(mut stream: TcpStream, rest: Bytes, within: Duration) {
    let drain = async {
        stream.write_all(&rest).await?;
        stream.shutdown().await?;
        let mut buf = [0u8; 8192];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(within, drain).await;
}
