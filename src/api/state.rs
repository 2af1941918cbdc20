//! State shared by every worker: the current gateway (swappable on reload) and the drain flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use super::admission::InFlight;
use crate::gateway::Gateway;

pub struct AppState {
    gateway: ArcSwap<Gateway>,
    draining: AtomicBool,
    in_flight: InFlight,
}

impl AppState {
    pub fn new(gateway: Gateway) -> Self {
        Self {
            gateway: ArcSwap::from_pointee(gateway),
            draining: AtomicBool::new(false),
            in_flight: InFlight::default(),
        }
    }

    /// The gateway a request runs on from start to end, even if a reload swaps it meanwhile.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.load_full()
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn in_flight(&self) -> &InFlight {
        &self.in_flight
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
