//! `bulwark triage`: the Notion incident runbook as a command. Bounded checks, the runbook's
//! decision tree, a verdict with its action and exit code, and the write-ups (Slack, status
//! page, postmortem) filled from the evidence.
//!
//! | verdict | exit | evidence | action |
//! |---|---|---|---|
//! | `healthy` | 0 | every check answers | nothing |
//! | `notion_outage` | 10 | status page `major`/`critical`; 5xx/529 or the edge's HTML from the API; timeouts after connecting | serve stale, let the breaker fail fast, watch the status page |
//! | `token_invalid` | 11 | 401 `unauthorized` | create a new integration secret / re-run OAuth |
//! | `rate_limited` | 12 | 429 `rate_limited` | wait `Retry-After` (shown with `rate_limit_reason`), then slow down |
//! | `network` | 13 | connect refused, DNS, TLS, connect timeout, a proxy's page | check egress/proxy/DNS |
//! | `integration_side` | 14 | other 4xx: 403 `restricted_resource` (its own advice: capabilities), 400 `validation_error`/`missing_version` | fix the request / Notion-Version / the integration's capabilities |
//! | `pages_unshared` | 15 | 404 `object_not_found` on a `--page` or the `--data-source`; a page in the trash | re-share through the Connections menu; check the trash |
//! | `schema_changed` | 16 | the data source's properties differ from `--expect-properties`/`--schema` (missing, new, re-typed) | update the integration's property mapping |
//!
//! Exit 1 is triage's own failure, 2 a usage error. The order of the tree is in
//! [`verdict`]; codes 0 and 10–14 are those of the former `triage` example.
//!
//! - [`observe`]: the checks (I/O), each bounded by the step timeout, into
//!   [`observation`]s; a [`Run`](observe::Run) is one pass with its verdict.
//! - [`verdict`]: pure, observations in, a [`Diagnosis`](verdict::Diagnosis) out.
//! - [`schema`]: the expected schema and the comparison, pure.
//! - [`incident`]: the write-up's facts (severity, status, impact, root cause, timeline).
//! - [`render`]: text, JSON, Slack, status page, postmortem.
//! - [`watch`]: repeated checks, transitions, the alert rule; [`notify`]: the webhook.
//! - [`cli`]: the flags and [`run`](cli::run); [`simulate`]: the embedded FakeNotion.
//!
//! # Example
//!
//! ```no_run
//! use bulwark_cli::triage::{observe::{Checker, Target}, render::{self, Format}};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let target = Target::new("https://api.notion.com", std::env::var("NOTION_TOKEN")?);
//! let run = Checker::new(target)?.run().await;
//! println!("{}", render::run(&run, Format::Text, "real API"));
//! std::process::exit(run.diagnosis.verdict.exit_code().into());
//! # }
//! ```

pub mod cli;
pub mod duration;
pub mod incident;
mod net;
pub mod notify;
pub mod observation;
pub mod observe;
pub mod render;
pub mod schema;
pub mod simulate;
pub mod verdict;
pub mod watch;
