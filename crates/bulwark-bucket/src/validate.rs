//! What [`TokenBucketLayer::validate`](crate::TokenBucketLayer::validate) checks: the
//! settings the layer would clamp, or that make no sense.

use std::time::Duration;

use bulwark_http::InvalidConfig;

use crate::{
    gcra::Gcra,
    shared::{Policy, Settings},
};

/// The first setting the layer would clamp; `covered_wait`: the longest wait the keyed buckets
/// the layer shares were made for, if they were.
pub(crate) fn check(
    settings: &Settings,
    policy: &Policy,
    covered_wait: Option<u64>,
) -> Result<(), InvalidConfig> {
    let rate = settings.rate;
    if rate.count() == 0 {
        // Refuses everything: burst and the rest do not matter.
    } else if !rate.per().is_zero() {
        if rate.per().as_nanos() < u128::from(rate.count()) {
            return Err(InvalidConfig::new(
                "rate",
                format!(
                    "{} per {:?} is faster than one request per nanosecond, the bucket's \
                     resolution; it admits one per nanosecond",
                    rate.count(),
                    rate.per()
                ),
            ));
        }
        let burst = settings.burst.unwrap_or(rate.count());
        if burst == 0 {
            return Err(InvalidConfig::new(
                "burst",
                "a burst of 0 is taken as 1 (a zero Rate refuses everything)",
            ));
        }
        let held = Gcra::new(rate.count(), rate.per(), burst).burst();
        if held < u64::from(burst) {
            return Err(InvalidConfig::new(
                "burst",
                format!(
                    "{burst} requests at {:?} each take longer than about 146 years to \
                     refill; the bucket holds {held}",
                    rate.interval()
                ),
            ));
        }
    }
    if settings.max_keys == 0 {
        return Err(InvalidConfig::new(
            "max_keys",
            "0 keys would leave keyed requests unlimited; taken as 1",
        ));
    }
    if let Some(covered) = covered_wait {
        if policy.max_wait > covered {
            return Err(InvalidConfig::new(
                "max_wait",
                format!(
                    "{:?} is longer than the {:?} the shared keyed buckets were made for \
                     (when the first service was made); set max_wait before making \
                     services, or call keyed() again for buckets of this layer's own",
                    Duration::from_nanos(policy.max_wait),
                    Duration::from_nanos(covered)
                ),
            ));
        }
    }
    Ok(())
}
