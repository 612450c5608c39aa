//! The policies a Notion user could pick, each a stack over the same in-process upstream.
//!
//! Every stack takes `Request<BufferedBody>` and answers `Response<Bytes>` (the body collected,
//! the extensions kept, so bulwark's [`CacheStatus`](bulwark_cache::CacheStatus) can be read)
//! or a [`BoxError`].

mod js_sdk;
pub(crate) mod naive;
mod resilience;

use std::{future::Future, pin::Pin};

use bulwark_http::{BoxError, BufferedBody};
use bulwark_notion::NotionLayer;
use bulwark_testkit::InProcessNotion;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use tower::{util::BoxCloneService, Layer, Service, ServiceExt};

/// The request every stack takes.
pub(crate) type Req = Request<BufferedBody>;
/// The response every stack answers: the body collected.
pub(crate) type Res = Response<Bytes>;
/// A policy's stack over the upstream.
pub(crate) type Stack = BoxCloneService<Req, Res, BoxError>;
/// The futures of the hand-written policies.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A resilience policy. See [`Policy::describe`] for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    /// No resilience at all.
    Bare,
    /// The seeds' retry loop.
    Naive,
    /// The official Notion JS SDK 5.26's retry policy.
    NotionJsSdk,
    /// tower-resilience's retry, circuit breaker and rate limiter at their defaults.
    TowerResilience,
    /// tower-resilience's retry and rate limiter, without its circuit breaker.
    TowerResilienceNoBreaker,
    /// bulwark's `NotionLayer` as shipped.
    Bulwark,
    /// bulwark's `NotionLayer` with `dedupe_creates_by("Name")` (the workload's creates carry
    /// a unique title).
    BulwarkDedupe,
}

impl Policy {
    /// Every policy, in the order the tables print.
    pub const ALL: [Self; 7] = [
        Self::Bare,
        Self::Naive,
        Self::NotionJsSdk,
        Self::TowerResilience,
        Self::TowerResilienceNoBreaker,
        Self::Bulwark,
        Self::BulwarkDedupe,
    ];

    /// The policy's name on the command line and in the tables.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Naive => "naive",
            Self::NotionJsSdk => "notion-js-sdk",
            Self::TowerResilience => "tower-resilience",
            Self::TowerResilienceNoBreaker => "tower-resilience (retry+limiter)",
            Self::Bulwark => "bulwark",
            Self::BulwarkDedupe => "bulwark (dedupe)",
        }
    }

    /// The policy called `name` (also `tower-resilience-no-breaker` and `bulwark-dedupe`, names
    /// without spaces or parentheses for the command line), if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "tower-resilience-no-breaker" => return Some(Self::TowerResilienceNoBreaker),
            "bulwark-dedupe" => return Some(Self::BulwarkDedupe),
            _ => {}
        }
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// What the policy does, in one line.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Bare => "no resilience: one call per operation, whatever comes back",
            Self::Naive => {
                "the seeds' loop: 429 and 5xx retried for any method, up to 3 times, after 1 s, 2 s, 4 s; no Retry-After; errors not retried"
            }
            Self::NotionJsSdk => {
                "@notionhq/client 5.26: 2 retries, 1 s·2^n·U[0.5,1.5), Retry-After capped at 60 s; rate_limited/service_overload for any method, internal_server_error/service_unavailable for GET/DELETE only; 60 s timeout"
            }
            Self::TowerResilience => {
                "tower-resilience-retry 0.9 + -circuitbreaker 0.14 + -ratelimiter 0.14 at their defaults, the limiter at 3/s; 429/5xx answers turned into errors so they see them"
            }
            Self::TowerResilienceNoBreaker => {
                "the same without the circuit breaker (whose open state runs on the wall clock)"
            }
            Self::Bulwark => "NotionLayer::builder().build(): bulwark's Notion preset as shipped",
            Self::BulwarkDedupe => {
                "NotionLayer::builder().dedupe_creates_by(\"Name\").build(): the preset told which property identifies a created page"
            }
        }
    }

    /// The policy's stack over `upstream`. `seed` seeds whatever randomness the policy has
    /// of its own (bulwark and tower-resilience use thread-local RNGs the run seeds).
    pub(crate) fn stack(self, upstream: InProcessNotion, seed: u64) -> Stack {
        match self {
            Self::Bare => collected(upstream),
            Self::Naive => BoxCloneService::new(naive::Naive::new(collected(upstream))),
            Self::NotionJsSdk => {
                BoxCloneService::new(js_sdk::JsSdk::new(collected(upstream), seed))
            }
            Self::TowerResilience => resilience::stack(collected(upstream), true),
            Self::TowerResilienceNoBreaker => resilience::stack(collected(upstream), false),
            Self::Bulwark => {
                let layer = NotionLayer::builder()
                    .build()
                    .expect("the preset's defaults are valid");
                collected(layer.layer(upstream))
            }
            Self::BulwarkDedupe => {
                let layer = NotionLayer::builder()
                    .dedupe_creates_by("Name")
                    .build()
                    .expect("the preset's defaults are valid");
                collected(layer.layer(upstream))
            }
        }
    }
}

/// `svc` with its response bodies collected into `Bytes` (extensions kept) and its errors
/// boxed, boxed itself.
pub(crate) fn collected<S, B>(svc: S) -> Stack
where
    S: Service<Req, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    BoxCloneService::new(svc.map_err(Into::into).and_then(collect))
}

