//! The `quota-exhausted` comparison: Mark2Notion's monthly quota runs out a third of the way
//! through the work, and each policy shows what it does afterwards.
//!
//! Unlike the eight Notion profiles this one runs against the in-process fake Mark2Notion
//! ([`bulwark_testkit::InProcessMark2Notion`]), with its own workload, policies and columns:
//!
//! - **Workload** (`workload`): [`QUOTA_WORKERS`] workers, each converting its own seeded
//!   Markdown notes (`POST /api/convert`) one after the other with `U[0.5, 1.5)` s of thinking
//!   before each — about 3 operations/s, the preset's own 3 requests/s per key, so its token
//!   bucket barely shows. One operation per worker per second of [`Settings::duration_of`]
//!   (300 s by default: 900 operations); the quota is a third of them (300), so it runs out
//!   about a third of the way in and never comes back (no reset within the run).
//! - **Policies** ([`QuotaPolicy`]): `bare`, `seed retry loop` (Mark2Notion's documented
//!   `callAPIWithRetry`: 429 and 5xx, 3 retries after 1, 2, 4 s — the Notion tables' `naive`
//!   loop), `retry every failure` (any non-2xx or error, 3 retries, 1 s apart), `bulwark`
//!   (`Mark2NotionLayer` at its defaults).
//! - **Counting** ([`QuotaOutcome`]): calls and calls after exhaustion come from the fake's
//!   call log and its [`calls_after_exhaustion`](bulwark_testkit::Mark2NotionHandle::calls_after_exhaustion)
//!   counter; when the quota ran out is when the fake answered the call that used its last
//!   unit; waiting is what the callers measured (virtual time).
//!
//! [`Settings::duration_of`]: crate::Settings::duration_of

mod policy;
mod run;
mod workload;

pub use policy::QuotaPolicy;
pub use run::{run_quota, run_quota_profile, QuotaOutcome, QuotaReport, QUOTA_PROFILE};
pub use workload::QUOTA_WORKERS;
