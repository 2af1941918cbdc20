//! Throttle cooldown: after a `ThrottlingException` the target rests, honouring `Retry-After` when
//! Bedrock sends one, else backing off exponentially. Cooldown is capacity, not health.

use std::time::Duration;

const FIRST: Duration = Duration::from_secs(1);
/// Long enough to let a per-minute quota refill, short enough to notice recovery.
const CAP: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Cooldown {
    streak: u32,
}

impl Cooldown {
    /// How long to rest after this throttle.
    pub fn on_throttle(&mut self, retry_after: Option<Duration>) -> Duration {
        let backoff = FIRST.saturating_mul(1 << self.streak.min(6)).min(CAP);
        self.streak = self.streak.saturating_add(1);
        retry_after.map_or(backoff, |d| d.min(CAP))
    }

    pub fn on_success(&mut self) {
        self.streak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_exponentially_and_resets() {
        let mut c = Cooldown::default();
        let secs: Vec<u64> = (0..8).map(|_| c.on_throttle(None).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        c.on_success();
        assert_eq!(c.on_throttle(None), FIRST);
    }

    #[test]
    fn retry_after_wins() {
        let mut c = Cooldown::default();
        assert_eq!(
            c.on_throttle(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
