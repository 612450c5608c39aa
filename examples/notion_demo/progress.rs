//! Progress: one bar per arm on a terminal, a line every 10 s without one (CI).

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use bulwark::http::BoxError;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::time::{sleep, Instant};

use crate::{faults::Plan, runners::Live};

/// One bar per arm; when the bars are hidden (no terminal, as in CI), a line every 10 s.
#[derive(Debug)]
pub(crate) struct Progress {
    pub(crate) multi: MultiProgress,
    pub(crate) arms: Vec<(&'static str, ProgressBar, Arc<Live>)>,
}

impl Progress {
    pub(crate) fn new(total: usize, names: &[&'static str]) -> Result<Self, BoxError> {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template(
            "{prefix:>16} [{bar:30.cyan/blue}] {pos:>4}/{len} ops  {msg}",
        )?
        .progress_chars("=> ");
        let arms = names
            .iter()
            .map(|&name| {
                let bar = multi.add(ProgressBar::new(total as u64));
                bar.set_style(style.clone());
                bar.set_prefix(name);
                (name, bar, Arc::new(Live::default()))
            })
            .collect();
        Ok(Self { multi, arms })
    }

    /// Updates the bars' messages until aborted.
    pub(crate) async fn tick(&self, plan: Plan, start: Instant, total: usize) {
        let mut next_line = Duration::from_secs(10);
        loop {
            let elapsed = start.elapsed();
            let phase = plan.phase(elapsed);
            for (_, bar, live) in &self.arms {
                bar.set_message(format!(
                    "{phase} · {} failed",
                    live.failed.load(Ordering::Relaxed)
                ));
            }
            if self.multi.is_hidden() && elapsed >= next_line {
                let arms: Vec<String> = self
                    .arms
                    .iter()
                    .map(|(name, _, live)| {
                        format!(
                            "{name}: {}/{total} done, {} failed",
                            live.done.load(Ordering::Relaxed),
                            live.failed.load(Ordering::Relaxed)
                        )
                    })
                    .collect();
                println!(
                    "[{:>4}s] {phase:<26} {}",
                    next_line.as_secs(),
                    arms.join(" | ")
                );
                next_line += Duration::from_secs(10);
            }
            sleep(Duration::from_millis(250)).await;
        }
    }

    pub(crate) fn finish(&self) {
        for (_, bar, live) in &self.arms {
            bar.finish_with_message(format!(
                "done · {} failed",
                live.failed.load(Ordering::Relaxed)
            ));
        }
    }
}
