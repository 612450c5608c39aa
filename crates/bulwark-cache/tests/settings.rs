//! Settings at their extremes, `validate`, and which setters keep the store a clone shares —
//! through the public API, on paused time.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bulwark_cache::{CacheStatus, StaleCacheLayer, MAX_LIFETIME};
use bulwark_http::{BoxError, BufferedBody};
use http::{header, Request, Response};
use proptest::prelude::*;
use tower::{util::BoxCloneService, Layer, ServiceExt};

type Svc = BoxCloneService<Request<BufferedBody>, Response<BufferedBody>, BoxError>;

/// A `200`'s `Cache-Control` and `Age` headers, if any.
type Headers = (Option<String>, Option<String>);

/// An upstream that answers `200` with the `Cache-Control` and `Age` it is given, or `503`.
#[derive(Clone, Default)]
struct Upstream {
    /// `None`: 503.
    answer: Arc<Mutex<Option<Headers>>>,
}

impl Upstream {
    fn ok(cache_control: Option<&str>, age: Option<&str>) -> Self {
        let up = Self::default();
        up.set_ok(cache_control, age);
        up
    }

    fn set_ok(&self, cache_control: Option<&str>, age: Option<&str>) {
        *self.answer.lock().unwrap() = Some((cache_control.map(Into::into), age.map(Into::into)));
    }

    fn fail(&self) {
        *self.answer.lock().unwrap() = None;
    }

    fn service(&self) -> Svc {
        let answer = Arc::clone(&self.answer);
        BoxCloneService::new(tower::service_fn(move |_req: Request<BufferedBody>| {
            let answer = answer.lock().unwrap().clone();
            async move {
                let mut res = Response::builder();
                match answer {
                    Some((cc, age)) => {
                        if let Some(cc) = cc {
                            res = res.header(header::CACHE_CONTROL, cc);
                        }
                        if let Some(age) = age {
                            res = res.header(header::AGE, age);
                        }
                    }
                    None => res = res.status(503),
                }
                Ok::<_, BoxError>(res.body(BufferedBody::from("page"))?)
            }
        }))
    }
}

fn get(path: &str) -> Request<BufferedBody> {
    Request::get(format!("https://api.test{path}"))
        .header(header::AUTHORIZATION, "Bearer t")
        .body(BufferedBody::empty())
        .unwrap()
}

/// A stored copy's `Age` is whole seconds no greater than 2 × [`MAX_LIFETIME`] (an upstream's
/// age plus ours; a live answer keeps the upstream's own); the `bulwark` member of
/// `Cache-Status` is well-formed, its `ttl` within ±2 × `MAX_LIFETIME`.
fn check_headers<B>(res: &Response<B>) {
    let bound = 2 * MAX_LIFETIME.as_secs();
    let status = res.extensions().get::<CacheStatus>();
    if matches!(
        status,
        Some(CacheStatus::Fresh { .. } | CacheStatus::Stale { .. })
    ) {
        let age = res
            .headers()
            .get(header::AGE)
            .expect("a stored copy has an Age");
        let age: u64 = age.to_str().unwrap().parse().expect("Age is delta-seconds");
        assert!(age <= bound, "Age {age}");
    }
    let member = res
        .headers()
        .get_all("cache-status")
        .iter()
        .next_back()
        .expect("a cacheable request gets a member")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(member.starts_with("bulwark; "), "{member}");
    if let Some(ttl) = member.split("; ").find_map(|p| p.strip_prefix("ttl=")) {
        let ttl: i64 = ttl.parse().expect("ttl is an integer");
        assert!(ttl.unsigned_abs() <= bound, "{member}");
    }
    if let Some(CacheStatus::Fresh { age } | CacheStatus::Stale { age }) = status {
        assert!(age.as_secs() <= bound);
    }
}

