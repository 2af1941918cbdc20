//! Picking an admitted target for one request: the session's own target while it is ready, else
//! the route's strategy among targets not yet tried (pinned to a model id when the client named
//! one), else, for a first attempt, the least-bad target; then the target's own limits. A target
//! at its limit or unable to take the request is skipped without spending an attempt.

use std::sync::Arc;

use bytes::Bytes;

use super::forward::{PerTarget, ProxyRequest};
use super::operation::Operation;
use crate::backend::{Health, TargetRuntime, TargetState};
use crate::balance::Roster;
use crate::balance::affinity::Session;
use crate::clock;
use crate::error::{GatewayError, LimitScope};
use crate::gateway::RouteRuntime;
use crate::limits::estimate::{BodyTokens, DEFAULT_MAX_TOKENS};
use crate::limits::{self, Refusal, Reservation};
use crate::metrics;

/// Refuses a request no target it may go to (pinned to `pinned_model`, if any) can take, with the
/// refusal of the roster's first: told before the consumer's quota admits it, such a body costs
/// the consumer none of its requests. The check stops at the first target that takes it.
pub(crate) fn some_target_takes(
    roster: &Roster,
    pinned_model: Option<&str>,
    shape: &dyn PerTarget,
) -> Result<(), GatewayError> {
    let mut first_refusal = None;
    let candidates = roster.untried(pinned_model);
    for (target, _) in roster
        .targets
        .iter()
        .zip(candidates)
        .filter(|(_, out)| !out)
    {
        match shape.prepare(&target.config) {
            Ok(_) => return Ok(()),
            Err(why) => {
                first_refusal.get_or_insert(why);
            }
        }
    }
    first_refusal.map_or(Ok(()), Err)
}

/// A target that will take the request, with its limit reservation and the request's shape for it.
pub(crate) struct Picked {
    pub index: usize,
    pub reservation: Option<Arc<Reservation>>,
    pub shaped: (Operation, Bytes),
}

/// One request's way through its route's targets: which were tried, and why those that were
/// passed over could not take it.
pub(crate) struct Picker<'a> {
    route: &'a RouteRuntime,
    roster: &'a Roster,
    request: &'a ProxyRequest,
    session: Session<'a>,
    tried: Vec<bool>,
    /// The most hopeful refusal by a target's limits: the soonest wait, else the largest cap.
    refused: Option<Refusal>,
    /// Why the first target passed over could not take this request at all (on a priority
    /// route, the preferred one's reason), told the client if no target could.
    unservable: Option<GatewayError>,
}

impl<'a> Picker<'a> {
    pub fn new(route: &'a RouteRuntime, roster: &'a Roster, request: &'a ProxyRequest) -> Self {
        Self {
            route,
            roster,
            request,
            session: route.balancer.session(
                request.session.as_deref(),
                request.pinned_model.as_deref(),
                clock::now_ms(),
            ),
            tried: roster.untried(request.pinned_model.as_deref()),
            refused: None,
            unservable: None,
        }
    }

    /// Every target has had its try or cannot take the request: nothing to spend a retry or a
    /// backoff on. A target found unable to take it counts as tried from now on.
    pub fn exhausted(&mut self) -> bool {
        for index in 0..self.tried.len() {
            if self.tried[index] {
                continue;
            }
            match self.request.prepare(&self.roster.targets[index].config) {
                Ok(_) => return false,
                Err(why) => {
                    self.tried[index] = true;
                    self.unservable.get_or_insert(why);
                }
            }
        }
        true
    }

    /// The next target to try, admitted by its limits. `first`: no attempt has been made yet, so
    /// with nothing ready the least-bad target is tried rather than none.
    pub async fn next(&mut self, first: bool) -> Option<Picked> {
        let hash_key = self.request.hash_key.as_deref().map(str::as_bytes);
        let pinned = self.request.pinned_model.as_deref();
        loop {
            let now = clock::now_ms();
            // The session's own target first, while it is ready: its prompt cache is there. Both
            // admit a target as the strategy does, which may claim its half-open trial.
            let admitted = self
                .session
                .target_ready(&self.tried, now)
                .or_else(|| self.roster.pick(pinned, &self.tried, now, hash_key));
            let (index, claim) = match admitted {
                Some(index) => (index, TrialClaim::of(&self.roster.targets[index].state)),
                // A forced pick claims nothing, so it must not give back another request's trial.
                None => (self.least_bad(first)?, TrialClaim::none()),
            };
            self.tried[index] = true;
            let target = &self.roster.targets[index];
            let shaped = match self.request.prepare(&target.config) {
                Ok(shaped) => shaped,
                Err(why) => {
                    tracing::debug!(target_id = %target.label, reason = %why, "target cannot take this request; passed over");
                    self.unservable.get_or_insert(why);
                    continue;
                }
            };
            match admit_target(target, self.request.tokens).await {
                Ok(reservation) => {
                    claim.keep();
                    return Some(Picked {
                        index,
                        reservation,
                        shaped,
                    });
                }
                Err(refusal) => {
                    metrics::rate_limited("target");
                    tracing::debug!(target_id = %target.label, ?refusal, "target at its limit");
                    self.refused = Some(self.refused.map_or(refusal, |r| r.sooner(refusal)));
                }
            }
        }
    }

