//! The running gateway built from one validated config: routes, their balancers and targets, and
//! the lookups the request path needs.

use std::collections::HashMap;
use std::sync::Arc;

use crate::auth::Authenticator;
use crate::balance::BalancerHandle;
use crate::config::{BalancerConfig, Config, RouteType};
use crate::target::TargetRuntime;
use crate::upstream::retry_budget::RetryBudget;

pub struct RouteRuntime {
    pub name: String,
    pub route_type: RouteType,
    pub balancer_config: BalancerConfig,
    pub balancer: BalancerHandle,
    pub retry_budget: RetryBudget,
}

pub struct Gateway {
    pub config: Arc<Config>,
    /// Built with the config, so a reload rotates keys together with everything else.
    pub auth: Authenticator,
    routes: Vec<RouteRuntime>,
    by_name: HashMap<String, usize>,
    /// Any target's own model id also names its route.
    by_model: HashMap<String, usize>,
}

impl Gateway {
    /// Starts the actors of every route and target; must run inside an actix system. On a reload,
    /// `previous` lends its targets: one that remains (same route, same settings) keeps its
    /// actor, health, cooldown, credentials and latency history.
    pub fn start(config: Config, previous: Option<&Gateway>) -> Result<Self, String> {
        refuse_unenforced(&config)?;
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut by_name = HashMap::new();
        let mut by_model = HashMap::new();
        for (index, route) in config.routes.iter().enumerate() {
            let targets: Vec<Arc<TargetRuntime>> = route
                .targets
                .iter()
                .map(|t| {
                    previous
                        .and_then(|p| p.reusable_target(&route.name, t, &route.balancer))
                        .unwrap_or_else(|| TargetRuntime::start(t.clone(), &route.balancer))
                })
                .collect();
            for target in &route.targets {
                by_model.entry(target.model_id.clone()).or_insert(index);
            }
            by_name.insert(route.name.clone(), index);
            routes.push(RouteRuntime {
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
            routes,
            by_name,
            by_model,
        })
    }

    /// A route by its name, else by one of its targets' model ids.
    pub fn resolve(&self, model: &str) -> Option<&RouteRuntime> {
        self.by_name
            .get(model)
            .or_else(|| self.by_model.get(model))
            .map(|&i| &self.routes[i])
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

/// Settings this build validates but cannot enforce yet. Starting anyway would look protected
/// (a quota) while being open, so the gateway refuses instead.
fn refuse_unenforced(config: &Config) -> Result<(), String> {
    let mut problems = Vec::new();
    if config.rate_limits != crate::config::RateLimitBackend::Local {
        problems.push("rate_limits.backend: redis is not available in this build yet".to_owned());
    }
    for (c, consumer) in config.consumers.iter().enumerate() {
        if consumer.limits != crate::config::Limits::default() {
            problems.push(format!(
                "consumers[{c}].limits: rate limits are not available in this build yet"
            ));
        }
    }
    for (r, route) in config.routes.iter().enumerate() {
        for (t, target) in route.targets.iter().enumerate() {
            if target.limits != crate::config::Limits::default() {
                problems.push(format!(
                    "routes[{r}].targets[{t}].limits: rate limits are not available in this build yet"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
