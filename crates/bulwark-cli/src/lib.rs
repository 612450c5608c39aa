//! The `bulwark` command's library: the operator's tools as code that tests (and other
//! programs) can drive. The binary only parses arguments and calls in here.
//!
//! - [`proxy`]: `bulwark proxy`, a hardened local reverse proxy that puts the bulwark Notion
//!   preset in front of any Notion SDK.
//! - [`report`]: `bulwark report`, a summary of the proxy's `--access-log` (errors by hour,
//!   route, status and code, request size; the share of 429s and 5xx).
//! - [`triage`]: `bulwark triage`, the Notion incident runbook as a command: bounded
//!   checks, a verdict with its action and exit code, incident write-ups, `--watch`.
//!
//! # Example
//!
//! ```no_run
//! use bulwark_cli::proxy::{Proxy, ProxyConfig};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let proxy = Proxy::bind(ProxyConfig::new("https://api.notion.com")?).await?;
//! println!("Notion SDKs: baseUrl = {}", proxy.url());
//! proxy.run().await;
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod logging;
pub mod proxy;
pub mod report;
pub mod triage;

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
