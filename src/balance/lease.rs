//! A lease on a picked target: in-flight +1 while it lives; on drop, the outcome reaches the
//! target's state and actor. Because it is `Drop`, a client that disconnects mid-stream still
//! leaves the counters right.

use std::sync::Arc;
use std::time::Instant;

use crate::target::{Health, Outcome, TargetRuntime};

pub struct Lease {
    target: Arc<TargetRuntime>,
    started: Instant,
    outcome: Option<Outcome>,
}

impl Lease {
    pub fn new(target: Arc<TargetRuntime>) -> Self {
        target.state.begin_request();
        Self {
            target,
            started: Instant::now(),
            outcome: None,
        }
    }

    pub fn target(&self) -> &Arc<TargetRuntime> {
        &self.target
    }

    /// Records the verdict; the last one set before drop wins.
    pub fn set_outcome(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or(Outcome::Abandoned);
        let state = &self.target.state;
        state.end_request(outcome.is_failure());
        if outcome == Outcome::Success {
            state.record_latency_us(self.started.elapsed().as_secs_f64() * 1e6);
        }
        // A healthy target's success changes nothing the actor owns; skip the message so the
        // common path costs no cross-thread send.
        let steady = outcome == Outcome::Success
            && state.health() == Health::Closed
            && state.cooldown_until_ms() == 0;
        if !steady {
            self.target.report(outcome);
        }
    }
}
