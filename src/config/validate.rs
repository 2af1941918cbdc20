//! Raw config to the validated [`Config`]: applies defaults (`defaults.rs`) and checks every rule,
//! collecting every problem with its path before failing. Sections and list elements are
//! deserialized one by one (`de.rs`) so a structural error in one does not hide the others.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};
use sha2::{Digest, Sha256};

use super::de::{self, ROOT, field, index};
use super::defaults::*;
use super::duration::RawDuration;
use super::error::ConfigProblem;
use super::model::*;
use super::raw::*;

const TOP_LEVEL_FIELDS: [&str; 4] = ["server", "consumers", "rate_limits", "routes"];

const ROUTE_TYPES: [RouteType; 3] = [
    RouteType::Chat,
    RouteType::Completions,
    RouteType::Embeddings,
];
const ALGORITHMS: [Algorithm; 7] = [
    Algorithm::RoundRobin,
    Algorithm::LeastConnections,
    Algorithm::LowestLatency,
    Algorithm::LowestUsage,
    Algorithm::ConsistentHashing,
    Algorithm::Priority,
    Algorithm::P2cEwma,
];
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
const BACKENDS: [&str; 2] = ["local", "redis"];

/// Validates a parsed document. Returns a config only when no problem was found.
pub fn config(doc: Value, problems: &mut Vec<ConfigProblem>) -> Option<Config> {
    let mut top = match doc {
        Value::Mapping(map) => map,
        Value::Null => Mapping::new(),
        other => {
            problems.push(ConfigProblem::new(
                ROOT,
                format!("must be a mapping, got {}", de::kind(&other)),
            ));
            return None;
        }
    };
    for key in top.keys() {
        let name = key
            .as_str()
            .map_or_else(|| format!("{key:?}"), str::to_owned);
        if !TOP_LEVEL_FIELDS.contains(&name.as_str()) {
            problems.push(ConfigProblem::new(
                ROOT,
                format!(
                    "unknown field \"{name}\", expected one of {}",
                    TOP_LEVEL_FIELDS.join(", ")
                ),
            ));
        }
    }

    let server = match de::take(&mut top, "server") {
        None => server(RawServer::default(), problems),
        Some(v) => de::deserialize::<Option<RawServer>>(v, "server", problems)
            .and_then(|raw| server(raw.unwrap_or_default(), problems)),
    };

    let consumers = match de::take(&mut top, "consumers") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(v) => consumers(v, problems),
    };

    let rate_limits = match de::take(&mut top, "rate_limits") {
        None => rate_limits(RawRateLimits::default(), problems),
        Some(v) => de::deserialize::<Option<RawRateLimits>>(v, "rate_limits", problems)
            .and_then(|raw| rate_limits(raw.unwrap_or_default(), problems)),
    };

    let routes = match de::take(&mut top, "routes") {
        None | Some(Value::Null) => {
            problems.push(ConfigProblem::new("routes", "required"));
            None
        }
        Some(v) => routes(v, problems),
    };

    Some(Config {
        server: server?,
        consumers: consumers?,
        rate_limits: rate_limits?,
        routes: routes?,
    })
}

// ---------------------------------------------------------------- server

