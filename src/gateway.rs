//! The running gateway built from one validated config: routes, their balancers and targets, and
//! the lookups the request path needs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::auth::Authenticator;
use crate::backend::TargetRuntime;
use crate::balance::retry_budget::RetryBudget;
use crate::balance::{BalancerHandle, Roster};
use crate::config::{BalancerConfig, Config, ProviderOptions, RouteType, Service};
use crate::limits::{Backend, ConsumerLimits};

pub struct RouteRuntime {
    pub name: String,
    pub route_type: RouteType,
    pub balancer_config: BalancerConfig,
    pub balancer: BalancerHandle,
    pub retry_budget: RetryBudget,
    /// Some target has a `tpm` limit, so requests need a token estimate.
    pub token_limited: bool,
}

pub struct Gateway {
    pub config: Arc<Config>,
    /// Built with the config, so a reload rotates keys together with everything else.
    pub auth: Authenticator,
    pub backend: Backend,
    pub consumer_limits: Arc<ConsumerLimits>,
    routes: Vec<RouteRuntime>,
    /// Route names alone: what a reload carries state over by (an alias must not match there).
    by_name: HashMap<String, usize>,
    /// Every name a client may send as its model: route names, `model_aliases`, model ids.
    names: HashMap<String, Named>,
    /// The Bedrock Runtime targets of every route by region, with their route's index: what
    /// serves the async-invoke calls that go to a region rather than a model.
    runtime_regions: BTreeMap<String, Vec<(usize, Arc<TargetRuntime>)>>,
}

/// A route, and the model id a request is pinned to when only some of its targets serve it.
type Named = (usize, Option<Arc<str>>);

/// What a client's model name selects.
pub struct Selection<'g> {
    pub route: &'g RouteRuntime,
    /// A model id served by only some of the route's targets: the request goes to those alone.
    pub pinned_model: Option<Arc<str>>,
}

/// A route whose every target serves the request (no model id to pin).
impl<'g> From<&'g RouteRuntime> for Selection<'g> {
    fn from(route: &'g RouteRuntime) -> Self {
        Self {
            route,
            pinned_model: None,
        }
    }
}

impl Gateway {
    /// Starts the actors of every new route and target; must run inside an actix system. On a
    /// reload, `previous` lends its targets: one that remains (same route, same settings, same
    /// limit store) keeps its actor, health, cooldown, credentials, latency history and limit
    /// state. So do consumers whose limits stayed, and the Redis connection if its URL did. Nothing
    /// of `previous` stops until [`Self::hand_over`] is called on it. The config's warnings are
    /// logged each time, so a reload that brings one says so.
    pub fn start(config: Config, previous: Option<&Gateway>) -> Result<Self, String> {
        for warning in crate::config::warnings(&config) {
            tracing::warn!(path = %warning.path, "{}", warning.message);
        }
        let backend = Backend::start(&config.rate_limits, previous.map(|p| &p.backend))?;
        let consumer_limits = ConsumerLimits::start(
            &config.consumers,
            backend.clone(),
            previous.map(|p| p.consumer_limits.as_ref()),
        );
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut by_name = HashMap::new();
        let mut names = HashMap::new();
        let mut runtime_regions: BTreeMap<String, Vec<(usize, Arc<TargetRuntime>)>> =
            BTreeMap::new();
        for (index, route) in config.routes.iter().enumerate() {
            let targets: Vec<Arc<TargetRuntime>> = route
                .targets
                .iter()
                .map(|t| {
                    previous
                        .filter(|p| p.backend.same_store(&backend))
                        .and_then(|p| p.reusable_target(&route.name, t, &route.balancer))
                        .unwrap_or_else(|| {
                            TargetRuntime::start(t.clone(), &route.balancer, &backend)
                        })
                })
                .collect();
            let models: Vec<&String> = route
                .targets
                .iter()
                .filter_map(|t| t.model_id.as_ref())
                .collect();
            let whole_route = models.iter().all(|m| *m == models[0]);
            for model in models {
                let pin = (!whole_route).then(|| Arc::from(model.as_str()));
                names.insert(model.clone(), (index, pin));
            }
            // After the model ids: an alias may be one of them, to spread a client with a fixed
            // model id over the whole route. The config gives each name to one route.
            for name in route.model_aliases.iter().chain([&route.name]) {
                names.insert(name.clone(), (index, None));
            }
            for target in targets.iter().filter(|t| {
                t.config.provider == ProviderOptions::Bedrock
                    && t.config.service == Service::Runtime
            }) {
                runtime_regions
                    .entry(target.config.region.clone())
                    .or_default()
                    .push((index, Arc::clone(target)));
            }
            by_name.insert(route.name.clone(), index);
            let token_limited = targets.iter().any(|t| t.config.limits.tpm.is_some());
            let roster = Roster::new(targets, &route.balancer);
            let balancer = match previous.and_then(|p| p.route(&route.name)) {
                Some(old) => old.balancer.successor(roster),
                None => BalancerHandle::start(route.name.clone(), roster),
            };
            routes.push(RouteRuntime {
                token_limited,
                name: route.name.clone(),
                route_type: route.route_type,
                balancer_config: route.balancer.clone(),
                balancer,
                retry_budget: RetryBudget::default(),
            });
        }
        Ok(Self {
            auth: Authenticator::new(&config.consumers),
            config: Arc::new(config),
            backend,
            consumer_limits,
            routes,
            by_name,
            names,
            runtime_regions,
        })
    }

