//! `--watch 30s`: the checks again and again; only transitions are printed, the webhook hears
//! of a healthy → degraded transition, of `--alert-after` consecutive failures (the guide's
//! alert rule, 5 by default) and of the recovery; at the end (Ctrl-C or `--for`) the
//! postmortem draft tells the observed timeline.
//!
//! [`WatchState`] is the pure part (runs in, transitions and alerts out); [`watch`] drives it
//! with `tokio::time`.

use std::{future::Future, io::Write, time::Duration};

use time::OffsetDateTime;
use tokio::time::{sleep, sleep_until, Instant};

use crate::triage::{
    incident::{failing_status, Incident, IncidentStatus, TimelineEntry},
    notify::post_slack,
    observe::{now_utc, Checker, Run},
    render::{iso8601, slack},
    verdict::Verdict,
};

/// The guide's alert rule: alert after this many consecutive failed checks.
pub const DEFAULT_ALERT_AFTER: u32 = 5;

/// Why the webhook is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// The first failed check after healthy ones (or the first check failed).
    Degraded,
    /// This many consecutive failed checks.
    Sustained(u32),
    /// The first healthy check after failed ones.
    Recovered,
}

impl Alert {
    /// The line put above the Slack message.
    #[must_use]
    pub fn headline(self) -> String {
        match self {
            Self::Degraded => ":rotating_light: Notion integration degraded".to_owned(),
            Self::Sustained(n) => format!(":rotating_light: {n} consecutive failed checks"),
            Self::Recovered => ":white_check_mark: Notion integration recovered".to_owned(),
        }
    }
}

/// What one check changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// The line to print when the verdict changed (or for the first check).
    pub transition: Option<String>,
    /// What to tell the webhook.
    pub alerts: Vec<Alert>,
}

/// The watch so far: verdicts, streaks, the timeline.
#[derive(Debug, Clone)]
pub struct WatchState {
    alert_after: u32,
    started_at: OffsetDateTime,
    checks: u32,
    failed_checks: u32,
    streak: u32,
    last: Option<Run>,
    first_failure: Option<Run>,
    recovered_at: Option<OffsetDateTime>,
    timeline: Vec<TimelineEntry>,
}

impl WatchState {
    /// A watch started at `started_at` that alerts after `alert_after` consecutive failures.
    #[must_use]
    pub const fn new(started_at: OffsetDateTime, alert_after: u32) -> Self {
        Self {
            alert_after,
            started_at,
            checks: 0,
            failed_checks: 0,
            streak: 0,
            last: None,
            first_failure: None,
            recovered_at: None,
            timeline: Vec::new(),
        }
    }

    /// Adds a timeline entry (a notification, the end of the watch).
    pub fn note(&mut self, at: OffsetDateTime, event: impl Into<String>) {
        self.timeline.push(TimelineEntry {
            at,
            event: event.into(),
        });
    }

    /// Takes one run's result.
    pub fn record(&mut self, run: &Run) -> Update {
        let at = run.finished_at;
        let d = &run.diagnosis;
        let now = d.verdict;
        let before = self.last.as_ref().map(|r| r.diagnosis.verdict);
        let was_failing = before.is_some_and(Verdict::is_failure);
        self.checks += 1;
        if now.is_failure() {
            self.failed_checks += 1;
            self.streak += 1;
        } else {
            self.streak = 0;
        }
        let mut update = Update::default();
        if before != Some(now) {
            let line = match before {
                None => format!("{now} (exit {}): {}", now.exit_code(), d.reason),
                Some(before) => {
                    format!("{before} → {now} (exit {}): {}", now.exit_code(), d.reason)
                }
            };
            let event = match (before, now.is_failure()) {
                (None, _) => format!("first check: {line}"),
                (Some(_), true) if !was_failing => format!("degraded: {line}"),
                (Some(_), false) => format!("recovered: {line}"),
                (Some(_), true) => format!("verdict changed: {line}"),
            };
            self.note(at, event);
            update.transition = Some(format!("{}  {line}", iso8601(at)));
        }
        if now.is_failure() {
            if self.first_failure.is_none() {
                self.first_failure = Some(run.clone());
            }
            self.recovered_at = None;
            if !was_failing {
                update.alerts.push(Alert::Degraded);
            }
            if self.streak == self.alert_after && self.alert_after > 1 {
                self.note(
                    at,
                    format!("{} consecutive failed checks (alert rule)", self.streak),
                );
                update.alerts.push(Alert::Sustained(self.streak));
            }
        } else if was_failing {
            self.recovered_at = Some(at);
            update.alerts.push(Alert::Recovered);
        }
        self.last = Some(run.clone());
        update
    }

