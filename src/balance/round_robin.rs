//! Smooth weighted round-robin, as in nginx: over one cycle every target gets exactly its weight's
//! share, and the picks of a heavy target are spread out rather than bunched.
//!
//! The cycle is computed once when the roster is built, so a pick is one atomic increment and a
//! table read: no lock, no allocation. An unready target's turn passes to the next entry of the
//! cycle that is ready.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::strategy::{PickContext, Strategy};

/// Longest precomputed cycle; weights whose reduced sum is larger are scaled down to fit, keeping
/// their ratios to within a fraction of a percent.
const MAX_CYCLE: u64 = 1 << 16;

#[derive(Debug)]
pub struct RoundRobin {
    cycle: Vec<usize>,
    targets: usize,
    next: AtomicUsize,
}

impl RoundRobin {
    /// `weights` must be non-empty and positive (the validated config guarantees both).
    pub fn new(weights: &[u32]) -> Self {
        Self {
            cycle: smooth_cycle(&reduce(weights)),
            targets: weights.len(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Strategy for RoundRobin {
    fn pick(&self, _ctx: &PickContext<'_>, ready: &mut dyn FnMut(usize) -> bool) -> Option<usize> {
        self.pick_ready(ready)
    }
}

impl RoundRobin {
    /// The next target in the cycle that is ready; for strategies that fall back to, or nest,
    /// round-robin (consistent hashing without a key, tiers of `priority`).
    pub fn pick_ready(&self, ready: &mut dyn FnMut(usize) -> bool) -> Option<usize> {
        let len = self.cycle.len();
        if len == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // Each target is asked at most once per pick, however often it appears in the cycle
        // (tracked in a bit set, so for rosters of up to 128 targets; larger ones may re-ask).
        let dedupe = self.targets <= 128;
        let mut asked = 0u128;
        let mut ask = |index: usize, ready: &mut dyn FnMut(usize) -> bool| {
            if dedupe {
                let bit = 1u128 << index;
                if asked & bit != 0 {
                    return false;
                }
                asked |= bit;
            }
            ready(index)
        };
        let scheduled = self.cycle[start % len];
        if ask(scheduled, ready) {
            return Some(scheduled);
        }
        // The scheduled target is not ready. Handing its turn to the next entry of the cycle would
        // double that neighbour's share; drawing cycle positions at random keeps the remaining
        // targets' shares proportional to their weights.
        for _ in 0..2 * self.targets {
            let index = self.cycle[fastrand::usize(..len)];
            if ask(index, ready) {
                return Some(index);
            }
        }
        // Unlucky draws: settle it with one pass over the cycle.
        (0..len)
            .map(|offset| self.cycle[(start + offset) % len])
            .find(|&index| ask(index, ready))
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Divides weights by their common divisor, then scales them to fit [`MAX_CYCLE`].
fn reduce(weights: &[u32]) -> Vec<u64> {
    let divisor = weights
        .iter()
        .fold(0u64, |g, &w| gcd(g, u64::from(w)))
        .max(1);
    let reduced: Vec<u64> = weights.iter().map(|&w| u64::from(w) / divisor).collect();
    let sum: u64 = reduced.iter().sum();
    if sum <= MAX_CYCLE {
        return reduced;
    }
    reduced
        .iter()
        .map(|&w| (w * MAX_CYCLE / sum).max(1))
        .collect()
}

/// nginx's algorithm: add each weight to its running score, pick the highest, subtract the total.
fn smooth_cycle(weights: &[u64]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| w as i64).sum();
    let mut current = vec![0i64; weights.len()];
    let mut cycle = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        cycle.push(best);
    }
    cycle
}

#[cfg(test)]
mod tests {
    use super::{MAX_CYCLE, PickContext, RoundRobin, Strategy};
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    fn counts(
        rr: &RoundRobin,
        n: usize,
        picks: usize,
        ready: impl Fn(usize) -> bool,
    ) -> Vec<usize> {
        let mut counts = vec![0; n];
        for _ in 0..picks {
            if let Some(i) = rr.pick(&PickContext::idle(), &mut |i| ready(i)) {
                counts[i] += 1;
            }
        }
        counts
    }

    #[test]
    fn shares_are_exact_over_whole_cycles() {
        let rr = RoundRobin::new(&[100, 50, 50]);
        assert_eq!(counts(&rr, 3, 400, |_| true), vec![200, 100, 100]);
    }

    #[test]
    fn picks_are_spread_not_bunched() {
        let rr = RoundRobin::new(&[5, 1, 1]);
        assert_eq!(rr.cycle, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn an_unready_targets_share_is_spread_by_weight() {
        let rr = RoundRobin::new(&[1, 1, 1, 2]);
        let got = counts(&rr, 4, 5000, |i| i != 1);
        assert_eq!(got[1], 0);
        // Targets 0, 2 and 3 keep the ratio 1:1:2 (1250:1250:2500), within sampling noise.
        for (i, expected) in [(0, 1250), (2, 1250), (3, 2500)] {
            assert!(got[i].abs_diff(expected) < 150, "{got:?}");
        }
        assert_eq!(rr.pick(&PickContext::idle(), &mut |_| false), None);
    }

    #[test]
    fn ready_is_asked_once_per_target() {
        let rr = RoundRobin::new(&[100, 1]);
        let mut asked = Vec::new();
        assert_eq!(
            rr.pick(&PickContext::idle(), &mut |i| {
                asked.push(i);
                false
            }),
            None
        );
        assert_eq!(asked.len(), 2);
    }

    #[test]
    fn huge_weights_fit_the_cycle() {
        let rr = RoundRobin::new(&[65535, 65534, 3]);
        assert!(rr.cycle.len() as u64 <= MAX_CYCLE + 3);
    }

    proptest! {
        #[test]
        fn never_picks_unready_while_a_ready_one_exists(
            weights in proptest::collection::vec(1u32..1000, 1..20),
            mask in any::<u32>(),
        ) {
            let rr = RoundRobin::new(&weights);
            let ready = |i: usize| mask & (1 << i) != 0;
            let any_ready = (0..weights.len()).any(ready);
            for _ in 0..50 {
                match rr.pick(&PickContext::idle(), &mut |i| ready(i)) {
                    Some(i) => prop_assert!(ready(i)),
                    None => prop_assert!(!any_ready),
                }
            }
        }

        #[test]
        fn weighted_shares_hold_over_a_cycle(weights in proptest::collection::vec(1u32..50, 1..8)) {
            let rr = RoundRobin::new(&weights);
            let total: u32 = weights.iter().sum();
            let got = counts(&rr, weights.len(), total as usize * 3, |_| true);
            for (i, &w) in weights.iter().enumerate() {
                prop_assert_eq!(got[i] as u32, w * 3);
            }
        }
    }
}