    /// A model route by its name or one of its `model_aliases` (all its targets), or by a
    /// target's model id (only the targets of that id).
    pub fn resolve(&self, model: &str) -> Option<Selection<'_>> {
        self.names
            .get(model)
            .map(|(i, pin)| Selection {
                route: &self.routes[*i],
                pinned_model: pin.clone(),
            })
            .filter(|s| s.route.route_type.serves_models())
    }

    /// Called on the gateway a reload replaced, once `next` is live: each route's actor takes
    /// over its next roster and stops the targets that left; a route that left stops whole.
    pub fn hand_over(&self, next: &Gateway) {
        for old in &self.routes {
            match next.route(&old.name) {
                Some(route) => route.balancer.hand_over(),
                None => old.balancer.retire(),
            }
        }
    }

    fn route(&self, name: &str) -> Option<&RouteRuntime> {
        self.by_name.get(name).map(|&i| &self.routes[i])
    }

    /// The route of a type the config holds at most once (`bedrock/guardrail`, `bedrock/agent`).
    pub fn route_of_type(&self, route_type: RouteType) -> Option<&RouteRuntime> {
        self.routes.iter().find(|r| r.route_type == route_type)
    }

    /// The Bedrock Runtime targets in `region`, each with its route.
    pub fn runtime_targets_in(
        &self,
        region: &str,
    ) -> impl Iterator<Item = (&RouteRuntime, &Arc<TargetRuntime>)> {
        self.runtime_regions
            .get(region)
            .into_iter()
            .flatten()
            .map(|(i, t)| (&self.routes[*i], t))
    }

    /// Every region some route's Bedrock Runtime targets are in, sorted.
    pub fn runtime_regions(&self) -> impl Iterator<Item = &str> {
        self.runtime_regions.keys().map(String::as_str)
    }

    fn reusable_target(
        &self,
        route: &str,
        target: &crate::config::Target,
        balancer: &BalancerConfig,
    ) -> Option<Arc<TargetRuntime>> {
        let old = self.route(route)?;
        let breaker_same = old.balancer_config.max_fails == balancer.max_fails
            && old.balancer_config.fail_timeout == balancer.fail_timeout;
        if !breaker_same {
            return None;
        }
        old.balancer
            .roster()
            .targets
            .iter()
            .find(|t| t.config == *target)
            .cloned()
    }

    pub fn routes(&self) -> &[RouteRuntime] {
        &self.routes
    }

    /// At least one target of some route could take a request now.
    pub fn any_target_ready(&self, now_ms: u64) -> bool {
        self.routes.iter().any(|r| {
            r.balancer
                .roster()
                .targets
                .iter()
                .any(|t| t.state.is_ready(now_ms))
        })
    }
}
