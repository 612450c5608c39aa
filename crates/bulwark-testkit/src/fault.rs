//! Scripted faults: what FakeNotion does instead of (or besides) answering.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::lock;

/// One injected failure, applied to one `/v1/*` request.
///
/// Faults never apply to `/api/v2/status.json`. Statuses that are not
/// HTTP error statuses (outside 400–599) are answered as 500
/// (`Status`, `StatusAfterApply`) or 502 (`CloudflareHtml`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer normally. Useful in scripts: `[Status(502), Pass, Status(503)]`.
    Pass,
    /// Answer this status with the Notion error body for it, without
    /// processing the request (nothing is created, no rate-limit token is
    /// spent): 500 `internal_server_error`, 502 `bad_gateway`, 503
    /// `service_unavailable`, 504 `gateway_timeout`, 409 `conflict_error`,
    /// 429 `rate_limited` (with `Retry-After: 1`), 529 `service_overload`,
    /// 401 `unauthorized`, 403 `restricted_resource`, 404
    /// `object_not_found`; other 4xx are `invalid_request`, other 5xx
    /// `internal_server_error`.
    Status(u16),
    /// Process the request for real (a `POST /v1/pages` *does* create the
    /// page, the rate-limit token *is* spent) and then answer this status
    /// as [`Fault::Status`] does, whatever the real outcome was: the
    /// ambiguous failure that makes blind retries of a `POST` create
    /// duplicates.
    StatusAfterApply(u16),
    /// Answer 429 `rate_limited` with this `Retry-After`, without
    /// processing the request.
    RateLimited {
        /// The value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Close the TCP connection without sending any response. The request
    /// is recorded with status 0.
    DropConnection,
    /// Answer like Cloudflare's edge when the origin fails: an HTML body,
    /// `server: cloudflare`, a `cf-ray` header and no
    /// `x-notion-request-id`. Typical statuses: 502, 520–524.
    CloudflareHtml(u16),
    /// Wait this long, then answer normally.
    Delay(Duration),
}

/// Which requests a [`FaultHandle::script_for`] queue applies to: a method
/// (or any) and a path prefix.
///
/// ```
/// use bulwark_testkit::Matcher;
/// use http::Method;
///
/// let m = Matcher::new(Method::GET, "/v1/pages/");
/// assert!(m.matches(&Method::GET, "/v1/pages/abc"));
/// assert!(!m.matches(&Method::POST, "/v1/pages/abc"));
/// assert!(Matcher::any_method("/v1/search").matches(&Method::POST, "/v1/search"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    method: Option<Method>,
    path_prefix: String,
}

impl Matcher {
    /// Requests with this method whose path starts with `path_prefix`.
    pub fn new(method: Method, path_prefix: impl Into<String>) -> Self {
        Self {
            method: Some(method),
            path_prefix: path_prefix.into(),
        }
    }

    /// Requests of any method whose path starts with `path_prefix`.
    pub fn any_method(path_prefix: impl Into<String>) -> Self {
        Self {
            method: None,
            path_prefix: path_prefix.into(),
        }
    }

    /// Whether a request with `method` and `path` (no query) matches.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method) && path.starts_with(&self.path_prefix)
    }
}

/// A random fault: each request without a scripted fault gets one of
/// `mix` (chosen by weight) with probability `ratio`, drawn from a seeded RNG.
struct Ratio {
    ratio: f64,
    mix: Vec<(u32, Fault)>,
    total: u64,
    rng: StdRng,
}

impl fmt::Debug for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ratio")
            .field("ratio", &self.ratio)
            .field("mix", &self.mix)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Plan {
    script: VecDeque<Fault>,
    routes: Vec<(Matcher, VecDeque<Fault>)>,
    ratio: Option<Ratio>,
}

#[derive(Debug, Default)]
struct FaultState {
    plan: Mutex<Plan>,
    outage: AtomicBool,
    latency_nanos: AtomicU64,
}

/// Controls FakeNotion's faults while it runs. Cheap to clone: every clone
/// controls the same server.
///
/// For each `/v1/*` request, in order:
/// 1. the latency (if any) is waited;
/// 2. during an [`outage`](Self::outage) the answer is 503
///    `service_unavailable` and nothing else is consulted;
/// 3. the first [`script_for`](Self::script_for) queue whose matcher
///    matches and which is not empty gives the fault;
/// 4. else the [`script`](Self::script) queue;
/// 5. else the [`failure_ratio`](Self::failure_ratio) draw;
/// 6. else the request is answered normally.
///
/// Setters return `&Self` so that they chain.
#[derive(Clone, Default)]
pub struct FaultHandle {
    inner: Arc<FaultState>,
}

