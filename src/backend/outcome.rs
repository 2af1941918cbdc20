//! What happened to one attempt, as far as a target's health and capacity are concerned.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Connection error, timeout, 5xx, broken stream: counts towards opening the circuit.
    Failure,
    /// 429 / `ThrottlingException`: capacity, so cooldown, never the circuit.
    Throttled {
        retry_after: Option<Duration>,
    },
    /// The target answered correctly but the request was bad for it (400, 403, 404, ...).
    Neutral,
    /// The attempt ended without a verdict (the client went away).
    Abandoned,
}

impl Outcome {
    /// Whether the attempt should count as a failed request in the target's statistics.
    pub const fn is_failure(self) -> bool {
        matches!(self, Self::Failure | Self::Throttled { .. })
    }
}
