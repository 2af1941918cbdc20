//! Lowest latency by Peak-EWMA, after Finagle's and tower's `PeakEwma` balancer
//! (`tower/src/load/peak_ewma.rs`) and Kong's `lowest-latency`: each target's cost is its
//! Peak-EWMA latency (whole request, `e2e`, or time per output token, `tpot`) times
//! `in_flight + 1`, divided by its weight; the cheapest ready target wins.
//!
//! Peak-EWMA (see [`crate::backend::ewma`]) jumps up on a slow sample and decays with a 10 s time
//! constant, so a target that slows down loses traffic at once. Two rules keep a target from being
//! shut out for good: a target with no sample yet is costed like the best sampled one, and with
//! probability [`EXPLORE_PROBABILITY`] the pick ignores cost and tries targets in a random order,
//! so a recovered target gets fresh samples that can win its traffic back.

use super::lowest_cost::LowestCost;
use super::strategy::Load;

pub fn lowest_latency(weights: &[u32]) -> LowestCost {
    LowestCost::new(weights, |load: &Load| load.latency_cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::strategy::Load;
    use crate::balance::strategy::{PickContext, Strategy};
    use proptest::prelude::{any, prop_assert, proptest};

    fn latencies(l: &[f64]) -> impl Fn(usize) -> Load + '_ {
        move |i| Load {
            latency_cost: l[i],
            ..Load::default()
        }
    }

    fn shares(s: &LowestCost, load: &dyn Fn(usize) -> Load, n: usize, picks: usize) -> Vec<usize> {
        let ctx = PickContext {
            hash_key: None,
            load,
        };
        let mut counts = vec![0; n];
        for _ in 0..picks {
            if let Some(i) = s.pick(&ctx, &mut |_| true) {
                counts[i] += 1;
            }
        }
        counts
    }

    #[test]
    fn a_ten_times_slower_target_gets_under_ten_percent() {
        let s = lowest_latency(&[1, 1]);
        let load = latencies(&[100.0, 1000.0]);
        let got = shares(&s, &load, 2, 10_000);
        assert!(got[1] < 1_000, "{got:?}");
        // Exploration still samples it now and then.
        assert!(got[1] > 0, "{got:?}");
    }

    #[test]
    fn in_flight_spreads_load_to_the_slower_target() {
        let s = lowest_latency(&[1, 1]);
        // 100 ms with 4 waiting costs 500; 400 ms idle costs 400.
        let load = |i: usize| Load {
            in_flight: [4, 0][i],
            latency_cost: [100.0, 400.0][i],
            ..Load::default()
        };
        let ctx = PickContext {
            hash_key: None,
            load: &load,
        };
        assert_eq!(s.pick_with(&ctx, 0.5, 0, &mut |_| true), Some(1));
    }

    #[test]
    fn an_unsampled_target_is_explored() {
        let s = lowest_latency(&[1, 1, 1]);
        let load = latencies(&[100.0, 1000.0, 0.0]);
        let got = shares(&s, &load, 3, 3_000);
        // Costed like the best sampled target, it shares the lead with it.
        assert!(got[2] > 1_000, "{got:?}");
    }

    #[test]
    fn exploration_ignores_cost() {
        let s = lowest_latency(&[1, 1]);
        let load = latencies(&[100.0, 1000.0]);
        let ctx = PickContext {
            hash_key: None,
            load: &load,
        };
        assert_eq!(s.pick_with(&ctx, 0.5, 1, &mut |_| true), Some(0));
        assert_eq!(s.pick_with(&ctx, 0.0, 1, &mut |_| true), Some(1));
    }

    proptest! {
        #[test]
        fn never_picks_unready_while_a_ready_one_exists(
            weights in proptest::collection::vec(1u32..100, 1..20),
            lat in proptest::collection::vec(0.0f64..5000.0, 20),
            mask in any::<u32>(),
            explore in 0.0f64..1.0,
            shuffle in any::<usize>(),
        ) {
            let s = lowest_latency(&weights);
            let load = latencies(&lat);
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
