//! The eight fault profiles: what FakeNotion does wrong, and when.
//!
//! Every profile keeps FakeNotion's own rate limit (3 requests/s, burst 3, 429 `rate_limited`
//! with an integer `Retry-After`), so the workload's 2× load draws 429s in all of them. Random
//! faults come from [`FaultHandle::failure_mix`] seeded with the run's seed; timed faults
//! (outages, 529 bursts) are switched by a driver task at fixed virtual times.

use std::time::Duration;

use bulwark_testkit::{Fault, FaultHandle};
use tokio::time::{sleep_until, Instant};

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A seeded fault trace. See [`Profile::describe`] for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Profile {
    /// Twice Notion's rate limit, no other fault.
    Steady429,
    /// 10 % of requests answered 502/503/504; a third of the 502s after the write was applied.
    Flaky5xx,
    /// Every request answered 503 for 20 s.
    Outage20s,
    /// Every request answered 503 for 5 min.
    Outage5min,
    /// Down 2 s, up 3 s, for a minute.
    Flapping,
    /// 5 % of requests answered 10–40 s late.
    Slow,
    /// 10 % of requests answered by Cloudflare's edge: HTML 502/524, no `x-notion-request-id`.
    EdgeHtml,
    /// Bursts of 529 `service_overload`.
    Overload529,
}

impl Profile {
    /// Every profile, in the order the tables print.
    pub const ALL: [Self; 8] = [
        Self::Steady429,
        Self::Flaky5xx,
        Self::Outage20s,
        Self::Outage5min,
        Self::Flapping,
        Self::Slow,
        Self::EdgeHtml,
        Self::Overload529,
    ];

    /// The profile's name on the command line and in the tables (`steady-429`, …).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Steady429 => "steady-429",
            Self::Flaky5xx => "flaky-5xx",
            Self::Outage20s => "outage-20s",
            Self::Outage5min => "outage-5min",
            Self::Flapping => "flapping",
            Self::Slow => "slow",
            Self::EdgeHtml => "edge-html",
            Self::Overload529 => "overload-529",
        }
    }

    /// The profile called `name`, if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// What goes wrong, in one line.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Steady429 => "twice Notion's 3 requests/s, no other fault",
            Self::Flaky5xx => {
                "10 % of requests fail: 502, 503, 504 in equal parts; a third of the 502s after the request was applied"
            }
            Self::Outage20s => "every request 503 from 60 s to 80 s",
            Self::Outage5min => "every request 503 from 60 s to 360 s",
            Self::Flapping => "from 30 s to 90 s: 2 s down (503), 3 s up, twelve times",
            Self::Slow => "5 % of requests answered 10 to 40 s late",
            Self::EdgeHtml => {
                "10 % of requests answered by Cloudflare's edge: HTML 502 or 524, no x-notion-request-id"
            }
            Self::Overload529 => {
                "four 8 s bursts (at 20, 60, 100, 140 s) in which half the requests get 529 service_overload"
            }
        }
    }

    /// How long the workload runs (virtual time): how many operations the workers plan.
    #[must_use]
    pub const fn duration(self) -> Duration {
        match self {
            Self::Steady429 => secs(120),
            Self::Outage20s | Self::Flapping => secs(150),
            Self::Outage5min => secs(480),
            Self::Flaky5xx | Self::Slow | Self::EdgeHtml | Self::Overload529 => secs(180),
        }
    }

    /// The windows in which every request is answered 503, as offsets from the start.
    #[must_use]
    pub fn outages(self) -> Vec<(Duration, Duration)> {
        match self {
            Self::Outage20s => vec![(secs(60), secs(80))],
            Self::Outage5min => vec![(secs(60), secs(360))],
            Self::Flapping => (0..12)
                .map(|i| (secs(30 + 5 * i), secs(30 + 5 * i + 2)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The 529 bursts, as offsets from the start.
    fn bursts(self) -> Vec<(Duration, Duration)> {
        match self {
            Self::Overload529 => (0..4)
                .map(|i| (secs(20 + 40 * i), secs(28 + 40 * i)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the tables show the time from recovery to the first success.
    #[must_use]
    pub fn has_recoveries(self) -> bool {
        !self.outages().is_empty()
    }

    /// Installs the profile's random faults (those that last the whole run).
    pub(crate) fn install(self, faults: &FaultHandle, seed: u64) {
        match self {
            Self::Flaky5xx => {
                faults.failure_mix(
                    0.10,
                    seed,
                    [
                        (2, Fault::Status(502)),
                        (1, Fault::StatusAfterApply(502)),
                        (3, Fault::Status(503)),
                        (3, Fault::Status(504)),
                    ],
                );
            }
            Self::Slow => {
                faults.failure_mix(
                    0.05,
                    seed,
                    (0..7).map(|i| (1, Fault::Delay(secs(10 + 5 * i)))),
                );
            }
            Self::EdgeHtml => {
                faults.failure_mix(
                    0.10,
                    seed,
                    [
                        (1, Fault::CloudflareHtml(502)),
                        (1, Fault::CloudflareHtml(524)),
                    ],
                );
            }
            Self::Steady429
            | Self::Outage20s
            | Self::Outage5min
            | Self::Flapping
            | Self::Overload529 => {}
        }
    }

    /// Switches the timed faults at their virtual times (from `start`), then returns.
    pub(crate) async fn drive(self, faults: FaultHandle, seed: u64, start: Instant) {
        let mut events: Vec<(Duration, Switch)> = Vec::new();
        for (from, to) in self.outages() {
            events.push((from, Switch::Outage(true)));
            events.push((to, Switch::Outage(false)));
        }
        for (i, (from, to)) in (0u64..).zip(self.bursts()) {
            events.push((from, Switch::Overload(seed.wrapping_add(i))));
            events.push((to, Switch::Healthy));
        }
        events.sort_by_key(|(at, _)| *at);
        for (at, switch) in events {
            sleep_until(start + at).await;
            match switch {
                Switch::Outage(on) => {
                    faults.outage(on);
                }
                Switch::Overload(seed) => {
                    faults.failure_mix(0.5, seed, [(1, Fault::Status(529))]);
                }
                Switch::Healthy => {
                    faults.no_failure_ratio();
                }
            }
        }
    }
}

/// One timed change of the upstream.
#[derive(Debug, Clone, Copy)]
enum Switch {
    Outage(bool),
    Overload(u64),
    Healthy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_windows_fit_the_runs() {
        for profile in Profile::ALL {
            assert_eq!(Profile::from_name(profile.name()), Some(profile));
            for (from, to) in profile.outages().into_iter().chain(profile.bursts()) {
                assert!(from < to && to < profile.duration(), "{profile:?}");
            }
        }
        assert_eq!(Profile::from_name("nope"), None);
        assert_eq!(Profile::Flapping.outages().len(), 12);
        assert_eq!(Profile::Flapping.outages()[11].1, secs(87));
    }
}
