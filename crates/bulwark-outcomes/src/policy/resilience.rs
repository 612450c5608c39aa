//! `tower-resilience`: its retry, circuit breaker and rate limiter at their documented defaults,
//! the limiter set to Notion's 3 requests/s.
//!
//! Outermost first, in bulwark's order (every retry passes the breaker and takes a permit):
//!
//! ```text
//! tower-resilience-retry 0.9       defaults: 3 attempts, 100 ms · 2^n, every error retried
//!   (errors made Clone: the retry layer needs E: Clone)
//!   tower-resilience-circuitbreaker 0.14   defaults: count window of 100 calls, opens at a 50 %
//!                                          failure rate after 100 calls, 30 s open, 1 probe
//!     tower-resilience-ratelimiter 0.14    3 permits per 1 s fixed window, waits ≤ 100 ms
//!       StatusAsError                      429 and 5xx answers become errors
//!         the upstream
//! ```
//!
//! **The adapter.** tower-resilience's layers see only `Err` as failure by default: a 429 or a
//! 503 *response* is a success to them. Users of it against an HTTP API write the same adapter
//! (or predicates); `StatusAsError` turns 429 and 5xx answers into errors, so the retry retries
//! them (for every method: it knows no idempotency) and the breaker counts them.
//!
//! **The breaker's clock.** tower-resilience-circuitbreaker 0.14 reads `std::time::Instant`
//! (`circuit.rs`), not tokio's clock: under the harness's paused clock its 30 s open state lasts
//! 30 s of *wall* time, which is longer than a whole run, so once open it stays open for the
//! rest of the trace. Its row says what its defaults do in virtual time; the `(retry+limiter)`
//! row, without the breaker, keeps the comparison meaningful.

use std::{fmt, sync::Arc};

use bulwark_http::BoxError;
use http::StatusCode;
use tower::{Layer, ServiceExt};
use tower_resilience_circuitbreaker::{CircuitBreakerError, CircuitBreakerLayer};
use tower_resilience_ratelimiter::{RateLimiterLayer, RateLimiterServiceError};
use tower_resilience_retry::RetryLayer;

use super::{Req, Res, Stack};

/// Notion's rate: 3 permits per (default) 1 s period.
const PERMITS_PER_SECOND: usize = 3;

/// A 429 or 5xx answer, as an error.
#[derive(Debug)]
struct StatusAsError(StatusCode);

impl fmt::Display for StatusAsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_u16())
    }
}

impl std::error::Error for StatusAsError {}

/// A failure the retry layer can clone: what went wrong, as text.
#[derive(Debug, Clone)]
struct Failure(Arc<str>);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

fn limiter_failure(error: RateLimiterServiceError<BoxError>) -> Failure {
    match error {
        RateLimiterServiceError::RateLimited => Failure("rate limiter: no permit in 100 ms".into()),
        RateLimiterServiceError::Inner(inner) => Failure(inner.to_string().into()),
    }
}

fn breaker_failure(error: CircuitBreakerError<RateLimiterServiceError<BoxError>>) -> Failure {
    match error {
        CircuitBreakerError::OpenCircuit => Failure("circuit open".into()),
        CircuitBreakerError::Inner(inner) => limiter_failure(inner),
    }
}

/// The stack over `upstream`, with or without the circuit breaker.
pub(super) fn stack(upstream: Stack, with_breaker: bool) -> Stack {
    let adapted = upstream.and_then(|res: Res| async move {
        let status = res.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(Box::new(StatusAsError(status)) as BoxError)
        } else {
            Ok(res)
        }
    });
    let limited = RateLimiterLayer::builder()
        .limit_for_period(PERMITS_PER_SECOND)
        .build()
        .expect("a valid rate limiter")
        .layer(adapted);
    let retry = RetryLayer::<Req, Res, Failure>::builder().build();
    if with_breaker {
        let breaker = CircuitBreakerLayer::builder()
            .build()
            .expect("the breaker's defaults are valid")
            .layer(limited)
            .map_err(breaker_failure);
        Stack::new(
            retry
                .layer(breaker)
                .map_err(|e: Failure| Box::new(e) as BoxError),
        )
    } else {
        let limited = limited.map_err(limiter_failure);
        Stack::new(
            retry
                .layer(limited)
                .map_err(|e: Failure| Box::new(e) as BoxError),
        )
    }
}
