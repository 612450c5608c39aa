//! Protecting an axum service: a token bucket per client IP in reject mode, rendered as 429
//! with `Retry-After` and IETF `RateLimit` headers — no `HandleErrorLayer` needed.
//!
//! ```sh
//! cargo run --example axum_server            # serves, sends itself a burst, prints, exits
//! cargo run --example axum_server -- --serve # keeps serving on 127.0.0.1:3000
//! ```

use std::{net::SocketAddr, time::Duration};

use axum::{extract::ConnectInfo, routing::get, Router};
use bulwark::{
    bucket::{Rate, TokenBucketLayer},
    http::{BoxError, RejectionResponseLayer},
};
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let limit = TokenBucketLayer::new(Rate::per_second(5))
        .burst(5)
        .max_wait(Duration::ZERO) // reject, don't queue: this is a server
        .emit_headers(true)
        .keyed(|req: &Request<axum::body::Body>| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip())
        });
    let app = Router::new()
        .route("/", get(|| async { "hello from behind bulwark\n" }))
        .layer(
            ServiceBuilder::new()
                .layer(RejectionResponseLayer::new())
                .layer(limit.clone()),
        );

    let serve_forever = std::env::args().any(|a| a == "--serve");
    let addr = if serve_forever {
        "127.0.0.1:3000"
    } else {
        "127.0.0.1:0"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    println!("listening on http://{local} (5 requests/second per client IP, burst 5)");
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    if serve_forever {
        server.await??;
        return Ok(());
    }

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    for i in 1..=8 {
        let res = client.get(format!("http://{local}/").parse()?).await?;
        let status = res.status();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        let (ratelimit, retry_after) = (header("ratelimit"), header("retry-after"));
        let body = res.into_body().collect().await?.to_bytes();
        println!(
            "request {i}: {} ratelimit: {ratelimit:<22} retry-after: {retry_after:<3} body: {}",
            status.as_u16(),
            String::from_utf8_lossy(&body).trim()
        );
    }
    let stats = limit.stats();
    println!(
        "\nadmitted {}, rejected {}, client IPs tracked {}",
        stats.admitted, stats.rejected, stats.keys
    );
    server.abort();
    Ok(())
}
