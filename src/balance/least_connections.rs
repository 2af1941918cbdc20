//! Least connections, weighted as in nginx's `least_conn` and Kong's `least-connections`: the
//! target with the lowest `(in_flight + 1) / weight` gets the request, so with equal service times
//! each target holds in-flight requests in proportion to its weight.
//!
//! Ties (common: an idle route has every target at zero) are broken by a rotating start index, so
//! idle traffic is spread instead of always landing on the first target.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::strategy::{PickContext, Strategy, pick_lowest, with_costs};

#[derive(Debug)]
pub struct LeastConnections {
    weights: Vec<u32>,
    next: AtomicUsize,
}

impl LeastConnections {
    pub fn new(weights: &[u32]) -> Self {
        Self {
            weights: weights.to_vec(),
            next: AtomicUsize::new(0),
        }
    }
}

/// `(in_flight + 1) / weight`: the load the target would carry with this request, per unit weight.
pub fn cost(in_flight: u32, weight: u32) -> f64 {
    (f64::from(in_flight) + 1.0) / f64::from(weight.max(1))
}

impl Strategy for LeastConnections {
    fn pick(&self, ctx: &PickContext<'_>, ready: &mut dyn FnMut(usize) -> bool) -> Option<usize> {
        with_costs(self.weights.len(), |costs| {
            for (i, (c, &w)) in costs.iter_mut().zip(&self.weights).enumerate() {
                *c = cost((ctx.load)(i).in_flight, w);
            }
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            pick_lowest(costs, start, ready)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::strategy::Load;
    use proptest::prelude::{any, prop_assert, proptest};
    use std::cell::RefCell;

    fn with_in_flight(in_flight: &[u32]) -> impl Fn(usize) -> Load + '_ {
        move |i| Load {
            in_flight: in_flight[i],
            ..Load::default()
        }
    }

    #[test]
    fn fewest_in_flight_per_weight_wins() {
        let lc = LeastConnections::new(&[1, 1, 3]);
        let load = with_in_flight(&[2, 1, 5]);
        let ctx = PickContext {
            hash_key: None,
            load: &load,
        };
        // Costs 3, 2, 2: a tie between 1 and 2, shared by rotation.
        let mut got: Vec<_> = (0..4)
            .filter_map(|_| lc.pick(&ctx, &mut |_| true))
            .collect();
        got.sort_unstable();
        assert_eq!(got, vec![1, 1, 2, 2]);
        assert_eq!(lc.pick(&ctx, &mut |i| i == 0), Some(0));
    }

    #[test]
    fn idle_ties_are_not_always_index_zero() {
        let lc = LeastConnections::new(&[1, 1, 1]);
        let ctx = PickContext::idle();
        let got: Vec<_> = (0..3)
            .filter_map(|_| lc.pick(&ctx, &mut |_| true))
            .collect();
        assert_eq!(got, vec![0, 1, 2]);
    }

    proptest! {
        #[test]
        fn never_picks_unready_while_a_ready_one_exists(
            weights in proptest::collection::vec(1u32..100, 1..20),
            in_flight in proptest::collection::vec(0u32..50, 20),
            mask in any::<u32>(),
        ) {
            let lc = LeastConnections::new(&weights);
            let load = with_in_flight(&in_flight);
            let ctx = PickContext { hash_key: None, load: &load };
            let ready = |i: usize| mask & (1 << i) != 0;
            let any_ready = (0..weights.len()).any(ready);
            match lc.pick(&ctx, &mut |i| ready(i)) {
                Some(i) => prop_assert!(ready(i)),
                None => prop_assert!(!any_ready),
            }
        }

        /// Requests that stay in flight pile up on each target in proportion to its weight.
        #[test]
        fn held_requests_follow_the_weights(weights in proptest::collection::vec(1u32..20, 1..6)) {
            let lc = LeastConnections::new(&weights);
            let in_flight = RefCell::new(vec![0u32; weights.len()]);
            let load = |i: usize| Load { in_flight: in_flight.borrow()[i], ..Load::default() };
            let ctx = PickContext { hash_key: None, load: &load };
            let total: u32 = weights.iter().sum();
            let rounds = 10;
            for _ in 0..total * rounds {
                let i = lc.pick(&ctx, &mut |_| true);
                prop_assert!(i.is_some());
                if let Some(i) = i {
                    in_flight.borrow_mut()[i] += 1;
                }
            }
            let got = in_flight.borrow();
            for (i, &w) in weights.iter().enumerate() {
                // Exact up to the one request in progress per target.
                prop_assert!(got[i].abs_diff(w * rounds) <= 1, "{:?} vs {:?}", got, weights);
            }
        }
    }
}
