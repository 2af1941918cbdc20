//! `BalancerActor`: one per route. It owns the route's membership and publishes the immutable
//! [`Roster`] the request path reads; requests never pass through its mailbox.

use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;

use super::roster::Roster;
use crate::backend::TargetRuntime;
use crate::config::BalancerConfig;

pub struct BalancerActor {
    route: String,
    roster: Arc<ArcSwap<Roster>>,
}

impl Actor for BalancerActor {
    type Context = Context<Self>;
}

/// Replace the route's membership or algorithm (config reload).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Rebuild {
    pub targets: Vec<Arc<TargetRuntime>>,
    pub balancer: BalancerConfig,
}

impl Handler<Rebuild> for BalancerActor {
    type Result = ();

    fn handle(&mut self, msg: Rebuild, _ctx: &mut Self::Context) {
        tracing::info!(route = %self.route, targets = msg.targets.len(), "roster rebuilt");
        self.roster
            .store(Arc::new(Roster::new(msg.targets, &msg.balancer)));
    }
}

/// Typed access to a route's balancer and its published roster.
#[derive(Clone)]
pub struct BalancerHandle {
    addr: Addr<BalancerActor>,
    roster: Arc<ArcSwap<Roster>>,
}

impl BalancerHandle {
    /// Builds the first roster synchronously, so the route serves as soon as it exists.
    pub fn start(
        route: String,
        targets: Vec<Arc<TargetRuntime>>,
        balancer: &BalancerConfig,
    ) -> Self {
        let roster = Arc::new(ArcSwap::from_pointee(Roster::new(targets, balancer)));
        let addr = BalancerActor {
            route,
            roster: Arc::clone(&roster),
        }
        .start();
        Self { addr, roster }
    }

    /// The current roster: a lock-free load.
    pub fn roster(&self) -> arc_swap::Guard<Arc<Roster>> {
        self.roster.load()
    }

    pub fn rebuild(&self, rebuild: Rebuild) {
        self.addr.do_send(rebuild);
    }
}
