//! A cheap monotonic clock in milliseconds, so deadlines fit in an `AtomicU64` that the request
//! path can read without a lock.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the process's first call; never goes backwards.
pub fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A duration in whole milliseconds, saturating.
pub fn as_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `now_ms() + d`, saturating.
pub fn deadline_ms(d: Duration) -> u64 {
    now_ms().saturating_add(as_ms(d))
}
