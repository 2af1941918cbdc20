//! A target's shared state: written by its actor (health, cooldown, credentials) and by leases
//! (in-flight, latency, tokens), read lock-free by the request path.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use aws_credential_types::Credentials;

use super::ewma::{DEFAULT_TAU, EwmaCell, Kind};
use crate::config::{LatencyStrategy, TokensCountStrategy};

/// What one finished request consumed, as reported by Bedrock's usage block.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UsageSample {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Price of the request from the target's `input_cost` / `output_cost` (per 1M tokens).
    pub cost: f64,
}

/// Circuit-breaker position, published as an `AtomicU8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

impl Health {
    const fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Closed,
            1 => Self::HalfOpen,
            _ => Self::Open,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half-open",
            Self::Open => "open",
        }
    }
}

#[derive(Debug)]
pub struct TargetState {
    health: AtomicU8,
    /// While `Open`: when a trial request may go (ms on [`clock`]).
    open_until_ms: AtomicU64,
    /// Throttle cooldown end (ms on [`clock`]); 0 = none.
    cooldown_until_ms: AtomicU64,
    in_flight: AtomicU32,
    /// Peak-EWMA of whole-request latency of successful requests, in ms.
    e2e_ms: EwmaCell,
    /// Peak-EWMA of time to first token of streams, in ms.
    ttft_ms: EwmaCell,
    /// Peak-EWMA of time per output token, in ms.
    tpot_ms: EwmaCell,
    /// Moving averages of tokens and cost per request.
    prompt_tokens: EwmaCell,
    completion_tokens: EwmaCell,
    cost: EwmaCell,
    requests: AtomicU64,
    failures: AtomicU64,
    /// Loaded by the actor; `None` until the first fetch succeeds.
    pub credentials: ArcSwapOption<Credentials>,
    /// The target is not SigV4-signed (its own key, or none), so it needs no AWS credentials.
    unsigned: bool,
}

impl Default for TargetState {
    fn default() -> Self {
        Self {
            health: AtomicU8::new(Health::Closed as u8),
            open_until_ms: AtomicU64::new(0),
            cooldown_until_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            e2e_ms: EwmaCell::new(Kind::Peak, DEFAULT_TAU),
            ttft_ms: EwmaCell::new(Kind::Peak, DEFAULT_TAU),
            tpot_ms: EwmaCell::new(Kind::Peak, DEFAULT_TAU),
            prompt_tokens: EwmaCell::new(Kind::Average, DEFAULT_TAU),
            completion_tokens: EwmaCell::new(Kind::Average, DEFAULT_TAU),
            cost: EwmaCell::new(Kind::Average, DEFAULT_TAU),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            credentials: ArcSwapOption::empty(),
            unsigned: false,
        }
    }
}

impl TargetState {
    /// The state of a target that is not SigV4-signed: ready without AWS credentials.
    pub fn without_aws_credentials() -> Self {
        Self {
            unsigned: true,
            ..Self::default()
        }
    }

    /// Whether the target can authenticate a request now: it signs nothing, or its AWS
    /// credentials are loaded.
    pub fn can_authenticate(&self) -> bool {
        self.unsigned || self.credentials.load().is_some()
    }

