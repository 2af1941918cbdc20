//! Power of two choices over Peak-EWMA cost, as tower's `p2c::Balance` with `PeakEwma` load and
//! linkerd's balancer: draw two distinct targets at random and send to the cheaper
//! (Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing", 2001). Two random
//! samples avoid the herding of always-the-cheapest while still steering away from slow or busy
//! targets; a pick reads the load of two targets, not all of them.
//!
//! Cost is Peak-EWMA latency times `in_flight + 1`, divided by weight. A candidate with no sample
//! yet is costed like its sampled rival (both at 1 if neither has one), so it is tried without
//! winning every pair it is drawn into. If the chosen one is not ready it is set aside and a fresh
//! pair is drawn from the rest.

use super::strategy::{Load, PickContext, Strategy, peak_ewma_cost};

#[derive(Debug)]
pub struct P2cEwma {
    weights: Vec<u32>,
}

/// Of a drawn pair `(i, j)`, the one with the lower cost; `i` on a tie (the draw is random).
pub fn choose(costs: (f64, f64), (i, j): (usize, usize)) -> usize {
    if costs.1 < costs.0 { j } else { i }
}

/// The pair's costs, with an unsampled estimate standing in as its rival's (see module docs).
pub fn pair_costs(a: Load, b: Load, weights: (u32, u32)) -> (f64, f64) {
    let sampled = |l: &Load| l.latency_cost > 0.0;
    let (ea, eb) = match (sampled(&a), sampled(&b)) {
        (true, true) => (a.latency_cost, b.latency_cost),
        (true, false) => (a.latency_cost, a.latency_cost),
        (false, true) => (b.latency_cost, b.latency_cost),
        (false, false) => (1.0, 1.0),
    };
    (
        peak_ewma_cost(ea, a.in_flight, weights.0),
        peak_ewma_cost(eb, b.in_flight, weights.1),
    )
}

impl P2cEwma {
    pub fn new(weights: &[u32]) -> Self {
        Self {
            weights: weights.to_vec(),
        }
    }

    /// The pick with the randomness passed in: `draw(n)` returns a uniform index below `n`.
    pub fn pick_with(
        &self,
        ctx: &PickContext<'_>,
        draw: &mut dyn FnMut(usize) -> usize,
        ready: &mut dyn FnMut(usize) -> bool,
    ) -> Option<usize> {
        let n = self.weights.len();
        // Candidates not yet refused, kept in the first `left` slots; on the stack for the usual
        // roster sizes so a pick does not allocate.
        let mut stack = [0usize; 64];
        let mut heap = Vec::new();
        let candidates: &mut [usize] = if n <= stack.len() {
            &mut stack[..n]
        } else {
            heap.resize(n, 0);
            &mut heap
        };
        for (i, slot) in candidates.iter_mut().enumerate() {
            *slot = i;
        }
        let mut left = n;
        loop {
            let chosen = match left {
                0 => return None,
                1 => 0,
                n => {
                    let a = draw(n);
                    // Distinct: draw from the other n - 1 and skip over `a`.
                    let b = (a + 1 + draw(n - 1)) % n;
                    let (i, j) = (candidates[a], candidates[b]);
                    let costs = pair_costs(
                        (ctx.load)(i),
                        (ctx.load)(j),
                        (self.weights[i], self.weights[j]),
                    );
                    if choose(costs, (i, j)) == i { a } else { b }
                }
            };
            let index = candidates[chosen];
            if ready(index) {
                return Some(index);
            }
            candidates.swap(chosen, left - 1);
            left -= 1;
        }
    }
}

impl Strategy for P2cEwma {
    fn pick(&self, ctx: &PickContext<'_>, ready: &mut dyn FnMut(usize) -> bool) -> Option<usize> {
        self.pick_with(ctx, &mut |n| fastrand::usize(..n), ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    fn lat(latency: f64, in_flight: u32) -> Load {
        Load {
            in_flight,
            latency_cost: latency,
            ..Load::default()
        }
    }

    #[test]
    fn choose_takes_the_cheaper_and_the_first_on_a_tie() {
        assert_eq!(choose((2.0, 1.0), (4, 7)), 7);
        assert_eq!(choose((1.0, 2.0), (4, 7)), 4);
        assert_eq!(choose((1.0, 1.0), (4, 7)), 4);
    }

    #[test]
    fn pair_costs_fill_an_unsampled_rival() {
        assert_eq!(
            pair_costs(lat(100.0, 1), lat(0.0, 0), (1, 1)),
            (200.0, 100.0)
        );
        assert_eq!(pair_costs(lat(0.0, 0), lat(0.0, 2), (1, 1)), (1.0, 3.0));
        assert_eq!(
            pair_costs(lat(100.0, 0), lat(300.0, 0), (1, 3)),
            (100.0, 100.0)
        );
    }

    #[test]
    fn prefers_the_cheaper_target() {
        let p = P2cEwma::new(&[1, 1]);
        let load = |i: usize| lat([100.0, 1000.0][i], 0);
        let ctx = PickContext {
            hash_key: None,
            load: &load,
        };
        for _ in 0..100 {
            assert_eq!(p.pick(&ctx, &mut |_| true), Some(0));
        }
        // Unready cheap target: the other one serves.
        assert_eq!(p.pick(&ctx, &mut |i| i == 1), Some(1));
    }

    #[test]
    fn the_slowest_of_many_is_never_chosen_when_paired() {
        let p = P2cEwma::new(&[1; 4]);
        let load = |i: usize| lat([100.0, 200.0, 300.0, 5000.0][i], 0);
        let ctx = PickContext {
            hash_key: None,
            load: &load,
        };
        let mut counts = [0u32; 4];
        for _ in 0..4000 {
            if let Some(i) = p.pick(&ctx, &mut |_| true) {
                counts[i] += 1;
            }
        }
        assert_eq!(counts[3], 0, "{counts:?}");
        // The fastest wins every pair it is in: 3 of 6 pairs.
        assert!(counts[0].abs_diff(2000) < 200, "{counts:?}");
    }

    proptest! {
        #[test]
        fn never_picks_unready_while_a_ready_one_exists(
            weights in proptest::collection::vec(1u32..100, 1..20),
            lat_ms in proptest::collection::vec(0.0f64..5000.0, 20),
            mask in any::<u32>(),
            seed in any::<u64>(),
        ) {
            let p = P2cEwma::new(&weights);
            let load = |i: usize| lat(lat_ms[i], 0);
            let ctx = PickContext { hash_key: None, load: &load };
            let mut rng = fastrand::Rng::with_seed(seed);
            let ready = |i: usize| mask & (1 << i) != 0;
            let any_ready = (0..weights.len()).any(ready);
            match p.pick_with(&ctx, &mut |n| rng.usize(..n), &mut |i| ready(i)) {
                Some(i) => prop_assert!(ready(i)),
                None => prop_assert!(!any_ready),
            }
        }

        /// Whatever the pair drawn, the chosen one costs no more than the other.
        #[test]
        fn chooses_the_cheaper_of_the_pair(
            la in 0.0f64..5000.0, lb in 0.0f64..5000.0, fa in 0u32..10, fb in 0u32..10,
        ) {
            let p = P2cEwma::new(&[1, 1]);
            let load = |i: usize| [lat(la, fa), lat(lb, fb)][i];
            let ctx = PickContext { hash_key: None, load: &load };
            let (ca, cb) = pair_costs(load(0), load(1), (1, 1));
            let got = p.pick_with(&ctx, &mut |_| 0, &mut |_| true);
            prop_assert_eq!(got, Some(if cb < ca { 1 } else { 0 }));
        }
    }
}
