//! Priority tiers, as Kong's `priority` algorithm: targets are grouped into tiers and a lower tier
//! serves only while every target of the tiers above it is not ready (down, cooling down or
//! rate-limited). Within a tier, smooth weighted round-robin ([`super::round_robin`]) shares the
//! traffic.
//!
//! Tiers come from each target's `priority` (lower number first). When no target sets one, Kong's
//! rule applies: targets of the same weight form a tier, heavier tiers first. Targets without a
//! `priority` on a route where others set one go last.

use std::collections::BTreeMap;

use super::round_robin::RoundRobin;
use super::strategy::{PickContext, Strategy};

#[derive(Debug)]
struct Tier {
    /// Roster indices of the tier's targets; the round-robin works on positions in this list.
    members: Vec<usize>,
    round_robin: RoundRobin,
}

#[derive(Debug)]
pub struct Priority {
    tiers: Vec<Tier>,
}

/// Roster indices grouped into tiers, most preferred first, each in roster order.
pub fn tiers(priorities: &[Option<u32>], weights: &[u32]) -> Vec<Vec<usize>> {
    // Sort key per target: smaller serves first.
    let explicit = priorities.iter().any(Option::is_some);
    let mut by_rank: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (index, (priority, &weight)) in priorities.iter().zip(weights).enumerate() {
        let rank = if explicit {
            priority.map_or(u64::MAX, u64::from)
        } else {
            // Heavier first: invert the weight.
            u64::from(u32::MAX - weight)
        };
        by_rank.entry(rank).or_default().push(index);
    }
    by_rank.into_values().collect()
}

impl Priority {
    pub fn new(priorities: &[Option<u32>], weights: &[u32]) -> Self {
        let tiers = tiers(priorities, weights)
            .into_iter()
            .map(|members| {
                let tier_weights: Vec<u32> = members.iter().map(|&i| weights[i]).collect();
                Tier {
                    round_robin: RoundRobin::new(&tier_weights),
                    members,
                }
            })
            .collect();
        Self { tiers }
    }
}

impl Strategy for Priority {
    fn pick(&self, _ctx: &PickContext<'_>, ready: &mut dyn FnMut(usize) -> bool) -> Option<usize> {
        self.tiers.iter().find_map(|tier| {
            tier.round_robin
                .pick_ready(&mut |position| ready(tier.members[position]))
                .map(|position| tier.members[position])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    fn counts(p: &Priority, n: usize, picks: usize, ready: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut counts = vec![0; n];
        for _ in 0..picks {
            if let Some(i) = p.pick(&PickContext::idle(), &mut |i| ready(i)) {
                counts[i] += 1;
            }
        }
        counts
    }

    #[test]
    fn explicit_priorities_make_the_tiers() {
        assert_eq!(
            tiers(&[Some(2), Some(1), None, Some(1)], &[1, 1, 1, 1]),
            vec![vec![1, 3], vec![0], vec![2]]
        );
    }

    #[test]
    fn without_priorities_kong_tiers_by_weight_heaviest_first() {
        assert_eq!(
            tiers(&[None; 4], &[10, 100, 10, 1]),
            vec![vec![1], vec![0, 2], vec![3]]
        );
    }

    #[test]
    fn the_first_tier_takes_everything_while_any_of_it_is_ready() {
        let p = Priority::new(&[Some(1), Some(1), Some(2)], &[1, 1, 1]);
        assert_eq!(counts(&p, 3, 100, |_| true), vec![50, 50, 0]);
        assert_eq!(counts(&p, 3, 100, |i| i != 0), vec![0, 100, 0]);
        assert_eq!(counts(&p, 3, 100, |i| i == 2), vec![0, 0, 100]);
        assert_eq!(counts(&p, 3, 10, |_| false), vec![0, 0, 0]);
    }

    proptest! {
        #[test]
        fn spills_only_when_every_better_tier_is_unready(
            priorities in proptest::collection::vec(proptest::option::of(0u32..4), 1..16),
            weights in proptest::collection::vec(1u32..5, 16),
            mask in any::<u16>(),
        ) {
            let weights = &weights[..priorities.len()];
            let p = Priority::new(&priorities, weights);
            let ready = |i: usize| mask & (1 << i) != 0;
            let tiers = tiers(&priorities, weights);
            let best_tier = tiers.iter().position(|t| t.iter().any(|&i| ready(i)));
            for _ in 0..20 {
                let got = p.pick(&PickContext::idle(), &mut |i| ready(i));
                match (got, best_tier) {
                    (Some(i), Some(t)) => {
                        prop_assert!(ready(i));
                        prop_assert!(tiers[t].contains(&i), "picked {} outside tier {:?}", i, tiers[t]);
                    }
                    (None, None) => {}
                    (got, best) => prop_assert!(false, "{:?} with best tier {:?}", got, best),
                }
            }
        }

        #[test]
        fn weighted_round_robin_inside_a_tier(weights in proptest::collection::vec(1u32..20, 1..6)) {
            let mut priorities = vec![Some(1); weights.len()];
            let mut all_weights = weights.clone();
            // A second tier that must see nothing.
            priorities.push(Some(2));
            all_weights.push(7);
            let p = Priority::new(&priorities, &all_weights);
            let total: u32 = weights.iter().sum();
            let got = counts(&p, all_weights.len(), total as usize * 3, |_| true);
            for (i, &w) in weights.iter().enumerate() {
                prop_assert_eq!(got[i] as u32, w * 3);
            }
            prop_assert_eq!(got[weights.len()], 0);
        }
    }
}