async fn collect<B>(res: Response<B>) -> Result<Res, BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.map_err(Into::into)?.to_bytes();
    Ok(Response::from_parts(parts, bytes))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bulwark_testkit::{FakeNotion, Fault};
    use http::Method;

    use super::*;

    /// Sends one request through `policy` against a fake whose first answers are `script`;
    /// returns the final status (0 for an error), the requests the fake saw and the virtual
    /// time it took.
    fn through(
        policy: Policy,
        method: Method,
        path: &str,
        script: Vec<Fault>,
    ) -> (u16, usize, Duration) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let fake = FakeNotion::builder()
                .no_rate_limit()
                .seed_pages(1)
                .in_process();
            fake.faults().script(script);
            let body = if method == Method::GET {
                BufferedBody::empty()
            } else {
                BufferedBody::from(r#"{"parent":{"data_source_id":"ds_1"}}"#)
            };
            let req = Request::builder()
                .method(method)
                .uri(format!("{}{path}", fake.base_url()))
                .header("authorization", "Bearer t")
                .header("notion-version", "2025-09-03")
                .body(body)
                .unwrap();
            let started = tokio::time::Instant::now();
            let status = match policy.stack(fake.clone(), 1).oneshot(req).await {
                Ok(res) => res.status().as_u16(),
                Err(_) => 0,
            };
            (status, fake.requests().len(), started.elapsed())
        })
    }

    #[test]
    fn naive_retries_every_5xx_and_429_three_times_for_any_method() {
        let (status, calls, took) = through(
            Policy::Naive,
            Method::POST,
            "/v1/pages",
            vec![Fault::Status(502); 5],
        );
        assert_eq!((status, calls, took), (502, 4, Duration::from_secs(7)));
        let (status, calls, _) = through(
            Policy::Naive,
            Method::POST,
            "/v1/pages",
            vec![Fault::RateLimited {
                retry_after_secs: 30,
            }],
        );
        assert_eq!((status, calls), (200, 2));
        let (status, calls, _) = through(
            Policy::Naive,
            Method::GET,
            "/v1/users/me",
            vec![Fault::DropConnection],
        );
        assert_eq!((status, calls), (0, 1), "errors are not retried");
    }

    #[test]
    fn the_js_sdk_retries_by_code_and_method() {
        // 503 service_unavailable: GET twice more, POST never.
        let (status, calls, _) = through(
            Policy::NotionJsSdk,
            Method::GET,
            "/v1/users/me",
            vec![Fault::Status(503); 5],
        );
        assert_eq!((status, calls), (503, 3));
        let (status, calls, _) = through(
            Policy::NotionJsSdk,
            Method::POST,
            "/v1/pages",
            vec![Fault::Status(503)],
        );
        assert_eq!((status, calls), (503, 1));
        // 502, an HTML 503 from the edge, a reset: never.
        for fault in [Fault::Status(502), Fault::CloudflareHtml(503)] {
            let (status, calls, _) = through(
                Policy::NotionJsSdk,
                Method::GET,
                "/v1/users/me",
                vec![fault],
            );
            assert_eq!(calls, 1, "{status}");
        }
        let (status, calls, _) = through(
            Policy::NotionJsSdk,
            Method::GET,
            "/v1/users/me",
            vec![Fault::DropConnection],
        );
        assert_eq!((status, calls), (0, 1));
        // 429 for a POST: retried after Retry-After.
        let (status, calls, took) = through(
            Policy::NotionJsSdk,
            Method::POST,
            "/v1/pages",
            vec![Fault::RateLimited {
                retry_after_secs: 7,
            }],
        );
        assert_eq!((status, calls, took), (200, 2, Duration::from_secs(7)));
        // 529 without Retry-After: backoff of 1 s · U[0.5, 1.5).
        let (status, calls, took) = through(
            Policy::NotionJsSdk,
            Method::POST,
            "/v1/pages",
            vec![Fault::Status(529)],
        );
        assert_eq!((status, calls), (200, 2));
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_millis(1500),
            "{took:?}"
        );
    }

    #[test]
    fn tower_resilience_sees_error_statuses_through_the_adapter() {
        for policy in [Policy::TowerResilience, Policy::TowerResilienceNoBreaker] {
            // Three attempts, 100 ms then 200 ms apart, a POST too.
            let (status, calls, took) = through(
                policy,
                Method::POST,
                "/v1/pages",
                vec![Fault::Status(503); 5],
            );
            assert_eq!(
                (status, calls, took),
                (0, 3, Duration::from_millis(300)),
                "{policy:?}"
            );
            let (status, calls, _) = through(
                policy,
                Method::GET,
                "/v1/users/me",
                vec![Fault::Status(404)],
            );
            assert_eq!((status, calls), (404, 1), "{policy:?}: a 404 is an answer");
        }
    }

    #[test]
    fn bulwark_and_bare_as_expected() {
        let (status, calls, _) = through(
            Policy::Bare,
            Method::GET,
            "/v1/users/me",
            vec![Fault::Status(503)],
        );
        assert_eq!((status, calls), (503, 1));
        // The preset: a POST /v1/pages is never sent again after a 502 …
        let (status, calls, _) = through(
            Policy::Bulwark,
            Method::POST,
            "/v1/pages",
            vec![Fault::StatusAfterApply(502)],
        );
        assert_eq!((status, calls), (502, 1));
        // … a GET is.
        let (status, calls, _) = through(
            Policy::Bulwark,
            Method::GET,
            "/v1/users/me",
            vec![Fault::Status(502)],
        );
        assert_eq!((status, calls), (200, 2));
    }

    #[test]
    fn names_round_trip() {
        for policy in Policy::ALL {
            assert_eq!(Policy::from_name(policy.name()), Some(policy));
        }
        assert_eq!(
            Policy::from_name("tower-resilience-no-breaker"),
            Some(Policy::TowerResilienceNoBreaker)
        );
        assert_eq!(Policy::from_name("nope"), None);
    }
}
