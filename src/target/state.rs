//! A target's shared state: written by its actor (health, cooldown, credentials) and by leases
//! (in-flight, latency), read lock-free by the request path.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use aws_credential_types::Credentials;

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
    /// Peak-EWMA latency in microseconds (f64 bits); 0 = no sample yet.
    ewma_latency_us: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    /// Loaded by the actor; `None` until the first fetch succeeds.
    pub credentials: ArcSwapOption<Credentials>,
}

impl Default for TargetState {
    fn default() -> Self {
        Self {
            health: AtomicU8::new(Health::Closed as u8),
            open_until_ms: AtomicU64::new(0),
            cooldown_until_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            ewma_latency_us: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            credentials: ArcSwapOption::empty(),
        }
    }
}

impl TargetState {
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

    pub fn ewma_latency_ms(&self) -> f64 {
        f64::from_bits(self.ewma_latency_us.load(Ordering::Relaxed)) / 1000.0
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
        if self.cooldown_until_ms() > now_ms || self.credentials.load().is_none() {
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

    /// Readiness without claiming a half-open trial (for probes and admin views).
    pub fn is_ready(&self, now_ms: u64) -> bool {
        self.cooldown_until_ms() <= now_ms
            && self.credentials.load().is_some()
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

    /// Folds a latency sample into the EWMA (weight 0.2 on the new sample; a full Peak-EWMA with
    /// time decay lives with the latency strategies).
    pub(crate) fn record_latency_us(&self, sample_us: f64) {
        let _ = self
            .ewma_latency_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let prev = f64::from_bits(bits);
                let next = if prev == 0.0 {
                    sample_us
                } else {
                    prev * 0.8 + sample_us * 0.2
                };
                Some(next.to_bits())
            });
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
}
