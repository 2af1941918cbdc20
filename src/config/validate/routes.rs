//! `routes` and their `balancer`: names, route types, Kong balancer settings.

use std::collections::HashMap;
use std::num::NonZeroU32;

use serde_yaml_ng::Value;

use super::checks::*;
use super::targets::targets;
use crate::config::EmbeddingFamily;
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
    claims(&out, problems);
    out.into_iter().collect()
}

/// Characters of a route name or alias: those of model ids and inference-profile ARNs.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-')
}

const NAME_CHARS: &str = "letters, digits, _ . : / -";

/// Every name a client may send as its model (route name, alias, target model id) must select
/// one route; a name two routes claim would serve one of them silently.
fn claims(routes: &[Option<Route>], problems: &mut Vec<ConfigProblem>) {
    let mut owners: HashMap<&str, (usize, String)> = HashMap::new();
    // Route names first (their duplicates are reported already), so a clash is reported at the
    // alias or model id, naming the route it collides with.
    for (i, route) in routes.iter().enumerate() {
        if let Some(route) = route {
            owners
                .entry(route.name.as_str())
                .or_insert_with(|| (i, field(&index("routes", i), "name")));
        }
    }
    for (i, route) in routes.iter().enumerate() {
        let Some(route) = route else { continue };
        let path = index("routes", i);
        let aliases = route
            .model_aliases
            .iter()
            .enumerate()
            .map(|(j, alias)| (alias.as_str(), index(&field(&path, "model_aliases"), j)));
        let model_ids = route.targets.iter().enumerate().filter_map(|(k, target)| {
            Some((
                target.model_id.as_deref()?,
                field(&index(&field(&path, "targets"), k), "model.name"),
            ))
        });
        for (claimed, claim_path) in aliases.chain(model_ids) {
            match owners.get(claimed) {
                Some((owner, first)) if *owner != i => problems.push(ConfigProblem::new(
                    claim_path,
                    format!(
                        "{claimed:?} is already claimed by {first}; a route name, model alias or \
                         model id must select one route"
                    ),
                )),
                Some(_) => {}
                None => {
                    owners.insert(claimed, (i, claim_path));
                }
            }
        }
    }
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

    let (name, route_type, model_aliases) = match raw {
        Some(raw) => {
            let name = name(raw.name, "route", path, problems, name_char, NAME_CHARS);
            let model_aliases = model_aliases(raw.model_aliases, path, problems);
            let route_type = one_of(
                raw.route_type.as_deref().unwrap_or(DEFAULT_ROUTE_TYPE),
                "route type",
                &RouteType::ALL.map(|t| (t.as_str(), t)),
                &field(path, "route_type"),
                problems,
            );
            (name, route_type, model_aliases)
        }
        None => (None, None, None),
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
    if let (Some(RouteType::Embeddings), Some(targets)) = (route_type, &targets) {
        one_embedding_family(targets, &field(path, "targets"), problems);
    }

    Some(Route {
        name: name?,
        route_type: route_type?,
        model_aliases: model_aliases?,
        balancer: balancer?,
        targets: targets?,
    })
}

/// An embeddings route's targets must be models the gateway can drive, all of one family: the
/// request is translated into that family's bodies before a target is picked (Titan makes one
/// call per input, Cohere one per 96), and vectors of different models are not comparable. OpenAI
/// and Azure targets take the OpenAI body as it is, so they are a family of their own.
fn one_embedding_family(targets: &[Target], path: &str, problems: &mut Vec<ConfigProblem>) {
    let bedrock = |t: &Target| t.provider == ProviderOptions::Bedrock;
    if let Some(other) = targets.iter().position(|t| !bedrock(t))
        && let Some(k) = targets.iter().position(bedrock)
    {
        problems.push(ConfigProblem::new(
            field(&index(path, other), "model.provider"),
            format!(
                "is {:?} but {} is \"bedrock\"; an embeddings route serves one family (request \
                 bodies and vectors differ), so give each its own route",
                targets[other].provider.provider().as_str(),
                index(path, k),
            ),
        ));
        return;
    }
    one_openai_embedding_model(targets, path, problems);
    let mut first: Option<(EmbeddingFamily, usize)> = None;
    for (k, target) in targets.iter().enumerate().filter(|(_, t)| bedrock(t)) {
        let at = field(&index(path, k), "model.name");
        let model_id = target.model_id.as_deref().unwrap_or_default();
        match (EmbeddingFamily::from_model_id(model_id), first) {
            (None, _) => problems.push(ConfigProblem::new(
                at,
                format!(
                    "{model_id:?} is not a Titan or Cohere text embedding model, which a {} route needs",
                    RouteType::Embeddings.as_str()
                ),
            )),
            (Some(family), None) => first = Some((family, k)),
            (Some(family), Some((expected, j))) if family != expected => {
                problems.push(ConfigProblem::new(
                    at,
                    format!(
                        "is a {} model but {} is {}; an embeddings route serves one family \
                         (request bodies and vectors differ), so give each its own route",
                        family.as_str(),
                        index(path, j),
                        expected.as_str()
                    ),
                ));
            }
            (Some(_), Some(_)) => {}
        }
    }
}

/// OpenAI and Azure targets name their embedding model (Azure's `name` is the deployment's model):
/// two models answer in different vector spaces, often of different dimensions, so which one a
/// request reached would show in its vectors.
fn one_openai_embedding_model(targets: &[Target], path: &str, problems: &mut Vec<ConfigProblem>) {
    let mut named = targets
        .iter()
        .enumerate()
        .filter(|(_, t)| t.provider != ProviderOptions::Bedrock);
    let Some((j, first)) = named.next() else {
        return;
    };
    for (k, target) in named.filter(|(_, t)| t.model_id != first.model_id) {
        problems.push(ConfigProblem::new(
            field(&index(path, k), "model.name"),
            format!(
                "is {:?} but {} is {:?}; an embeddings route serves one model (vectors of \
                 different models are not comparable), so give each its own route",
                target.model_id.as_deref().unwrap_or_default(),
                index(path, j),
                first.model_id.as_deref().unwrap_or_default(),
            ),
        ));
    }
}

fn model_aliases(
    raw: Option<Vec<String>>,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Vec<String>> {
    let list_path = field(path, "model_aliases");
    let checked: Vec<Option<String>> = raw
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(j, alias)| {
            let at = index(&list_path, j);
            identifier(alias, "model alias", &at, problems, name_char, NAME_CHARS)
        })
        .collect();
    checked.into_iter().collect()
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
    let session_affinity = session_affinity(&raw, hash_on_header.as_deref(), path, problems);
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
        session_affinity: session_affinity?,
    })
}

