//! The engine shared by `lowest-latency` and `lowest-usage` (see those files): the cheapest ready
//! target by a measured cost times `in_flight + 1`, divided by weight, with unsampled targets
//! costed like the best sampled one and a small chance of exploring in random order.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::strategy::{
    EXPLORE_PROBABILITY, Load, PickContext, Strategy, fill_unsampled, peak_ewma_cost, pick_lowest,
    with_costs,
};

#[derive(Debug)]
pub struct LowestCost {
    weights: Vec<u32>,
    next: AtomicUsize,
    /// Which measured cost of a target to compare.
    signal: fn(&Load) -> f64,
}

impl LowestCost {
    pub fn new(weights: &[u32], signal: fn(&Load) -> f64) -> Self {
        Self {
            weights: weights.to_vec(),
            next: AtomicUsize::new(0),
            signal,
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
        let n = self.weights.len();
        if explore < EXPLORE_PROBABILITY {
            return with_costs(n, |flat| pick_lowest(flat, shuffle, ready));
        }
        with_costs(n, |costs| {
            for (i, cost) in costs.iter_mut().enumerate() {
                *cost = (self.signal)(&(ctx.load)(i));
            }
            fill_unsampled(costs);
            for (i, (cost, &weight)) in costs.iter_mut().zip(&self.weights).enumerate() {
                *cost = peak_ewma_cost(*cost, (ctx.load)(i).in_flight, weight);
            }
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            pick_lowest(costs, start, ready)
        })
    }
}

impl Strategy for LowestCost {
    fn pick(&self, ctx: &PickContext<'_>, ready: &mut dyn FnMut(usize) -> bool) -> Option<usize> {
        self.pick_with(ctx, fastrand::f64(), fastrand::usize(..), ready)
    }
}
