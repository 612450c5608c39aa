//! Any bulwark layer stack — retry, circuit breaker, token bucket, stale cache, or the Notion
//! preset — inside a `reqwest` client, through `reqwest-middleware`.
//!
//! One line: `.with(BulwarkMiddleware::new(layer))`.
//!
//! # Example
//! ```
//! use std::time::Duration;
//!
//! use bulwark_breaker::CircuitBreakerLayer;
//! use bulwark_reqwest::BulwarkMiddleware;
//! use bulwark_retry::RetryLayer;
//! use reqwest_middleware::ClientBuilder;
//! use tower::ServiceBuilder;
//!
//! let stack = ServiceBuilder::new()
//!     .layer(RetryLayer::new().max_retries(3))
//!     .layer(CircuitBreakerLayer::builder().build().unwrap());
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(BulwarkMiddleware::new(stack))
//!     .build();
//! // client.get(url).send().await?: retried, behind the breaker.
//! # let _ = (client, Duration::ZERO);
//! ```
//!
//! # How it runs
//! The stack is built once over [`Upstream`] and cloned for each request, so the layers'
//! state is shared by every request of the client. A request's body is buffered (a retry
//! sends it again; a streaming body is refused with [`StreamingBody`]). Each attempt the stack
//! makes is sent down the rest of the middleware chain with `next.run(..)`.
//!
//! `reqwest_middleware::Next<'_>` borrows the call's client and `Extensions`, while a stack
//! built once needs a `'static` innermost service (the stale cache revalidates in a spawned
//! task). So the request carries a channel in its extensions: [`Upstream`] sends each attempt
//! through it, and the middleware's call, which drives the stack, sends it with `next.run`
//! and answers. Nothing is skipped: middlewares registered after this one see every attempt,
//! and changes they make to `Extensions` reach the caller. The price is a channel message per
//! attempt, and one limit: an attempt made after the call returned (a background
//! stale-while-revalidate refresh) is not sent and fails with [`Detached`] — the stored copy
//! stays, and the next request refreshes it.
//!
//! # Errors
//! Bulwark's refusals come back as `reqwest_middleware::Error::Middleware` holding a
//! [`StackError`]; [`rejection`]
//! finds `CircuitOpen` / `RateLimited` in them (the [`error`] module shows the `downcast_ref`
//! through anyhow's chain). The upstream's own errors are unchanged.
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
mod middleware;
mod upstream;

pub use error::{rejection, Detached, StackError, StreamingBody};
pub use middleware::BulwarkMiddleware;
pub use upstream::{ResponseFuture, Upstream};

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
