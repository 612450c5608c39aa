//! Issue 15: no panic and no absurd header from extreme values. Every rejection renderer with
//! `Duration::ZERO`, 1 ns, `Duration::MAX` and random waits and quotas; every numeric setter
//! (`BufferBodyLayer::new`) with `0`, `1` and `usize::MAX`.

use std::{
    convert::Infallible,
    time::{Duration, SystemTime},
};

use bulwark_http::{
    ratelimit, retry_after_value, BodyTooLarge, BufferBodyLayer, BufferedBody, CircuitOpen,
    DefaultRenderer, QuotaPolicy, RateLimited, Rejection, RejectionResponseLayer, RenderRejection,
    MAX_RETRY_AFTER,
};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use proptest::prelude::*;
use tower::{service_fn, ServiceBuilder, ServiceExt};

/// The largest integer an RFC 8941 structured field may carry (`RateLimit`, `RateLimit-Policy`).
const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

/// The renderers' cap, in the whole seconds `Retry-After` is written in.
fn cap_secs() -> u64 {
    MAX_RETRY_AFTER.as_secs()
}

/// `Retry-After` is present, a bare non-negative integer, at most the cap, and reads back.
fn assert_sane_retry_after(headers: &HeaderMap, expected: Duration) {
    let value = &headers[http::header::RETRY_AFTER];
    let text = value.to_str().unwrap();
    let secs: u64 = text.parse().unwrap_or_else(|_| panic!("{text:?}"));
    assert!(secs <= cap_secs(), "Retry-After: {secs} > {}", cap_secs());
    let rounded_up = expected
        .as_secs()
        .saturating_add(u64::from(expected.subsec_nanos() > 0));
    assert_eq!(secs, rounded_up.min(cap_secs()), "for {expected:?}");
    // What a bulwark server renders, a bulwark client understands.
    assert_eq!(
        bulwark_http::parse_retry_after(value, SystemTime::now()),
        Some(Duration::from_secs(secs))
    );
}

/// The `"default";k=v;…` parameters of a structured `RateLimit` field, as integers.
fn sf_params(headers: &HeaderMap, name: &str) -> Vec<(String, u64)> {
    let text = headers[name].to_str().unwrap();
    let mut items = text.split(';');
    assert_eq!(items.next(), Some("\"default\""), "{name}: {text}");
    items
        .map(|item| {
            let (k, v) = item.split_once('=').unwrap();
            let v: u64 = v.parse().unwrap_or_else(|_| panic!("{name}: {text}"));
            assert!(v <= SF_INTEGER_MAX, "{name}: {text} is not an sf-integer");
            (k.to_owned(), v)
        })
        .collect()
}

fn assert_sane_ratelimit(headers: &HeaderMap) {
    for (k, v) in sf_params(headers, "ratelimit") {
        if k == "t" {
            assert!(v <= cap_secs(), "RateLimit t={v}");
        }
    }
    for (k, v) in sf_params(headers, "ratelimit-policy") {
        if k == "w" {
            assert!((1..=cap_secs()).contains(&v), "RateLimit-Policy w={v}");
        }
    }
}

/// Renders `err` the way a server does: as the error of a service behind
/// `RejectionResponseLayer`.
async fn render_through_the_layer(err: bulwark_http::BoxError) -> Response<BufferedBody> {
    let err = std::sync::Mutex::new(Some(err));
    let svc = ServiceBuilder::new()
        .layer(RejectionResponseLayer::new())
        .service(service_fn(move |_req: Request<()>| {
            let err = err.lock().unwrap().take().unwrap();
            async move { Err::<Response<BufferedBody>, _>(err) }
        }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    res.map(|body| match body {
        http_body_util::Either::Right(body) => body,
        http_body_util::Either::Left(body) => body,
    })
}

/// Issue 15 reproduction: a zero rate refuses with `retry_after = Duration::MAX`; rendered
/// behind `RejectionResponseLayer` its `Retry-After` was `18446744073709551615` (and, before
/// the hostile-inputs work, a panic "attempt to add with overflow" in `ratelimit.rs`).
#[tokio::test]
async fn rate_limited_with_duration_max_renders_a_capped_retry_after() {
    let limited = RateLimited::new(Duration::MAX).with_policy(QuotaPolicy {
        quota: 0,
        window: Duration::MAX,
    });
    let res = render_through_the_layer(limited.into()).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_sane_retry_after(res.headers(), Duration::MAX);
    assert_sane_ratelimit(res.headers());

    let res = render_through_the_layer(CircuitOpen::new(Duration::MAX).into()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_sane_retry_after(res.headers(), Duration::MAX);
}

/// Issue 15: the error text said "retry after 18446744073709551616.000s".
#[test]
fn rejection_display_of_duration_max_is_capped() {
    for text in [
        RateLimited::new(Duration::MAX).to_string(),
        CircuitOpen::new(Duration::MAX).to_string(),
    ] {
        assert!(!text.contains("18446744073709551"), "{text}");
        assert!(text.contains("more than 31536000s"), "{text}");
    }
    assert_eq!(
        RateLimited::new(Duration::from_millis(1500)).to_string(),
        "rate limited: retry after 1.500s"
    );
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::MAX),
        Just(MAX_RETRY_AFTER),
        Just(MAX_RETRY_AFTER + Duration::from_nanos(1)),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..100_000_000).prop_map(Duration::from_millis),
    ]
}

fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u64::from(u32::MAX)),
        Just(SF_INTEGER_MAX + 1),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

fn rejection() -> impl Strategy<Value = Rejection> {
    prop_oneof![
        duration().prop_map(|d| Rejection::CircuitOpen(CircuitOpen::new(d))),
        duration().prop_map(|d| Rejection::RateLimited(RateLimited::new(d))),
        (duration(), number(), duration()).prop_map(|(d, quota, window)| {
            Rejection::RateLimited(RateLimited::new(d).with_policy(QuotaPolicy { quota, window }))
        }),
        any::<usize>().prop_map(|limit| Rejection::BodyTooLarge(BodyTooLarge::new(limit))),
        Just(Rejection::Upstream),
        Just(Rejection::Internal),
        Just(Rejection::Timeout),
    ]
}

/// A renderer of one's own that keeps the standard headers, as the docs suggest.
fn custom(rejection: &Rejection) -> Response<BufferedBody> {
    let mut res = Response::new(BufferedBody::from(rejection.message()));
    *res.status_mut() = rejection.status();
    rejection.insert_headers(res.headers_mut());
    res
}

proptest! {
    /// Every rejection, through every renderer, whatever its wait and quota: no panic, a
    /// status that is an error, and a `Retry-After` (when it has a wait) that parses as an
    /// integer no larger than `MAX_RETRY_AFTER`.
    #[test]
    fn every_rejection_renders_sane_headers(rejection in rejection()) {
        let rendered = [
            rejection.to_response(),
            DefaultRenderer.render(&rejection),
            custom(&rejection),
        ];
        for res in rendered {
            prop_assert!(res.status().is_client_error() || res.status().is_server_error());
            match rejection.retry_after() {
                Some(wait) => assert_sane_retry_after(res.headers(), wait),
                None => prop_assert!(res.headers().get("retry-after").is_none()),
            }
            if matches!(rejection, Rejection::RateLimited(RateLimited { policy: Some(_), .. })) {
                assert_sane_ratelimit(res.headers());
            }
        }
    }

    /// The header helpers on their own.
    #[test]
    fn header_helpers_clamp(wait in duration(), quota in number(), window in duration(), remaining in number()) {
        let value = retry_after_value(wait);
        let secs: u64 = value.to_str().unwrap().parse().unwrap();
        prop_assert!(secs <= cap_secs());
        let mut headers = HeaderMap::new();
        ratelimit::insert_headers(&mut headers, quota, window, remaining, wait);
        assert_sane_ratelimit(&headers);
        let info = bulwark_http::RateLimitInfo::from_headers(&headers);
        prop_assert!(info.reset.is_some_and(|t| t <= MAX_RETRY_AFTER));
        prop_assert!(info.window.is_some_and(|w| w <= MAX_RETRY_AFTER));
    }

    /// The errors' `Display` never shows more than the cap.
    #[test]
    fn rejection_display_is_bounded(wait in duration()) {
        for text in [RateLimited::new(wait).to_string(), CircuitOpen::new(wait).to_string()] {
            prop_assert!(text.len() < 80, "{}", text);
        }
    }
}

/// `BufferBodyLayer::new` — the crate's one numeric setter — at `0`, `1` and `usize::MAX`.
#[tokio::test]
async fn buffer_body_limits_at_the_extremes_never_panic() {
    let echo = service_fn(|req: Request<BufferedBody>| async move {
        Ok::<_, Infallible>(Response::new(req.into_body()))
    });
    for (limit, body, fits) in [
        (0, "", true),
        (0, "x", false),
        (1, "x", true),
        (1, "xy", false),
        (usize::MAX, "hello", true),
    ] {
        let svc = ServiceBuilder::new()
            .layer(BufferBodyLayer::new(limit))
            .service(echo);
        let req = Request::builder()
            .header("content-length", body.len().to_string())
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        match svc.oneshot(req).await {
            Ok(res) => {
                assert!(fits, "{limit} {body:?}");
                assert_eq!(res.body().as_ref(), body.as_bytes());
            }
            Err(err) => {
                assert!(!fits, "{limit} {body:?}: {err}");
                assert_eq!(
                    err.downcast_ref::<BodyTooLarge>(),
                    Some(&BodyTooLarge::new(limit))
                );
            }
        }
        // A `Content-Length` that does not fit any integer is not trusted, and not a panic.
        let svc = ServiceBuilder::new()
            .layer(BufferBodyLayer::new(limit))
            .service(echo);
        let req = Request::builder()
            .header("content-length", "99999999999999999999999999")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        assert_eq!(svc.oneshot(req).await.is_ok(), fits);
    }
}
