//! The immutable view of a route that the request path reads: its targets and its strategy.

use std::sync::Arc;

use super::round_robin::RoundRobin;
use super::strategy::Strategy;
use crate::config::{Algorithm, BalancerConfig};
use crate::target::TargetRuntime;

pub struct Roster {
    pub targets: Vec<Arc<TargetRuntime>>,
    strategy: Box<dyn Strategy>,
}

impl Roster {
    pub fn new(targets: Vec<Arc<TargetRuntime>>, balancer: &BalancerConfig) -> Self {
        let weights: Vec<u32> = targets
            .iter()
            .map(|t| u32::from(t.config.weight.get()))
            .collect();
        let strategy: Box<dyn Strategy> = match balancer.algorithm {
            Algorithm::RoundRobin
            | Algorithm::LeastConnections
            | Algorithm::LowestLatency
            | Algorithm::LowestUsage
            | Algorithm::ConsistentHashing
            | Algorithm::Priority
            | Algorithm::P2cEwma => Box::new(RoundRobin::new(&weights)),
        };
        Self { targets, strategy }
    }

    /// Picks a target not yet tried that is ready now (claiming a half-open trial if it is one).
    pub fn pick(&self, tried: &[bool], now_ms: u64) -> Option<usize> {
        self.strategy.pick(&mut |i| {
            !tried.get(i).copied().unwrap_or(true) && self.targets[i].state.try_admit(now_ms)
        })
    }
}
