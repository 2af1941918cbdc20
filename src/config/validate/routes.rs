//! `routes` and their `balancer`: names, route types, Kong balancer settings.

use std::collections::HashMap;
use std::num::NonZeroU32;

use serde_yaml_ng::Value;

use super::checks::*;
use super::targets::targets;
use crate::config::de::{self, field, index};
use crate::config::defaults::*;
use crate::config::error::ConfigProblem;
use crate::config::model::*;
use crate::config::raw::*;

const LATENCY_STRATEGIES: [(&str, LatencyStrategy); 2] = [
    ("tpot", LatencyStrategy::Tpot),
    ("e2e", LatencyStrategy::E2e),
];
const TOKENS_COUNT_STRATEGIES: [(&str, TokensCountStrategy); 4] = [
    ("total-tokens", TokensCountStrategy::TotalTokens),
    ("prompt-tokens", TokensCountStrategy::PromptTokens),
    ("completion-tokens", TokensCountStrategy::CompletionTokens),
    ("cost", TokensCountStrategy::Cost),
];

pub(super) fn routes(value: Value, problems: &mut Vec<ConfigProblem>) -> Option<Vec<Route>> {
    let items = de::deserialize::<Vec<Value>>(value, "routes", problems)?;
    if items.is_empty() {
        problems.push(ConfigProblem::new("routes", "must list at least one route"));
        return None;
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    // The route types a gateway serves with one route at most, and where each was first seen.
    let mut singletons: HashMap<&'static str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let path = index("routes", i);
        // Read the name and type before validating the rest, so a duplicate is reported even
        // when the route has other problems too.
        let name = item.get("name").and_then(Value::as_str).map(str::to_owned);
        let single = item
            .get("route_type")
            .and_then(Value::as_str)
            .and_then(|t| {
                [RouteType::Guardrail, RouteType::Agent]
                    .into_iter()
                    .find(|s| s.as_str() == t)
            });
        if let Some(single) = single {
            if let Some(first) = singletons.get(single.as_str()) {
                problems.push(ConfigProblem::new(
                    field(&path, "route_type"),
                    format!(
                        "only one route may have route_type {} (also routes[{first}])",
                        single.as_str()
                    ),
                ));
            } else {
                singletons.insert(single.as_str(), i);
            }
        }
        let route = route(item, &path, problems);
        if let Some(name) = name {
            if let Some(first) = names.get(&name) {
                problems.push(ConfigProblem::new(
                    field(&path, "name"),
                    format!("duplicate route name {name:?} (also routes[{first}])"),
                ));
            } else {
                names.insert(name, i);
            }
        }
        out.push(route);
    }
    out.into_iter().collect()
}

fn route(value: Value, path: &str, problems: &mut Vec<ConfigProblem>) -> Option<Route> {
    let mut map = match value {
        Value::Mapping(map) => map,
        other => {
            problems.push(ConfigProblem::new(
                path,
                format!("must be a mapping, got {}", de::kind(&other)),
            ));
            return None;
        }
    };
    // Balancer and targets are taken apart so their problems are reported alongside the route's.
    let balancer_value = de::take(&mut map, "balancer");
    let targets_value = de::take(&mut map, "targets");
    let raw = de::deserialize::<RawRoute>(Value::Mapping(map), path, problems);

    let (name, route_type) = match raw {
        Some(raw) => {
            let name = name(
                raw.name,
                "route",
                path,
                problems,
                |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-'),
                "letters, digits, _ . : / -",
            );
            let route_type = one_of(
                raw.route_type.as_deref().unwrap_or(DEFAULT_ROUTE_TYPE),
                "route type",
                &RouteType::ALL.map(|t| (t.as_str(), t)),
                &field(path, "route_type"),
                problems,
            );
            (name, route_type)
        }
        None => (None, None),
    };

    let balancer_path = field(path, "balancer");
    let balancer = match balancer_value {
        None => balancer(RawBalancer::default(), &balancer_path, problems),
        Some(v) => de::deserialize::<Option<RawBalancer>>(v, &balancer_path, problems)
            .and_then(|raw| balancer(raw.unwrap_or_default(), &balancer_path, problems)),
    };

    // An unknown type is reported above; its targets are checked as the default type's.
    let targets = targets(
        targets_value,
        route_type.unwrap_or(RouteType::Chat),
        &field(path, "targets"),
        problems,
    );

    Some(Route {
        name: name?,
        route_type: route_type?,
        balancer: balancer?,
        targets: targets?,
    })
}