/// Affinity is on unless `session_affinity_ttl` is 0. The route's `hash_on_header` names
/// sessions too (ahead of Claude Code's header), unless it is Kong's default: Kong gives every
/// request its own value of that one, so it would only fill the table.
fn session_affinity(
    raw: &RawBalancer,
    hash_on_header: Option<&str>,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Option<SessionAffinity>> {
    let ttl = duration(
        raw.session_affinity_ttl.clone(),
        DEFAULT_SESSION_AFFINITY_TTL,
        false,
        &field(path, "session_affinity_ttl"),
        problems,
    );
    let max_sessions = match raw.session_affinity_max_sessions {
        None => NonZeroU32::new(DEFAULT_SESSION_AFFINITY_MAX_SESSIONS),
        Some(v) => in_range(
            v,
            1,
            10_000_000,
            &field(path, "session_affinity_max_sessions"),
            problems,
        )
        .and_then(|v| u32::try_from(v).ok())
        .and_then(NonZeroU32::new),
    };
    let (ttl, max_sessions) = (ttl?, max_sessions?);
    if ttl.is_zero() {
        return Some(None);
    }
    let mut headers: Vec<String> = hash_on_header
        .filter(|h| !h.eq_ignore_ascii_case(DEFAULT_HASH_ON_HEADER))
        .map(str::to_owned)
        .into_iter()
        .collect();
    if !headers.iter().any(|h| h == CLAUDE_CODE_SESSION_HEADER) {
        headers.push(CLAUDE_CODE_SESSION_HEADER.to_owned());
    }
    Some(Some(SessionAffinity {
        headers,
        ttl,
        max_sessions,
    }))
}
