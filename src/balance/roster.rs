//! The immutable view of a route that the request path reads: its targets and its strategy.

use std::sync::Arc;

use super::consistent_hashing::ConsistentHashing;
use super::least_connections::LeastConnections;
use super::lowest_latency::lowest_latency;
use super::lowest_usage::lowest_usage;
use super::p2c::P2cEwma;
use super::priority::Priority;
use super::round_robin::RoundRobin;
use super::strategy::{Load, PickContext, Strategy};
use crate::backend::TargetRuntime;
use crate::config::{
    Algorithm, BalancerConfig, LatencyStrategy, SessionAffinity, TokensCountStrategy,
};

pub struct Roster {
    pub targets: Vec<Arc<TargetRuntime>>,
    strategy: Box<dyn Strategy>,
    /// One per model id that only some targets serve, for requests pinned to it.
    subsets: Vec<Subset>,
    latency_strategy: LatencyStrategy,
    tokens_count_strategy: TokensCountStrategy,
    /// The route's session affinity settings; `None` when it is off.
    pub session_affinity: Option<SessionAffinity>,
}

/// The targets of one model id, with a strategy of their own: its round-robin counter, hash
/// ring and priority tiers cover only them, so pinned requests spread over the whole subset.
struct Subset {
    model_id: String,
    /// Roster indices; the strategy's index `i` is `members[i]`.
    members: Vec<usize>,
    /// `None` for a single target: there is nothing to choose.
    strategy: Option<Box<dyn Strategy>>,
}

/// What a strategy is built from: one entry per target, in roster order.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// `region/model`: a stable name, so a hash ring survives reordering.
    pub label: String,
    pub weight: u32,
    pub priority: Option<u32>,
}

/// The configured algorithm over `members`, which must be non-empty (the validated config
/// guarantees it).
pub fn build_strategy(balancer: &BalancerConfig, members: &[Member]) -> Box<dyn Strategy> {
    let weights: Vec<u32> = members.iter().map(|m| m.weight).collect();
    match balancer.algorithm {
        Algorithm::RoundRobin => Box::new(RoundRobin::new(&weights)),
        Algorithm::LeastConnections => Box::new(LeastConnections::new(&weights)),
        Algorithm::LowestLatency => Box::new(lowest_latency(&weights)),
        Algorithm::LowestUsage => Box::new(lowest_usage(&weights)),
        Algorithm::ConsistentHashing => {
            let labels: Vec<String> = members.iter().map(|m| m.label.clone()).collect();
            Box::new(ConsistentHashing::new(
                &labels,
                &weights,
                balancer.slots.get(),
            ))
        }
        Algorithm::Priority => {
            let priorities: Vec<Option<u32>> = members.iter().map(|m| m.priority).collect();
            Box::new(Priority::new(&priorities, &weights))
        }
        Algorithm::P2cEwma => Box::new(P2cEwma::new(&weights)),
    }
}

impl Roster {
    pub fn new(targets: Vec<Arc<TargetRuntime>>, balancer: &BalancerConfig) -> Self {
        let members: Vec<Member> = targets
            .iter()
            .map(|t| Member {
                label: t.label.clone(),
                weight: u32::from(t.config.weight.get()),
                priority: t.config.priority,
            })
            .collect();
        Self {
            strategy: build_strategy(balancer, &members),
            subsets: subsets(&targets, &members, balancer),
            targets,
            latency_strategy: balancer.latency_strategy,
            tokens_count_strategy: balancer.tokens_count_strategy,
            session_affinity: balancer.session_affinity.clone(),
        }
    }

    /// Target `index`'s load signals, read from its atomics.
    pub fn load(&self, index: usize) -> Load {
        self.targets
            .get(index)
            .map_or_else(Load::default, |t| Load {
                in_flight: t.state.in_flight(),
                latency_cost: t.state.latency(self.latency_strategy),
                usage_cost: t.state.usage(self.tokens_count_strategy),
            })
    }

    /// When no untried target is ready: the one that will be ready soonest (circuit or cooldown
    /// ending first), so a route never fails without trying. Targets without credentials are
    /// skipped: they cannot even sign.
    pub fn least_bad(&self, tried: &[bool]) -> Option<usize> {
        self.targets
            .iter()
            .enumerate()
            .filter(|(i, t)| !tried.get(*i).copied().unwrap_or(true) && t.state.can_authenticate())
            .min_by_key(|(_, t)| t.state.open_until_ms().max(t.state.cooldown_until_ms()))
            .map(|(i, _)| i)
    }

    /// The `tried` vector a request starts from: pinned to `model`, the targets of other model
    /// ids count as tried, so neither a pick, [`Self::least_bad`] nor a failover leaves it.
    pub fn untried(&self, model: Option<&str>) -> Vec<bool> {
        self.targets
            .iter()
            .map(|t| model.is_some_and(|m| t.config.model_id.as_deref() != Some(m)))
            .collect()
    }

