//! Per-consumer limits. A consumer's meter is created on its first authenticated request (so an
//! unknown or refused key never creates limiter state) and dropped again once it has refilled,
//! the way governor's keyed limiters are pruned with `retain_recent`.
//!
//! Governor's keyed state stores cannot give tokens back, and a token reservation must settle
//! against real usage, so the keyed map here holds this crate's settleable meters instead.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;

use super::{Backend, Meter};
use crate::config::{Consumer, Limits};

/// How often idle meters are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

pub struct ConsumerLimits {
    backend: Backend,
    /// Only consumers with limits appear here.
    limits: HashMap<Arc<str>, Limits>,
    meters: DashMap<Arc<str>, Arc<Meter>>,
}

impl ConsumerLimits {
    /// Meters of `previous` whose consumer kept its limits (and store) carry over a reload.
    pub fn start(consumers: &[Consumer], backend: Backend, previous: Option<&Self>) -> Arc<Self> {
        let limits: HashMap<Arc<str>, Limits> = consumers
            .iter()
            .filter(|c| c.limits != Limits::default())
            .map(|c| (Arc::from(c.name.as_str()), c.limits))
            .collect();
        let meters = DashMap::new();
        if let Some(previous) = previous.filter(|p| p.backend.same_store(&backend)) {
            for entry in &previous.meters {
                if limits.get(entry.key()) == Some(&entry.value().limits()) {
                    meters.insert(Arc::clone(entry.key()), Arc::clone(entry.value()));
                }
            }
        }
        let this = Arc::new(Self {
            backend,
            limits,
            meters,
        });
        if !this.limits.is_empty() {
            actix_rt::spawn(prune_while_alive(Arc::downgrade(&this)));
        }
        this
    }

    /// The meter of an authenticated consumer; `None` if it has no limits.
    pub fn meter(&self, consumer: &Arc<str>) -> Option<Arc<Meter>> {
        if let Some(meter) = self.meters.get(consumer) {
            return Some(Arc::clone(meter.value()));
        }
        let limits = *self.limits.get(consumer)?;
        let fresh = self.backend.consumer_meter(limits, consumer)?;
        // Two first requests may race: both use whichever meter was inserted first.
        let meter = self.meters.entry(Arc::clone(consumer)).or_insert(fresh);
        Some(Arc::clone(meter.value()))
    }

    /// Drops meters that are back to their whole quota and not in use.
    pub fn prune(&self) {
        self.meters
            .retain(|_, meter| Arc::strong_count(meter) > 1 || !meter.is_full());
        self.meters.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.meters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meters.is_empty()
    }
}

async fn prune_while_alive(limits: Weak<ConsumerLimits>) {
    loop {
        tokio::time::sleep(PRUNE_EVERY).await;
        let Some(limits) = limits.upgrade() else {
            return;
        };
        limits.prune();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::num::NonZeroU32;

    fn consumer(name: &str, rpm: Option<u32>) -> Consumer {
        Consumer {
            name: name.to_owned(),
            api_key_sha256: Some([0; 32]),
            aws: None,
            limits: Limits {
                rpm: rpm.and_then(NonZeroU32::new),
                tpm: None,
            },
        }
    }

    #[actix_rt::test]
    async fn meters_exist_only_for_limited_consumers_that_called() {
        let limits = ConsumerLimits::start(
            &[consumer("a", Some(2)), consumer("free", None)],
            Backend::Local,
            None,
        );
        assert!(limits.is_empty());
        assert!(limits.meter(&Arc::from("free")).is_none());
        assert!(limits.meter(&Arc::from("stranger")).is_none());
        assert!(
            limits.is_empty(),
            "no state for unknown or unlimited consumers"
        );
        let a = limits.meter(&Arc::from("a")).unwrap();
        assert_eq!(limits.len(), 1);
        let held = a.admit(1, 0).await.unwrap();
        drop(a);
        limits.prune();
        assert_eq!(limits.len(), 1, "a meter with a spent cell is kept");
        drop(held);
    }

    #[actix_rt::test]
    async fn a_reload_keeps_the_state_of_unchanged_consumers() {
        let first = ConsumerLimits::start(&[consumer("a", Some(1))], Backend::Local, None);
        let _spent = first
            .meter(&Arc::from("a"))
            .unwrap()
            .admit(1, 0)
            .await
            .unwrap();
        let second = ConsumerLimits::start(&[consumer("a", Some(1))], Backend::Local, Some(&first));
        assert!(
            second
                .meter(&Arc::from("a"))
                .unwrap()
                .admit(1, 0)
                .await
                .is_err()
        );
        let third = ConsumerLimits::start(&[consumer("a", Some(5))], Backend::Local, Some(&first));
        assert!(
            third
                .meter(&Arc::from("a"))
                .unwrap()
                .admit(1, 0)
                .await
                .is_ok()
        );
    }
}
