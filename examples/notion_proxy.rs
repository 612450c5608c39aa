//! A local reverse proxy for the Notion API with the bulwark Notion preset in front: point any
//! Notion SDK at it and its requests get retries, a circuit breaker, a 3 requests/s token bucket
//! per token and a stale cache, while the SDK keeps seeing Notion's own answers — bulwark's
//! refusals arrive as Notion errors (`503 service_unavailable` when the circuit is open,
//! `429 rate_limited` from the bucket, both with `Retry-After`), and a stale copy arrives as a
//! normal `200` marked only in `Cache-Status` and `Age`.
//!
//! ```sh
//! # an embedded FakeNotion as the upstream, the proxy on 127.0.0.1:7700
//! cargo run --example notion_proxy
//! # another upstream (FakeNotion on 7777, or https://api.notion.com), any free port, fail fast instead of queueing for a token
//! cargo run --example notion_proxy -- \
//!     --upstream http://127.0.0.1:7777 --port 0 --max-wait-ms 0 --ready-file /tmp/proxy.json
//! ```
//!
//! Point the SDKs at it through their base-URL option (each SDK's own token is passed
//! through; the bucket is keyed by a hash of it):
//!
//! ```text
//! JS      new Client({ auth: token, baseUrl: "http://127.0.0.1:7700" })          // @notionhq/client
//! Python  Client(auth=token, base_url="http://127.0.0.1:7700")                   # notion-client
//! ```
//!
//! Flags: `--port` (default 7700, 0 = any free port), `--upstream URL` (default: an embedded
//! FakeNotion, 3 requests/s per token, whose control routes `POST /_fake/outage` and
//! `POST /_fake/reset` switch faults), `--max-retries N` and `--max-wait-ms MS` (default: the
//! preset's 3 retries and 30 s wait; `0` = reject at once), `--ready-file PATH` (written once
//! listening: `{"proxy":"http://127.0.0.1:P","upstream":"http://…"}`). Every request is logged
//! as one line on stdout: method, path, status, `Cache-Status` and time. The upstream must be
//! plain HTTP or HTTPS (rustls with webpki roots); requests without an `Authorization` of
//! their own get `NOTION_TOKEN`'s when it is set. Stop the proxy with Ctrl-C.
//! `.ci/sdk/run.sh` runs Notion's official JS and Python SDKs through it.

use std::{
    convert::Infallible,
    fmt,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use bulwark::{
    http::{BoxError, BufferBodyLayer, BufferedBody},
    notion::{rejection_layer, NotionLayer},
};
use bulwark_testkit::FakeNotion;
use clap::Parser;
use http::{
    header,
    uri::{Authority, Scheme},
    HeaderMap, HeaderName, Request, Uri,
};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
};
use tokio::{net::TcpListener, time::Instant};
use tower::{ServiceBuilder, ServiceExt};

/// The largest request body the proxy accepts (Notion's own limit is 500 KB).
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// A local reverse proxy applying the bulwark Notion preset (retry, circuit breaker, token
/// bucket, stale cache) in front of a Notion API.
#[derive(Debug, Parser)]
#[command(name = "notion_proxy")]
struct Args {
    /// Port to listen on, on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 7700)]
    port: u16,
    /// The Notion API to forward to, plain HTTP, e.g. http://127.0.0.1:7777 [default: an
    /// embedded FakeNotion, 3 requests/s per token]
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Retries per request [default: the preset's 3]
    #[arg(long = "max-retries", value_name = "N")]
    max_retries: Option<u32>,
    /// How long a request may wait for a token, in milliseconds; 0 answers 429 rate_limited at
    /// once [default: the preset's 30000]
    #[arg(long = "max-wait-ms", value_name = "MS")]
    max_wait_ms: Option<u64>,
    /// Once listening, write {"proxy": URL, "upstream": URL} to this file.
    #[arg(long = "ready-file", value_name = "PATH")]
    ready_file: Option<PathBuf>,
}

/// Where requests go: the upstream's scheme and authority, and its path prefix (if any).
#[derive(Debug, Clone)]
struct Upstream {
    scheme: Scheme,
    authority: Authority,
    prefix: Arc<str>,
}

impl Upstream {
    fn parse(url: &str) -> Result<Self, BoxError> {
        let uri: Uri = url.parse()?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or("--upstream needs a scheme: http://…")?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(format!("--upstream {url}: must be http:// or https://").into());
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or("--upstream needs a host: http://HOST:PORT")?;
        let prefix = uri.path().trim_end_matches('/').into();
        Ok(Self {
            scheme,
            authority,
            prefix,
        })
    }

