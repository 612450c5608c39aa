//! Outcomes under faults: bulwark against every policy a Notion user could pick, on the same
//! seeded fault traces, in virtual time.
//!
//! The harness behind `cargo bench --bench outcomes` and `tests/outcomes.rs` of the root
//! package. Each run is one [`Policy`] through one [`Profile`] against a fresh in-process
//! FakeNotion ([`bulwark_testkit::InProcessNotion`]) on a current-thread runtime whose clock is
//! paused, so a ten-minute trace takes moments and the same seed gives the same numbers.
//!
//! - **Workload** ([`workload`]): [`WORKERS`] workers, each running its own seeded list of
//!   operations with `U[0.5, 1.5)` s of thinking before each — about 6 operations/s offered,
//!   twice Notion's 3 requests/s: `GET pages/{id}`, `GET users/me`, `POST
//!   data_sources/{id}/query`, `POST pages` with a title no other operation uses, and
//!   `PATCH pages/{id}` of a page no other operation touches. Every policy gets the same
//!   operations.
//! - **Policies** ([`Policy`]): `bare`, `naive`, `notion-js-sdk`, `tower-resilience` (and the
//!   same without its breaker), `bulwark`.
//! - **Profiles** ([`Profile`]): `steady-429`, `flaky-5xx`, `outage-20s`, `outage-5min`,
//!   `flapping`, `slow`, `edge-html`, `overload-529`.
//! - **`quota-exhausted`** ([`run_quota_profile`]): against the in-process fake Mark2Notion
//!   instead ([`bulwark_testkit::InProcessMark2Notion`]): [`QUOTA_WORKERS`] workers converting
//!   Markdown until its monthly quota runs out a third of the way in; policies
//!   ([`QuotaPolicy`]) `bare`, `seed retry loop`, `retry every failure`, `bulwark`
//!   (`Mark2NotionLayer`); counted ([`QuotaOutcome`]): calls after exhaustion, callers' waiting
//!   after it, what they got.
//! - **Counting** ([`Outcome`]): succeeded and failed operations are what the callers saw;
//!   calls, 429s and recovery times come from FakeNotion's request log; failed-but-applied and
//!   duplicated writes from its page store (by the operations' unique titles). Nothing is read
//!   from a policy's own counters.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use bulwark_outcomes::{run, Policy, Profile, Settings};
//!
//! let settings = Settings::new(7).duration(Duration::from_secs(20));
//! let bare = run(Profile::Steady429, Policy::Bare, &settings);
//! let bulwark = run(Profile::Steady429, Policy::Bulwark, &settings);
//! assert_eq!(bare.operations, bulwark.operations); // the same work for both
//! assert!(bulwark.throttled <= bare.throttled);
//! assert_eq!(bulwark.duplicated_writes, 0);
//! assert_eq!(run(Profile::Steady429, Policy::Bulwark, &settings), bulwark); // deterministic
//! ```
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod args;
mod metrics;
mod policy;
mod profile;
mod quota;
pub mod render;
mod run;
pub mod workload;

pub use args::Args;
pub use metrics::Outcome;
pub use policy::Policy;
pub use profile::Profile;
pub use quota::{
    run_quota, run_quota_profile, QuotaOutcome, QuotaPolicy, QuotaReport, QUOTA_PROFILE,
    QUOTA_WORKERS,
};
pub use run::{run, run_profile, ProfileReport, Settings};
pub use workload::WORKERS;
