//! A meter: the `rpm` and `tpm` limits of one target or one consumer, kept in this process or in
//! Redis, and the reservations it grants.
//!
//! A request takes one request cell and reserves its token estimate in one step (both or
//! neither). The [`Reservation`] it gets back is settled against Bedrock's reported usage when
//! dropped; without a report it gives its tokens back unless the request reached the model
//! (then its spend is unknown, and keeping the estimate is the safe side).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::budget::{Budget, Refusal, Unit};
use super::shared::{Remaining, SharedLimits};
use crate::config::Limits;

/// Both limits of one meter, in this process.
pub struct LocalPair {
    rpm: Option<Budget>,
    tpm: Option<Budget>,
}

impl LocalPair {
    /// `divide_by` > 1 gives this replica its share of a quota that several replicas share.
    fn new(limits: Limits, divide_by: u32) -> Self {
        let share = |unit: Unit| {
            move |quota: NonZeroU32| {
                Budget::per_minute(
                    NonZeroU32::new(quota.get() / divide_by.max(1)).unwrap_or(NonZeroU32::MIN),
                    unit,
                )
            }
        };
        Self {
            rpm: limits.rpm.map(share(Unit::Requests)),
            tpm: limits.tpm.map(share(Unit::Tokens)),
        }
    }

    fn admit(&self, requests: u32, tokens: u32) -> Result<(), Refusal> {
        if let Some(tpm) = &self.tpm {
            tpm.reserve(tokens)?;
        }
        if let Some(rpm) = &self.rpm
            && let Err(refusal) = rpm.reserve(requests)
        {
            if let Some(tpm) = &self.tpm {
                tpm.refund(tokens);
            }
            return Err(refusal);
        }
        Ok(())
    }

    fn settle_tokens(&self, reserved: u32, spent: u32) {
        if let Some(tpm) = &self.tpm {
            tpm.settle(reserved, spent);
        }
    }

    fn remaining(&self) -> Remaining {
        Remaining {
            rpm: self.rpm.as_ref().map(Budget::remaining),
            tpm: self.tpm.as_ref().map(Budget::remaining),
        }
    }

    fn is_full(&self) -> bool {
        self.rpm.iter().chain(&self.tpm).all(Budget::is_full)
    }
}

/// A local pair at this replica's share, and the replica count it was cut for.
struct Fallback {
    replicas: u32,
    pair: Arc<LocalPair>,
}

enum Store {
    Local(Arc<LocalPair>),
    Shared {
        redis: Arc<SharedLimits>,
        /// Redis keys share this prefix: `<prefix>rpm`, `<prefix>tpm`, `<prefix>cooldown`.
        key_prefix: String,
        fallback: ArcSwapOption<Fallback>,
    },
}

pub struct Meter {
    limits: Limits,
    store: Store,
}

/// Where a reservation was made, so it is settled in the same place.
enum Granted {
    Local(Arc<LocalPair>),
    Redis(Arc<SharedLimits>, String),
}

/// Tokens held for a request until its usage is known. Shared (`Arc`) by the attempts of one
/// request, which report what they learn; it settles when the last holder drops it.
pub struct Reservation {
    granted: Granted,
    limits: Limits,
    tokens: u32,
    spent: AtomicU64,
    reported: AtomicBool,
    delivered: AtomicBool,
}

impl Meter {
    pub fn local(limits: Limits) -> Self {
        Self {
            limits,
            store: Store::Local(Arc::new(LocalPair::new(limits, 1))),
        }
    }

