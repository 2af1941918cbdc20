//! The running gateway built from one validated config: routes, their balancers and targets, and
//! the lookups the request path needs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::auth::Authenticator;
use crate::backend::TargetRuntime;
use crate::balance::BalancerHandle;
use crate::balance::retry_budget::RetryBudget;
use crate::config::{BalancerConfig, Config, RouteType, Service};
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
    by_name: HashMap<String, usize>,
    /// Any target's own model id also names its route.
    by_model: HashMap<String, usize>,
    /// The Bedrock Runtime targets of every route by region, with their route's index: what
    /// serves the async-invoke calls that go to a region rather than a model.
    runtime_regions: BTreeMap<String, Vec<(usize, Arc<TargetRuntime>)>>,
}

impl Gateway {
    /// Starts the actors of every route and target; must run inside an actix system. On a reload,
    /// `previous` lends its targets: one that remains (same route, same settings, same limit
    /// store) keeps its actor, health, cooldown, credentials, latency history and limit state.
    /// So do consumers whose limits stayed, and the Redis connection if its URL did.
    pub fn start(config: Config, previous: Option<&Gateway>) -> Result<Self, String> {
        let backend = Backend::start(&config.rate_limits, previous.map(|p| &p.backend))?;
        let consumer_limits = ConsumerLimits::start(
            &config.consumers,
            backend.clone(),
            previous.map(|p| p.consumer_limits.as_ref()),
        );
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut by_name = HashMap::new();
        let mut by_model = HashMap::new();
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
            for model in route.targets.iter().filter_map(|t| t.model_id.as_ref()) {
                by_model.entry(model.clone()).or_insert(index);
            }
            for target in targets
                .iter()
                .filter(|t| t.config.service == Service::Runtime)
            {
                runtime_regions
                    .entry(target.config.region.clone())
                    .or_default()
                    .push((index, Arc::clone(target)));
            }
            by_name.insert(route.name.clone(), index);
            let token_limited = targets.iter().any(|t| t.config.limits.tpm.is_some());
            routes.push(RouteRuntime {
                token_limited,
                name: route.name.clone(),
                route_type: route.route_type,
                balancer_config: route.balancer.clone(),
                balancer: BalancerHandle::start(route.name.clone(), targets, &route.balancer),
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
            by_model,
            runtime_regions,
        })
    }

    /// A model route by its name, else by one of its targets' model ids.
    pub fn resolve(&self, model: &str) -> Option<&RouteRuntime> {
        self.by_name
            .get(model)
            .or_else(|| self.by_model.get(model))
            .map(|&i| &self.routes[i])
            .filter(|r| r.route_type.serves_models())
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
        let old = self.by_name.get(route).map(|&i| &self.routes[i])?;
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
