//! `bulwark proxy --metrics ADDR`: the metrics every bulwark layer and the Notion preset
//! record (`bulwark_http::metrics`), served in Prometheus text format at `GET /metrics`.
//!
//! [`install`] installs the process's recorder — before the proxy's first request, since each
//! layer registers its handles on first use — and [`MetricsServer::bind`] serves what it
//! renders. The endpoint is meant for a scraper on a private address: it answers `GET
//! /metrics` (and `HEAD`), `404` otherwise, over HTTP/1.1, at most [`MAX_CONNECTIONS`]
//! connections at once, each with a 10 s header-read timeout.
//!
//! ```no_run
//! use bulwark_cli::proxy::metrics::{install, MetricsServer};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let handle = install()?;
//! let server = MetricsServer::bind("127.0.0.1:9464".parse()?, handle).await?;
//! println!("scrape {}", server.url());
//! tokio::spawn(server.serve());
//! # Ok(())
//! # }
//! ```

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::{net::TcpListener, sync::Semaphore};

/// Connections the endpoint serves at once; more wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 16;

/// Histogram buckets of every `*_seconds` metric: from a fresh cache hit (1 ms) to a write
/// that waited out an outage (the preset's waits reach 30–60 s).
pub const SECONDS_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The Prometheus content type of the text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Installs the Prometheus recorder as the process's global `metrics` recorder, with
/// [`SECONDS_BUCKETS`] for every `*_seconds` histogram, and returns the handle that renders
/// it.
///
/// # Errors
/// When a recorder is already installed in this process (install once, before the first
/// request), or the buckets are rejected.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &SECONDS_BUCKETS)?
        .install_recorder()
}

/// The `GET /metrics` endpoint, bound.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    handle: PrometheusHandle,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free one) to serve what `handle` renders.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(addr: SocketAddr, handle: PrometheusHandle) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Ok(Self {
            listener,
            handle,
            addr,
        })
    }

    /// Where it listens.
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL a scraper is given: `http://ADDR/metrics`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Serves until the task is dropped (or aborted).
    pub async fn serve(self) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, say: try again shortly instead of spinning.
                    tracing::warn!(target: "bulwark_cli", error = %err, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let handle = self.handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let handle = handle.clone();
                    async move { Ok::<_, Infallible>(answer(&req, &handle)) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let mut conn = std::pin::pin!(conn);
                // Bounded: a client that stalls is cut off by the header-read timeout; a
                // kept-alive connection is closed gracefully after a minute (a scrape in
                // progress finishes, then the connection ends), and at most 10 s later whatever
                // it is doing.
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = tokio::time::sleep(Duration::from_secs(60)) => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
                    }
                }
                drop(permit);
            });
        }
    }
}

fn answer(req: &Request<Incoming>, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    let response = |status: StatusCode, body: Bytes| {
        let mut res = Response::new(Full::new(body));
        *res.status_mut() = status;
        res
    };
    if req.uri().path() != "/metrics" {
        return response(
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"not found: GET /metrics\n"),
        );
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut res = response(StatusCode::METHOD_NOT_ALLOWED, Bytes::new());
        res.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    // Histograms and summaries are kept bounded by the exporter's upkeep on render.
    handle.run_upkeep();
    let body = if *req.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(handle.render())
    };
    let mut res = response(StatusCode::OK, body);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_rendered_text_at_metrics_only() {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &SECONDS_BUCKETS)
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("bulwark_requests_total", "layer" => "retry", "name" => "t", "outcome" => "success")
                .increment(3);
            metrics::histogram!("bulwark_bucket_wait_seconds", "name" => "t").record(0.3);
        });
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), handle)
            .await
            .unwrap();
        let addr = server.local_addr();
        let task = tokio::spawn(server.serve());
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(
                    format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
            let mut text = String::new();
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut text))
                .await
                .unwrap()
                .unwrap();
            text
        };
        let text = get("/metrics").await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("text/plain; version=0.0.4"), "{text}");
        assert!(
            text.contains(r#"bulwark_requests_total{layer="retry",name="t",outcome="success"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"bulwark_bucket_wait_seconds_bucket{name="t",le="0.5"} 1"#),
            "{text}"
        );
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
        task.abort();
    }
}
