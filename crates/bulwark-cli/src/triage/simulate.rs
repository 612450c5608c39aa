//! Without `--base-url`: an embedded FakeNotion, set up by `--simulate` to show a verdict.

use std::io;

use bulwark_testkit::{FakeNotion, Fault, Matcher, StatusIndicator, SEED_DATA_SOURCE_ID};

use crate::triage::{observe::Target, schema::ExpectedSchema};

/// The token the embedded FakeNotion accepts.
pub const FAKE_TOKEN: &str = "secret_triage_demo";
/// A page id FakeNotion does not know: `--simulate unshared` checks it.
pub const UNSHARED_PAGE_ID: &str = "00000000-0000-4000-8000-000000000000";
/// The schema `--simulate schema-changed` expects when `--expect-properties` is not given.
pub const SIMULATED_EXPECTATION: &str = "Name:title,Status:select,Due:date";

/// What `--simulate` sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Simulate {
    /// Nothing wrong (exit 0).
    Healthy,
    /// Every call 503, status page `major` (exit 10).
    Outage,
    /// A token FakeNotion does not accept (exit 11).
    Revoked,
    /// 429s with `Retry-After: 30` (exit 12).
    RateLimited,
    /// A closed port (exit 13).
    Network,
    /// 403 `restricted_resource` on the query (exit 14).
    Restricted,
    /// A page that is not shared (404) next to one that is (exit 15).
    Unshared,
    /// The data source lost `Due`, gained `Owner`, `Status` became a `multi_select` (exit 16).
    SchemaChanged,
}

impl Simulate {
    /// The flag's value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Outage => "outage",
            Self::Revoked => "revoked",
            Self::RateLimited => "rate-limited",
            Self::Network => "network",
            Self::Restricted => "restricted",
            Self::Unshared => "unshared",
            Self::SchemaChanged => "schema-changed",
        }
    }
}

/// A started FakeNotion (kept alive while checked) and the target that points at it.
#[derive(Debug)]
pub struct Embedded {
    /// Where to look: the flags' `target`, re-pointed at the FakeNotion.
    pub target: Target,
    /// The server; `None` for `network`, which checks a closed port.
    pub fake: Option<FakeNotion>,
}

/// Starts FakeNotion set up for `simulate` and points `target` (the other flags: data
/// source, schema, pages, timeout) at it; `status_url` overrides its status page.
///
/// # Errors
/// When FakeNotion cannot bind a port.
pub async fn embedded(
    simulate: Simulate,
    mut target: Target,
    status_url: Option<String>,
) -> io::Result<Embedded> {
    let fake = FakeNotion::builder()
        .tokens([FAKE_TOKEN])
        .seed_pages(1)
        // Notion's 3/s, with one request of burst beyond the client's own bucket (3/s, burst
        // 3): the two buckets pace to the same third of a second, and a first request slowed
        // by its connection set-up otherwise made the fourth API call land a little early
        // and meet a 429 (Notion too allows bursts above its average).
        .rate_limit(3, 4)
        .start()
        .await?;
    target.base_url = fake.url();
    target.status_url = status_url.unwrap_or_else(|| format!("{}/api/v2/status.json", fake.url()));
    target.token = FAKE_TOKEN.to_owned();
    if simulate != Simulate::SchemaChanged {
        // The integration's expectation holds, unless the simulation is about it.
        if let Some(expected) = &target.expected_schema {
            fake.set_schema(expected.properties().iter().cloned());
        }
    }
    match simulate {
        Simulate::Healthy => {}
        Simulate::Outage => {
            fake.faults().outage(true);
            fake.set_status_indicator(StatusIndicator::Major);
        }
        Simulate::Revoked => target.token = "secret_revoked_last_week".to_owned(),
        Simulate::RateLimited => {
            fake.faults().script([
                Fault::RateLimited {
                    retry_after_secs: 30,
                },
                Fault::RateLimited {
                    retry_after_secs: 30,
                },
            ]);
        }
        Simulate::Network => {
            // A port nobody listens on: bind one, note it, close it.
            let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
            target.base_url = format!("http://{closed}");
            target.status_url = format!("http://{closed}/api/v2/status.json");
            return Ok(Embedded { target, fake: None });
        }
        Simulate::Restricted => {
            let (_, path) = target.query_route();
            fake.faults()
                .script_for(Matcher::any_method(path), [Fault::Status(403)]);
        }
        Simulate::Unshared => {
            if target.pages.is_empty() {
                let shared = fake.pages().first().map(|p| p.id.clone());
                target.pages.extend(shared);
                target.pages.push(UNSHARED_PAGE_ID.to_owned());
            }
        }
        Simulate::SchemaChanged => {
            if target.data_source.is_none() {
                target.data_source = Some(SEED_DATA_SOURCE_ID.to_owned());
            }
            if target.expected_schema.is_none() {
                target.expected_schema = ExpectedSchema::parse(SIMULATED_EXPECTATION).ok();
            }
            fake.set_schema([
                ("Name", "title"),
                ("Status", "multi_select"),
                ("Owner", "people"),
            ]);
        }
    }
    Ok(Embedded {
        target,
        fake: Some(fake),
    })
}
