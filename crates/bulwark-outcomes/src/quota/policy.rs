//! The policies of the `quota-exhausted` table, each a stack over the in-process fake
//! Mark2Notion.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use bulwark_http::BoxError;
use bulwark_notion::mark2notion::Mark2NotionLayer;
use bulwark_testkit::{mark2notion::DEFAULT_API_KEY, InProcessMark2Notion};
use tower::{util::BoxCloneService, Layer, Service, ServiceExt};

use crate::policy::{collected, naive::Naive, BoxFuture, Req, Res, Stack};

/// A policy of the `quota-exhausted` table. See [`QuotaPolicy::describe`] for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaPolicy {
    /// No resilience at all.
    Bare,
    /// Mark2Notion's documented retry loop.
    SeedRetryLoop,
    /// Every failure retried after 1 s.
    RetryEveryFailure,
    /// bulwark's `Mark2NotionLayer` at its defaults.
    Bulwark,
}

impl QuotaPolicy {
    /// Every policy, in the order the table prints.
    pub const ALL: [Self; 4] = [
        Self::Bare,
        Self::SeedRetryLoop,
        Self::RetryEveryFailure,
        Self::Bulwark,
    ];

    /// The policy's name in the table.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::SeedRetryLoop => "seed retry loop",
            Self::RetryEveryFailure => "retry every failure",
            Self::Bulwark => "bulwark",
        }
    }

    /// The policy's name on the command line: the table's, with `-` for spaces
    /// (`seed-retry-loop`).
    #[must_use]
    pub fn cli_name(self) -> String {
        self.name().replace(' ', "-")
    }

    /// The policy called `name` (its table or command-line name), if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name || p.cli_name() == name)
    }

    /// What the policy does, in one line.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Bare => "no resilience: one call per operation, whatever comes back",
            Self::SeedRetryLoop => {
                "Mark2Notion's documented callAPIWithRetry(apiCall, maxRetries = 3): 429 and 5xx retried up to 3 times after 2^n s (1, 2, 4 s), no jitter; the Notion tables' naive loop"
            }
            Self::RetryEveryFailure => {
                "any non-2xx answer or error retried up to 3 times, 1 s apart"
            }
            Self::Bulwark => {
                "Mark2NotionLayer::builder().api_key(…).build(): bulwark's Mark2Notion preset at its defaults"
            }
        }
    }

    /// The policy's stack over `upstream`.
    pub(crate) fn stack(self, upstream: InProcessMark2Notion) -> Stack {
        match self {
            Self::Bare => collected(upstream),
            Self::SeedRetryLoop => BoxCloneService::new(Naive::new(collected(upstream))),
            Self::RetryEveryFailure => {
                BoxCloneService::new(RetryEveryFailure::new(collected(upstream)))
            }
            Self::Bulwark => {
                let layer = Mark2NotionLayer::builder()
                    .api_key(DEFAULT_API_KEY)
                    .build()
                    .expect("the preset's defaults are valid");
                collected(layer.layer(upstream))
            }
        }
    }
}

/// Retries after the first attempt.
const MAX_RETRIES: u32 = 3;
/// The wait before each retry.
const WAIT: Duration = Duration::from_secs(1);

/// Any non-2xx answer or error retried up to [`MAX_RETRIES`] times, [`WAIT`] apart.
#[derive(Clone)]
struct RetryEveryFailure {
    inner: Stack,
}

impl RetryEveryFailure {
    fn new(inner: Stack) -> Self {
        Self { inner }
    }
}

impl Service<Req> for RetryEveryFailure {
    type Response = Res;
    type Error = BoxError;
    type Future = BoxFuture<Result<Res, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each attempt waits for the inner service's readiness on its own clone.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let mut retries = 0;
            loop {
                let result = match inner.ready().await {
                    Ok(ready) => ready.call(req.clone()).await,
                    Err(error) => Err(error),
                };
                let failed = result
                    .as_ref()
                    .map_or(true, |res| !res.status().is_success());
                if retries == MAX_RETRIES || !failed {
                    return result;
                }
                tokio::time::sleep(WAIT).await;
                retries += 1;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use bulwark_http::BufferedBody;
    use bulwark_testkit::FakeMark2Notion;
    use http::Request;

    use super::*;

    /// One conversion through `policy` against a fake with `quota` left after `failures`
    /// injected 500s: the final status (0 for an error), the calls the fake saw, the virtual
    /// time it took.
    fn through(policy: QuotaPolicy, quota: u64, failures: u64) -> (u16, usize, Duration) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let fake = FakeMark2Notion::builder().quota(quota).in_process();
            let handle = fake.handle();
            handle.fail_next(failures);
            let req = Request::post(format!("{}/api/convert", fake.base_url()))
                .header("x-api-key", DEFAULT_API_KEY)
                .body(BufferedBody::from(r##"{"markdown":"# Hi"}"##))
                .unwrap();
            let started = tokio::time::Instant::now();
            let status = match policy.stack(fake).oneshot(req).await {
                Ok(res) => res.status().as_u16(),
                Err(_) => 0,
            };
            (status, handle.calls().len(), started.elapsed())
        })
    }

    #[test]
    fn the_loops_retry_a_spent_quota_and_bulwark_does_not() {
        use QuotaPolicy::*;
        assert_eq!(through(Bare, 0, 0), (429, 1, Duration::ZERO));
        assert_eq!(
            through(SeedRetryLoop, 0, 0),
            (429, 4, Duration::from_secs(7))
        );
        assert_eq!(
            through(RetryEveryFailure, 0, 0),
            (429, 4, Duration::from_secs(3))
        );
        assert_eq!(through(Bulwark, 0, 0), (429, 1, Duration::ZERO));
        // A 500 is retried by every policy but the bare one.
        assert_eq!(
            through(SeedRetryLoop, 10, 1),
            (200, 2, Duration::from_secs(1))
        );
        assert_eq!(through(RetryEveryFailure, 10, 1).0, 200);
        assert_eq!(through(Bulwark, 10, 1).0, 200);
    }

    #[test]
    fn names_round_trip() {
        for policy in QuotaPolicy::ALL {
            assert_eq!(QuotaPolicy::from_name(policy.name()), Some(policy));
            assert_eq!(QuotaPolicy::from_name(&policy.cli_name()), Some(policy));
        }
        assert_eq!(
            QuotaPolicy::from_name("seed-retry-loop"),
            Some(QuotaPolicy::SeedRetryLoop)
        );
        assert_eq!(QuotaPolicy::from_name("naive"), None);
    }
}
