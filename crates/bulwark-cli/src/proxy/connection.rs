//! One client connection: hyper serving the proxy's handler, watched for eviction, idleness
//! and shutdown; and the answer to a connection that gets no slot.

use std::{future, sync::Arc, time::Duration};

use bulwark_http::{BufferBodyLayer, BufferedBody};
use bulwark_notion::rejection_layer;
use http::Request;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpStream, task::JoinSet, time::Instant};
use tower::ServiceBuilder;

use crate::proxy::{
    answer,
    conn::ConnGuard,
    handler,
    io::{linger, ConnIo},
    measure,
    state::Shared,
};

/// How long a refused connection may drain its request before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_millis(200);

/// Answers `503 service_unavailable` on a connection that gets no slot, and closes it. The
/// answer is written at once (the send buffer is empty, so it fits); while fewer than
/// `max_tasks` tasks run, the close waits up to 200 ms for the request to be read, so that
/// the client is not reset before it reads the answer.
pub(crate) fn refuse(
    stream: TcpStream,
    max_connections: usize,
    tasks: &mut JoinSet<()>,
    max_tasks: usize,
) {
    let wire = answer::to_wire(&answer::at_capacity(max_connections));
    let written = stream.try_write(&wire).unwrap_or(0);
    if tasks.len() < max_tasks {
        tasks.spawn(linger(stream, wire.slice(written..), REFUSAL_LINGER));
    }
}

/// Serves one client connection until it closes, is evicted, sits idle too long, or the proxy
/// shuts down.
pub(crate) async fn connection(stream: TcpStream, slot: ConnGuard, shared: Arc<Shared>) {
    // Best effort: small answers should not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let config = &shared.config;
    let state = Arc::clone(slot.state());
    let io = TokioIo::new(ConnIo::new(
        stream,
        Arc::clone(&state),
        config.max_header_bytes,
    ));

    let upstream = config.upstream.clone();
    let stack = ServiceBuilder::new()
        .layer(BufferBodyLayer::new(config.max_body_bytes)) // hyper's Incoming -> BufferedBody
        .layer(rejection_layer()) // bulwark's refusals -> Notion error bodies
        .map_request(move |req: Request<BufferedBody>| handler::to_upstream(&upstream, req))
        .layer(shared.notion.clone())
        .map_request(measure::count_attempt::<BufferedBody>) // one per upstream call
        .service(shared.client.clone());
    let ctx = Arc::clone(&shared.ctx);
    let requests = Arc::clone(&state);
    let service = service_fn(move |req: Request<Incoming>| {
        handler::handle(
            req,
            stack.clone(),
            Arc::clone(&ctx),
            requests.start_request(),
        )
    });

    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(config.max_header_bytes);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);

    let mut shutdown = shared.shutdown.subscribe();
    if *shutdown.borrow_and_update() {
        return;
    }
    let mut closing = false;
    let idle_timeout = config.idle_timeout;
    loop {
        let idle_deadline = if closing {
            None
        } else {
            state.idle_deadline(idle_timeout)
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(target: "bulwark_cli", %error, "connection closed with an error");
                }
                break;
            }
            () = state.changed() => {
                if state.is_evicted() {
                    tracing::debug!(target: "bulwark_cli", "idle connection evicted to make room");
                    break;
                }
            }
            () = sleep_until(idle_deadline) => {
                if state.idle_deadline(idle_timeout).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(target: "bulwark_cli", "idle connection closed");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            _ = shutdown.changed(), if !closing => {
                if state.in_flight() == 0 {
                    // Nothing to finish: a stalled head must not hold the shutdown up.
                    break;
                }
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
    drop(slot);
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => future::pending().await,
    }
}
