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
    let mut rejected = vec![false; costs.len()];
    loop {
        let open = || (0..costs.len()).filter(|&i| !rejected[i]);
        let lowest = open().map(|i| costs[i]).min_by(f64::total_cmp)?;
        let ties = open().filter(|&i| costs[i] == lowest).count();
        let i = open()
            .filter(|&i| costs[i] == lowest)
            .nth(start % ties.max(1))?;
        if ready(i) {
            return Some(i);
        }
        rejected[i] = true;
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
