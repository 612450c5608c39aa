//! [`BreakerHandle`]: the breaker's state, manual controls and metrics, for health checks.

use std::{sync::Arc, time::Duration};

use crate::{
    shared::Core,
    state::{CLOSED, DISABLED, FORCED_OPEN},
};

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow and are recorded.
    Closed,
    /// Calls are rejected with [`CircuitOpen`](bulwark_http::CircuitOpen) until the break is over.
    Open {
        /// Time left in the break.
        retry_after: Duration,
    },
    /// A limited number of probes go through; the rest are rejected.
    HalfOpen,
    /// Opened by hand ([`BreakerHandle::force_open`]): every call is rejected until
    /// [`BreakerHandle::reset`].
    ForcedOpen,
    /// Switched off by hand ([`BreakerHandle::disable`]): every call passes, nothing is
    /// recorded, until [`BreakerHandle::reset`].
    Disabled,
}

impl BreakerState {
    /// A stable name: `closed`, `open`, `half_open`, `forced_open`, `disabled`.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::Disabled => "disabled",
        }
    }
}

/// A state change, passed to
/// [`on_transition`](crate::CircuitBreakerBuilder::on_transition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// The state left.
    pub from: BreakerState,
    /// The state entered (`Open` carries the break just started).
    pub to: BreakerState,
}

/// Counters since the breaker was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerMetrics {
    /// The state now.
    pub state: BreakerState,
    /// Calls whose outcome was recorded (throttled and locally rejected calls are not).
    pub calls: u64,
    /// Of those, failures.
    pub failures: u64,
    /// Of those, slower than the
    /// [slow-call threshold](crate::CircuitBreakerBuilder::slow_call_threshold): every one
    /// with a [`slow_call`](crate::CircuitBreakerBuilder::slow_call) ratio set, otherwise
    /// only the calls dropped past it (a completed call's duration is measured only for the
    /// ratio).
    pub slow_calls: u64,
    /// Of the failures, calls whose response future was dropped after running at least the
    /// slow-call threshold — given up on by a timeout (or a caller) outside the breaker.
    pub abandoned: u64,
    /// Calls rejected without reaching the inner service.
    pub rejections: u64,
    /// Times the circuit opened (from closed or from a failed half-open).
    pub opens: u64,
}

/// A cheap handle on a breaker shared by every clone of its layer.
///
/// ```
/// use bulwark_breaker::{BreakerState, CircuitBreakerLayer};
///
/// let layer = CircuitBreakerLayer::new();
/// let handle = layer.handle();
/// assert_eq!(handle.state(), BreakerState::Closed);
/// handle.force_open();
/// assert_eq!(handle.state(), BreakerState::ForcedOpen);
/// handle.reset();
/// assert_eq!(handle.metrics().opens, 0);
/// ```
#[derive(Debug, Clone)]
pub struct BreakerHandle {
    pub(crate) core: Arc<Core>,
}

impl BreakerHandle {
    /// The current state.
    #[must_use]
    pub fn state(&self) -> BreakerState {
        self.core.state()
    }

    /// Rejects every call until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.core.force(FORCED_OPEN);
    }

    /// Lets every call through unrecorded until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.core.force(DISABLED);
    }

    /// Closes the breaker with an empty window and the initial break duration.
    pub fn reset(&self) {
        self.core.force(CLOSED);
    }

    /// Counters and state.
    #[must_use]
    pub fn metrics(&self) -> BreakerMetrics {
        self.core.metrics()
    }
}
