//! Kong's passive health check as a circuit breaker: `max_fails` failures within `fail_timeout`
//! open the circuit for `fail_timeout`; then one trial request decides (half-open).

use std::collections::VecDeque;

use super::state::Health;

#[derive(Debug)]
pub struct Breaker {
    max_fails: u32,
    fail_timeout_ms: u64,
    /// Times of recent failures, oldest first; never longer than `max_fails`.
    failures: VecDeque<u64>,
}

/// A change the actor must publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub health: Health,
    pub open_until_ms: u64,
}

impl Breaker {
    pub fn new(max_fails: u32, fail_timeout_ms: u64) -> Self {
        Self {
            max_fails,
            fail_timeout_ms,
            failures: VecDeque::new(),
        }
    }

    /// Like nginx, a success does not wipe failures inside the window while closed: a target that
    /// fails every other request still opens. It does close a half-open or open circuit.
    pub fn on_success(&mut self, current: Health) -> Option<Transition> {
        if current == Health::Closed {
            return None;
        }
        self.failures.clear();
        Some(Transition {
            health: Health::Closed,
            open_until_ms: 0,
        })
    }

    pub fn on_failure(&mut self, current: Health, now_ms: u64) -> Option<Transition> {
        if self.max_fails == 0 {
            return None;
        }
        let open = Transition {
            health: Health::Open,
            open_until_ms: now_ms.saturating_add(self.fail_timeout_ms),
        };
        if current == Health::HalfOpen {
            return Some(open);
        }
        let window_start = now_ms.saturating_sub(self.fail_timeout_ms);
        while self.failures.front().is_some_and(|&t| t < window_start) {
            self.failures.pop_front();
        }
        self.failures.push_back(now_ms);
        if self.failures.len() >= self.max_fails as usize {
            self.failures.clear();
            return (current == Health::Closed).then_some(open);
        }
        None
    }

    /// The trial was abandoned (client went away): let the next request try instead.
    pub fn on_abandoned_trial(&self, current: Health, now_ms: u64) -> Option<Transition> {
        (current == Health::HalfOpen).then_some(Transition {
            health: Health::Open,
            open_until_ms: now_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_max_fails_within_the_window() {
        let mut b = Breaker::new(3, 1000);
        assert_eq!(b.on_failure(Health::Closed, 0), None);
        assert_eq!(b.on_failure(Health::Closed, 500), None);
        assert_eq!(
            b.on_failure(Health::Closed, 900),
            Some(Transition {
                health: Health::Open,
                open_until_ms: 1900
            })
        );
    }

    #[test]
    fn old_failures_fall_out_of_the_window() {
        let mut b = Breaker::new(2, 1000);
        assert_eq!(b.on_failure(Health::Closed, 0), None);
        assert_eq!(b.on_failure(Health::Closed, 1500), None);
    }

    #[test]
    fn half_open_trial_decides() {
        let mut b = Breaker::new(1, 1000);
        assert_eq!(
            b.on_failure(Health::HalfOpen, 5000).map(|t| t.health),
            Some(Health::Open)
        );
        assert_eq!(
            b.on_success(Health::HalfOpen).map(|t| t.health),
            Some(Health::Closed)
        );
    }

    #[test]
    fn zero_max_fails_never_opens() {
        let mut b = Breaker::new(0, 1000);
        for t in 0..100 {
            assert_eq!(b.on_failure(Health::Closed, t), None);
        }
    }
}