fn server(raw: RawServer, problems: &mut Vec<ConfigProblem>) -> Option<ServerConfig> {
    let listen = socket_addr(raw.listen, DEFAULT_LISTEN, "server.listen", problems);
    let admin_listen = socket_addr(
        raw.admin_listen,
        DEFAULT_ADMIN_LISTEN,
        "server.admin_listen",
        problems,
    );
    if let (Some(a), Some(b)) = (listen, admin_listen) {
        let overlap = a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
        if a.port() == b.port() && a.port() != 0 && overlap {
            problems.push(ConfigProblem::new(
                "server.admin_listen",
                format!("must not share a port with server.listen ({a})"),
            ));
        }
    }
    let usize_max = i64::try_from(usize::MAX).unwrap_or(i64::MAX);
    let body =
        |v: Option<i64>, default: usize, path: &str, problems: &mut Vec<ConfigProblem>| match v {
            None => NonZeroUsize::new(default),
            Some(v) => at_least(v, 1, usize_max, path, problems).and_then(to_non_zero_usize),
        };
    let optional_count = |v: Option<i64>, path: &str, problems: &mut Vec<ConfigProblem>| match v {
        None => Some(None),
        Some(v) => at_least(v, 1, usize_max, path, problems)
            .and_then(to_non_zero_usize)
            .map(Some),
    };
    let max_request_body_size = body(
        raw.max_request_body_size,
        DEFAULT_MAX_REQUEST_BODY_SIZE,
        "server.max_request_body_size",
        problems,
    );
    let max_response_body_size = body(
        raw.max_response_body_size,
        DEFAULT_MAX_RESPONSE_BODY_SIZE,
        "server.max_response_body_size",
        problems,
    );
    let workers = optional_count(raw.workers, "server.workers", problems);
    let max_concurrent_requests = optional_count(
        raw.max_concurrent_requests,
        "server.max_concurrent_requests",
        problems,
    );
    let drain_grace = duration(
        raw.drain_grace,
        DEFAULT_DRAIN_GRACE,
        false,
        "server.drain_grace",
        problems,
    );
    let shutdown_timeout = duration(
        raw.shutdown_timeout,
        DEFAULT_SHUTDOWN_TIMEOUT,
        false,
        "server.shutdown_timeout",
        problems,
    );
    let client_request_timeout = duration(
        raw.client_request_timeout,
        DEFAULT_CLIENT_REQUEST_TIMEOUT,
        true,
        "server.client_request_timeout",
        problems,
    );
    let client_body_timeout = duration(
        raw.client_body_timeout,
        DEFAULT_CLIENT_BODY_TIMEOUT,
        true,
        "server.client_body_timeout",
        problems,
    );
    Some(ServerConfig {
        listen: listen?,
        admin_listen: admin_listen?,
        max_request_body_size: max_request_body_size?,
        max_response_body_size: max_response_body_size?,
        workers: workers?,
        max_concurrent_requests: max_concurrent_requests?,
        drain_grace: drain_grace?,
        shutdown_timeout: shutdown_timeout?,
        client_request_timeout: client_request_timeout?,
        client_body_timeout: client_body_timeout?,
        log_payloads: raw.log_payloads.unwrap_or(DEFAULT_LOG_PAYLOADS),
    })
}

fn to_non_zero_usize(v: i64) -> Option<NonZeroUsize> {
    usize::try_from(v).ok().and_then(NonZeroUsize::new)
}

fn socket_addr(
    raw: Option<String>,
    default: &str,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<SocketAddr> {
    let text = raw.as_deref().unwrap_or(default);
    match text.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.push(ConfigProblem::new(
                path,
                format!("invalid socket address {text:?}; expected IP:port like {default}"),
            ));
            None
        }
    }
}

// ---------------------------------------------------------------- consumers

/// Which field a consumer's API key came from, for messages about duplicates.
struct KeyOrigin {
    digest: [u8; 32],
    field: &'static str,
}

fn consumers(value: Value, problems: &mut Vec<ConfigProblem>) -> Option<Vec<Consumer>> {
    let items = de::deserialize::<Vec<Value>>(value, "consumers", problems)?;
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut keys: HashMap<[u8; 32], usize> = HashMap::new();
    let mut access_key_ids: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let path = index("consumers", i);
        let Some(raw) = de::deserialize::<RawConsumer>(item, &path, problems) else {
            out.push(None);
            continue;
        };
        let (consumer, key_origin) = consumer(raw, &path, problems);
        if let Some(c) = &consumer {
            if let Some(first) = names.get(&c.name) {
                problems.push(ConfigProblem::new(
                    field(&path, "name"),
                    format!(
                        "duplicate consumer name {:?} (also consumers[{first}])",
                        c.name
                    ),
                ));
            } else {
                names.insert(c.name.clone(), i);
            }
            if let Some(origin) = key_origin {
                if let Some(first) = keys.get(&origin.digest) {
                    problems.push(ConfigProblem::new(
                        field(&path, origin.field),
                        format!("same key as consumers[{first}]; every consumer needs its own"),
                    ));
                } else {
                    keys.insert(origin.digest, i);
                }
            }
            if let Some(aws) = &c.aws {
                if let Some(first) = access_key_ids.get(&aws.access_key_id) {
                    problems.push(ConfigProblem::new(
                        field(&path, "aws_access_key_id"),
                        format!(
                            "same access key id as consumers[{first}]; every consumer needs its own"
                        ),
                    ));
                } else {
                    access_key_ids.insert(aws.access_key_id.clone(), i);
                }
            }
        }
        out.push(consumer);
    }
    out.into_iter().collect()
}

