//! Rate limits: requests and tokens per minute, per target (Bedrock's quota in a region) and per
//! consumer (a team's share of the gateway), kept in this process or shared through Redis.

pub mod budget;
pub mod consumers;
pub mod estimate;
pub mod meter;
pub mod shared;

use std::sync::Arc;

pub use budget::Refusal;
pub use consumers::ConsumerLimits;
pub use meter::{Meter, Reservation};
pub use shared::{Remaining, SharedLimits};

use crate::config::{Limits, RateLimitBackend};

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

    /// A meter for `limits`, or `None` when there is nothing to limit. `kind` and `name` name
    /// its Redis keys (`target` + label, `consumer` + name).
    pub fn meter(&self, limits: Limits, kind: &str, name: &str) -> Option<Arc<Meter>> {
        if limits == Limits::default() {
            return None;
        }
        Some(Arc::new(match self {
            Self::Local => Meter::local(limits),
            Self::Shared { redis, .. } => {
                Meter::shared(limits, Arc::clone(redis), redis.key_prefix(kind, name))
            }
        }))
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
