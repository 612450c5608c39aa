//! Helpers for the proxy's integration tests: a FakeNotion upstream, an in-process proxy, and
//! a raw HTTP/1.1 client that can send what no well-behaved client would.
#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, time::Duration};

use bulwark_cli::proxy::{Proxy, ProxyConfig, ProxyHandle};
use bulwark_testkit::FakeNotion;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

/// Every network wait of a test is bounded by this.
pub const BOUND: Duration = Duration::from_secs(20);

/// A FakeNotion without a rate limit.
pub async fn fake() -> FakeNotion {
    FakeNotion::builder()
        .no_rate_limit()
        .start()
        .await
        .expect("FakeNotion starts")
}

/// A running in-process proxy.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub handle: ProxyHandle,
    task: tokio::task::JoinHandle<()>,
}

impl TestProxy {
    /// Starts a proxy on 127.0.0.1:0 with `config` (whose bind address is replaced).
    pub async fn start(config: ProxyConfig) -> Self {
        let config = config.bind("127.0.0.1:0".parse().unwrap());
        let proxy = Proxy::bind(config).await.expect("the proxy starts");
        let addr = proxy.local_addr();
        let handle = proxy.handle();
        let task = tokio::spawn(proxy.run());
        Self { addr, handle, task }
    }

    /// Stops the proxy and waits for it.
    pub async fn stop(self) {
        self.handle.shutdown();
        timeout(BOUND, self.task)
            .await
            .expect("the proxy stops in time")
            .expect("the proxy task does not panic");
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The head, header names lowercased, for `contains` checks.
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of header `name` (lowercase), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            (n.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_owned())
        })
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {:?}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts a Notion-shaped error answered by the proxy itself.
    pub fn assert_own_notion_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.head);
        let body = self.json();
        assert_eq!(body["object"], "error", "{body}");
        assert_eq!(body["status"], status, "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        let id = body["request_id"].as_str().expect("a request_id");
        assert_eq!(id.len(), 36, "a UUID: {id}");
        assert_eq!(&id[14..15], "4", "a UUID v4: {id}");
        assert!(
            self.header("x-notion-request-id").is_none(),
            "not from Notion: {}",
            self.head
        );
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{}",
            self.head
        );
    }
}

/// A raw client connection.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = timeout(BOUND, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        timeout(BOUND, self.stream.write_all(bytes))
            .await
            .expect("write in time")
            .expect("write");
    }

    /// Reads more bytes into the buffer; `false` at end of stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let n = timeout(BOUND, self.stream.read(&mut chunk))
            .await
            .expect("the proxy answers in time")
            .expect("read");
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Reads one response (`Content-Length`, chunked, or up to the end of stream).
    pub async fn reply(&mut self) -> Reply {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.fill().await,
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end);
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line: {head}"));
        let mut reply = Reply {
            status,
            head,
            body: Vec::new(),
        };
        if let Some(len) = reply.header("content-length") {
            let len: usize = len.parse().expect("a content length");
            while self.buf.len() < len {
                assert!(self.fill().await, "body cut short");
            }
            reply.body = self.buf.drain(..len).collect();
        } else if reply
            .header("transfer-encoding")
            .is_some_and(|t| t.contains("chunked"))
        {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    assert!(self.fill().await, "chunk cut short");
                };
                let size_line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                    .expect("a chunk size");
                while self.buf.len() < line_end + 2 + size + 2 {
                    assert!(self.fill().await, "chunk cut short");
                }
                reply
                    .body
                    .extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        } else if reply.status != 204 && reply.status != 304 {
            while self.fill().await {}
            reply.body = std::mem::take(&mut self.buf);
        }
        reply
    }

    /// Waits for the proxy to close the connection (reading and discarding), returning how
    /// many bytes arrived first; `None` when it was reset.
    pub async fn closed(&mut self) -> Option<usize> {
        let mut total = 0;
        let mut chunk = [0u8; 4096];
        loop {
            match timeout(BOUND, self.stream.read(&mut chunk))
                .await
                .expect("the proxy closes the connection in time")
            {
                Ok(0) => return Some(total),
                Ok(n) => total += n,
                Err(_) => return None,
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One request on a fresh connection, `Connection: close`.
pub async fn request(addr: SocketAddr, method: &str, target: &str, body: Option<&str>) -> Reply {
    let mut raw = Raw::connect(addr).await;
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer secret_test\r\nnotion-version: 2025-09-03\r\nconnection: close\r\n"
    );
    match body {
        Some(body) => req.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )),
        None => req.push_str("\r\n"),
    }
    raw.send(req.as_bytes()).await;
    raw.reply().await
}