    pub fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::Acquire))
    }

    pub fn cooldown_until_ms(&self) -> u64 {
        self.cooldown_until_ms.load(Ordering::Acquire)
    }

    pub fn open_until_ms(&self) -> u64 {
        self.open_until_ms.load(Ordering::Acquire)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Peak-EWMA of whole-request latency in ms; 0 before the first successful request.
    pub fn ewma_latency_ms(&self) -> f64 {
        self.e2e_ms.get()
    }

    /// Peak-EWMA of time to first token in ms; 0 before the first stream.
    pub fn ewma_ttft_ms(&self) -> f64 {
        self.ttft_ms.get()
    }

    /// Peak-EWMA of time per output token in ms; 0 before the first sample.
    pub fn ewma_tpot_ms(&self) -> f64 {
        self.tpot_ms.get()
    }

    /// The latency signal `lowest-latency` and `p2c-ewma` compare; 0 = no sample yet.
    pub fn latency(&self, strategy: LatencyStrategy) -> f64 {
        match strategy {
            LatencyStrategy::Tpot => self.tpot_ms.get(),
            LatencyStrategy::E2e => self.e2e_ms.get(),
        }
    }

    /// The usage signal `lowest-usage` compares (per request); 0 = no sample yet.
    pub fn usage(&self, strategy: TokensCountStrategy) -> f64 {
        match strategy {
            TokensCountStrategy::TotalTokens => {
                // Both averages move with the same weights, so their sum is the average total.
                self.prompt_tokens.get() + self.completion_tokens.get()
            }
            TokensCountStrategy::PromptTokens => self.prompt_tokens.get(),
            TokensCountStrategy::CompletionTokens => self.completion_tokens.get(),
            TokensCountStrategy::Cost => self.cost.get(),
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Whether the request path may send to this target now. An open circuit whose wait is over
    /// admits exactly one trial: the caller that wins the swap to half-open.
    pub fn try_admit(&self, now_ms: u64) -> bool {
        if self.cooldown_until_ms() > now_ms || !self.can_authenticate() {
            return false;
        }
        match self.health() {
            Health::Closed => true,
            Health::HalfOpen => false,
            Health::Open => {
                self.open_until_ms() <= now_ms
                    && self
                        .health
                        .compare_exchange(
                            Health::Open as u8,
                            Health::HalfOpen as u8,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        )
                        .is_ok()
            }
        }
    }

    /// Gives back a half-open trial that [`Self::try_admit`] claimed but the request did not use
    /// (a rate limit refused the target after the pick), so the next request may take it.
    pub fn release_trial(&self) {
        let _ = self.health.compare_exchange(
            Health::HalfOpen as u8,
            Health::Open as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Readiness without claiming a half-open trial (for probes and admin views).
    pub fn is_ready(&self, now_ms: u64) -> bool {
        self.cooldown_until_ms() <= now_ms
            && self.can_authenticate()
            && match self.health() {
                Health::Closed => true,
                Health::HalfOpen => false,
                Health::Open => self.open_until_ms() <= now_ms,
            }
    }

    // Writers below are called by the target's actor (health, cooldown) or its leases.

    pub(crate) fn set_health(&self, health: Health, open_until_ms: u64) {
        self.open_until_ms.store(open_until_ms, Ordering::Release);
        self.health.store(health as u8, Ordering::Release);
    }

    pub(crate) fn set_cooldown_until(&self, until_ms: u64) {
        self.cooldown_until_ms.store(until_ms, Ordering::Release);
    }

    pub(crate) fn begin_request(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn end_request(&self, failed: bool) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Folds a successful request's whole latency into its Peak-EWMA. Called by the lease.
    pub fn record_latency(&self, sample_ms: f64, now_ms: u64) {
        self.e2e_ms.record(sample_ms, now_ms);
    }

    /// Folds a stream's time to first token into its Peak-EWMA. Called by the lease.
    pub fn record_ttft(&self, sample_ms: f64, now_ms: u64) {
        self.ttft_ms.record(sample_ms, now_ms);
    }

    /// Folds a time per output token into its Peak-EWMA. Called by the lease.
    pub fn record_tpot(&self, sample_ms: f64, now_ms: u64) {
        self.tpot_ms.record(sample_ms, now_ms);
    }

    /// Folds one request's token counts and cost into their averages. Called by the lease.
    pub fn record_usage(&self, usage: UsageSample, now_ms: u64) {
        self.prompt_tokens
            .record(f64::from(usage.prompt_tokens), now_ms);
        self.completion_tokens
            .record(f64::from(usage.completion_tokens), now_ms);
        self.cost.record(usage.cost, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn with_credentials() -> TargetState {
        let state = TargetState::default();
        state.credentials.store(Some(Arc::new(Credentials::new(
            "AKID", "secret", None, None, "test",
        ))));
        state
    }

    #[test]
    fn no_credentials_means_not_ready() {
        assert!(!TargetState::default().try_admit(0));
        assert!(with_credentials().try_admit(0));
    }

    #[test]
    fn an_unsigned_target_is_ready_without_aws_credentials() {
        let state = TargetState::without_aws_credentials();
        assert!(state.is_ready(0) && state.try_admit(0));
        state.set_cooldown_until(100);
        assert!(!state.is_ready(99));
    }

    #[test]
    fn an_expired_open_circuit_admits_exactly_one_trial() {
        let state = with_credentials();
        state.set_health(Health::Open, 100);
        assert!(!state.try_admit(99));
        assert!(state.is_ready(100));
        assert!(state.try_admit(100));
        assert_eq!(state.health(), Health::HalfOpen);
        assert!(!state.try_admit(101));
    }

    #[test]
    fn cooldown_blocks_until_it_ends() {
        let state = with_credentials();
        state.set_cooldown_until(50);
        assert!(!state.try_admit(49));
        assert!(state.try_admit(50));
    }

    #[test]
    fn signals_follow_their_strategy() {
        let state = TargetState::default();
        assert_eq!(state.latency(LatencyStrategy::E2e), 0.0);
        assert_eq!(state.usage(TokensCountStrategy::Cost), 0.0);
        state.record_latency(800.0, 0);
        state.record_tpot(20.0, 0);
        state.record_ttft(150.0, 0);
        state.record_usage(
            UsageSample {
                prompt_tokens: 100,
                completion_tokens: 40,
                cost: 0.5,
            },
            0,
        );
        assert_eq!(state.latency(LatencyStrategy::E2e), 800.0);
        assert_eq!(state.ewma_latency_ms(), 800.0);
        assert_eq!(state.latency(LatencyStrategy::Tpot), 20.0);
        assert_eq!(state.ewma_ttft_ms(), 150.0);
        assert_eq!(state.usage(TokensCountStrategy::TotalTokens), 140.0);
        assert_eq!(state.usage(TokensCountStrategy::PromptTokens), 100.0);
        assert_eq!(state.usage(TokensCountStrategy::CompletionTokens), 40.0);
        assert_eq!(state.usage(TokensCountStrategy::Cost), 0.5);
    }
}
