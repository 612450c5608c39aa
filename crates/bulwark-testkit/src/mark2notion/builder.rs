//! [`FakeMark2NotionBuilder`].

use std::collections::{HashSet, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::api::State;
use super::handle::Mark2NotionHandle;
use super::in_process::InProcessMark2Notion;
use super::server::FakeMark2Notion;
use super::usage::Account;
use super::{DEFAULT_API_KEY, DEFAULT_PLAN, DEFAULT_QUOTA};

/// The default number of recorded calls kept (the oldest go first).
const DEFAULT_RECORD_LIMIT: usize = 100_000;

/// Configures a fake Mark2Notion. Every setter says its default. Nothing
/// happens until [`start`](Self::start) or [`in_process`](Self::in_process).
#[derive(Debug, Clone)]
#[must_use]
pub struct FakeMark2NotionBuilder {
    keys: HashSet<String>,
    quota: u64,
    plan: String,
    used: u64,
    reset_after: Option<Duration>,
    record_limit: usize,
}

impl Default for FakeMark2NotionBuilder {
    fn default() -> Self {
        Self {
            keys: HashSet::from([DEFAULT_API_KEY.to_owned()]),
            quota: DEFAULT_QUOTA,
            plan: DEFAULT_PLAN.to_owned(),
            used: 0,
            reset_after: None,
            record_limit: DEFAULT_RECORD_LIMIT,
        }
    }
}

impl FakeMark2NotionBuilder {
    /// The accepted `x-api-key` values, all of one account (one usage).
    /// An empty list accepts none (every key gets 403). Defaults to
    /// `["mk_test_key"]`.
    pub fn api_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Successful calls allowed per billing period (0 refuses every call).
    /// Defaults to 1000.
    pub fn quota(mut self, quota: u64) -> Self {
        self.quota = quota;
        self
    }

    /// The plan's name in `X-Usage-Plan` and the 429 body. Defaults to `free`.
    pub fn plan(mut self, plan: impl Into<String>) -> Self {
        self.plan = plan.into();
        self
    }

    /// Calls already counted this period when the fake starts. Defaults to 0.
    pub fn used(mut self, used: u64) -> Self {
        self.used = used;
        self
    }

    /// The length of a billing period: the usage goes back to 0 each time
    /// one ends, measured with `tokio::time` from the first request (so a
    /// paused clock advanced past it starts a new month). `None` or zero never
    /// resets. Defaults to `None`: the quota stays spent for the whole test
    /// unless [`Mark2NotionHandle::reset_usage`] is called.
    pub fn reset_after(mut self, period: Option<Duration>) -> Self {
        self.reset_after = period;
        self
    }

    /// Keeps at most `n` recorded calls, forgetting the oldest (0 records
    /// nothing; [`Mark2NotionHandle::calls_after_exhaustion`] still counts).
    /// Defaults to 100 000.
    pub fn record_limit(mut self, n: usize) -> Self {
        self.record_limit = n;
        self
    }

    /// Binds `127.0.0.1:0` and serves HTTP/1.1 on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// When the listening socket cannot be bound.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub async fn start(self) -> io::Result<FakeMark2Notion> {
        FakeMark2Notion::start(self.in_process()).await
    }

    /// The same fake without a socket: a `tower::Service` answering
    /// `http::Request`s in process, for paused-clock tests. Needs no runtime
    /// to build.
    pub fn in_process(self) -> InProcessMark2Notion {
        let state = State {
            keys: self.keys,
            account: Account::new(self.quota, self.plan, self.used, self.reset_after),
            outage: false,
            fail_next: 0,
            log: VecDeque::new(),
            record_limit: self.record_limit,
            calls_after_exhaustion: 0,
        };
        InProcessMark2Notion {
            handle: Mark2NotionHandle {
                state: Arc::new(Mutex::new(state)),
            },
        }
    }
}
