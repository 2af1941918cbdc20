//! One per-minute quota (requests or tokens) as a GCRA cell: governor decides admission, and the
//! state it decides on can also be settled afterwards.
//!
//! Governor's own state stores only move forward, but a token reservation must: a request
//! reserves its input estimate plus `max_tokens`, and usually spends far less. So the theoretical
//! arrival time governor reads and writes lives in an atomic this module shares with it
//! ([`SharedTat`]), and settling moves that time back (refund) or forward (debit) by whole
//! cells. Admission itself stays governor's: `check_n`, its `InsufficientCapacity` and its
//! `NotUntil`.

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, QuantaClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

/// What a budget's cells are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Upstream calls (`rpm`).
    Requests,
    Tokens,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not now; this much later it would fit.
    Wait(Duration),
    /// Never: the request is larger than the whole per-minute quota.
    TooLarge {
        unit: Unit,
        cap: u32,
        requested: u32,
    },
}

impl Refusal {
    /// The more hopeful of two refusals: any wait beats never; then the shorter wait, or the
    /// larger cap.
    pub fn sooner(self, other: Self) -> Self {
        match (self, other) {
            (Self::Wait(a), Self::Wait(b)) => Self::Wait(a.min(b)),
            (wait @ Self::Wait(_), Self::TooLarge { .. })
            | (Self::TooLarge { .. }, wait @ Self::Wait(_)) => wait,
            (Self::TooLarge { cap: a, .. }, large @ Self::TooLarge { cap: b, .. }) if b > a => {
                large
            }
            (large @ Self::TooLarge { .. }, Self::TooLarge { .. }) => large,
        }
    }
}

/// The arrival time governor keeps, in an atomic the budget can also settle. 0 means "fresh",
/// as in governor's own in-memory state.
#[derive(Debug, Clone, Default)]
pub struct SharedTat(Arc<AtomicU64>);

impl SharedTat {
    /// Applies `f` to the stored time until it sticks (the same compare-and-swap loop governor's
    /// own store runs).
    fn update(&self, f: impl Fn(u64) -> u64) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| Some(f(tat)));
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

impl StateStore for SharedTat {
    type Key = NotKeyed;

    fn measure_and_replace<T, F, E>(&self, _key: &Self::Key, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut prev = self.0.load(Ordering::Acquire);
        loop {
            let (result, next) = f(NonZeroU64::new(prev).map(|n| Nanos::from(n.get())))?;
            match self.0.compare_exchange_weak(
                prev,
                next.as_u64(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(result),
                Err(actual) => prev = actual,
            }
        }
    }
}

/// A per-minute quota of `per_minute` cells, all of which may be used at once (burst = quota),
/// refilling evenly over the minute.
pub struct Budget<C: Clock = QuantaClock> {
    limiter: RateLimiter<NotKeyed, SharedTat, C, NoOpMiddleware<C::Instant>>,
    tat: SharedTat,
    clock: C,
    /// The clock reading the limiter measures from (taken just before it was built, so it
    /// trails governor's own by nanoseconds at most).
    start: C::Instant,
    /// Nanoseconds one cell is worth.
    cell_ns: u64,
    per_minute: NonZeroU32,
    unit: Unit,
}

impl Budget<QuantaClock> {
    pub fn per_minute(per_minute: NonZeroU32, unit: Unit) -> Self {
        Self::with_clock(per_minute, unit, QuantaClock::default())
    }
}

impl<C: Clock + Clone> Budget<C> {
    pub fn with_clock(per_minute: NonZeroU32, unit: Unit, clock: C) -> Self {
        let quota = Quota::per_minute(per_minute);
        let tat = SharedTat::default();
        let start = clock.now();
        let limiter = RateLimiter::new(quota, tat.clone(), clock.clone());
        let cell_ns = u64::try_from(quota.replenish_interval().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            limiter,
            tat,
            clock,
            start,
            cell_ns,
            per_minute,
            unit,
        }
    }

    pub fn per_minute_quota(&self) -> NonZeroU32 {
        self.per_minute
    }

