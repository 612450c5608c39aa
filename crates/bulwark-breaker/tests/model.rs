//! Model-based property test: random outcomes and time advances, driven through the layer and
//! through a small reference state machine, agree on the state after every step.

use std::{collections::VecDeque, time::Duration};

use bulwark_breaker::{BreakerState, CircuitBreakerLayer, Window};
use bulwark_http::{BoxError, CircuitOpen};
use http::{Request, Response};
use proptest::prelude::*;
use tower::{service_fn, Layer, ServiceExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Fail,
    NotFound,
    Throttled,
}

impl Outcome {
    fn status(self) -> u16 {
        match self {
            Self::Ok => 200,
            Self::Fail => 503,
            Self::NotFound => 404,
            Self::Throttled => 429,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelState {
    Closed,
    Open { until: u64 },
    HalfOpen,
}

/// The rules, written the plain way.
struct Model {
    state: ModelState,
    window: VecDeque<bool>,
    size: usize,
    minimum: usize,
    ratio: f64,
    consecutive_limit: u32,
    consecutive: u32,
    base: u64,
    cap: u64,
    current_break: u64,
}

impl Model {
    fn state_at(&self, now: u64) -> ModelState {
        match self.state {
            ModelState::Open { until } if now >= until => ModelState::HalfOpen,
            s => s,
        }
    }

    fn open(&mut self, now: u64, duration: u64) {
        self.state = ModelState::Open {
            until: now + duration,
        };
        self.current_break = duration;
        self.consecutive = 0;
    }

    /// Returns whether the call reached the upstream.
    fn call(&mut self, now: u64, outcome: Outcome) -> bool {
        self.state = self.state_at(now);
        let failure = match outcome {
            Outcome::Fail => Some(true),
            Outcome::Ok | Outcome::NotFound => Some(false),
            Outcome::Throttled => None,
        };
        match self.state {
            ModelState::Open { .. } => false,
            ModelState::HalfOpen => {
                match failure {
                    Some(true) => {
                        let next = (self.current_break * 2).min(self.cap);
                        self.open(now, next);
                    }
                    Some(false) => {
                        self.state = ModelState::Closed;
                        self.window.clear();
                        self.consecutive = 0;
                        self.current_break = self.base;
                    }
                    None => {}
                }
                true
            }
            ModelState::Closed => {
                let Some(failure) = failure else { return true };
                self.window.push_back(failure);
                if self.window.len() > self.size {
                    self.window.pop_front();
                }
                if failure {
                    self.consecutive += 1;
                    if self.consecutive_limit > 0 && self.consecutive >= self.consecutive_limit {
                        self.open(now, self.base);
                        return true;
                    }
                    let failures = self.window.iter().filter(|f| **f).count();
                    if self.window.len() >= self.minimum
                        && failures as f64 / self.window.len() as f64 >= self.ratio
                    {
                        self.open(now, self.base);
                    }
                } else {
                    self.consecutive = 0;
                }
                true
            }
        }
    }
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => Just(Outcome::Ok),
        4 => Just(Outcome::Fail),
        1 => Just(Outcome::NotFound),
        1 => Just(Outcome::Throttled),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn layer_agrees_with_the_reference_model(
        steps in proptest::collection::vec((outcome(), 0u64..25_000), 1..150),
        size in 1u32..12,
        minimum in 1u32..12,
        ratio in 0.1f64..1.0,
        consecutive_limit in 0u32..6,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async move {
            let layer = CircuitBreakerLayer::builder()
                .window(Window::count(size))
                .minimum_calls(minimum)
                .failure_ratio(ratio)
                .consecutive_failures(consecutive_limit)
                .break_duration(Duration::from_secs(10))
                .max_break_duration(Duration::from_secs(45))
                .build()
                .unwrap();
            let mut model = Model {
                state: ModelState::Closed,
                window: VecDeque::new(),
                size: size as usize,
                minimum: minimum as usize,
                ratio,
                consecutive_limit,
                consecutive: 0,
                base: 10_000,
                cap: 45_000,
                current_break: 10_000,
            };
            let svc = layer.layer(service_fn(|req: Request<Outcome>| async move {
                Ok::<_, BoxError>(Response::builder().status(req.body().status()).body(()).unwrap())
            }));
            let mut now = 0u64;
            for (step, (outcome, advance)) in steps.into_iter().enumerate() {
                tokio::time::advance(Duration::from_millis(advance)).await;
                now += advance;
                let reached = model.call(now, outcome);
                let result = svc.clone().oneshot(Request::new(outcome)).await;
                match (&result, reached) {
                    (Ok(res), true) => prop_assert_eq!(res.status().as_u16(), outcome.status()),
                    (Err(err), false) => prop_assert!(err.is::<CircuitOpen>()),
                    _ => prop_assert!(false, "step {}: layer {:?}, model reached = {}", step, result.map(|r| r.status()), reached),
                }
                let expected = match model.state_at(now) {
                    ModelState::Closed => BreakerState::Closed,
                    ModelState::HalfOpen => BreakerState::HalfOpen,
                    ModelState::Open { until } => BreakerState::Open { retry_after: Duration::from_millis(until - now) },
                };
                prop_assert_eq!(layer.handle().state(), expected, "step {}", step);
            }
            Ok(())
        })?;
    }
}
