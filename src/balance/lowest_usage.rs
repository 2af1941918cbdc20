//! Lowest usage, as Kong's `lowest-usage`: each target's cost is its moving average of tokens per
//! request (total, prompt or completion tokens per `tokens_count_strategy`, or the price computed
//! from `input_cost` / `output_cost`), divided by its weight; the cheapest ready target wins.
//!
//! Unlike Kong, the cost is also scaled by `in_flight + 1`, as in Peak-EWMA
//! ([`super::lowest_latency`]): without it the cheapest target would take every concurrent request
//! until it throttles; with it, a busy cheap target spills to the next cheapest. As for latency, a
//! target with no sample yet is costed like the best sampled one, and with probability
//! [`EXPLORE_PROBABILITY`] a pick tries targets in random order so stale averages get refreshed.

use super::lowest_cost::LowestCost;
use super::strategy::Load;

pub fn lowest_usage(weights: &[u32]) -> LowestCost {
    LowestCost::new(weights, |load: &Load| load.usage_cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::strategy::Load;
    use crate::balance::strategy::PickContext;
    use proptest::prelude::{any, prop_assert, proptest};

    fn usage(u: &[f64]) -> impl Fn(usize) -> Load + '_ {
        move |i| Load {
            usage_cost: u[i],
            ..Load::default()
        }
    }

    #[test]
    fn lowest_usage_per_weight_wins() {
        let s = lowest_usage(&[1, 4]);
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
        let s = lowest_usage(&[1, 1]);
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
        let s = lowest_usage(&[1, 1]);
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
            let s = lowest_usage(&weights);
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