/// A stored answer, a second request, an outage `later`, then two identical requests at once:
/// every answer is a 200 or the upstream's 503, with sane headers. Returns the answer during
/// the outage.
async fn exercise(layer: &StaleCacheLayer, up: &Upstream, later: Duration) -> Response<()> {
    let svc = layer.layer(up.service());
    for _ in 0..2 {
        let res = svc.clone().oneshot(get("/p")).await.unwrap();
        assert_eq!(res.status(), 200);
        check_headers(&res);
    }
    tokio::time::advance(later).await;
    up.fail();
    let during = svc.clone().oneshot(get("/p")).await.unwrap();
    assert!([200, 503].contains(&during.status().as_u16()));
    check_headers(&during);
    let (a, b) = tokio::join!(
        svc.clone().oneshot(get("/q")),
        svc.clone().oneshot(get("/q"))
    );
    for res in [a.unwrap(), b.unwrap()] {
        assert_eq!(res.status(), 503);
        check_headers(&res);
    }
    during.map(drop)
}

/// Regression: `stale_if_error(Duration::MAX)` panicked inside moka ("time_to_live is longer
/// than 1000 years") when the store was built.
#[tokio::test(start_paused = true)]
async fn stale_if_error_of_duration_max_is_not_a_panic() {
    let layer = StaleCacheLayer::new().stale_if_error(Duration::MAX);
    let hour = Duration::from_secs(3_600);
    let res = exercise(&layer, &Upstream::ok(None, None), hour).await;
    assert_eq!(res.status(), 200, "a copy an hour old is served stale");
    assert_eq!(res.headers()[header::AGE], "3600");
    let err = layer.validate().unwrap_err();
    assert_eq!(err.field(), "stale_if_error");
}

/// Regression: `fresh_for(Duration::MAX).stale_if_error(1 s)` overflowed adding the lifetimes
/// ("overflow when adding durations").
#[tokio::test(start_paused = true)]
async fn fresh_for_duration_max_and_stale_if_error_is_not_an_overflow() {
    let layer = StaleCacheLayer::new()
        .fresh_for(Duration::MAX)
        .stale_if_error(Duration::from_secs(1));
    let res = exercise(&layer, &Upstream::ok(None, None), Duration::from_secs(60)).await;
    assert_eq!(res.status(), 200, "still fresh: served without asking");
    assert_eq!(
        res.headers()["cache-status"],
        format!("bulwark; hit; ttl={}", MAX_LIFETIME.as_secs() - 60).as_str()
    );
    assert_eq!(layer.validate().unwrap_err().field(), "fresh_for");
}

/// Regression: `stale_while_revalidate(Duration::MAX)` panicked inside moka, like
/// `stale_if_error`.
#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_of_duration_max_is_not_a_panic() {
    let layer = StaleCacheLayer::new().stale_while_revalidate(Duration::MAX);
    let res = exercise(
        &layer,
        &Upstream::ok(None, None),
        Duration::from_secs(86_400),
    )
    .await;
    assert_eq!(res.status(), 200, "served at once while revalidating");
    assert_eq!(
        layer.validate().unwrap_err().field(),
        "stale_while_revalidate"
    );
}

/// Settings and upstream values at their limits together: a year-long stale-if-error, an
/// upstream `max-age`, `stale-if-error` and `Age` past `u64`, coalescing waits of 0, 1 ns and
/// `Duration::MAX`.
#[tokio::test(start_paused = true)]
async fn upstream_values_past_u64_and_extreme_waits_are_not_a_panic() {
    let huge = "99999999999999999999";
    let cc = format!("max-age={huge}, stale-if-error={huge}, stale-while-revalidate={huge}");
    for wait in [Duration::ZERO, Duration::from_nanos(1), Duration::MAX] {
        let layer = StaleCacheLayer::new()
            .stale_if_error(Duration::from_secs(365 * 86_400))
            .coalesce_max_wait(wait);
        let up = Upstream::ok(Some(&cc), Some(huge));
        let res = exercise(&layer, &up, Duration::from_secs(3_600)).await;
        assert_eq!(res.status(), 200);
        layer.validate().unwrap();
    }
}