fn balancer(
    raw: RawBalancer,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<BalancerConfig> {
    let algorithm = one_of(
        raw.algorithm.as_deref().unwrap_or(DEFAULT_ALGORITHM),
        "algorithm",
        &Algorithm::ALL.map(|a| (a.as_str(), a)),
        &field(path, "algorithm"),
        problems,
    );
    let latency_strategy = one_of(
        raw.latency_strategy
            .as_deref()
            .unwrap_or(DEFAULT_LATENCY_STRATEGY),
        "latency strategy",
        &LATENCY_STRATEGIES,
        &field(path, "latency_strategy"),
        problems,
    );
    let tokens_count_strategy = one_of(
        raw.tokens_count_strategy
            .as_deref()
            .unwrap_or(DEFAULT_TOKENS_COUNT_STRATEGY),
        "tokens count strategy",
        &TOKENS_COUNT_STRATEGIES,
        &field(path, "tokens_count_strategy"),
        problems,
    );
    let header = raw
        .hash_on_header
        .as_deref()
        .unwrap_or(DEFAULT_HASH_ON_HEADER);
    let hash_on_header = match http::HeaderName::from_bytes(header.as_bytes()) {
        // HeaderName lower-cases; requests are matched on that form.
        Ok(name) => Some(name.as_str().to_owned()),
        Err(_) => {
            problems.push(ConfigProblem::new(
                field(path, "hash_on_header"),
                format!("invalid HTTP header name {header:?}"),
            ));
            None
        }
    };
    let slots = match raw.slots {
        None => NonZeroU32::new(DEFAULT_SLOTS),
        Some(v) => in_range(v, 10, 65_536, &field(path, "slots"), problems)
            .and_then(|v| u32::try_from(v).ok())
            .and_then(NonZeroU32::new),
    };
    let retries = match raw.retries {
        None => Some(DEFAULT_RETRIES),
        Some(v) => in_range(v, 0, 32_767, &field(path, "retries"), problems)
            .and_then(|v| u32::try_from(v).ok()),
    };
    let failover_criteria = match raw.failover_criteria {
        None => DEFAULT_FAILOVER_CRITERIA
            .iter()
            .map(|name| {
                FailoverCriterion::ALL
                    .into_iter()
                    .find(|c| c.as_str() == *name)
            })
            .collect::<Option<FailoverCriteria>>(),
        Some(list) => {
            let table = FailoverCriterion::ALL.map(|c| (c.as_str(), c));
            let parsed: Vec<_> = list
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    one_of(
                        name,
                        "failover criterion",
                        &table,
                        &index(&field(path, "failover_criteria"), i),
                        problems,
                    )
                })
                .collect();
            parsed.into_iter().collect::<Option<FailoverCriteria>>()
        }
    };
    let connect_timeout = duration(
        raw.connect_timeout,
        DEFAULT_CONNECT_TIMEOUT,
        true,
        &field(path, "connect_timeout"),
        problems,
    );
    let read_timeout = duration(
        raw.read_timeout,
        DEFAULT_READ_TIMEOUT,
        true,
        &field(path, "read_timeout"),
        problems,
    );
    let write_timeout = duration(
        raw.write_timeout,
        DEFAULT_WRITE_TIMEOUT,
        true,
        &field(path, "write_timeout"),
        problems,
    );
    let max_fails = match raw.max_fails {
        None => Some(DEFAULT_MAX_FAILS),
        Some(v) => at_least(v, 0, u32::MAX.into(), &field(path, "max_fails"), problems)
            .and_then(|v| u32::try_from(v).ok()),
    };
    let fail_timeout = duration(
        raw.fail_timeout,
        DEFAULT_FAIL_TIMEOUT,
        true,
        &field(path, "fail_timeout"),
        problems,
    );
    Some(BalancerConfig {
        algorithm: algorithm?,
        latency_strategy: latency_strategy?,
        tokens_count_strategy: tokens_count_strategy?,
        hash_on_header: Some(hash_on_header?),
        retries: retries?,
        failover_criteria: failover_criteria?,
        connect_timeout: connect_timeout?,
        read_timeout: read_timeout?,
        write_timeout: write_timeout?,
        max_fails: max_fails?,
        fail_timeout: fail_timeout?,
        slots: slots?,
    })
}
