//! The running gateway built from one validated config: routes, their balancers and targets, and
//! the lookups the request path needs.

use std::collections::HashMap;
use std::sync::Arc;

use crate::balance::BalancerHandle;
use crate::config::{BalancerConfig, Config, RouteType};
use crate::target::TargetRuntime;

pub struct RouteRuntime {
    pub name: String,
    pub route_type: RouteType,
    pub balancer_config: BalancerConfig,
    pub balancer: BalancerHandle,
}

pub struct Gateway {
    pub config: Arc<Config>,
    routes: Vec<RouteRuntime>,
    by_name: HashMap<String, usize>,
    /// Any target's own model id also names its route.
    by_model: HashMap<String, usize>,
}

impl Gateway {
    /// Starts the actors of every route and target; must run inside an actix system.
    pub fn start(config: Config) -> Result<Self, String> {
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut by_name = HashMap::new();
        let mut by_model = HashMap::new();
        for (index, route) in config.routes.iter().enumerate() {
            let targets: Vec<Arc<TargetRuntime>> = route
                .targets
                .iter()
                .map(|t| TargetRuntime::start(t.clone(), &route.balancer))
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
            });
        }
        Ok(Self {
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