    /// Points `req` at the upstream (same path and query) and drops what must not be
    /// forwarded: hop-by-hop headers, `Host` (the client sets the upstream's),
    /// `Content-Length` (recomputed from the buffered body, which the preset may rewrite) and
    /// `Accept-Encoding` (the preset reads Notion's answers, so ask for them uncompressed).
    fn rewrite(&self, mut req: Request<BufferedBody>) -> Request<BufferedBody> {
        let path_and_query = req
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{path_and_query}", self.prefix))
            .build();
        match uri {
            Ok(uri) => *req.uri_mut() = uri,
            // Unreachable for a URI hyper accepted; the client then fails and we answer 502.
            Err(error) => eprintln!("cannot rewrite {path_and_query}: {error}"),
        }
        let headers = req.headers_mut();
        remove_hop_by_hop(headers);
        for name in [
            header::HOST,
            header::CONTENT_LENGTH,
            header::ACCEPT_ENCODING,
        ] {
            headers.remove(name);
        }
        req
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.prefix)
    }
}

/// Removes the hop-by-hop headers of RFC 9110 §7.6.1, including those named by `Connection`.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// Writes the ready file atomically (a temporary file, then a rename), so a reader never sees
/// half of it.
fn write_ready_file(path: &Path, proxy: &str, upstream: &str) -> std::io::Result<()> {
    let json = serde_json::json!({ "proxy": proxy, "upstream": upstream });
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{json}\n"))?;
    std::fs::rename(&tmp, path)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("notion_proxy: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the upstream (if embedded) and the proxy, then serves until the process is stopped.
async fn run(args: Args) -> Result<(), BoxError> {
    // The upstream: the one given, or an embedded FakeNotion that lives as long as `main`.
    let (upstream_url, _fake) = match &args.upstream {
        Some(url) => (url.trim_end_matches('/').to_owned(), None),
        None => {
            let fake = FakeNotion::builder().rate_limit(3, 3).start().await?;
            (fake.url(), Some(fake))
        }
    };
    let upstream = Upstream::parse(&upstream_url)?;

    let mut preset = NotionLayer::builder();
    // Requests that carry no token of their own (curl, say) use NOTION_TOKEN when set.
    if let Ok(token) = std::env::var("NOTION_TOKEN") {
        preset = preset.token(token);
    }
    if let Some(n) = args.max_retries {
        preset = preset.retry(|r| r.max_retries(n));
    }
    if let Some(ms) = args.max_wait_ms {
        preset = preset.bucket(|b| b.max_wait(Duration::from_millis(ms)));
    }
    let notion = preset.build()?;

    // Plain HTTP for FakeNotion, rustls (ring provider, webpki roots) for the real API.
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<HttpsConnector<HttpConnector>, BufferedBody> =
        Client::builder(TokioExecutor::new()).build(https);
    let target = upstream.clone();
    let stack = ServiceBuilder::new()
        .layer(rejection_layer()) // bulwark's refusals -> Notion error bodies
        .layer(BufferBodyLayer::new(MAX_REQUEST_BYTES)) // hyper's Incoming -> BufferedBody
        .map_request(move |req: Request<BufferedBody>| target.rewrite(req))
        .layer(notion)
        .service(client);

    let service = service_fn(move |req: Request<Incoming>| {
        let stack = stack.clone();
        async move {
            let started = Instant::now();
            let method = req.method().clone();
            let path = req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
            let mut res = match stack.oneshot(req).await {
                Ok(res) => res,
                Err(never) => match never {},
            };
            remove_hop_by_hop(res.headers_mut());
            res.headers_mut().remove(header::CONTENT_LENGTH);
            let cache = res
                .headers()
                .get("cache-status")
                .and_then(|v| v.to_str().ok())
                .map(|v| format!(" [cache-status: {v}]"))
                .unwrap_or_default();
            println!(
                "{method} {path} -> {}{cache} {} ms",
                res.status().as_u16(),
                started.elapsed().as_millis()
            );
            Ok::<_, Infallible>(res)
        }
    });

    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port))).await?;
    let proxy_url = format!("http://{}", listener.local_addr()?);
    println!(
        "notion_proxy listening on {proxy_url} -> {upstream} (max retries: {}, max wait: {})",
        args.max_retries
            .map_or_else(|| "preset default".to_owned(), |n| n.to_string()),
        args.max_wait_ms
            .map_or_else(|| "preset default".to_owned(), |ms| format!("{ms} ms")),
    );
    if let Some(path) = &args.ready_file {
        write_ready_file(path, &proxy_url, &upstream.to_string())?;
    }

    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                eprintln!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = service.clone();
        tokio::spawn(async move {
            // Best effort: small answers should not wait for Nagle.
            let _ = stream.set_nodelay(true);
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                eprintln!("connection closed with an error: {error}");
            }
        });
    }
}
