//! State shared by every worker: the current gateway (swappable on reload) and the drain flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use super::in_flight::InFlight;
use crate::config::{Config, ConfigErrors};
use crate::gateway::Gateway;
use crate::shutdown::{AbortSignal, StreamAbort};

/// Reads the config again for a reload (the file, or the demo's text with its simulator URLs).
pub type ConfigLoader = Box<dyn Fn() -> Result<Config, ConfigErrors> + Send + Sync>;

pub struct AppState {
    gateway: ArcSwap<Gateway>,
    loader: Option<ConfigLoader>,
    /// Reloads run one at a time, so two never both build on the same predecessor.
    reloading: Mutex<()>,
    draining: AtomicBool,
    in_flight: InFlight,
    streams: StreamAbort,
}

impl AppState {
    pub fn new(gateway: Gateway, loader: Option<ConfigLoader>) -> Self {
        Self {
            gateway: ArcSwap::from_pointee(gateway),
            loader,
            reloading: Mutex::new(()),
            draining: AtomicBool::new(false),
            in_flight: InFlight::default(),
            streams: StreamAbort::default(),
        }
    }

    /// The gateway a request runs on from start to end, even if a reload swaps it meanwhile.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.load_full()
    }

    /// Validates the new config whole and swaps it in atomically; on any problem the running
    /// config stays. Requests in flight finish on the gateway they started with (they hold an
    /// `Arc` to it), targets that remain keep their state, and targets that left are stopped.
    pub fn reload(&self) -> Result<usize, Vec<String>> {
        let loader = self
            .loader
            .as_ref()
            .ok_or_else(|| vec!["this gateway was not started from a config file".to_owned()])?;
        let config = loader().map_err(|e| {
            e.problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        })?;
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.gateway();
        let next = Arc::new(Gateway::start(config, Some(&current)).map_err(|e| vec![e])?);
        let routes = next.routes().len();
        self.gateway.store(Arc::clone(&next));
        // Still under the lock, so the route actors learn of reloads in the order they happened.
        current.hand_over(&next);
        Ok(routes)
    }

    pub fn abort_signal(&self) -> AbortSignal {
        self.streams.signal()
    }

    /// Ends every running stream with an error record (the last step of a graceful stop).
    pub fn abort_streams(&self) {
        self.streams.fire();
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

/// Logs and counts a reload's result, whatever triggered it.
pub fn log_reload(result: Result<usize, Vec<String>>, trigger: &str) {
    if let Some(metrics) = crate::metrics::metrics() {
        metrics.config_reloaded(result.is_ok());
    }
    match result {
        Ok(routes) => tracing::info!(trigger, routes, "config reloaded"),
        Err(errors) => {
            tracing::error!(trigger, errors = %errors.join("; "), "config reload rejected; the running config stays")
        }
    }
}
