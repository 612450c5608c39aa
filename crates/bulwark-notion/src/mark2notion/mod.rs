//! A second preset, for [Mark2Notion](https://mark2notion.com) (Markdown → Notion blocks, a
//! hosted API with a monthly quota): proof that bulwark's layers compose for an API other than
//! Notion's, and the place where quota exhaustion matters most.
//!
//! - [`Mark2NotionLayer`]: retry → circuit breaker → token bucket (per API key) → timeout,
//!   `x-api-key` added and redacted; a used-up quota is never retried and refused locally
//!   until it comes back.
//! - [`Mark2NotionClassifier`]: its documented statuses in bulwark's classes.
//! - [`Mark2NotionError`]: its error bodies (`fail` with per-field messages, `error` with a
//!   message and the quota's usage block) as a type.
//!
//! `bulwark_testkit::FakeMark2Notion` fakes it for tests.

mod classify;
mod error;
mod layer;

pub use classify::Mark2NotionClassifier;
pub use error::{Mark2NotionError, Mark2NotionErrorKind, QuotaUsage};
pub use layer::{
    api_key_hash, defaults, ApiKeyHash, Mark2Notion, Mark2NotionBreaker, Mark2NotionBucket,
    Mark2NotionLayer, Mark2NotionLayerBuilder, Mark2NotionRetry, Mark2NotionStack, API_KEY,
};