/// Regression: with `max_bytes(u64::MAX)` every entry's weight floor (`max_bytes /
/// max_entries`) passed moka's `u32` weights, so `max_entries` no longer bounded anything.
#[tokio::test(start_paused = true)]
async fn max_entries_holds_whatever_max_bytes() {
    let layer = StaleCacheLayer::new().max_entries(2).max_bytes(u64::MAX);
    let svc = layer.layer(Upstream::ok(None, None).service());
    for i in 0..10 {
        let res = svc.clone().oneshot(get(&format!("/p{i}"))).await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let entries = layer.stats().entries;
    assert!(entries <= 2, "{entries} entries, max_entries 2");
    layer.validate().unwrap();
}

/// Zero and `u64::MAX` sizes: clamped where documented (and named by `validate`), never a
/// panic.
#[tokio::test(start_paused = true)]
async fn zero_and_huge_sizes_are_not_a_panic() {
    let cases: [(StaleCacheLayer, Option<&str>); 6] = [
        (StaleCacheLayer::new().max_entries(0), Some("max_entries")),
        (StaleCacheLayer::new().max_bytes(0), Some("max_bytes")),
        (StaleCacheLayer::new().max_bytes(100), Some("max_bytes")),
        (StaleCacheLayer::new().max_body_bytes(0), None),
        (
            StaleCacheLayer::new()
                .max_entries(u64::MAX)
                .max_bytes(u64::MAX)
                .max_body_bytes(usize::MAX),
            None,
        ),
        (
            StaleCacheLayer::new().max_entries(1).max_bytes(1),
            Some("max_bytes"),
        ),
    ];
    for (layer, invalid) in cases {
        let svc = layer.layer(Upstream::ok(None, None).service());
        let res = svc.clone().oneshot(get("/p")).await.unwrap();
        assert_eq!(res.status(), 200);
        check_headers(&res);
        assert_eq!(layer.validate().err().map(|e| e.field()), invalid);
    }
}

#[test]
fn validate_names_the_setting_and_says_why() {
    let err = StaleCacheLayer::<_, BufferedBody>::new()
        .max_entries(0)
        .validate()
        .unwrap_err();
    assert_eq!(err.field(), "max_entries");
    assert!(err.reason().contains("clamped to 1"), "{err}");
    let err = StaleCacheLayer::<_, BufferedBody>::new()
        .stale_if_error(MAX_LIFETIME + Duration::from_nanos(1))
        .validate()
        .unwrap_err();
    assert_eq!(err.field(), "stale_if_error");
    assert!(err.reason().contains("clamped"), "{err}");
    StaleCacheLayer::<_, BufferedBody>::new()
        .fresh_for(MAX_LIFETIME)
        .stale_while_revalidate(MAX_LIFETIME)
        .stale_if_error(MAX_LIFETIME)
        .validate()
        .expect("the cap itself is valid");
    StaleCacheLayer::<_, BufferedBody>::new()
        .validate()
        .expect("the defaults are valid");
}

/// Regression: a lifetime setter called on a clone started a new store (`rebuild`), so the
/// clone and the original no longer shared copies or counters.
#[tokio::test(start_paused = true)]
async fn a_lifetime_setter_on_a_clone_keeps_the_shared_store() {
    let original = StaleCacheLayer::new();
    let tuned = original
        .clone()
        .fresh_for(Duration::from_secs(60))
        .stale_while_revalidate(Duration::from_secs(10))
        .stale_if_error(Duration::from_secs(600))
        .coalesce_max_wait(Duration::from_secs(1))
        .max_body_bytes(1 << 20);
    let up = Upstream::ok(None, None);
    let res = tuned.layer(up.service()).oneshot(get("/p")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        original.stats().stores,
        1,
        "one store: the original sees it"
    );
    up.fail();
    let res = original
        .layer(up.service())
        .oneshot(get("/p"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the original serves the clone's copy");
}

/// `max_entries`, `max_bytes` (and `store`) shape the store: on a clone they start a new one,
/// as documented.
#[tokio::test(start_paused = true)]
async fn a_sizing_setter_on_a_clone_starts_a_new_store() {
    let original = StaleCacheLayer::new();
    let resized = original.clone().max_entries(10);
    let res = resized
        .layer(Upstream::ok(None, None).service())
        .oneshot(get("/p"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!((resized.stats().stores, original.stats().stores), (1, 0));
}

/// One duration setting: the interesting edges, and anything.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_secs(1)),
        Just(MAX_LIFETIME),
        Just(MAX_LIFETIME + Duration::from_nanos(1)),
        Just(Duration::from_secs(1_000 * 365 * 86_400 + 1)),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX),
        any::<u64>().prop_map(Duration::from_secs),
        (0..1_000_000_000u64).prop_map(Duration::from_millis),
    ]
}

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(2),
        Just(u64::MAX),
        0..100_000u64,
        any::<u64>()
    ]
}

