//! Pause before a retry: exponential with full jitter (AWS Architecture Blog, "Exponential Backoff
//! and Jitter"), so retries from many requests do not arrive in lockstep.

use std::time::Duration;

const BASE: Duration = Duration::from_millis(25);
/// A failover goes to another region, which is likely healthy: keep the pause short.
const CAP: Duration = Duration::from_millis(500);

/// The pause before retry `n` (1 = first retry), given a uniform draw in `[0, 1)`.
pub fn before_retry(n: u32, draw: f64) -> Duration {
    let ceiling = BASE
        .saturating_mul(1 << n.saturating_sub(1).min(10))
        .min(CAP);
    ceiling.mul_f64(draw.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        assert_eq!(before_retry(1, 0.999_999).as_millis(), 24);
        assert_eq!(before_retry(2, 0.5), Duration::from_millis(25));
        assert_eq!(before_retry(3, 1.0), Duration::from_millis(100));
        assert_eq!(before_retry(30, 1.0), CAP);
        assert_eq!(before_retry(4, 0.0), Duration::ZERO);
    }
}
