//! `TargetActor`: owns one target's slow-changing state (circuit breaker, throttle cooldown,
//! credentials) and publishes it to [`TargetState`] atomics. The request path never waits on it:
//! outcomes arrive with `try_send`, credentials are fetched on the actor's own time.
//!
//! Messages: [`Report`] (an attempt's outcome, from the request path's lease) and [`Stop`] (the
//! target left the config, from its route's `BalancerActor`). Stopping drops the actor's pending
//! credential refresh with it. Requests still in flight on a stopped target keep what it last
//! published (credentials, health) and their reports are discarded: the target no longer serves.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use futures_util::FutureExt;

use super::breaker::{Breaker, Transition};
use super::cooldown::Cooldown;
use super::outcome::Outcome;
use super::state::TargetState;
use crate::aws::credentials::{CredentialSource, SigV4Credentials, refresh_after};
use crate::clock;
use crate::limits::Meter;
use crate::metrics;

/// Outcomes from many workers can burst; a full mailbox drops reports rather than block a request.
const MAILBOX_CAPACITY: usize = 4096;
/// Retry a failed credential fetch soon, but not in a tight loop.
const CREDENTIAL_RETRY: Duration = Duration::from_secs(5);

pub struct TargetActor {
    label: String,
    state: Arc<TargetState>,
    breaker: Breaker,
    cooldown: Cooldown,
    credentials: CredentialSourceSlot,
    /// With limits shared through Redis, a throttle rests this target on every replica.
    limits: Option<Arc<Meter>>,
}

/// The source is built asynchronously (the AWS chain probes its providers), so it starts empty.
enum CredentialSourceSlot {
    /// The target is not SigV4-signed (its own key, or none): it never loads AWS credentials.
    Unneeded,
    /// Boxed: what the source is built from is larger than a ready source.
    Pending(Box<SigV4Credentials>),
    Ready(CredentialSource),
}

impl TargetActor {
    pub fn new(
        label: String,
        state: Arc<TargetState>,
        credentials: Option<SigV4Credentials>,
        max_fails: u32,
        fail_timeout: Duration,
        limits: Option<Arc<Meter>>,
    ) -> Self {
        Self {
            label,
            state,
            breaker: Breaker::new(max_fails, clock::as_ms(fail_timeout)),
            cooldown: Cooldown::default(),
            credentials: credentials.map_or(CredentialSourceSlot::Unneeded, |c| {
                CredentialSourceSlot::Pending(Box::new(c))
            }),
            limits,
        }
    }

    fn publish(&self, transition: Option<Transition>) {
        if let Some(t) = transition {
            tracing::info!(target_id = %self.label, state = t.health.as_str(), "circuit changed");
            self.state.set_health(t.health, t.open_until_ms);
        }
    }

    fn refresh_credentials(&mut self, ctx: &mut Context<Self>) {
        let label = self.label.clone();
        let fut = match &self.credentials {
            CredentialSourceSlot::Unneeded => return,
            CredentialSourceSlot::Pending(target) => {
                let target = target.as_ref().clone();
                async move {
                    let source = CredentialSource::for_target(&target).await;
                    let fetched = source.fetch().await;
                    (Some(source), fetched)
                }
                .boxed_local()
            }
            CredentialSourceSlot::Ready(source) => {
                let source = source.clone();
                async move { (None, source.fetch().await) }.boxed_local()
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |(source, fetched), actor, ctx| {
            if let Some(source) = source {
                actor.credentials = CredentialSourceSlot::Ready(source);
            }
            let is_static = matches!(&actor.credentials, CredentialSourceSlot::Ready(s) if s.is_static());
            match fetched {
                Ok(credentials) => {
                    let next = refresh_after(&credentials, SystemTime::now());
                    actor.state.credentials.store(Some(Arc::new(credentials)));
                    if !is_static {
                        ctx.run_later(next, Self::refresh_credentials);
                    }
                }
                Err(error) => {
                    // The message comes from the AWS SDK and names the provider, not secrets.
                    tracing::warn!(target_id = %label, %error, "could not load AWS credentials");
                    ctx.run_later(CREDENTIAL_RETRY, Self::refresh_credentials);
                }
            }
        }));
    }
}

impl Actor for TargetActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        metrics::target_actors(1);
        self.refresh_credentials(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        metrics::target_actors(-1);
        tracing::debug!(target_id = %self.label, "target actor stopped");
    }
}

/// The target left the config: end the actor and its credential refreshes.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for TargetActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Report(pub Outcome);

impl Handler<Report> for TargetActor {
    type Result = ();

    fn handle(&mut self, Report(outcome): Report, _ctx: &mut Self::Context) {
        let now = clock::now_ms();
        let health = self.state.health();
        let transition = match outcome {
            Outcome::Success => {
                self.cooldown.on_success();
                self.state.set_cooldown_until(0);
                self.breaker.on_success(health)
            }
            Outcome::Failure => self.breaker.on_failure(health, now),
            Outcome::Throttled { retry_after } => {
                let rest = self.cooldown.on_throttle(retry_after);
                tracing::info!(target_id = %self.label, cooldown_ms = rest.as_millis() as u64, "throttled; cooling down");
                self.state.set_cooldown_until(clock::deadline_ms(rest));
                if let Some(limits) = &self.limits {
                    limits.share_cooldown(rest);
                }
                // A throttled half-open trial proves the target reachable.
                self.breaker.on_success(health)
            }
            Outcome::Neutral => self.breaker.on_success(health),
            Outcome::Abandoned => self.breaker.on_abandoned_trial(health, now),
        };
        self.publish(transition);
    }
}

/// A typed handle so callers never touch the actor's mailbox directly.
#[derive(Clone)]
pub struct TargetHandle(Addr<TargetActor>);

impl TargetHandle {
    pub fn start(actor: TargetActor) -> Self {
        Self(actor.start())
    }

    /// Never blocks: a full mailbox loses this report, which is logged.
    pub fn report(&self, outcome: Outcome) {
        match self.0.try_send(Report(outcome)) {
            Ok(()) => {}
            Err(SendError::Full(_)) => {
                tracing::warn!("target actor mailbox full; outcome dropped");
            }
            // A reload removed the target while this request ran; its health no longer matters.
            Err(SendError::Closed(_)) => {}
        }
    }

    #[cfg(test)]
    pub fn is_running(&self) -> bool {
        self.0.connected()
    }

    /// Queued past the mailbox bound, so a burst of reports cannot make it miss the stop.
    pub fn stop(&self) {
        self.0.do_send(Stop);
    }
}
