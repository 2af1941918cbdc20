//! One Bedrock target (region + model): its configuration, shared state and actor.

pub mod actor;
pub mod breaker;
pub mod cooldown;
pub mod ewma;
pub mod outcome;
pub mod state;

use std::sync::Arc;

use crate::aws::credentials::SigV4Credentials;
use crate::aws::sign::{BEDROCK_SERVICE, Signer};
use crate::config::{BalancerConfig, Target};
use crate::limits::{Backend, Meter};
use crate::metrics;
pub use actor::TargetHandle;
pub use outcome::Outcome;
pub use state::{Health, TargetState, UsageSample};

/// Everything the request path needs about a target, built once per config load.
pub struct TargetRuntime {
    pub config: Target,
    /// [`Target::label`]: its `name`, else `region/model`; used in logs, metrics and the
    /// `x-bedrock-balancer-target` header.
    pub label: String,
    /// `host[:port]` of the upstream, as signed and sent.
    pub authority: String,
    /// Signs for the target's region and keeps its derived key between requests.
    pub signer: Signer,
    pub state: Arc<TargetState>,
    pub actor: TargetHandle,
    /// The target's `rpm` / `tpm` (its Bedrock quota) and, with Redis, its shared cooldown;
    /// `None` when there is neither.
    pub limits: Option<Arc<Meter>>,
}

impl TargetRuntime {
    /// Starts the target's actor on the current arbiter.
    pub fn start(config: Target, balancer: &BalancerConfig, backend: &Backend) -> Arc<Self> {
        let label = config.label();
        let sigv4 = SigV4Credentials::of(&config);
        let state = Arc::new(if sigv4.is_some() {
            TargetState::default()
        } else {
            TargetState::without_aws_credentials()
        });
        let limits = backend.target_meter(config.limits, &label);
        let actor = TargetHandle::start(actor::TargetActor::new(
            label.clone(),
            Arc::clone(&state),
            sigv4,
            balancer.max_fails,
            balancer.fail_timeout,
            limits.clone(),
        ));
        let authority = config
            .upstream_url
            .split_once("://")
            .map_or(config.upstream_url.as_str(), |(_, rest)| rest)
            .to_owned();
        let signer = Signer::new(config.region.clone(), BEDROCK_SERVICE);
        Arc::new(Self {
            config,
            label,
            authority,
            signer,
            state,
            actor,
            limits,
        })
    }

    /// The meter, if the target has `rpm` / `tpm` to show (with Redis, a target without limits
    /// still has a meter, for its shared cooldown).
    pub fn quota(&self) -> Option<&Meter> {
        self.limits
            .as_deref()
            .filter(|m| m.limits() != crate::config::Limits::default())
    }

    /// The target's label and provider, as its metrics are labelled.
    pub fn metric_labels(&self) -> metrics::TargetLabels<'_> {
        metrics::TargetLabels {
            target: &self.label,
            provider: self.config.provider.provider().as_str(),
        }
    }

    pub fn report(&self, outcome: Outcome) {
        self.actor.report(outcome);
    }
}

impl std::fmt::Debug for TargetRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetRuntime")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}