impl fmt::Debug for FaultHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = lock(&self.inner.plan);
        f.debug_struct("FaultHandle")
            .field("outage", &self.is_outage())
            .field("latency", &self.current_latency())
            .field("script", &plan.script)
            .field("routes", &plan.routes)
            .field("ratio", &plan.ratio)
            .finish()
    }
}

impl FaultHandle {
    /// Appends faults to the queue used by every `/v1/*` request; each
    /// request consumes one, in order.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) -> &Self {
        lock(&self.inner.plan).script.extend(faults);
        self
    }

    /// Appends faults to a queue consumed only by requests that `matcher`
    /// matches (a second call with an equal matcher appends to the same
    /// queue). Route queues are consulted before the global script.
    pub fn script_for(&self, matcher: Matcher, faults: impl IntoIterator<Item = Fault>) -> &Self {
        let mut plan = lock(&self.inner.plan);
        if let Some((_, queue)) = plan.routes.iter_mut().find(|(m, _)| *m == matcher) {
            queue.extend(faults);
        } else {
            plan.routes.push((matcher, faults.into_iter().collect()));
        }
        self
    }

    /// Answers a fraction `ratio` of the requests that no script covers
    /// with 502 `bad_gateway`, drawn from an RNG seeded with `seed` (same
    /// seed, same sequence of requests: same failures). Same as
    /// `failure_ratio_with(ratio, seed, Fault::Status(502))`.
    pub fn failure_ratio(&self, ratio: f64, seed: u64) -> &Self {
        self.failure_ratio_with(ratio, seed, Fault::Status(502))
    }

    /// Like [`failure_ratio`](Self::failure_ratio) with any fault, e.g.
    /// `Fault::StatusAfterApply(502)` for writes that land and still fail.
    /// `ratio` is clamped to `0.0..=1.0` (NaN is 0). Replaces any earlier
    /// ratio.
    pub fn failure_ratio_with(&self, ratio: f64, seed: u64, fault: Fault) -> &Self {
        self.failure_mix(ratio, seed, [(1, fault)])
    }

    /// Like [`failure_ratio_with`](Self::failure_ratio_with) with several
    /// faults: a failing request gets one of `mix`, chosen with probability
    /// proportional to its weight (same seed, same choices). Zero weights
    /// never come up; an empty mix (or all zero) fails nothing. Replaces any
    /// earlier ratio.
    ///
    /// ```
    /// use bulwark_testkit::{FaultHandle, Fault};
    ///
    /// // 10 % of requests fail: as many 503s as 504s, and 502s of which a
    /// // third were applied first.
    /// FaultHandle::default().failure_mix(0.10, 7, [
    ///     (3, Fault::Status(503)),
    ///     (3, Fault::Status(504)),
    ///     (2, Fault::Status(502)),
    ///     (1, Fault::StatusAfterApply(502)),
    /// ]);
    /// ```
    pub fn failure_mix(
        &self,
        ratio: f64,
        seed: u64,
        mix: impl IntoIterator<Item = (u32, Fault)>,
    ) -> &Self {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        let mix: Vec<(u32, Fault)> = mix.into_iter().filter(|(w, _)| *w > 0).collect();
        let total = mix.iter().map(|(w, _)| u64::from(*w)).sum();
        lock(&self.inner.plan).ratio = Some(Ratio {
            ratio,
            mix,
            total,
            rng: StdRng::seed_from_u64(seed),
        });
        self
    }

    /// Removes the failure ratio (scripts, outage and latency stay).
    pub fn no_failure_ratio(&self) -> &Self {
        lock(&self.inner.plan).ratio = None;
        self
    }

    /// Turns the outage on or off: while on, every `/v1/*` request is
    /// answered 503 `service_unavailable` (scripts are not consumed).
    pub fn outage(&self, on: bool) -> &Self {
        self.inner.outage.store(on, Ordering::SeqCst);
        self
    }

    /// Whether the outage is on.
    pub fn is_outage(&self) -> bool {
        self.inner.outage.load(Ordering::SeqCst)
    }

    /// Adds this delay before every response (all paths). Replaces the
    /// previous latency; `Duration::ZERO` removes it.
    pub fn latency(&self, latency: Duration) -> &Self {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.inner.latency_nanos.store(nanos, Ordering::SeqCst);
        self
    }

    /// The latency currently added to every response.
    pub fn current_latency(&self) -> Duration {
        Duration::from_nanos(self.inner.latency_nanos.load(Ordering::SeqCst))
    }

    /// How many scripted faults (global and per-route) are still queued.
    pub fn remaining(&self) -> usize {
        let plan = lock(&self.inner.plan);
        plan.script.len() + plan.routes.iter().map(|(_, q)| q.len()).sum::<usize>()
    }

    /// Back to a healthy server: empties every script, removes the failure
    /// ratio, ends the outage and sets the latency to zero.
    pub fn clear(&self) -> &Self {
        *lock(&self.inner.plan) = Plan::default();
        self.outage(false);
        self.latency(Duration::ZERO)
    }

    /// The fault for one `/v1/*` request, consuming it from its queue.
    pub(crate) fn next_fault(&self, method: &Method, path: &str) -> Option<Fault> {
        let mut plan = lock(&self.inner.plan);
        let routed = plan
            .routes
            .iter_mut()
            .find(|(m, q)| !q.is_empty() && m.matches(method, path))
            .and_then(|(_, q)| q.pop_front());
        if routed.is_some() {
            return routed;
        }
        if let Some(fault) = plan.script.pop_front() {
            return Some(fault);
        }
        let ratio = plan.ratio.as_mut()?;
        let draw: f64 = ratio.rng.gen();
        if draw >= ratio.ratio || ratio.total == 0 {
            return None;
        }
        if let [(_, only)] = ratio.mix.as_slice() {
            // One fault: no second draw, so a seed gives the sequence it always gave.
            return Some(only.clone());
        }
        let mut pick = ratio.rng.gen_range(0..ratio.total);
        for (weight, fault) in &ratio.mix {
            if pick < u64::from(*weight) {
                return Some(fault.clone());
            }
            pick -= u64::from(*weight);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_before_script_before_ratio() {
        let h = FaultHandle::default();
        h.script([Fault::Status(502), Fault::Pass]);
        h.script_for(
            Matcher::new(Method::GET, "/v1/pages/"),
            [Fault::Status(504)],
        );
        assert_eq!(h.remaining(), 3);
        assert_eq!(
            h.next_fault(&Method::POST, "/v1/pages"),
            Some(Fault::Status(502))
        );
        assert_eq!(
            h.next_fault(&Method::GET, "/v1/pages/x"),
            Some(Fault::Status(504))
        );
        assert_eq!(h.next_fault(&Method::GET, "/v1/pages/x"), Some(Fault::Pass));
        assert_eq!(h.next_fault(&Method::GET, "/v1/pages/x"), None);
        assert_eq!(h.remaining(), 0);
    }

    #[test]
    fn ratio_is_seeded_and_clamped() {
        let draws = |seed| {
            let h = FaultHandle::default();
            h.failure_ratio(0.5, seed);
            (0..64)
                .map(|_| h.next_fault(&Method::GET, "/v1/users/me").is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert!(draws(7).iter().any(|f| *f) && draws(7).iter().any(|f| !*f));

        let h = FaultHandle::default();
        h.failure_ratio_with(5.0, 1, Fault::StatusAfterApply(502));
        assert_eq!(
            h.next_fault(&Method::POST, "/v1/pages"),
            Some(Fault::StatusAfterApply(502))
        );
        h.failure_ratio(f64::NAN, 1);
        assert_eq!(h.next_fault(&Method::POST, "/v1/pages"), None);
        h.clear();
        assert!(!h.is_outage());
        assert_eq!(h.current_latency(), Duration::ZERO);
    }

    #[test]
    fn a_mix_follows_its_weights_and_its_seed() {
        let draws = |seed| {
            let h = FaultHandle::default();
            h.failure_mix(
                1.0,
                seed,
                [
                    (3, Fault::Status(503)),
                    (1, Fault::Status(504)),
                    (0, Fault::Status(500)),
                ],
            );
            (0..4000)
                .map(|_| h.next_fault(&Method::GET, "/v1/users/me"))
                .collect::<Vec<_>>()
        };
        let faults = draws(11);
        assert_eq!(faults, draws(11));
        let count = |status| {
            faults
                .iter()
                .filter(|f| **f == Some(Fault::Status(status)))
                .count()
        };
        assert_eq!(count(500), 0, "weight 0 never comes up");
        assert_eq!(count(503) + count(504), 4000);
        assert!((2800..3200).contains(&count(503)), "{}", count(503));
        let h = FaultHandle::default();
        h.failure_mix(1.0, 1, []);
        assert_eq!(h.next_fault(&Method::GET, "/v1/users/me"), None);
        h.failure_ratio(1.0, 1).no_failure_ratio();
        assert_eq!(h.next_fault(&Method::GET, "/v1/users/me"), None);
    }
}
