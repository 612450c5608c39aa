//! One request: refuse what is not the Notion API, forward the rest through the preset, log
//! one line.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bulwark_http::{BoxError, BufferedBody};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Either;
use hyper::body::Incoming;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use crate::proxy::{
    access_log::AccessLog,
    answer,
    body::{TimedBody, Tracked},
    conn::RequestGuard,
    measure::{self, Arrival},
    route,
    upstream::Upstream,
};

/// What every request of one proxy shares.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The listening address (for absolute-form targets naming the proxy).
    pub(crate) local: SocketAddr,
    pub(crate) max_uri_bytes: usize,
    pub(crate) body_read_timeout: Duration,
    /// `Keep-Alive: timeout=N`, from the idle timeout.
    pub(crate) keep_alive: HeaderValue,
    /// `--access-log`, when set.
    pub(crate) access_log: Option<AccessLog>,
}

/// The response body of every answer: the preset's (or its rendered refusal), or the
/// proxy's own, tracked until written.
pub(crate) type ProxyBody<L> = Tracked<Either<L, BufferedBody>>;

/// Serves one request (see the [proxy docs](crate::proxy)).
pub(crate) async fn handle<S, L>(
    req: Request<Incoming>,
    stack: S,
    ctx: Arc<Ctx>,
    guard: RequestGuard,
) -> Result<Response<ProxyBody<L>>, Infallible>
where
    S: Service<
        Request<TimedBody<Incoming>>,
        Response = Response<Either<L, BufferedBody>>,
        Error = BoxError,
    >,
{
    let started = Instant::now();
    let method = req.method().clone();
    let arrival = ctx
        .access_log
        .as_ref()
        .map(|_| Arrival::now(&method, access_route(&req), req.headers()));
    let (route, mut res) = match target(&req, &ctx) {
        Target::Refuse { route, answer } => (route, answer.map(Either::Right)),
        Target::Forward {
            path_and_query,
            route,
        } => {
            let (mut parts, body) = req.into_parts();
            if let Some(arrival) = &arrival {
                parts.extensions.insert(arrival.meter.clone());
            }
            match Uri::try_from(path_and_query) {
                Ok(uri) => {
                    parts.uri = uri;
                    let req =
                        Request::from_parts(parts, TimedBody::new(body, ctx.body_read_timeout));
                    let res = match stack.oneshot(req).await {
                        Ok(mut res) => {
                            remove_hop_by_hop(res.headers_mut());
                            res.headers_mut().remove(header::CONTENT_LENGTH);
                            res
                        }
                        // Everything past the body buffer answers (refusals are rendered by
                        // the preset's rejection layer): only reading the body fails here.
                        Err(err) => answer::body_error(&err).map(Either::Right),
                    };
                    (route, res)
                }
                // Unreachable: a normalised path and the query of a URI hyper accepted.
                Err(_) => (route, answer::not_api().map(Either::Right)),
            }
        }
    };
    if !res.headers().contains_key(header::CONNECTION) {
        res.headers_mut().insert(
            HeaderName::from_static("keep-alive"),
            ctx.keep_alive.clone(),
        );
    }
    log_request(&method, &route, &res, started);
    if let (Some(log), Some(arrival)) = (&ctx.access_log, &arrival) {
        log.log(&arrival.record(&res, started.elapsed()));
    }
    Ok(res.map(|body| Tracked::new(body, guard)))
}

/// The route template the access log shows for `req`: `-` for CONNECT and TRACE and for
/// targets off the Notion API.
fn access_route<B>(req: &Request<B>) -> String {
    if req.method() == Method::CONNECT || req.method() == Method::TRACE {
        return "-".to_owned();
    }
    route::template(req.uri().path())
}

/// What becomes of a request, with its target as the log shows it.
enum Target {
    /// Forward it with this normalised origin-form target.
    Forward {
        path_and_query: String,
        route: String,
    },
    /// Answer it with the proxy's own answer.
    Refuse {
        route: String,
        answer: Response<BufferedBody>,
    },
}

/// Decides what becomes of `req` (see the [proxy docs](crate::proxy)).
fn target(req: &Request<Incoming>, ctx: &Ctx) -> Target {
    let uri = req.uri();
    let refuse = |answer| Target::Refuse {
        route: route::log_route(uri.path(), uri.query()),
        answer,
    };
    if req.method() == Method::CONNECT || req.method() == Method::TRACE {
        return Target::Refuse {
            route: "-".to_owned(),
            answer: answer::method_refused(req.method()),
        };
    }
    if let Some(authority) = uri.authority() {
        if !route::is_own_authority(uri.scheme(), authority, ctx.local) {
            return refuse(answer::foreign_authority());
        }
    }
    let path_and_query = uri.path_and_query().map_or("", |pq| pq.as_str());
    if path_and_query.len() > ctx.max_uri_bytes {
        return refuse(answer::uri_too_long(ctx.max_uri_bytes));
    }
    let Some(path) = route::normalise_api_path(uri.path()) else {
        return refuse(answer::not_api());
    };
    let route = route::log_route(&path, uri.query());
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    Target::Forward {
        path_and_query,
        route,
    }
}

/// One `tracing` event per request: method, route without query values, status,
/// `Cache-Status`, time. Never a header (so never `Authorization`).
fn log_request<B>(method: &Method, route: &str, res: &Response<B>, started: Instant) {
    let cache_status = res
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info!(
        target: "bulwark_cli",
        method = %method,
        route = %route,
        status = res.status().as_u16(),
        cache_status = ?cache_status,
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
}

/// Points a request at the upstream (its normalised path and query after the upstream's
/// prefix) and drops what must not be forwarded: hop-by-hop headers, `Host` (the client sets
/// the upstream's), `Content-Length` (recomputed from the buffered body, which the preset may
/// rewrite) and `Accept-Encoding` (the preset reads Notion's answers, so ask for them
/// uncompressed).
pub(crate) fn to_upstream(
    upstream: &Upstream,
    mut req: Request<BufferedBody>,
) -> Request<BufferedBody> {
    measure::measure_body(&req);
    let path_and_query = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    match upstream.uri(path_and_query) {
        Ok(uri) => *req.uri_mut() = uri,
        // Unreachable for a normalised path; the client then fails and the answer is a 503.
        Err(error) => {
            tracing::warn!(target: "bulwark_cli", %error, "cannot build the upstream URI")
        }
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

/// Removes the hop-by-hop headers of RFC 9110 §7.6.1, including those named by `Connection`.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
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
