//! The count of requests in flight, streams included until their last byte: admission caps it,
//! and the drain waits for it to reach zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts requests in flight, streams included until their last byte.
#[derive(Debug, Default)]
pub struct InFlight(Arc<AtomicUsize>);

pub struct Permit(Arc<AtomicUsize>);

impl InFlight {
    /// A permit, or `None` when `cap` requests are already in flight.
    pub fn try_enter(&self, cap: Option<usize>) -> Option<Permit> {
        let previous = self.0.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(Arc::clone(&self.0));
        match cap {
            Some(cap) if previous >= cap => None, // dropping the permit undoes the increment
            _ => Some(permit),
        }
    }

    pub fn current(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_admits_exactly_cap_and_recovers() {
        let in_flight = InFlight::default();
        let a = in_flight.try_enter(Some(2));
        let b = in_flight.try_enter(Some(2));
        assert!(a.is_some() && b.is_some());
        assert!(in_flight.try_enter(Some(2)).is_none());
        assert_eq!(in_flight.current(), 2);
        drop(a);
        assert!(in_flight.try_enter(Some(2)).is_some());
        assert!(in_flight.try_enter(None).is_some());
    }
}
