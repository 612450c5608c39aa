//! What the access log records of one request, measured on its way through the proxy: the
//! [`Meter`] that every copy of the request carries (the preset's retries clone it, so one
//! counter sees every upstream call), and the [`Arrival`] that turns an answer into an
//! [`AccessRecord`].

use std::{
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use bulwark_cache::CacheStatus;
use bulwark_http::BufferedBody;
use bulwark_notion::{NotionError, RECONCILED_HEADER};
use http::{header, HeaderMap, HeaderName, Method, Request, Response};
use http_body_util::Either;
use time::OffsetDateTime;

use crate::proxy::record::{AccessRecord, CacheOutcome};

/// The longest header value (request id, reconciliation mark) or error code copied into a
/// record; longer ones are left out.
const MAX_VALUE_CHARS: usize = 128;

/// What the proxy measures of one request on its way through, shared by the request's
/// clones (every retry's copy carries the same `Arc`): put in its extensions by the handler.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meter(Arc<MeterInner>);

#[derive(Debug, Default)]
struct MeterInner {
    attempts: AtomicU32,
    /// The buffered body's length plus one; 0 while unknown.
    body_bytes: AtomicU64,
}

impl Meter {
    /// One more call to the upstream client.
    pub(crate) fn attempt(&self) {
        self.0.attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// The request body, read whole, has `len` bytes.
    pub(crate) fn body(&self, len: usize) {
        let len = u64::try_from(len).unwrap_or(u64::MAX - 1);
        self.0.body_bytes.store(len + 1, Ordering::Relaxed);
    }

    fn attempts(&self) -> u32 {
        self.0.attempts.load(Ordering::Relaxed)
    }

    fn body_bytes(&self) -> Option<u64> {
        self.0.body_bytes.load(Ordering::Relaxed).checked_sub(1)
    }
}

/// Counts one upstream call of `req` (the layer between the preset and the HTTP client).
pub(crate) fn count_attempt<B>(req: Request<B>) -> Request<B> {
    if let Some(meter) = req.extensions().get::<Meter>() {
        meter.attempt();
    }
    req
}

/// Records the size of `req`'s buffered body (the layer after the body buffer).
pub(crate) fn measure_body(req: &Request<BufferedBody>) {
    if let Some(meter) = req.extensions().get::<Meter>() {
        meter.body(req.body().as_ref().len());
    }
}

/// What the handler knows of a request before it is answered.
#[derive(Debug)]
pub(crate) struct Arrival {
    pub(crate) ts: OffsetDateTime,
    pub(crate) method: Method,
    pub(crate) route: String,
    /// The declared `Content-Length`, for requests answered before their body is read.
    pub(crate) declared_bytes: u64,
    pub(crate) meter: Meter,
}

impl Arrival {
    /// Now, for a request with this method, route template and headers.
    pub(crate) fn now(method: &Method, route: String, headers: &HeaderMap) -> Self {
        let declared_bytes = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Self {
            ts: OffsetDateTime::now_utc(),
            method: method.clone(),
            route,
            declared_bytes,
            meter: Meter::default(),
        }
    }

    /// The record of this request answered with `res` after `duration`.
    pub(crate) fn record<L>(
        &self,
        res: &Response<Either<L, BufferedBody>>,
        duration: Duration,
    ) -> AccessRecord {
        let mut record = AccessRecord::new(
            self.ts,
            self.method.as_str(),
            self.route.clone(),
            res.status().as_u16(),
        );
        record.request_bytes = self.meter.body_bytes().unwrap_or(self.declared_bytes);
        record.duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        record.attempts = self.meter.attempts();
        record.cache = match res.extensions().get::<CacheStatus>() {
            Some(CacheStatus::Live) => CacheOutcome::Live,
            Some(CacheStatus::Fresh { .. }) => CacheOutcome::Hit,
            Some(CacheStatus::Stale { .. }) => CacheOutcome::Stale,
            None => CacheOutcome::None,
        };
        let header = |name: HeaderName| {
            res.headers()
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.len() <= MAX_VALUE_CHARS)
                .map(str::to_owned)
        };
        record.request_id = header(HeaderName::from_static("x-notion-request-id"));
        record.reconciled = header(RECONCILED_HEADER);
        if res.status().as_u16() >= 400 {
            record.code = error_code(res);
        }
        record
    }
}

/// The Notion error code of an error answer: parsed by the preset from Notion's body, or read
/// from the body bulwark wrote itself (a refusal, the proxy's own answer). Only plain codes
/// (`[A-Za-z0-9_]`, at most 128) are kept.
fn error_code<L>(res: &Response<Either<L, BufferedBody>>) -> Option<String> {
    let code = match (res.extensions().get::<NotionError>(), res.body()) {
        (Some(error), _) => error.code.as_str().to_owned(),
        (None, Either::Right(own)) => serde_json::from_slice::<serde_json::Value>(own.as_ref())
            .ok()?
            .get("code")?
            .as_str()?
            .to_owned(),
        (None, Either::Left(_)) => return None,
    };
    let plain = !code.is_empty()
        && code.len() <= MAX_VALUE_CHARS
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    plain.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_counts_clones_together() {
        let meter = Meter::default();
        assert_eq!(meter.body_bytes(), None);
        let mut req = Request::new(BufferedBody::from("{\"a\":1}"));
        req.extensions_mut().insert(meter.clone());
        measure_body(&req);
        let copy = req.clone();
        let _ = count_attempt(req);
        let _ = count_attempt(copy);
        assert_eq!(meter.attempts(), 2);
        assert_eq!(meter.body_bytes(), Some(7));
    }
}
