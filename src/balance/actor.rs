//! `BalancerActor`: one per route name, alive for as long as the config has that route. It owns the
//! lifecycle of the route's targets across reloads: a reload builds the route's next [`Roster`]
//! (targets that stay are the same `Arc`s, so their breaker, latency history, cooldown,
//! credentials and limit state carry over), the new gateway is swapped in whole, and then the
//! actor is told and stops the targets that left, which ends their credential refreshes.
//!
//! Messages, both sent by `Gateway::hand_over` after a reload's swap: [`HandOver`] (the route's
//! next roster is live) and [`Retire`] (the route left the config).
//!
//! The roster is published with the gateway snapshot rather than by this actor, so a reload is
//! atomic across routes and the request path reads it with no load at all. Readiness is not
//! published: a pick reads each candidate's atomics (always current), where a ready-only roster
//! would lag a mailbox hop behind and rebuild a strategy (a hash ring) on every breaker flap.
//! Periodic per-route work belongs here, as a `run_interval` started in `Actor::started` over
//! `self.roster`: the sweep of the route's session-affinity table, which outlives reloads with
//! the actor.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::affinity::{Session, Sessions};
use super::roster::Roster;
use crate::{clock, metrics};

/// How often expired sessions are forgotten. Reads ignore an expired entry anyway, so this only
/// bounds how long its memory lingers.
const SESSION_SWEEP_EVERY: Duration = Duration::from_secs(10);

pub struct BalancerActor {
    route: String,
    /// The roster requests are picking from now; its targets are the ones this actor keeps alive.
    roster: Arc<Roster>,
    sessions: Arc<Sessions>,
}

impl BalancerActor {
    /// Stops every target of the current roster that `next` does not keep.
    fn stop_leaving(&self, next: &Roster) {
        for target in &self.roster.targets {
            if !next.targets.iter().any(|t| Arc::ptr_eq(t, target)) {
                tracing::info!(route = %self.route, target_id = %target.label, "target left; stopping it");
                target.actor.stop();
            }
        }
    }
}

impl Actor for BalancerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SESSION_SWEEP_EVERY, |actor, _| {
            let held = actor
                .sessions
                .sweep(actor.roster.session_affinity.as_ref(), clock::now_ms());
            metrics::session_affinity_held(&actor.route, held);
        });
    }
}

/// A reload made `0` the route's live roster.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandOver(pub Arc<Roster>);

impl Handler<HandOver> for BalancerActor {
    type Result = ();

    fn handle(&mut self, HandOver(next): HandOver, _ctx: &mut Self::Context) {
        self.stop_leaving(&next);
        self.roster = next;
    }
}

/// A reload removed the route: its targets and this actor stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for BalancerActor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        tracing::info!(route = %self.route, "route removed; stopping its targets");
        for target in &self.roster.targets {
            target.actor.stop();
        }
        metrics::session_affinity_route_removed(&self.route);
        ctx.stop();
    }
}

/// A route's roster for one gateway snapshot, the route's sessions, and the address of its actor.
#[derive(Clone)]
pub struct BalancerHandle {
    addr: Addr<BalancerActor>,
    roster: Arc<Roster>,
    sessions: Arc<Sessions>,
}

impl BalancerHandle {
    /// A new route: starts its actor with the first roster.
    pub fn start(route: String, roster: Roster) -> Self {
        let roster = Arc::new(roster);
        let sessions = Arc::new(Sessions::new(route.clone()));
        let addr = BalancerActor {
            route,
            roster: Arc::clone(&roster),
            sessions: Arc::clone(&sessions),
        }
        .start();
        Self {
            addr,
            roster,
            sessions,
        }
    }

    /// The same route in the next config: the same actor and sessions, with `roster` to hand
    /// over once the next gateway is live.
    pub fn successor(&self, roster: Roster) -> Self {
        Self {
            addr: self.addr.clone(),
            roster: Arc::new(roster),
            sessions: Arc::clone(&self.sessions),
        }
    }

    /// The roster of this snapshot: a plain field read.
    pub fn roster(&self) -> &Arc<Roster> {
        &self.roster
    }

    /// The session named by `key` (the request's session header) for `model` (the model id the
    /// request is pinned to, if any), over this snapshot's roster.
    pub fn session(&self, key: Option<&str>, model: Option<&str>, now_ms: u64) -> Session<'_> {
        self.sessions.session(&self.roster, key, model, now_ms)
    }

    /// Tells the route's actor that this handle's roster is live. Queued past the mailbox bound
    /// (the mailbox only ever holds a few of these), never awaited.
    pub fn hand_over(&self) {
        self.addr.do_send(HandOver(Arc::clone(&self.roster)));
    }

    pub fn retire(&self) {
        self.addr.do_send(Retire);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::backend::TargetRuntime;
    use crate::limits::Backend;
    use std::time::Duration;

    /// Polls (bounded) until `target`'s actor has stopped or `limit` passes; whether it stopped.
    async fn stops_within(target: &TargetRuntime, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while target.actor.is_running() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    #[actix_rt::test]
    async fn a_hand_over_stops_the_targets_that_left_and_a_retire_stops_the_rest() {
        let yaml = r#"
routes:
  - name: r
    targets:
      - { model: { provider: bedrock, name: m, options: { bedrock: { aws_region: us-east-1 } } }, auth: { aws_access_key_id: a, aws_secret_access_key: s } }
      - { model: { provider: bedrock, name: m, options: { bedrock: { aws_region: us-west-2 } } }, auth: { aws_access_key_id: a, aws_secret_access_key: s } }
      - { model: { provider: bedrock, name: m, options: { bedrock: { aws_region: eu-west-1 } } }, auth: { aws_access_key_id: a, aws_secret_access_key: s } }
"#;
        let config = crate::config::parse(yaml, &|_| None).unwrap();
        let route = &config.routes[0];
        let backend = Backend::start(&config.rate_limits, None).unwrap();
        let [a, b, c] = [0, 1, 2]
            .map(|i| TargetRuntime::start(route.targets[i].clone(), &route.balancer, &backend));
        let first = BalancerHandle::start(
            "r".to_owned(),
            Roster::new(vec![Arc::clone(&a), Arc::clone(&b)], &route.balancer),
        );
        let next = first.successor(Roster::new(
            vec![Arc::clone(&b), Arc::clone(&c)],
            &route.balancer,
        ));
        next.hand_over();
        assert!(stops_within(&a, Duration::from_secs(10)).await);
        assert!(b.actor.is_running() && c.actor.is_running());
        // A report to the stopped target is dropped quietly, not an error for the request.
        a.report(crate::backend::Outcome::Failure);

        next.retire();
        assert!(stops_within(&b, Duration::from_secs(10)).await);
        assert!(stops_within(&c, Duration::from_secs(10)).await);
    }
}
