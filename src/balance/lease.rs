//! A lease on a picked target: in-flight +1 while it lives; on drop, the outcome reaches the
//! target's state and actor. Because it is `Drop`, a client that disconnects mid-stream still
//! leaves the counters right.
//!
//! The request path reports what it learns along the way, and the lease turns it into the load
//! signals the latency and usage strategies read:
//!
//! - [`Lease::record_first_token`] when the first content of a stream reaches the gateway
//!   (time to first token, recorded at once);
//! - [`Lease::record_usage`] when Bedrock's usage block arrives (the response body, or a stream's
//!   `metadata` event): token and cost averages are updated at once;
//! - [`Lease::set_outcome`] with the verdict. On drop, a successful attempt records its whole
//!   latency (`e2e`) and, if usage was reported, its time per output token (`tpot`).
//!
//! A lease also carries the token reservations made for its request (the target's and the
//! consumer's), so the usage it learns settles them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Health, Outcome, TargetRuntime, UsageSample};
use crate::clock;
use crate::limits::Reservation;

/// Tokens in a per-1M-token price.
const TOKENS_PER_PRICE_UNIT: f64 = 1_000_000.0;

pub struct Lease {
    target: Arc<TargetRuntime>,
    started: Instant,
    outcome: Option<Outcome>,
    first_token: Option<Duration>,
    output_tokens: Option<u32>,
    reservations: Vec<Arc<Reservation>>,
}

impl Lease {
    pub fn new(target: Arc<TargetRuntime>) -> Self {
        target.state.begin_request();
        Self {
            target,
            started: Instant::now(),
            outcome: None,
            first_token: None,
            output_tokens: None,
            reservations: Vec::new(),
        }
    }

    /// Settles `reservation` with the usage this attempt reports.
    pub fn hold(&mut self, reservation: Arc<Reservation>) {
        self.reservations.push(reservation);
    }

    /// The request reached the model with this attempt: a reservation whose usage never arrives
    /// keeps its estimate.
    pub fn mark_delivered(&self) {
        self.reservations.iter().for_each(|r| r.mark_delivered());
    }

    pub fn target(&self) -> &Arc<TargetRuntime> {
        &self.target
    }

    /// Records the verdict; the last one set before drop wins.
    pub fn set_outcome(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }

    /// Call when the first token of a streamed response arrives from the target (the first
    /// `contentBlockDelta` / chunk with text). Only the first call counts. Feeds the TTFT
    /// estimate, and lets `tpot` leave the wait for the first token out.
    pub fn record_first_token(&mut self) {
        if self.first_token.is_some() {
            return;
        }
        let ttft = self.started.elapsed();
        self.first_token = Some(ttft);
        self.target
            .state
            .record_ttft(ttft.as_secs_f64() * 1e3, clock::now_ms());
    }

    /// [`Lease::record_usage`] from the 64-bit counts Bedrock's JSON carries.
    pub fn record_usage_u64(&mut self, input_tokens: u64, output_tokens: u64) {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        self.record_usage(clamp(input_tokens), clamp(output_tokens));
    }

    /// Call once with the token counts Bedrock reports for the request (`usage.inputTokens` /
    /// `outputTokens`, or a stream's `metadata` event), whatever the outcome: the tokens were
    /// spent. Feeds the usage averages `lowest-usage` reads (tokens, and the cost from the
    /// target's `input_cost` / `output_cost` per 1M tokens) and, on success, `tpot`.
    pub fn record_usage(&mut self, input_tokens: u32, output_tokens: u32) {
        let config = &self.target.config;
        let cost = (f64::from(input_tokens) * config.input_cost
            + f64::from(output_tokens) * config.output_cost)
            / TOKENS_PER_PRICE_UNIT;
        self.target.state.record_usage(
            UsageSample {
                prompt_tokens: input_tokens,
                completion_tokens: output_tokens,
                cost,
            },
            clock::now_ms(),
        );
        self.output_tokens = Some(output_tokens);
        let spent = u64::from(input_tokens) + u64::from(output_tokens);
        self.reservations.iter().for_each(|r| r.record_spent(spent));
    }
}

/// Time per output token in ms: after the first token when it is known (a stream), else over the
/// whole request. `None` without output tokens to divide by.
pub fn time_per_output_token(
    total: Duration,
    first_token: Option<Duration>,
    output_tokens: u32,
) -> Option<f64> {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    match first_token {
        Some(first) if output_tokens > 1 => {
            Some(ms(total.saturating_sub(first)) / f64::from(output_tokens - 1))
        }
        _ if output_tokens > 0 => Some(ms(total) / f64::from(output_tokens)),
        _ => None,
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or(Outcome::Abandoned);
        let state = &self.target.state;
        state.end_request(outcome.is_failure());
        if outcome == Outcome::Success {
            let now = clock::now_ms();
            let total = self.started.elapsed();
            state.record_latency(total.as_secs_f64() * 1e3, now);
            if let Some(tpot) = self
                .output_tokens
                .and_then(|tokens| time_per_output_token(total, self.first_token, tokens))
            {
                state.record_tpot(tpot, now);
            }
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

#[cfg(test)]
mod tests {
    use super::time_per_output_token;
    use std::time::Duration;

    #[test]
    fn tpot_leaves_out_the_first_token_wait_when_known() {
        let s = Duration::from_secs;
        assert_eq!(time_per_output_token(s(11), Some(s(1)), 101), Some(100.0));
        assert_eq!(time_per_output_token(s(10), None, 100), Some(100.0));
        assert_eq!(time_per_output_token(s(10), Some(s(1)), 1), Some(10_000.0));
        assert_eq!(time_per_output_token(s(10), None, 0), None);
    }
}
