//! Rate limits: requests and tokens per minute, per target (Bedrock's quota in a region) and per
//! consumer (a team's share of the gateway), kept in this process or shared through Redis.

pub mod budget;
pub mod consumers;
pub mod estimate;
pub mod meter;
pub mod shared;

use std::sync::Arc;

pub use budget::{Refusal, Unit};
pub use consumers::ConsumerLimits;
pub use meter::{Meter, Reservation};
pub use shared::{Remaining, SharedLimits};

use std::time::Duration;

use crate::config::{Limits, RateLimitBackend};
use crate::error::{GatewayError, LimitScope};
use crate::metrics;

/// The client's answer when `scope`'s limits refuse a request: a 429 that says when to retry
/// (counted in `rate_limited_total`), or a 400 when waiting would not help.
pub fn refused(scope: LimitScope, refusal: Refusal) -> GatewayError {
    match refusal {
        Refusal::Wait(wait) => {
            metrics::rate_limited(match scope {
                LimitScope::Consumer => "consumer",
                LimitScope::Targets => "all_targets",
            });
            GatewayError::RateLimited {
                scope,
                retry_after_secs: retry_after_secs(wait),
            }
        }
        Refusal::TooLarge {
            unit: Unit::Tokens,
            cap,
            requested,
        } => GatewayError::ExceedsTokenLimit {
            scope,
            requested,
            cap,
        },
        Refusal::TooLarge {
            unit: Unit::Requests,
            cap,
            requested,
        } => GatewayError::ExceedsRequestLimit {
            scope,
            requested,
            cap,
        },
    }
}

/// `Retry-After` in whole seconds, never 0 (a client would retry at once and be refused again).
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Where meters keep their state. Built once per config; a reload with the same Redis URL keeps
/// the connection.
#[derive(Clone)]
pub enum Backend {
    Local,
    Shared {
        url: String,
        redis: Arc<SharedLimits>,
    },
}

impl Backend {
    pub fn start(config: &RateLimitBackend, previous: Option<&Self>) -> Result<Self, String> {
        match config {
            RateLimitBackend::Local => Ok(Self::Local),
            RateLimitBackend::Redis { url } => {
                if let Some(Self::Shared { url: old, redis }) = previous
                    && old == url
                {
                    return Ok(Self::Shared {
                        url: url.clone(),
                        redis: Arc::clone(redis),
                    });
                }
                Ok(Self::Shared {
                    url: url.clone(),
                    redis: SharedLimits::start(url)?,
                })
            }
        }
    }

    /// A target's meter: its `limits`, and with Redis also its shared throttle cooldown (so a
    /// target without limits still gets one there). `None` when there is nothing to keep.
    pub fn target_meter(&self, limits: Limits, label: &str) -> Option<Arc<Meter>> {
        match self {
            Self::Local if limits == Limits::default() => None,
            _ => Some(self.meter(limits, "target", label)),
        }
    }

    /// A consumer's meter, `None` without limits.
    pub fn consumer_meter(&self, limits: Limits, name: &str) -> Option<Arc<Meter>> {
        (limits != Limits::default()).then(|| self.meter(limits, "consumer", name))
    }

    /// `kind` and `name` name the meter's Redis keys.
    fn meter(&self, limits: Limits, kind: &str, name: &str) -> Arc<Meter> {
        Arc::new(match self {
            Self::Local => Meter::local(limits),
            Self::Shared { redis, .. } => {
                Meter::shared(limits, Arc::clone(redis), redis.key_prefix(kind, name))
            }
        })
    }

    /// Where limits are decided right now, for `/admin/targets`.
    pub fn status(&self) -> serde_json::Value {
        match self {
            Self::Local => serde_json::json!({ "backend": "local" }),
            Self::Shared { redis, .. } => serde_json::json!({
                "backend": "redis",
                "shared": redis.is_shared(),
                "replicas": redis.replicas(),
            }),
        }
    }

    /// Whether meters built by `self` and `other` keep their state in the same place.
    pub fn same_store(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Local, Self::Local) => true,
            (Self::Shared { redis: a, .. }, Self::Shared { redis: b, .. }) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::retry_after_secs;
    use std::time::Duration;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        let ms = Duration::from_millis;
        assert_eq!(retry_after_secs(ms(0)), 1);
        assert_eq!(retry_after_secs(ms(1)), 1);
        assert_eq!(retry_after_secs(ms(1_000)), 1);
        assert_eq!(retry_after_secs(ms(1_001)), 2);
        assert_eq!(retry_after_secs(ms(29_250)), 30);
    }
}
