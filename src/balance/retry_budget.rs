//! A retry budget per route, after Finagle's `RetryBudget`: extra attempts may be at most a fifth
//! of recent requests (`percentCanRetry`) plus a small steady rate (`minRetriesPerSec`), so a 5xx
//! storm on every region is not multiplied by `retries` on its way upstream, and a quiet route,
//! which has no savings, can still fail over.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};

use governor::clock::{Clock, QuantaClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// Each request earns this share of one retry (in thousandths).
const DEPOSIT_MILLIS: i64 = 200;
/// One retry costs a whole token.
const WITHDRAW_MILLIS: i64 = 1000;
/// Savings are capped at the last ~100 requests' worth, so a long calm cannot fund a storm.
const MAX_BALANCE_MILLIS: i64 = 20 * WITHDRAW_MILLIS;
/// Retries a second a route may always make (Finagle's default `minRetriesPerSec`): enough for a
/// quiet route to fail over, a fixed extra in a storm however fast the 503s come back.
const MIN_RETRIES_PER_SEC: NonZeroU32 = NonZeroU32::new(10).unwrap();
/// The floor's unused retries carry over for one second only, so a calm cannot fund a burst.
const FLOOR_BURST: NonZeroU32 = MIN_RETRIES_PER_SEC;

pub struct RetryBudget<C: Clock = QuantaClock> {
    balance_millis: AtomicI64,
    floor: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::with_clock(QuantaClock::default())
    }
}

impl<C: Clock> RetryBudget<C> {
    pub fn with_clock(clock: C) -> Self {
        let quota = Quota::per_second(MIN_RETRIES_PER_SEC).allow_burst(FLOOR_BURST);
        Self {
            balance_millis: AtomicI64::new(0),
            floor: RateLimiter::direct_with_clock(quota, clock),
        }
    }

    /// Called once per request (its first attempt).
    pub fn deposit(&self) {
        let _ = self
            .balance_millis
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some((b + DEPOSIT_MILLIS).min(MAX_BALANCE_MILLIS))
            });
    }

    /// Whether a retry may go: paid from the savings, else from the floor's rate.
    pub fn try_withdraw(&self) -> bool {
        self.balance_millis
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b >= WITHDRAW_MILLIS).then_some(b - WITHDRAW_MILLIS)
            })
            .is_ok()
            || self.floor.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn budget() -> (RetryBudget<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (RetryBudget::with_clock(clock.clone()), clock)
    }

    /// Withdraws until refused (bounded), counting the retries granted.
    fn drain(budget: &RetryBudget<FakeRelativeClock>) -> usize {
        std::iter::from_fn(|| budget.try_withdraw().then_some(()))
            .take(10_000)
            .count()
    }

    #[test]
    fn a_quiet_route_has_a_second_of_the_floor_to_fail_over_with() {
        let (budget, _) = budget();
        assert_eq!(drain(&budget), 10);
    }

    #[test]
    fn the_floor_refills_at_its_rate_and_no_faster() {
        let (budget, clock) = budget();
        drain(&budget);
        clock.advance(Duration::from_millis(99));
        assert!(!budget.try_withdraw(), "one retry per 100 ms");
        clock.advance(Duration::from_millis(1));
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());
        clock.advance(Duration::from_millis(350));
        assert_eq!(drain(&budget), 3);
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            drain(&budget),
            10,
            "a long calm still leaves one second's worth"
        );
    }

    #[test]
    fn requests_add_a_fifth_of_a_retry_each_beyond_the_floor() {
        let (budget, _) = budget();
        drain(&budget);
        for _ in 0..50 {
            budget.deposit();
        }
        assert_eq!(drain(&budget), 10, "50 requests fund 10 retries");
    }

    #[test]
    fn savings_are_capped() {
        let (budget, _) = budget();
        for _ in 0..10_000 {
            budget.deposit();
        }
        assert_eq!(drain(&budget), 20 + 10);
    }

    #[test]
    fn a_storm_gets_a_fifth_of_its_requests_plus_the_floor_over_its_duration() {
        let (budget, clock) = budget();
        let mut retries = 0;
        // 256 requests over 2 s, each wanting 2 retries as soon as its first attempt fails.
        for _ in 0..256 {
            budget.deposit();
            retries += usize::from(budget.try_withdraw());
            retries += usize::from(budget.try_withdraw());
            clock.advance(Duration::from_micros(7_812));
        }
        // Savings: 256 x 0.2 = 51. Floor: 10 at once, then one each 100 ms of the 1.999 s.
        assert_eq!(retries, 51 + 10 + 19);
    }
}