    /// Checks run so far.
    #[must_use]
    pub const fn checks(&self) -> u32 {
        self.checks
    }

    /// The last check's exit code (0 before any check).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        self.last
            .as_ref()
            .map_or(0, |r| r.diagnosis.verdict.exit_code())
    }

    /// The write-up so far: about the first failure when there was one (its verdict, its
    /// impact), resolved if the last check was healthy, with the watch's timeline. `None`
    /// before the first check finished.
    #[must_use]
    pub fn incident(&self) -> Option<Incident> {
        let last = self.last.as_ref()?;
        let Some(first) = &self.first_failure else {
            let mut incident = Incident::from_run(last);
            incident.status = IncidentStatus::Operational;
            incident.started_at = self.started_at;
            incident.impact.clear();
            incident.reason = format!(
                "{} checks from {} to {}, none failed",
                self.checks,
                iso8601(self.started_at),
                iso8601(last.finished_at)
            );
            incident.timeline.clone_from(&self.timeline);
            return Some(incident);
        };
        let mut incident = Incident::from_run(first);
        incident.updated_at = last.finished_at;
        incident.resolved_at = self.recovered_at;
        incident.exit_code = last.diagnosis.verdict.exit_code();
        incident.impact.push(format!(
            "{} of {} checks failed between {} and {}",
            self.failed_checks,
            self.checks,
            iso8601(self.started_at),
            iso8601(last.finished_at)
        ));
        if let Some(resolved) = self.recovered_at {
            incident.status = IncidentStatus::Resolved;
            incident.action = format!(
                "recovered at {}: nothing to do now; follow up on the action items ({})",
                iso8601(resolved),
                first.diagnosis.action
            );
        } else {
            incident.status = failing_status(last.diagnosis.verdict);
            incident.action.clone_from(&last.diagnosis.action);
            if last.diagnosis.verdict != first.diagnosis.verdict {
                incident.also.insert(
                    0,
                    format!("now {}: {}", last.diagnosis.verdict, last.diagnosis.reason),
                );
            }
        }
        incident.timeline.clone_from(&self.timeline);
        Some(incident)
    }
}

/// How to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    /// Time between the end of a check and the start of the next.
    pub interval: Duration,
    /// Stop after this long (`--for`); `None` runs until `stop`.
    pub duration: Option<Duration>,
    /// Alert after this many consecutive failed checks.
    pub alert_after: u32,
    /// The Slack webhook (`--notify`).
    pub notify: Option<String>,
}

/// Watches until `stop` completes or `config.duration` has passed; prints the first verdict
/// and every transition to `out` (a line each, with its timestamp) and posts the alerts to
/// the webhook (failures to deliver go to stderr and the timeline). A check in flight when
/// it ends is abandoned. Returns the state, for the write-up.
pub async fn watch<W: Write>(
    checker: &Checker,
    config: &WatchConfig,
    out: &mut W,
    stop: impl Future<Output = ()>,
) -> WatchState {
    let started = Instant::now();
    let end = async {
        match config.duration {
            Some(d) => sleep_until(started + d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop, end);
    let mut state = WatchState::new(now_utc(), config.alert_after);
    let _ = writeln!(
        out,
        "{}  watching {} every {:?}; alert after {} consecutive failures",
        iso8601(now_utc()),
        crate::proxy::redact_url(&checker.target().base_url),
        config.interval,
        config.alert_after
    );
    let _ = out.flush();
    let why = loop {
        let run = tokio::select! {
            run = checker.run() => run,
            () = &mut stop => break "stopped (Ctrl-C)",
            () = &mut end => break "--for elapsed",
        };
        let update = state.record(&run);
        if let Some(line) = update.transition {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        if let Some(url) = &config.notify {
            for alert in update.alerts {
                let Some(incident) = state.incident() else {
                    continue;
                };
                let text = format!("{}\n{}", alert.headline(), slack(&incident));
                let bound = checker.target().step_timeout;
                let event = match post_slack(url, &text, bound).await {
                    Ok(()) => format!("webhook notified: {}", alert.headline()),
                    Err(err) => {
                        eprintln!("bulwark triage: {err}");
                        format!("webhook notification failed: {}", err.reason)
                    }
                };
                state.note(now_utc(), event);
            }
        }
        tokio::select! {
            () = sleep(config.interval) => {}
            () = &mut stop => break "stopped (Ctrl-C)",
            () = &mut end => break "--for elapsed",
        }
    };
    state.note(
        now_utc(),
        format!("watch ended ({why}) after {} checks", state.checks()),
    );
    state
}

#[cfg(test)]
mod tests;