    /// Never fail a request without trying: with nothing ready, take the least-bad target. Not
    /// when targets are only at their limits: that is a 429, not an outage.
    fn least_bad(&self, first: bool) -> Option<usize> {
        let forced = (first && self.refused.is_none())
            .then(|| self.roster.least_bad(&self.tried))
            .flatten();
        if forced.is_some() {
            metrics::forced_pick(&self.route.name);
            tracing::warn!(route = %self.route.name, "no target ready; trying the least-bad one");
        }
        forced
    }

    /// The session now lives on `target`, which served it.
    pub fn served_by(&self, target: &Arc<TargetRuntime>) {
        self.session.served_by(target, clock::now_ms());
    }

    /// Why no target was tried: every one was at its limit (a 429), could not take the request, or
    /// none was there.
    pub fn nothing_tried(self) -> GatewayError {
        match (self.refused, self.unservable) {
            (Some(refusal), _) => limits::refused(LimitScope::Targets, refusal),
            (None, Some(why)) => why,
            (None, None) => GatewayError::NoTarget {
                route: self.route.name.clone(),
            },
        }
    }
}

/// A half-open trial this request's pick claimed. It is handed back when dropped (the target
/// could not take the request, its limits refused it, or the request itself was dropped while the
/// limits were asked), unless the request goes on to use it.
struct TrialClaim<'t>(Option<&'t TargetState>);

impl<'t> TrialClaim<'t> {
    /// After a pick admitted `target`: a half-open target now is one whose trial this pick won.
    fn of(state: &'t TargetState) -> Self {
        Self((state.health() == Health::HalfOpen).then_some(state))
    }

    fn none() -> Self {
        Self(None)
    }

    /// The request goes on to this target: its lease's outcome ends the trial.
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TrialClaim<'_> {
    fn drop(&mut self) {
        if let Some(state) = self.0 {
            state.release_trial();
        }
    }
}

/// Takes the target's request and token cells for this request, if it has limits.
async fn admit_target(
    target: &TargetRuntime,
    tokens: BodyTokens,
) -> Result<Option<Arc<Reservation>>, Refusal> {
    let Some(meter) = &target.limits else {
        return Ok(None);
    };
    let default_max = target
        .config
        .max_tokens
        .map_or(DEFAULT_MAX_TOKENS, std::num::NonZeroU32::get);
    meter
        .admit(1, tokens.reservation(default_max))
        .await
        .map(|r| Some(Arc::new(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state whose expired open circuit a pick just admitted: this request holds its trial.
    fn claimed() -> TargetState {
        let state = TargetState::default();
        state.set_health(Health::Open, 0);
        state
            .credentials
            .store(Some(Arc::new(aws_credential_types::Credentials::new(
                "AKID", "secret", None, None, "test",
            ))));
        assert!(state.try_admit(0));
        state
    }

    #[test]
    fn an_unused_claim_gives_the_trial_back_and_a_kept_one_does_not() {
        let state = claimed();
        drop(TrialClaim::of(&state));
        assert_eq!(
            state.health(),
            Health::Open,
            "dropped: the next request may try"
        );
        assert!(state.try_admit(0));
        TrialClaim::of(&state).keep();
        assert_eq!(
            state.health(),
            Health::HalfOpen,
            "kept: the lease ends the trial"
        );
    }

    #[test]
    fn a_forced_pick_never_gives_back_another_requests_trial() {
        let state = claimed();
        drop(TrialClaim::none());
        assert_eq!(state.health(), Health::HalfOpen);
    }
}
