//! The fault plan: what each FakeNotion injects, and when.

use std::time::Duration;

use bulwark::http::BoxError;
use bulwark_testkit::{FakeNotion, Fault, FaultHandle, Matcher};
use http::Method;
use tokio::time::{sleep_until, Instant};

use crate::workload::{MAX_WRITES, READ_PAGES};

/// The token both FakeNotions accept.
pub(crate) const TOKEN: &str = "secret_demo";
/// The share of requests answered 502 before being processed.
pub(crate) const RANDOM_502: f64 = 0.05;
/// The share of page creations answered 502 after the page was created.
pub(crate) const WRITE_502_AFTER_APPLY: f64 = 0.2;
/// FakeNotion's rate limit, Notion's: requests per second and burst, per token.
pub(crate) const NOTION_RATE: (u32, u32) = (3, 3);

/// When the scripted faults happen, from the start of the run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) run: Duration,
    pub(crate) cloudflare_at: Duration,
    pub(crate) outage_from: Duration,
    pub(crate) outage_until: Duration,
    /// The outage is shorter than 20 s because the run is.
    pub(crate) scaled: bool,
}

impl Plan {
    pub(crate) fn new(seconds: u64) -> Self {
        let run = Duration::from_secs(seconds);
        let scaled = seconds < 40;
        let outage = if scaled {
            run / 3
        } else {
            Duration::from_secs(20)
        };
        let outage_from = run * 35 / 100;
        Self {
            run,
            cloudflare_at: run * 15 / 100,
            outage_from,
            outage_until: outage_from + outage,
            scaled,
        }
    }

    pub(crate) fn phase(&self, elapsed: Duration) -> &'static str {
        if elapsed >= self.run {
            "draining"
        } else if elapsed >= self.outage_until {
            "after the outage"
        } else if elapsed >= self.outage_from {
            "OUTAGE: every request 503"
        } else {
            "normal"
        }
    }
}

/// A FakeNotion with Notion's rate limit, `READ_PAGES` pages and the seeded random faults;
/// the outage and the Cloudflare 502 are switched on at their times by [`drive_faults`].
pub(crate) async fn start_fake(seed: u64) -> Result<FakeNotion, BoxError> {
    let fake = FakeNotion::builder()
        .tokens([TOKEN])
        .rate_limit(NOTION_RATE.0, NOTION_RATE.1)
        .seed_pages(READ_PAGES)
        .start()
        .await
        .map_err(|e| format!("starting FakeNotion on 127.0.0.1: {e}"))?;
    let faults = fake.faults();
    faults.failure_ratio(RANDOM_502, seed);
    let mut rng = fastrand::Rng::with_seed(seed.rotate_left(17) ^ 0x0057_5249_5445);
    let writes: Vec<Fault> = (0..2 * MAX_WRITES)
        .map(|_| {
            if rng.f64() < WRITE_502_AFTER_APPLY {
                Fault::StatusAfterApply(502)
            } else {
                Fault::Pass
            }
        })
        .collect();
    faults.script_for(Matcher::new(Method::POST, "/v1/pages"), writes);
    Ok(fake)
}

/// Injects the timed faults into every fake at the same moments.
pub(crate) async fn drive_faults(fakes: Vec<FaultHandle>, plan: Plan, start: Instant) {
    sleep_until(start + plan.cloudflare_at).await;
    for f in &fakes {
        f.script([Fault::CloudflareHtml(502)]);
    }
    sleep_until(start + plan.outage_from).await;
    for f in &fakes {
        f.outage(true);
    }
    sleep_until(start + plan.outage_until).await;
    for f in &fakes {
        f.outage(false);
    }
}