    /// Takes `n` cells now, or says when (or that never) they would fit. Zero always fits.
    pub fn reserve(&self, n: u32) -> Result<(), Refusal> {
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(());
        };
        match self.limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Refusal::Wait(not_until.wait_time_from(self.clock.now()))),
            Err(insufficient) => Err(Refusal::TooLarge {
                unit: self.unit,
                cap: insufficient.0,
                requested: n.get(),
            }),
        }
    }

    /// Gives back `n` cells reserved but not spent.
    pub fn refund(&self, n: u32) {
        let back = u64::from(n).saturating_mul(self.cell_ns);
        self.tat.update(|tat| tat.saturating_sub(back));
    }

    /// Takes `n` more cells than were reserved, even past the quota: the tokens were spent, so
    /// later requests wait for them.
    pub fn debit(&self, n: u32) {
        let more = u64::from(n).saturating_mul(self.cell_ns);
        let now = self.elapsed_ns();
        self.tat.update(|tat| tat.max(now).saturating_add(more));
    }

    /// Settles a reservation of `reserved` cells against what was really spent.
    pub fn settle(&self, reserved: u32, spent: u32) {
        match spent.cmp(&reserved) {
            std::cmp::Ordering::Less => self.refund(reserved - spent),
            std::cmp::Ordering::Greater => self.debit(spent - reserved),
            std::cmp::Ordering::Equal => {}
        }
    }

    /// Cells that could be reserved right now.
    pub fn remaining(&self) -> u32 {
        let capacity = u64::from(self.per_minute.get()).saturating_mul(self.cell_ns);
        let now = self.elapsed_ns();
        let tat = self.tat.get().max(now);
        let free = capacity.saturating_sub(tat - now);
        u32::try_from(free / self.cell_ns).unwrap_or(u32::MAX)
    }

    /// Whether the budget is back to its whole quota (nothing to remember about it).
    pub fn is_full(&self) -> bool {
        self.tat.get() <= self.elapsed_ns()
    }

    fn elapsed_ns(&self) -> u64 {
        self.clock.now().duration_since(self.start).as_u64()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn budget(per_minute: u32) -> (Budget<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let budget = Budget::with_clock(
            NonZeroU32::new(per_minute).unwrap(),
            Unit::Tokens,
            clock.clone(),
        );
        (budget, clock)
    }

    #[test]
    fn admits_exactly_the_quota_at_once_then_one_per_interval() {
        let (b, clock) = budget(60);
        let admitted = (0..100).filter(|_| b.reserve(1).is_ok()).count();
        assert_eq!(admitted, 60);
        assert_eq!(b.reserve(1), Err(Refusal::Wait(Duration::from_secs(1))));
        clock.advance(Duration::from_millis(999));
        assert_eq!(b.reserve(1), Err(Refusal::Wait(Duration::from_millis(1))));
        clock.advance(Duration::from_millis(1));
        assert_eq!(b.reserve(1), Ok(()));
        assert_eq!(b.reserve(1), Err(Refusal::Wait(Duration::from_secs(1))));
        clock.advance(Duration::from_secs(60));
        assert_eq!(b.remaining(), 60);
        assert!(b.is_full());
    }

    #[test]
    fn a_batch_waits_for_all_its_cells() {
        let (b, clock) = budget(600); // one token per 100 ms
        assert_eq!(b.reserve(550), Ok(()));
        assert_eq!(b.remaining(), 50);
        assert_eq!(
            b.reserve(60),
            Err(Refusal::Wait(Duration::from_secs(1))),
            "10 more cells = 1 s"
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.reserve(60), Ok(()));
        assert_eq!(b.remaining(), 0);
    }

    #[test]
    fn more_than_the_quota_never_fits() {
        let (b, _) = budget(1000);
        assert_eq!(
            b.reserve(1001),
            Err(Refusal::TooLarge {
                unit: Unit::Tokens,
                cap: 1000,
                requested: 1001
            })
        );
        assert_eq!(b.reserve(1000), Ok(()));
        assert_eq!(b.reserve(0), Ok(()));
    }

    #[test]
    fn settling_moves_the_budget_by_what_was_spent() {
        let (b, clock) = budget(6000);
        b.reserve(1000).unwrap();
        assert_eq!(b.remaining(), 5000);
        b.settle(1000, 120);
        assert_eq!(b.remaining(), 5880, "only the 120 spent stay taken");
        b.reserve(100).unwrap();
        b.settle(100, 300);
        assert_eq!(
            b.remaining(),
            5580,
            "spending past a reservation takes the rest"
        );
        // A debt larger than the quota makes later requests wait for it.
        b.debit(6000);
        assert_eq!(b.remaining(), 0);
        assert_eq!(
            b.reserve(1),
            Err(Refusal::Wait(Duration::from_millis(4210)))
        );
        clock.advance(Duration::from_millis(4210));
        assert_eq!(b.reserve(1), Ok(()));
    }

    #[test]
    fn refunds_never_lift_the_budget_past_its_quota() {
        let (b, _) = budget(100);
        b.refund(50);
        assert_eq!(b.remaining(), 100);
        let admitted = (0..200).filter(|_| b.reserve(1).is_ok()).count();
        assert_eq!(admitted, 100);
    }
}
