//! A retry budget per route, after Finagle's `RetryBudget`: extra attempts may be at most a fifth
//! of recent requests, plus a small reserve that later requests pay back, so a 5xx storm on every
//! region is not multiplied by `retries` on its way upstream, however low the concurrency.

use std::sync::atomic::{AtomicI64, Ordering};

/// Each request earns this share of one retry (in thousandths).
const DEPOSIT_MILLIS: i64 = 200;
/// One retry costs a whole token.
const WITHDRAW_MILLIS: i64 = 1000;
/// Savings are capped at the last ~100 requests' worth, so a long calm cannot fund a storm.
const MAX_BALANCE_MILLIS: i64 = 20 * WITHDRAW_MILLIS;
/// Retries that may go beyond the savings, borrowed against later deposits, so a quiet route can
/// still fail over. A floor on retries *in flight* would not bound anything: sequential clients
/// never have a retry in flight when they ask, and would get every retry they ask for.
const RESERVE_RETRIES: i64 = 3;
const MIN_BALANCE_MILLIS: i64 = -RESERVE_RETRIES * WITHDRAW_MILLIS;

#[derive(Debug, Default)]
pub struct RetryBudget {
    balance_millis: AtomicI64,
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

    /// Whether a retry may go: the savings, plus the reserve, cover it. Over any run of `n`
    /// requests at most `n / 5 + 3` retries go, beyond what was saved before (at most 20).
    pub fn try_withdraw(&self) -> bool {
        self.balance_millis
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b - WITHDRAW_MILLIS >= MIN_BALANCE_MILLIS).then_some(b - WITHDRAW_MILLIS)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn withdraw_all(budget: &RetryBudget) -> usize {
        std::iter::from_fn(|| budget.try_withdraw().then_some(()))
            .take(1000)
            .count()
    }

    #[test]
    fn retries_are_a_fifth_of_requests_beyond_the_reserve() {
        let budget = RetryBudget::default();
        assert_eq!(
            withdraw_all(&budget),
            3,
            "the reserve lets a quiet route fail over"
        );
        for _ in 0..50 {
            budget.deposit();
        }
        assert_eq!(withdraw_all(&budget), 10, "50 requests fund 10 retries");
    }

    #[test]
    fn the_reserve_is_paid_back_before_it_is_lent_again() {
        let budget = RetryBudget::default();
        assert_eq!(withdraw_all(&budget), 3);
        for _ in 0..5 {
            budget.deposit();
        }
        assert_eq!(withdraw_all(&budget), 1);
    }

    #[test]
    fn sequential_requests_that_each_want_retries_get_a_fifth() {
        let budget = RetryBudget::default();
        let retries: usize = (0..100)
            .map(|_| {
                budget.deposit();
                (0..5).take_while(|_| budget.try_withdraw()).count()
            })
            .sum();
        assert_eq!(retries, 23);
    }

    #[test]
    fn savings_are_capped() {
        let budget = RetryBudget::default();
        for _ in 0..10_000 {
            budget.deposit();
        }
        assert_eq!(withdraw_all(&budget), 20 + 3);
    }
}
