//! The monthly quota: pure accounting that takes `now` as an argument and
//! knows nothing of HTTP.

use std::time::Duration;

use tokio::time::Instant;

/// An account's usage for the current billing period, as the `X-Usage-*`
/// headers and the 429 body report it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// Successful calls counted this period (`X-Usage-Current`,
    /// `current_usage`). May exceed `quota` after
    /// [`Mark2NotionHandle::set_used`](super::Mark2NotionHandle::set_used).
    pub current: u64,
    /// Calls allowed per period (`X-Usage-Quota`, `quota`).
    pub quota: u64,
    /// The plan's name (`X-Usage-Plan`, `plan`).
    pub plan: String,
}

impl Usage {
    /// Calls left this period, never below zero (`X-Usage-Remaining`,
    /// `requests_remaining`).
    #[must_use]
    pub fn remaining(&self) -> u64 {
        self.quota.saturating_sub(self.current)
    }

    /// Whether no call is left this period: the next call is refused with 429.
    #[must_use]
    pub fn is_exhausted(&self) -> bool {
        self.remaining() == 0
    }
}

/// The usage plus its billing period.
#[derive(Debug)]
pub(crate) struct Account {
    usage: Usage,
    /// How long a period lasts; `None` never resets on its own.
    reset_after: Option<Duration>,
    /// When the current period began; set on first use, so that a clock
    /// paused after building still measures periods from the first call.
    period_start: Option<Instant>,
}

impl Account {
    pub(crate) fn new(quota: u64, plan: String, used: u64, reset_after: Option<Duration>) -> Self {
        Self {
            usage: Usage {
                current: used,
                quota,
                plan,
            },
            reset_after: reset_after.filter(|period| !period.is_zero()),
            period_start: None,
        }
    }

    /// Starts a new period if the current one is over at `now` (periods
    /// follow one another without gaps, however long nobody called).
    pub(crate) fn roll(&mut self, now: Instant) {
        let Some(period) = self.reset_after else {
            return;
        };
        let start = *self.period_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed < period {
            return;
        }
        let periods = elapsed.as_nanos() / period.as_nanos();
        let skipped = periods
            .checked_mul(period.as_nanos())
            .and_then(|nanos| u64::try_from(nanos).ok())
            .map(Duration::from_nanos);
        self.period_start = Some(skipped.and_then(|d| start.checked_add(d)).unwrap_or(now));
        self.usage.current = 0;
    }

    pub(crate) fn usage(&self) -> &Usage {
        &self.usage
    }

    /// Counts one successful call.
    pub(crate) fn charge(&mut self) {
        self.usage.current = self.usage.current.saturating_add(1);
    }

    pub(crate) fn set_used(&mut self, used: u64) {
        self.usage.current = used;
    }

    pub(crate) fn set_quota(&mut self, quota: u64) {
        self.usage.quota = quota;
    }

    /// A new billing period beginning at `now`.
    pub(crate) fn reset(&mut self, now: Instant) {
        self.usage.current = 0;
        if self.reset_after.is_some() {
            self.period_start = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_saturates() {
        let mut account = Account::new(2, "free".into(), 1, None);
        assert_eq!(account.usage().remaining(), 1);
        account.charge();
        assert!(account.usage().is_exhausted());
        account.set_used(5);
        assert_eq!(account.usage().remaining(), 0);
        assert_eq!(account.usage().current, 5);
        account.set_quota(10);
        assert_eq!(account.usage().remaining(), 5);
    }

    #[test]
    fn periods_roll_without_gaps() {
        let t0 = Instant::now();
        let period = Duration::from_secs(30);
        let mut account = Account::new(3, "free".into(), 0, Some(period));
        account.roll(t0);
        account.charge();
        account.roll(t0 + Duration::from_secs(29));
        assert_eq!(account.usage().current, 1);
        account.roll(t0 + Duration::from_secs(95));
        assert_eq!(account.usage().current, 0, "a new period began at 90 s");
        account.charge();
        account.roll(t0 + Duration::from_secs(119));
        assert_eq!(
            account.usage().current,
            1,
            "the period began at 90 s, not 95 s"
        );
        account.roll(t0 + Duration::from_secs(120));
        assert_eq!(account.usage().current, 0);
    }

    #[test]
    fn no_period_never_resets() {
        let t0 = Instant::now();
        let mut account = Account::new(3, "free".into(), 2, None);
        account.roll(t0);
        account.roll(t0 + Duration::from_secs(10_000_000));
        assert_eq!(account.usage().current, 2);
        let mut zero = Account::new(3, "free".into(), 2, Some(Duration::ZERO));
        zero.roll(t0 + Duration::from_secs(1));
        assert_eq!(zero.usage().current, 2, "a zero period is no period");
    }
}