fn consumer(
    raw: RawConsumer,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> (Option<Consumer>, Option<KeyOrigin>) {
    let name = name(
        raw.name,
        "consumer",
        path,
        problems,
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
        "letters, digits, _ . -",
    );
    let has_any_credential = raw.api_key.is_some()
        || raw.api_key_sha256.is_some()
        || raw.aws_access_key_id.is_some()
        || raw.aws_secret_access_key.is_some();
    if !has_any_credential {
        problems.push(ConfigProblem::new(
            path,
            "needs a credential: api_key, api_key_sha256, or aws_access_key_id with aws_secret_access_key",
        ));
    }
    let key_origin: Option<Option<KeyOrigin>> = match (raw.api_key, raw.api_key_sha256) {
        (Some(_), Some(_)) => {
            problems.push(ConfigProblem::new(
                path,
                "set api_key or api_key_sha256, not both",
            ));
            None
        }
        (Some(key), None) if key.0.is_empty() => {
            problems.push(ConfigProblem::new(
                field(path, "api_key"),
                "must not be empty",
            ));
            None
        }
        (Some(key), None) => Some(Some(KeyOrigin {
            digest: Sha256::digest(key.0.as_bytes()).into(),
            field: "api_key",
        })),
        (None, Some(hex_digest)) => {
            let mut digest = [0u8; 32];
            match hex::decode_to_slice(hex_digest.0.trim(), &mut digest) {
                Ok(()) => Some(Some(KeyOrigin {
                    digest,
                    field: "api_key_sha256",
                })),
                Err(_) => {
                    problems.push(ConfigProblem::new(
                        field(path, "api_key_sha256"),
                        "must be 64 hexadecimal characters (a SHA-256 digest)",
                    ));
                    None
                }
            }
        }
        (None, None) => Some(None),
    };
    let aws = aws_keys(
        raw.aws_access_key_id,
        raw.aws_secret_access_key,
        None,
        path,
        problems,
    );
    let limits = limits(raw.limits, &field(path, "limits"), problems);
    let (Some(name), Some(key_origin), Some(aws), Some(limits)) = (name, key_origin, aws, limits)
    else {
        return (None, None);
    };
    if !has_any_credential {
        return (None, None);
    }
    let consumer = Consumer {
        name,
        api_key_sha256: key_origin.as_ref().map(|k| k.digest),
        aws,
        limits,
    };
    (Some(consumer), key_origin)
}

/// A static key pair: both halves or neither; a session token only with both.
fn aws_keys(
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    session_token: Option<Secret>,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Option<AwsKeys>> {
    match (access_key_id, secret_access_key) {
        (Some(id), Some(secret)) => {
            let mut ok = true;
            if id.trim().is_empty() {
                problems.push(ConfigProblem::new(
                    field(path, "aws_access_key_id"),
                    "must not be empty",
                ));
                ok = false;
            }
            if secret.0.is_empty() {
                problems.push(ConfigProblem::new(
                    field(path, "aws_secret_access_key"),
                    "must not be empty",
                ));
                ok = false;
            }
            if session_token.as_ref().is_some_and(|t| t.0.is_empty()) {
                problems.push(ConfigProblem::new(
                    field(path, "aws_session_token"),
                    "must not be empty",
                ));
                ok = false;
            }
            ok.then(|| {
                Some(AwsKeys {
                    access_key_id: id,
                    secret_access_key: secret.0,
                    session_token: session_token.map(|t| t.0),
                })
            })
        }
        (Some(_), None) => {
            problems.push(ConfigProblem::new(
                field(path, "aws_secret_access_key"),
                "required when aws_access_key_id is set",
            ));
            None
        }
        (None, Some(_)) => {
            problems.push(ConfigProblem::new(
                field(path, "aws_access_key_id"),
                "required when aws_secret_access_key is set",
            ));
            None
        }
        (None, None) if session_token.is_some() => {
            problems.push(ConfigProblem::new(
                field(path, "aws_session_token"),
                "only allowed with aws_access_key_id and aws_secret_access_key",
            ));
            None
        }
        (None, None) => Some(None),
    }
}

fn limits(raw: Option<RawLimits>, path: &str, problems: &mut Vec<ConfigProblem>) -> Option<Limits> {
    let raw = raw.unwrap_or_default();
    let rpm = optional_non_zero_u32(raw.rpm, &field(path, "rpm"), problems);
    let tpm = optional_non_zero_u32(raw.tpm, &field(path, "tpm"), problems);
    Some(Limits {
        rpm: rpm?,
        tpm: tpm?,
    })
}

fn optional_non_zero_u32(
    v: Option<i64>,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Option<NonZeroU32>> {
    match v {
        None => Some(None),
        Some(v) => at_least(v, 1, u32::MAX.into(), path, problems)
            .and_then(|v| u32::try_from(v).ok())
            .and_then(NonZeroU32::new)
            .map(Some),
    }
}

// ---------------------------------------------------------------- rate limits

fn rate_limits(raw: RawRateLimits, problems: &mut Vec<ConfigProblem>) -> Option<RateLimitBackend> {
    let backend = raw.backend.as_deref().unwrap_or(DEFAULT_RATE_LIMIT_BACKEND);
    match (backend, raw.redis_url) {
        ("local", None) => Some(RateLimitBackend::Local),
        ("local", Some(_)) => {
            problems.push(ConfigProblem::new(
                "rate_limits.redis_url",
                "only allowed with backend: redis",
            ));
            None
        }
        ("redis", None) => {
            problems.push(ConfigProblem::new(
                "rate_limits.redis_url",
                "required when backend is redis",
            ));
            None
        }
        ("redis", Some(url)) => {
            // The URL may carry a password, so it is never echoed.
            if url.0.starts_with("redis://") || url.0.starts_with("rediss://") {
                Some(RateLimitBackend::Redis { url: url.0 })
            } else {
                problems.push(ConfigProblem::new(
                    "rate_limits.redis_url",
                    "must start with redis:// or rediss://",
                ));
                None
            }
        }
        (other, _) => {
            problems.push(ConfigProblem::new(
                "rate_limits.backend",
                format!(
                    "unknown backend {other:?}; expected one of {}",
                    BACKENDS.join(", ")
                ),
            ));
            None
        }
    }
}

// ---------------------------------------------------------------- routes

fn routes(value: Value, problems: &mut Vec<ConfigProblem>) -> Option<Vec<Route>> {
    let items = de::deserialize::<Vec<Value>>(value, "routes", problems)?;
    if items.is_empty() {
        problems.push(ConfigProblem::new("routes", "must list at least one route"));
        return None;
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let path = index("routes", i);
        let route = route(item, &path, problems);
        if let Some(r) = &route {
            if let Some(first) = names.get(&r.name) {
                problems.push(ConfigProblem::new(
                    field(&path, "name"),
                    format!("duplicate route name {:?} (also routes[{first}])", r.name),
                ));
            } else {
                names.insert(r.name.clone(), i);
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
                &ROUTE_TYPES.map(|t| (t.as_str(), t)),
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

    let targets = targets(targets_value, &field(path, "targets"), problems);

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
        &ALGORITHMS.map(|a| (a.as_str(), a)),
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

// ---------------------------------------------------------------- targets

fn targets(
    value: Option<Value>,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Vec<Target>> {
    let items = match value {
        None | Some(Value::Null) => {
            problems.push(ConfigProblem::new(path, "required"));
            return None;
        }
        Some(v) => de::deserialize::<Vec<Value>>(v, path, problems)?,
    };
    if items.is_empty() {
        problems.push(ConfigProblem::new(path, "must list at least one target"));
        return None;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let target_path = index(path, i);
        let target = de::deserialize::<RawTarget>(item, &target_path, problems)
            .and_then(|raw| target(raw, &target_path, problems));
        if let Some(t) = &target {
            let label = t.label();
            if let Some(first) = seen.get(&label) {
                problems.push(ConfigProblem::new(
                    &target_path,
                    format!("duplicates {} ({label})", index(path, *first)),
                ));
            } else {
                seen.insert(label, i);
            }
        }
        out.push(target);
    }
    out.into_iter().collect()
}

fn target(raw: RawTarget, path: &str, problems: &mut Vec<ConfigProblem>) -> Option<Target> {
    let model_path = field(path, "model");
    let model = match raw.model {
        Some(model) => model_fields(model, &model_path, problems),
        None => {
            problems.push(ConfigProblem::new(&model_path, "required"));
            None
        }
    };
    let auth = match raw.auth {
        None => Some(None),
        Some(auth) => aws_keys(
            auth.aws_access_key_id,
            auth.aws_secret_access_key,
            auth.aws_session_token,
            &field(path, "auth"),
            problems,
        ),
    };
    let weight = match raw.weight {
        None => NonZeroU16::new(DEFAULT_WEIGHT),
        Some(v) => in_range(v, 1, 65_535, &field(path, "weight"), problems)
            .and_then(|v| u16::try_from(v).ok())
            .and_then(NonZeroU16::new),
    };
    let priority = match raw.priority {
        None => Some(None),
        Some(v) => at_least(v, 0, u32::MAX.into(), &field(path, "priority"), problems)
            .and_then(|v| u32::try_from(v).ok())
            .map(Some),
    };
    let limits = limits(raw.limits, &field(path, "limits"), problems);
    let model = model?;
    Some(Target {
        model_id: model.model_id,
        region: model.region,
        upstream_url: model.upstream_url,
        assume_role: model.assume_role,
        auth: auth?,
        input_cost: model.input_cost,
        output_cost: model.output_cost,
        max_tokens: model.max_tokens,
        weight: weight?,
        priority: priority?,
        limits: limits?,
    })
}

/// The parts of a target that come from its `model` section.
struct ModelFields {
    model_id: String,
    region: String,
    upstream_url: String,
    assume_role: Option<AssumeRole>,
    input_cost: f64,
    output_cost: f64,
    max_tokens: Option<NonZeroU32>,
}

fn model_fields(
    raw: RawModel,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<ModelFields> {
    let provider = match raw.provider.as_deref() {
        None => {
            problems.push(ConfigProblem::new(field(path, "provider"), "required"));
            None
        }
        Some("bedrock") => Some(()),
        Some(other) => {
            problems.push(ConfigProblem::new(
                field(path, "provider"),
                format!("unsupported provider {other:?}; only \"bedrock\" is supported"),
            ));
            None
        }
    };
    let name_path = field(path, "name");
    let model_id = match raw.name {
        None => {
            problems.push(ConfigProblem::new(&name_path, "required"));
            None
        }
        Some(name) if name.is_empty() => {
            problems.push(ConfigProblem::new(&name_path, "must not be empty"));
            None
        }
        Some(name) if name.chars().any(char::is_whitespace) => {
            problems.push(ConfigProblem::new(
                &name_path,
                format!("must not contain whitespace, got {name:?}"),
            ));
            None
        }
        Some(name) => Some(name),
    };

    let options_path = field(path, "options");
    let options = raw.options.unwrap_or_default();
    let bedrock_path = field(&options_path, "bedrock");
    let bedrock = options.bedrock.unwrap_or_default();
    let region_path = field(&bedrock_path, "aws_region");
    let region = match bedrock.aws_region {
        None => {
            problems.push(ConfigProblem::new(&region_path, "required"));
            None
        }
        Some(region) if is_region(&region) => Some(region),
        Some(region) => {
            problems.push(ConfigProblem::new(
                &region_path,
                format!("invalid AWS region {region:?}; expected a region like us-east-1"),
            ));
            None
        }
    };
    let assume_role = assume_role(
        bedrock.aws_assume_role_arn,
        bedrock.aws_role_session_name,
        bedrock.aws_sts_endpoint_url,
        &bedrock_path,
        problems,
    );
    let upstream_url = match (options.upstream_url, &region) {
        (Some(url), _) => match origin(&url) {
            Ok(origin) => Some(origin),
            Err(why) => {
                problems.push(ConfigProblem::new(
                    field(&options_path, "upstream_url"),
                    why,
                ));
                None
            }
        },
        (None, Some(region)) => Some(default_upstream(region)),
        (None, None) => None,
    };
    let input_cost = cost(
        options.input_cost,
        &field(&options_path, "input_cost"),
        problems,
    );
    let output_cost = cost(
        options.output_cost,
        &field(&options_path, "output_cost"),
        problems,
    );
    let max_tokens = match options.max_tokens {
        None => Some(None),
        Some(v) => optional_non_zero_u32(Some(v), &field(&options_path, "max_tokens"), problems),
    };
    provider?;
    Some(ModelFields {
        model_id: model_id?,
        region: region?,
        upstream_url: upstream_url?,
        assume_role: assume_role?,
        input_cost: input_cost?,
        output_cost: output_cost?,
        max_tokens: max_tokens?,
    })
}

fn assume_role(
    arn: Option<String>,
    session_name: Option<String>,
    sts_endpoint_url: Option<String>,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Option<AssumeRole>> {
    let Some(arn) = arn else {
        let mut ok = true;
        for (name, set) in [
            ("aws_role_session_name", session_name.is_some()),
            ("aws_sts_endpoint_url", sts_endpoint_url.is_some()),
        ] {
            if set {
                problems.push(ConfigProblem::new(
                    field(path, name),
                    "only allowed with aws_assume_role_arn",
                ));
                ok = false;
            }
        }
        return ok.then_some(None);
    };
    let mut ok = true;
    // Covers the aws, aws-cn and aws-us-gov partitions.
    if !arn.starts_with("arn:aws") {
        problems.push(ConfigProblem::new(
            field(path, "aws_assume_role_arn"),
            format!("must be a role ARN starting with arn:aws, got {arn:?}"),
        ));
        ok = false;
    }
    let session_name = session_name.unwrap_or_else(|| DEFAULT_ROLE_SESSION_NAME.to_owned());
    // STS's own rule for RoleSessionName.
    let valid_session_name = (2..=64).contains(&session_name.len())
        && session_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if !valid_session_name {
        problems.push(ConfigProblem::new(
            field(path, "aws_role_session_name"),
            format!("must be 2 to 64 of letters, digits and _+=,.@-, got {session_name:?}"),
        ));
        ok = false;
    }
    let sts_endpoint_url = match sts_endpoint_url.map(|url| origin(&url)) {
        None => None,
        Some(Ok(url)) => Some(url),
        Some(Err(why)) => {
            problems.push(ConfigProblem::new(field(path, "aws_sts_endpoint_url"), why));
            ok = false;
            None
        }
    };
    ok.then_some(Some(AssumeRole {
        role_arn: arn,
        session_name,
        sts_endpoint_url,
    }))
}

/// `[a-z]{2}(-gov)?-[a-z]+-\d+`: every commercial, China and GovCloud region.
fn is_region(region: &str) -> bool {
    let mut parts = region.split('-').collect::<Vec<_>>();
    if parts.len() == 4 && parts[1] == "gov" {
        parts.remove(1);
    }
    let lower = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    parts.len() == 3
        && parts[0].len() == 2
        && lower(parts[0])
        && lower(parts[1])
        && !parts[2].is_empty()
        && parts[2].bytes().all(|b| b.is_ascii_digit())
}

fn default_upstream(region: &str) -> String {
    // China regions live under their own top-level domain.
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://bedrock-runtime.{region}.{suffix}")
}

/// `http(s)://host[:port]`, a trailing `/` dropped. Messages say what is wrong without echoing
/// the URL, which could carry credentials.
fn origin(url: &str) -> Result<String, &'static str> {
    let url = url.strip_suffix('/').unwrap_or(url);
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        ("https://", rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        ("http://", rest)
    } else {
        return Err("must start with http:// or https://");
    };
    if rest.contains(['/', '?', '#']) {
        return Err("must be http(s)://host[:port] with no path, query or fragment");
    }
    if rest.contains('@') {
        return Err("must not contain credentials");
    }
    if rest.chars().any(char::is_whitespace) {
        return Err("must not contain whitespace");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (_, after) = v6.split_once(']').ok_or("unclosed [ in IPv6 host")?;
        (&rest[..rest.len() - after.len()], after.strip_prefix(':'))
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("must name a host");
    }
    if let Some(port) = port {
        if !port.parse::<u16>().is_ok_and(|p| p != 0) {
            return Err("port must be 1..=65535");
        }
    }
    Ok(format!("{scheme}{rest}"))
}

fn cost(v: Option<f64>, path: &str, problems: &mut Vec<ConfigProblem>) -> Option<f64> {
    match v {
        None => Some(DEFAULT_COST),
        Some(v) if v.is_finite() && v >= 0.0 => Some(v),
        Some(v) => {
            problems.push(ConfigProblem::new(
                path,
                format!("must be a finite number >= 0, got {v}"),
            ));
            None
        }
    }
}

// ---------------------------------------------------------------- shared checks

fn name(
    raw: Option<String>,
    what: &str,
    parent: &str,
    problems: &mut Vec<ConfigProblem>,
    allowed: impl Fn(char) -> bool,
    allowed_text: &str,
) -> Option<String> {
    let path = field(parent, "name");
    match raw {
        None => {
            problems.push(ConfigProblem::new(path, "required"));
            None
        }
        Some(name) if name.is_empty() => {
            problems.push(ConfigProblem::new(path, "must not be empty"));
            None
        }
        Some(name) if !name.chars().all(allowed) => {
            problems.push(ConfigProblem::new(
                path,
                format!("invalid {what} name {name:?}; use only {allowed_text}"),
            ));
            None
        }
        Some(name) => Some(name),
    }
}

fn one_of<T: Copy>(
    value: &str,
    what: &str,
    table: &[(&str, T)],
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    if let Some((_, v)) = table.iter().find(|(name, _)| *name == value) {
        return Some(*v);
    }
    let expected: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
    problems.push(ConfigProblem::new(
        path,
        format!(
            "unknown {what} {value:?}; expected one of {}",
            expected.join(", ")
        ),
    ));
    None
}

/// A bounded range, reported as `must be 1..=65535, got 0`.
fn in_range(
    v: i64,
    min: i64,
    max: i64,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<i64> {
    if (min..=max).contains(&v) {
        Some(v)
    } else {
        problems.push(ConfigProblem::new(
            path,
            format!("must be {min}..={max}, got {v}"),
        ));
        None
    }
}

/// A range whose top is just the type's limit, reported as `must be >= 1, got 0`.
fn at_least(
    v: i64,
    min: i64,
    max: i64,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<i64> {
    if v < min {
        problems.push(ConfigProblem::new(
            path,
            format!("must be >= {min}, got {v}"),
        ));
        None
    } else if v > max {
        problems.push(ConfigProblem::new(
            path,
            format!("must be <= {max}, got {v}"),
        ));
        None
    } else {
        Some(v)
    }
}

fn duration(
    raw: Option<RawDuration>,
    default: Duration,
    positive: bool,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Duration> {
    let Some(raw) = raw else {
        return Some(default);
    };
    match raw.to_duration() {
        Ok(d) if positive && d.is_zero() => {
            problems.push(ConfigProblem::new(path, "must be greater than 0"));
            None
        }
        Ok(d) => Some(d),
        Err(why) => {
            problems.push(ConfigProblem::new(path, why));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-1",
            "ap-southeast-2",
            "us-gov-west-1",
            "cn-north-1",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "useast1",
            "US-EAST-1",
            "us-east-1a",
            "usa-east-1",
            "us--1",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin("https://example.com/"),
            Ok("https://example.com".into())
        );
        assert_eq!(
            origin("http://127.0.0.1:9000"),
            Ok("http://127.0.0.1:9000".into())
        );
        assert_eq!(origin("http://[::1]:9000"), Ok("http://[::1]:9000".into()));
        assert!(origin("ftp://example.com").is_err());
        assert!(origin("https://example.com/v1").is_err());
        assert!(origin("https://example.com?x=1").is_err());
        assert!(origin("https://").is_err());
        assert!(origin("https://host:0").is_err());
        assert!(origin("https://host:99999").is_err());
        assert!(origin("https://user:pw@host").is_err());
    }

    #[test]
    fn default_upstreams() {
        assert_eq!(
            default_upstream("us-east-1"),
            "https://bedrock-runtime.us-east-1.amazonaws.com"
        );
        assert_eq!(
            default_upstream("cn-north-1"),
            "https://bedrock-runtime.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn top_level_fields_match_raw_config() {
        let raw: RawConfig =
            serde_yaml_ng::from_str("server: {}\nconsumers: []\nrate_limits: {}\nroutes: []\n")
                .unwrap();
        assert!(raw.server.is_some() && raw.consumers.is_some() && raw.rate_limits.is_some());
        assert_eq!(TOP_LEVEL_FIELDS.len(), 4);
    }
}