    /// A meter kept in Redis under `key_prefix`, e.g. `bedrock-balancer:target:us-east-1/m:`.
    pub fn shared(limits: Limits, redis: Arc<SharedLimits>, key_prefix: String) -> Self {
        Self {
            limits,
            store: Store::Shared {
                redis,
                key_prefix,
                fallback: ArcSwapOption::empty(),
            },
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The largest reservation that can ever fit, if tokens are limited.
    pub fn token_cap(&self) -> Option<u32> {
        self.limits.tpm.map(NonZeroU32::get)
    }

    /// `requests` upstream calls and `tokens` tokens, now, or why not.
    pub async fn admit(&self, requests: u32, tokens: u32) -> Result<Reservation, Refusal> {
        for (unit, limit, wanted) in [
            (Unit::Requests, self.limits.rpm, requests),
            (Unit::Tokens, self.limits.tpm, tokens),
        ] {
            if let Some(cap) = limit.map(NonZeroU32::get)
                && wanted > cap
            {
                return Err(Refusal::TooLarge {
                    unit,
                    cap,
                    requested: wanted,
                });
            }
        }
        let granted = match &self.store {
            Store::Local(pair) => {
                pair.admit(requests, tokens)?;
                Granted::Local(Arc::clone(pair))
            }
            Store::Shared {
                redis,
                key_prefix,
                fallback,
            } => match redis.admit(key_prefix, self.limits, requests, tokens).await {
                Some(result) => {
                    result?;
                    Granted::Redis(Arc::clone(redis), key_prefix.clone())
                }
                None => {
                    let pair = self.fallback_pair(redis, fallback);
                    pair.admit(requests, tokens)?;
                    Granted::Local(pair)
                }
            },
        };
        Ok(Reservation {
            granted,
            limits: self.limits,
            tokens,
            spent: AtomicU64::new(0),
            reported: AtomicBool::new(false),
            delivered: AtomicBool::new(false),
        })
    }

    /// This replica's local share while Redis is away, re-cut when the replica count changed.
    fn fallback_pair(
        &self,
        redis: &SharedLimits,
        fallback: &ArcSwapOption<Fallback>,
    ) -> Arc<LocalPair> {
        let replicas = redis.replicas();
        let current = fallback.load_full();
        if let Some(current) = &current
            && current.replicas == replicas
        {
            return Arc::clone(&current.pair);
        }
        let fresh = Arc::new(Fallback {
            replicas,
            pair: Arc::new(LocalPair::new(self.limits, replicas)),
        });
        // Workers race here when Redis goes away; all must count on the one pair that wins.
        let previous = fallback.compare_and_swap(&current, Some(Arc::clone(&fresh)));
        let won = match (&*previous, &current) {
            (Some(seen), Some(expected)) => Arc::ptr_eq(seen, expected),
            (None, None) => true,
            _ => false,
        };
        if won {
            Arc::clone(&fresh.pair)
        } else {
            self.fallback_pair(redis, fallback)
        }
    }

    /// What could be admitted now (for the admin view).
    pub async fn remaining(&self) -> Remaining {
        match &self.store {
            Store::Local(pair) => pair.remaining(),
            Store::Shared {
                redis,
                key_prefix,
                fallback,
            } => match redis.remaining(key_prefix, self.limits).await {
                Some(remaining) => remaining,
                None => fallback.load_full().map_or_else(
                    || LocalPair::new(self.limits, redis.replicas()).remaining(),
                    |f| f.pair.remaining(),
                ),
            },
        }
    }

    /// Nothing to remember: every limit is back to its whole quota.
    pub fn is_full(&self) -> bool {
        match &self.store {
            Store::Local(pair) => pair.is_full(),
            Store::Shared { .. } => true,
        }
    }

    /// Tells the other replicas that this target is throttled for `rest` (a no-op locally: the
    /// target's actor already rests it).
    pub fn share_cooldown(&self, rest: Duration) {
        if let Store::Shared {
            redis, key_prefix, ..
        } = &self.store
        {
            redis.share_cooldown(key_prefix.clone(), rest);
        }
    }
}

impl Reservation {
    /// Adds tokens Bedrock reported as spent for this request.
    pub fn record_spent(&self, tokens: u64) {
        self.spent.fetch_add(tokens, Ordering::Relaxed);
        self.reported.store(true, Ordering::Release);
    }

    /// The request reached the model: if its usage never arrives, the estimate stays taken.
    pub fn mark_delivered(&self) {
        self.delivered.store(true, Ordering::Release);
    }

    pub fn tokens(&self) -> u32 {
        self.tokens
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let spent = if self.reported.load(Ordering::Acquire) {
            u32::try_from(self.spent.load(Ordering::Relaxed)).unwrap_or(u32::MAX)
        } else if self.delivered.load(Ordering::Acquire) {
            return;
        } else {
            0
        };
        if self.limits.tpm.is_none() || spent == self.tokens {
            return;
        }
        match &self.granted {
            Granted::Local(pair) => pair.settle_tokens(self.tokens, spent),
            Granted::Redis(redis, key_prefix) => {
                redis.settle_tokens(key_prefix.clone(), self.limits, self.tokens, spent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limits(rpm: u32, tpm: u32) -> Limits {
        Limits {
            rpm: NonZeroU32::new(rpm),
            tpm: NonZeroU32::new(tpm),
        }
    }

    #[actix_rt::test]
    async fn a_request_takes_both_limits_or_neither() {
        let meter = Meter::local(limits(2, 1000));
        let _a = meter.admit(1, 400).await.unwrap();
        let _b = meter.admit(1, 400).await.unwrap();
        // rpm is spent: the tokens this third request reserved first are given back.
        assert!(matches!(meter.admit(1, 100).await, Err(Refusal::Wait(_))));
        let left = meter.remaining().await;
        assert_eq!((left.rpm, left.tpm), (Some(0), Some(200)));
    }

    #[actix_rt::test]
    async fn unsettled_reservations_return_their_tokens_unless_kept() {
        let meter = Meter::local(limits(100, 1000));
        drop(meter.admit(1, 300).await.unwrap());
        assert_eq!(meter.remaining().await.tpm, Some(1000));
        let kept = meter.admit(1, 300).await.unwrap();
        kept.mark_delivered();
        drop(kept);
        assert_eq!(meter.remaining().await.tpm, Some(700));
        let settled = meter.admit(1, 300).await.unwrap();
        settled.mark_delivered();
        settled.record_spent(30);
        settled.record_spent(20);
        drop(settled);
        assert_eq!(meter.remaining().await.tpm, Some(650));
    }

    #[actix_rt::test]
    async fn a_request_takes_one_cell_per_upstream_call() {
        let meter = Meter::local(limits(5, 0));
        let _calls = meter.admit(3, 0).await.unwrap();
        assert_eq!(meter.remaining().await.rpm, Some(2));
        assert!(matches!(meter.admit(3, 0).await, Err(Refusal::Wait(_))));
        assert_eq!(
            meter.admit(6, 0).await.err(),
            Some(Refusal::TooLarge {
                unit: Unit::Requests,
                cap: 5,
                requested: 6
            })
        );
    }

    #[actix_rt::test]
    async fn a_reservation_over_the_quota_is_refused_for_good() {
        let meter = Meter::local(limits(0, 1000));
        assert_eq!(
            meter.admit(1, 1001).await.err(),
            Some(Refusal::TooLarge {
                unit: Unit::Tokens,
                cap: 1000,
                requested: 1001
            })
        );
    }
}