/// An upstream delta-seconds value: ordinary, `u64::MAX`, past `u64`, or garbage.
fn seconds() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("0".to_owned())),
        Just(Some(u64::MAX.to_string())),
        Just(Some("99999999999999999999".to_owned())),
        Just(Some((1u64 << 31).to_string())),
        Just(Some("-1".to_owned())),
        (0..1_000_000u64).prop_map(|n| Some(n.to_string())),
        any::<u64>().prop_map(|n| Some(n.to_string())),
    ]
}

#[derive(Debug, Clone)]
struct Settings {
    fresh_for: Duration,
    stale_while_revalidate: Duration,
    stale_if_error: Duration,
    coalesce_max_wait: Option<Duration>,
    max_entries: u64,
    max_bytes: u64,
    max_body_bytes: usize,
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        (duration(), duration(), duration()),
        proptest::option::of(duration()),
        (count(), count(), count()),
    )
        .prop_map(
            |((fresh, swr, sie), wait, (entries, bytes, body))| Settings {
                fresh_for: fresh,
                stale_while_revalidate: swr,
                stale_if_error: sie,
                coalesce_max_wait: wait,
                max_entries: entries,
                max_bytes: bytes,
                max_body_bytes: usize::try_from(body).unwrap_or(usize::MAX),
            },
        )
}

impl Settings {
    fn layer(&self) -> StaleCacheLayer {
        let mut layer = StaleCacheLayer::new()
            .fresh_for(self.fresh_for)
            .stale_while_revalidate(self.stale_while_revalidate)
            .stale_if_error(self.stale_if_error)
            .max_entries(self.max_entries)
            .max_bytes(self.max_bytes)
            .max_body_bytes(self.max_body_bytes);
        if let Some(wait) = self.coalesce_max_wait {
            layer = layer.coalesce_max_wait(wait);
        }
        layer
    }

    /// What `validate` must accept.
    fn valid(&self) -> bool {
        [
            self.fresh_for,
            self.stale_while_revalidate,
            self.stale_if_error,
        ]
        .iter()
        .all(|d| *d <= MAX_LIFETIME)
            && self.max_entries > 0
            && self.max_bytes >= 128
    }
}

proptest! {
    /// Every duration and number setter, and the upstream's `max-age`, `stale-if-error`,
    /// `stale-while-revalidate` and `Age`, at any value: a few requests on paused time, never a
    /// panic, every `Age` and `ttl` within bounds, and `validate` says which settings it
    /// clamps.
    #[test]
    fn no_setting_and_no_upstream_value_panics(
        settings in settings(),
        max_age in seconds(),
        sie in seconds(),
        swr in seconds(),
        age in seconds(),
        later_secs in prop_oneof![Just(0u64), Just(1), 0..10_000_000u64, Just(365 * 86_400)],
    ) {
        let mut cc = Vec::new();
        for (name, value) in [("max-age", &max_age), ("stale-if-error", &sie), ("stale-while-revalidate", &swr)] {
            if let Some(v) = value {
                cc.push(format!("{name}={v}"));
            }
        }
        let cc = (!cc.is_empty()).then(|| cc.join(", "));
        let layer = settings.layer();
        prop_assert_eq!(layer.validate().is_ok(), settings.valid(), "{:?}", layer.validate());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let up = Upstream::ok(cc.as_deref(), age.as_deref());
            let run = exercise(&layer, &up, Duration::from_secs(later_secs));
            // Two years: within tokio's timer range (about 2.2 years) and past any `later`.
            tokio::time::timeout(Duration::from_secs(2 * 365 * 86_400), run)
                .await
                .expect("bounded");
        });
    }
}
