//! A retry budget per route, after Finagle's `RetryBudget`: extra attempts may be at most a fifth
//! of recent requests, plus a few in flight at any time, so a 5xx storm on every region is not
//! multiplied by `retries` on its way upstream.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

/// Each request earns this share of one retry (in thousandths).
const DEPOSIT_MILLIS: i64 = 200;
/// One retry costs a whole token.
const WITHDRAW_MILLIS: i64 = 1000;
/// Savings are capped at the last ~100 requests' worth, so a long calm cannot fund a storm.
const MAX_BALANCE_MILLIS: i64 = 20 * WITHDRAW_MILLIS;
/// Retries always allowed concurrently, so a quiet route can still fail over.
const MIN_CONCURRENT_RETRIES: u32 = 3;

#[derive(Debug, Default)]
pub struct RetryBudget {
    balance_millis: AtomicI64,
    retries_in_flight: AtomicU32,
}

/// A granted retry; returns its concurrency slot when dropped.
pub struct RetryPermit<'a> {
    budget: &'a RetryBudget,
}

impl Drop for RetryPermit<'_> {
    fn drop(&mut self) {
        self.budget.retries_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RetryBudget {
    /// Called once per request (its first attempt).
    pub fn deposit(&self) {
        let _ = self
            .balance_millis
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some((b + DEPOSIT_MILLIS).min(MAX_BALANCE_MILLIS))
            });
    }

    /// A retry may go if the savings cover it, or if fewer than the floor are in flight.
    pub fn try_withdraw(&self) -> Option<RetryPermit<'_>> {
        let in_flight = self.retries_in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = RetryPermit { budget: self };
        if in_flight < MIN_CONCURRENT_RETRIES {
            return Some(permit);
        }
        self.balance_millis
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b >= WITHDRAW_MILLIS).then_some(b - WITHDRAW_MILLIS)
            })
            .ok()
            .map(|_| permit)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn retries_are_a_fifth_of_requests_beyond_the_concurrent_floor() {
        let budget = RetryBudget::default();
        let held: Vec<_> = (0..3).map(|_| budget.try_withdraw().unwrap()).collect();
        assert!(budget.try_withdraw().is_none(), "no savings yet");
        for _ in 0..50 {
            budget.deposit();
        }
        let extra: Vec<_> = std::iter::from_fn(|| budget.try_withdraw())
            .take(100)
            .collect();
        assert_eq!(extra.len(), 10, "50 requests fund 10 retries");
        drop(held);
        drop(extra);
        assert!(budget.try_withdraw().is_some(), "the floor frees up again");
    }

    #[test]
    fn savings_are_capped() {
        let budget = RetryBudget::default();
        let _floor: Vec<_> = (0..3).map(|_| budget.try_withdraw().unwrap()).collect();
        for _ in 0..10_000 {
            budget.deposit();
        }
        let extra: Vec<_> = std::iter::from_fn(|| budget.try_withdraw())
            .take(1000)
            .collect();
        assert_eq!(extra.len(), 20);
    }
}