    /// Picks a target not yet tried that is ready now (claiming a half-open trial if it is one).
    /// `hash_key` is the value of the route's `hash_on_header` header, if the client sent it.
    /// Pinned to `model`, by the strategy of that model id's own targets when only some serve it.
    pub fn pick(
        &self,
        model: Option<&str>,
        tried: &[bool],
        now_ms: u64,
        hash_key: Option<&[u8]>,
    ) -> Option<usize> {
        let Some(subset) = model.and_then(|m| self.subsets.iter().find(|s| s.model_id == m)) else {
            return self.pick_by(&*self.strategy, |i| i, tried, now_ms, hash_key);
        };
        match &subset.strategy {
            Some(strategy) => self
                .pick_by(&**strategy, |i| subset.members[i], tried, now_ms, hash_key)
                .map(|i| subset.members[i]),
            None => subset
                .members
                .first()
                .copied()
                .filter(|&i| self.admit_untried(tried, i, now_ms)),
        }
    }

    pub fn admit_untried(&self, tried: &[bool], i: usize, now_ms: u64) -> bool {
        !tried.get(i).copied().unwrap_or(true) && self.targets[i].state.try_admit(now_ms)
    }

    /// Runs `strategy`, whose index `i` is roster index `member(i)`; returns the strategy's index.
    fn pick_by(
        &self,
        strategy: &dyn Strategy,
        member: impl Fn(usize) -> usize,
        tried: &[bool],
        now_ms: u64,
        hash_key: Option<&[u8]>,
    ) -> Option<usize> {
        let load = |i: usize| self.load(member(i));
        let ctx = PickContext {
            hash_key,
            load: &load,
        };
        strategy.pick(&ctx, &mut |i| self.admit_untried(tried, member(i), now_ms))
    }
}

/// A subset per model id, when the route's targets serve more than one.
fn subsets(
    targets: &[Arc<TargetRuntime>],
    members: &[Member],
    balancer: &BalancerConfig,
) -> Vec<Subset> {
    let mut model_ids: Vec<&str> = Vec::new();
    for model_id in targets.iter().filter_map(|t| t.config.model_id.as_deref()) {
        if !model_ids.contains(&model_id) {
            model_ids.push(model_id);
        }
    }
    if model_ids.len() < 2 {
        return Vec::new();
    }
    model_ids
        .into_iter()
        .map(|model_id| {
            let indices: Vec<usize> = (0..targets.len())
                .filter(|&i| targets[i].config.model_id.as_deref() == Some(model_id))
                .collect();
            let own: Vec<Member> = indices.iter().map(|&i| members[i].clone()).collect();
            Subset {
                model_id: model_id.to_owned(),
                strategy: (own.len() > 1).then(|| build_strategy(balancer, &own)),
                members: indices,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::strategy::Load;
    use proptest::prelude::{any, prop_assert, proptest};
    use std::num::NonZeroU32;
    use std::time::Duration;

    fn balancer(algorithm: Algorithm) -> BalancerConfig {
        BalancerConfig {
            algorithm,
            latency_strategy: LatencyStrategy::E2e,
            tokens_count_strategy: TokensCountStrategy::TotalTokens,
            hash_on_header: Some("x-session-id".to_owned()),
            retries: 0,
            failover_criteria: Default::default(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            max_fails: 0,
            fail_timeout: Duration::from_secs(1),
            slots: NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN),
            session_affinity: None,
        }
    }

    fn members(weights: &[u32], priorities: &[Option<u32>]) -> Vec<Member> {
        weights
            .iter()
            .zip(priorities)
            .enumerate()
            .map(|(i, (&weight, &priority))| Member {
                label: format!("region-{i}/model"),
                weight,
                priority,
            })
            .collect()
    }

    proptest! {
        /// The one invariant every algorithm shares.
        #[test]
        fn no_algorithm_picks_unready_while_a_ready_one_exists(
            weights in proptest::collection::vec(1u32..50, 1..12),
            priorities in proptest::collection::vec(proptest::option::of(0u32..3), 12),
            loads in proptest::collection::vec((0u32..20, 0.0f64..3000.0, 0.0f64..3000.0), 12),
            mask in any::<u16>(),
            key in proptest::option::of(any::<u64>()),
        ) {
            let members = members(&weights, &priorities);
            let load = |i: usize| {
                let (in_flight, latency_cost, usage_cost) = loads[i];
                Load { in_flight, latency_cost, usage_cost }
            };
            let key = key.map(|k| k.to_le_bytes());
            let ctx = PickContext { hash_key: key.as_ref().map(|k| k.as_slice()), load: &load };
            let ready = |i: usize| mask & (1 << i) != 0;
            let any_ready = (0..weights.len()).any(ready);
            for algorithm in Algorithm::ALL {
                let strategy = build_strategy(&balancer(algorithm), &members);
                for _ in 0..10 {
                    let mut asked = vec![false; weights.len()];
                    let got = strategy.pick(&ctx, &mut |i| {
                        // Asked at most once per pick: a yes may claim capacity.
                        assert!(!asked[i], "{algorithm:?} asked {i} twice");
                        asked[i] = true;
                        ready(i)
                    });
                    match got {
                        Some(i) => prop_assert!(ready(i), "{:?} picked unready {}", algorithm, i),
                        None => prop_assert!(!any_ready, "{:?} found none", algorithm),
                    }
                }
            }
        }
    }
}
