//! `rate_limits`: local, or Redis shared across replicas.

use crate::config::defaults::*;
use crate::config::error::ConfigProblem;
use crate::config::model::*;
use crate::config::raw::*;

const BACKENDS: [&str; 2] = ["local", "redis"];

pub(super) fn rate_limits(
    raw: RawRateLimits,
    problems: &mut Vec<ConfigProblem>,
) -> Option<RateLimitBackend> {
    let backend = raw.backend.as_deref().unwrap_or(DEFAULT_RATE_LIMIT_BACKEND);
    match (backend, raw.redis_url) {
        ("local", None) => Some(RateLimitBackend::Local),
        ("local", Some(_)) => {
            problems.push(ConfigProblem::new(
                "rate_limits.redis_url",
                "only allowed with backend: redis",
            ));
            None
        }
        ("redis", None) => {
            problems.push(ConfigProblem::new(
                "rate_limits.redis_url",
                "required when backend is redis",
            ));
            None
        }
        ("redis", Some(url)) => {
            // The URL may carry a password, so it is never echoed.
            if url.0.starts_with("redis://") || url.0.starts_with("rediss://") {
                Some(RateLimitBackend::Redis { url: url.0 })
            } else {
                problems.push(ConfigProblem::new(
                    "rate_limits.redis_url",
                    "must start with redis:// or rediss://",
                ));
                None
            }
        }
        (other, _) => {
            problems.push(ConfigProblem::new(
                "rate_limits.backend",
                format!(
                    "unknown backend {other:?}; expected one of {}",
                    BACKENDS.join(", ")
                ),
            ));
            None
        }
    }
}
