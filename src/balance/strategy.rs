//! The strategy seam: each algorithm is a small type that picks an index from the roster, asking
//! a readiness predicate only about candidates it would actually use.
//!
//! Strategies see load through [`PickContext`]: plain numbers read from the targets' atomics, so a
//! pick does no I/O and takes no lock, and tests can hand in any load they like.

/// A target's load signals at the moment of a pick.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Load {
    /// Requests sent and not yet finished.
    pub in_flight: u32,
    /// Peak-EWMA latency in ms per the route's `latency_strategy`; 0 = no sample yet.
    pub latency_cost: f64,
    /// Average tokens (or cost) per request per the route's `tokens_count_strategy`; 0 = no
    /// sample yet.
    pub usage_cost: f64,
}

/// What a strategy may consult besides readiness.
pub struct PickContext<'a> {
    /// The value of the route's `hash_on_header` header, if the client sent it.
    pub hash_key: Option<&'a [u8]>,
    /// Target `i`'s current load. Read lazily, so strategies that ignore load cost nothing.
    pub load: &'a dyn Fn(usize) -> Load,
}

impl PickContext<'_> {
    /// A context with no hash key and every target idle and unsampled.
    pub fn idle() -> PickContext<'static> {
        PickContext {
            hash_key: None,
            load: &|_| Load::default(),
        }
    }
}

impl std::fmt::Debug for PickContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PickContext")
            .field("hash_key", &self.hash_key)
            .finish_non_exhaustive()
    }
}

/// Picks one target index, or `None` when no candidate is ready.
///
/// `ready(i)` may claim capacity (a half-open trial, a rate-limit token), so a strategy calls it
/// only for the candidate it is about to return, and returns that candidate when it says yes.
pub trait Strategy: Send + Sync {
    fn pick(&self, ctx: &PickContext<'_>, ready: &mut dyn FnMut(usize) -> bool) -> Option<usize>;
}

/// Chance that a cost-ranked pick ignores the costs and tries a random target instead, so a
/// target whose estimate is stale (it recovered, or was slow once) gets samples and can win its
/// traffic back. At 2% the price is small: a 10x slower target still sees about 1/N of that.
pub const EXPLORE_PROBABILITY: f64 = 0.02;

/// Asks `ready` about targets in increasing `cost`, each at most once, and returns the first that
/// says yes. Among equal costs the `start % ties`-th (in index order) goes first, so rotating
/// `start` shares ties evenly instead of always favouring index 0. Costs must not be NaN.
pub fn pick_lowest(
    costs: &[f64],
    start: usize,
    ready: &mut dyn FnMut(usize) -> bool,
) -> Option<usize> {
    let mut rejected = Rejected::new(costs.len());
    loop {
        // One pass for the lowest open cost and how many share it, one to take the chosen tie.
        let mut lowest = f64::INFINITY;
        let mut ties = 0usize;
        for (i, &cost) in costs.iter().enumerate() {
            if rejected.contains(i) {
                continue;
            }
            match cost.total_cmp(&lowest) {
                std::cmp::Ordering::Less => {
                    lowest = cost;
                    ties = 1;
                }
                std::cmp::Ordering::Equal => ties += 1,
                std::cmp::Ordering::Greater => {}
            }
        }
        if ties == 0 {
            return None;
        }
        let i = (0..costs.len())
            .filter(|&i| !rejected.contains(i) && costs[i] == lowest)
            .nth(start % ties)?;
        if ready(i) {
            return Some(i);
        }
        rejected.insert(i);
    }
}

/// Targets already asked during one pick: a bit set for the usual roster sizes, so a pick does not
/// allocate; a vector beyond 128 targets.
struct Rejected {
    small: u128,
    large: Vec<bool>,
}

impl Rejected {
    fn new(n: usize) -> Self {
        Self {
            small: 0,
            large: if n > 128 { vec![false; n] } else { Vec::new() },
        }
    }

    fn contains(&self, i: usize) -> bool {
        if self.large.is_empty() {
            self.small & (1 << i) != 0
        } else {
            self.large[i]
        }
    }

    fn insert(&mut self, i: usize) {
        if self.large.is_empty() {
            self.small |= 1 << i;
        } else {
            self.large[i] = true;
        }
    }
}

/// Up to this many targets, a pick's per-target scratch (costs) lives on the stack.
const STACK_TARGETS: usize = 64;

/// Runs `f` with a zeroed scratch slice of `n` costs, on the stack when it fits.
pub fn with_costs<R>(n: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    if n <= STACK_TARGETS {
        let mut buffer = [0.0; STACK_TARGETS];
        f(&mut buffer[..n])
    } else {
        f(&mut vec![0.0; n])
    }
}

/// Replaces "no sample yet" (0) with the lowest sampled estimate, so an unsampled target looks as
/// good as the best known one: it gets traffic and samples, without taking everything as a 0
/// would. With no samples anywhere every estimate becomes 1, leaving in-flight to decide.
pub fn fill_unsampled(estimates: &mut [f64]) {
    let floor = estimates
        .iter()
        .copied()
        .filter(|&e| e > 0.0)
        .min_by(f64::total_cmp)
        .unwrap_or(1.0);
    for e in estimates.iter_mut().filter(|e| e.is_nan() || **e <= 0.0) {
        *e = floor;
    }
}

/// Peak-EWMA's cost (Finagle, tower): the latency estimate scaled by the queue one more request
/// would join, divided by the target's weight.
pub fn peak_ewma_cost(estimate: f64, in_flight: u32, weight: u32) -> f64 {
    estimate * (f64::from(in_flight) + 1.0) / f64::from(weight.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    #[test]
    fn lowest_first_then_next_lowest() {
        let costs = [3.0, 1.0, 2.0];
        assert_eq!(pick_lowest(&costs, 0, &mut |_| true), Some(1));
        assert_eq!(pick_lowest(&costs, 0, &mut |i| i != 1), Some(2));
        let mut asked = Vec::new();
        assert_eq!(
            pick_lowest(&costs, 0, &mut |i| {
                asked.push(i);
                false
            }),
            None
        );
        assert_eq!(asked, vec![1, 2, 0]);
    }

    #[test]
    fn ties_rotate_with_start() {
        let costs = [1.0, 1.0, 1.0];
        let got: Vec<_> = (0..3)
            .filter_map(|s| pick_lowest(&costs, s, &mut |_| true))
            .collect();
        assert_eq!(got, vec![0, 1, 2]);
    }

    #[test]
    fn unsampled_takes_the_best_sampled_estimate() {
        let mut e = [0.0, 300.0, 100.0];
        fill_unsampled(&mut e);
        assert_eq!(e, [100.0, 300.0, 100.0]);
        let mut e = [0.0, 0.0];
        fill_unsampled(&mut e);
        assert_eq!(e, [1.0, 1.0]);
    }

    proptest! {
        #[test]
        fn pick_lowest_returns_the_cheapest_ready(
            costs in proptest::collection::vec(0.0f64..100.0, 1..20),
            mask in any::<u32>(),
            start in any::<usize>(),
        ) {
            let ready = |i: usize| mask & (1 << i) != 0;
            let got = pick_lowest(&costs, start, &mut |i| ready(i));
            let best = (0..costs.len()).filter(|&i| ready(i)).map(|i| costs[i]).min_by(f64::total_cmp);
            match got {
                Some(i) => {
                    prop_assert!(ready(i));
                    prop_assert_eq!(Some(costs[i]), best);
                }
                None => prop_assert!(best.is_none()),
            }
        }
    }
}
