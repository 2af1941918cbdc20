//! Lowest usage, as Kong's `lowest-usage`: each target's cost is its moving average of tokens per
//! request (total, prompt or completion tokens per `tokens_count_strategy`, or the price computed
//! from `input_cost` / `output_cost`), divided by its weight; the cheapest ready target wins.
//!
//! Unlike Kong, the cost is also scaled by `in_flight + 1`, as in Peak-EWMA
//! ([`super::lowest_latency`]): without it the cheapest target would take every concurrent request
//! until it throttles; with it, a busy cheap target spills to the next cheapest. As for latency, a
//! target with no sample yet is costed like the best sampled one, and with probability
//! [`EXPLORE_PROBABILITY`] a pick tries targets in random order so stale averages get refreshed.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::strategy::{
    EXPLORE_PROBABILITY, PickContext, Strategy, fill_unsampled, peak_ewma_cost, pick_lowest,
};

#[derive(Debug)]
pub struct LowestUsage {
    weights: Vec<u32>,
    next: AtomicUsize,
}

impl LowestUsage {
    pub fn new(weights: &[u32]) -> Self {
        Self {
            weights: weights.to_vec(),
            next: AtomicUsize::new(0),
        }
    }

    /// The pick with the random draws passed in: `explore` uniform in [0, 1), `shuffle` any
    /// value (the start of the random order when exploring).
    pub fn pick_with(
        &self,
        ctx: &PickContext<'_>,
        explore: f64,
        shuffle: usize,
        ready: &mut dyn FnMut(usize) -> bool,
    ) -> Option<usize> {
        if explore < EXPLORE_PROBABILITY {
            let flat = vec![0.0; self.weights.len()];
            return pick_lowest(&flat, shuffle, ready);
        }
        let loads: Vec<_> = (0..self.weights.len()).map(|i| (ctx.load)(i)).collect();
        let mut costs: Vec<f64> = loads.iter().map(|l| l.usage_cost).collect();
        fill_unsampled(&mut costs);
        for ((cost, load), &weight) in costs.iter_mut().zip(&loads).zip(&self.weights) {
            *cost = peak_ewma_cost(*cost, load.in_flight, weight);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        pick_lowest(&costs, start, ready)
    }
}

impl Strategy for LowestUsage {
    fn pick(&self, ctx: &PickContext<'_>, ready: &mut dyn FnMut(usize) -> bool) -> Option<usize> {
        self.pick_with(ctx, fastrand::f64(), fastrand::usize(..), ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::strategy::Load;
    use proptest::prelude::{any, prop_assert, proptest};

    fn usage(u: &[f64]) -> impl Fn(usize) -> Load + '_ {
        move |i| Load {
            usage_cost: u[i],
            ..Load::default()
        }
    }

    #[test]
    fn lowest_usage_per_weight_wins() {
        let s = LowestUsage::new(&[1, 4]);
        // 1000 tokens at weight 4 costs 250, less than 300 at weight 1.
        let load = usage(&[300.0, 1000.0]);
        let ctx = PickContext {
            hash_key: None,
            load: &load,
        };
        assert_eq!(s.pick_with(&ctx, 0.5, 0, &mut |_| true), Some(1));
        assert_eq!(s.pick_with(&ctx, 0.5, 0, &mut |i| i == 0), Some(0));
    }

    #[test]
    fn a_busy_cheap_target_spills() {
        let s = LowestUsage::new(&[1, 1]);
        let load = |i: usize| Load {
            in_flight: [3, 0][i],
            usage_cost: [1.0, 3.0][i],
            ..Load::default()
        };
        let ctx = PickContext {
            hash_key: None,
            load: &load,
        };
        assert_eq!(s.pick_with(&ctx, 0.5, 0, &mut |_| true), Some(1));
    }

    #[test]
    fn unsampled_is_costed_like_the_best() {
        let s = LowestUsage::new(&[1, 1]);
        let load = usage(&[0.0, 50.0]);
        let ctx = PickContext {
            hash_key: None,
            load: &load,
        };
        let got: Vec<_> = (0..2)
            .filter_map(|_| s.pick_with(&ctx, 0.5, 0, &mut |_| true))
            .collect();
        assert_eq!(got, vec![0, 1]);
    }

    proptest! {
        #[test]
        fn never_picks_unready_while_a_ready_one_exists(
            weights in proptest::collection::vec(1u32..100, 1..20),
            u in proptest::collection::vec(0.0f64..5000.0, 20),
            mask in any::<u32>(),
            explore in 0.0f64..1.0,
            shuffle in any::<usize>(),
        ) {
            let s = LowestUsage::new(&weights);
            let load = usage(&u);
            let ctx = PickContext { hash_key: None, load: &load };
            let ready = |i: usize| mask & (1 << i) != 0;
            let any_ready = (0..weights.len()).any(ready);
            match s.pick_with(&ctx, explore, shuffle, &mut |i| ready(i)) {
                Some(i) => prop_assert!(ready(i)),
                None => prop_assert!(!any_ready),
            }
        }
    }
}
