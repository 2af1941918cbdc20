//! `routes[].targets`: one model in one region with its credentials, URL, costs and limits.

use std::collections::HashMap;
use std::num::{NonZeroU16, NonZeroU32};

use serde_yaml_ng::Value;

use super::checks::*;
use super::provider::{provider, provider_options, target_auth, with_role};
use super::target_routing::{RawRouting, RoutingOptions, routing_options};
use crate::config::de::{self, field, index};
use crate::config::defaults::*;
use crate::config::error::ConfigProblem;
use crate::config::model::*;
use crate::config::raw::*;

pub(super) fn targets(
    value: Option<Value>,
    route_type: RouteType,
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
            .and_then(|raw| target(raw, route_type, &target_path, problems));
        if let Some(t) = &target {
            let label = t.label();
            if let Some(first) = seen.get(&label) {
                let how = if t.name.is_some() {
                    "target names must differ within a route"
                } else {
                    "to reach the same model twice (another key or account), give each target \
                     its own `name`"
                };
                problems.push(ConfigProblem::new(
                    &target_path,
                    format!("duplicates {} ({label}); {how}", index(path, *first)),
                ));
            } else {
                seen.insert(label, i);
            }
        }
        out.push(target);
    }
    out.into_iter().collect()
}

fn target(
    raw: RawTarget,
    route_type: RouteType,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Target> {
    let name = target_name(raw.name, &field(path, "name"), problems);
    let model_path = field(path, "model");
    let provider = raw.model.as_ref().and_then(|m| {
        provider(
            m.provider.as_deref(),
            route_type,
            &field(&model_path, "provider"),
            problems,
        )
    });
    let assumes_role = raw
        .model
        .as_ref()
        .and_then(|m| {
            m.options
                .as_ref()?
                .bedrock
                .as_ref()?
                .aws_assume_role_arn
                .as_ref()
        })
        .is_some();
    let model = match raw.model {
        Some(model) => model_fields(model, provider, route_type, &model_path, problems),
        None => {
            problems.push(ConfigProblem::new(&model_path, "required"));
            None
        }
    };
    let auth = provider.and_then(|provider| {
        target_auth(
            raw.auth,
            provider,
            assumes_role,
            &field(path, "auth"),
            problems,
        )
    });
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
        name: name?,
        model_id: model.model_id,
        provider: model.provider,
        service: route_type.service(),
        region: model.region,
        upstream_url: model.upstream_url,
        base_path: model.base_path,
        invoke_headers: model.routing.invoke_headers,
        guardrail_map: model.routing.guardrail_map,
        knowledge_base_map: model.routing.knowledge_base_map,
        auth: with_role(auth?, model.assume_role),
        input_cost: model.input_cost,
        output_cost: model.output_cost,
        cache_read_cost: model.cache_read_cost,
        cache_write_cost: model.cache_write_cost,
        model_family: model.model_family,
        anthropic_betas: model.anthropic_betas,
        max_tokens: model.max_tokens,
        max_tokens_field: model.max_tokens_field,
        weight: weight?,
        priority: priority?,
        limits: limits?,
    })
}

/// Longest target `name`: it is a metrics label value and a response header.
const MAX_TARGET_NAME: usize = 64;

/// A target's `name` names it in metrics labels, logs, `/admin/targets`, the
/// `x-bedrock-balancer-target` header and Redis keys, so it is a short token.
fn target_name(
    v: Option<String>,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Option<String>> {
    let Some(name) = v else {
        return Some(None);
    };
    let token = (1..=MAX_TARGET_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if token {
        Some(Some(name))
    } else {
        problems.push(ConfigProblem::new(
            path,
            format!(
                "must be 1 to {MAX_TARGET_NAME} letters, digits, '-', '_', '.' or ':', got {name:?}"
            ),
        ));
        None
    }
}

/// The parts of a target that come from its `model` section.
struct ModelFields {
    model_id: Option<String>,
    provider: ProviderOptions,
    region: String,
    upstream_url: String,
    base_path: String,
    routing: RoutingOptions,
    assume_role: Option<AssumeRole>,
    input_cost: f64,
    output_cost: f64,
    cache_read_cost: f64,
    cache_write_cost: f64,
    model_family: Option<ModelFamily>,
    anthropic_betas: Vec<String>,
    max_tokens: Option<NonZeroU32>,
    max_tokens_field: MaxTokensField,
}

fn model_fields(
    raw: RawModel,
    provider: Option<Provider>,
    route_type: RouteType,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<ModelFields> {
    let name_path = field(path, "name");
    let model_id = match raw.name {
        None if !route_type.serves_models() => Some(None),
        Some(_) if !route_type.serves_models() => {
            problems.push(ConfigProblem::new(
                &name_path,
                format!(
                    "must be omitted: the targets of a {} route are regions, not models",
                    route_type.as_str()
                ),
            ));
            None
        }
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
        Some(name) => Some(Some(name)),
    };

    let options_path = field(path, "options");
    let options = raw.options.unwrap_or_default();
    let own = provider.and_then(|p| provider_options(p, &options, &options_path, problems));
    let bedrock_path = field(&options_path, "bedrock");
    // Another provider's `options.bedrock` is already reported; its region fields are not read.
    let bedrock = match provider {
        Some(Provider::Bedrock) => options.bedrock.unwrap_or_default(),
        _ => RawBedrockOptions::default(),
    };
    let region = match bedrock.aws_region {
        _ if provider != Some(Provider::Bedrock) => None,
        None => {
            problems.push(ConfigProblem::new(
                field(&bedrock_path, "aws_region"),
                "required",
            ));
            None
        }
        Some(region) if is_region(&region) => Some(region),
        Some(region) => {
            problems.push(ConfigProblem::new(
                field(&bedrock_path, "aws_region"),
                format!("invalid AWS region {region:?}; expected a region like us-east-1"),
            ));
            None
        }
    };
    let routing = routing_options(
        route_type,
        RawRouting {
            invoke_headers: bedrock.invoke_headers,
            invoke_headers_overridable: bedrock.invoke_headers_overridable,
            guardrail_map: bedrock.guardrail_map,
            knowledge_base_map: bedrock.knowledge_base_map,
        },
        &bedrock_path,
        problems,
    );
    let assume_role = assume_role(
        bedrock.aws_assume_role_arn,
        bedrock.aws_role_session_name,
        bedrock.aws_sts_endpoint_url,
        &bedrock_path,
        problems,
    );
    let default_url = match (&own, &region) {
        (Some((_, Some(url))), _) => Some(url.clone()),
        (_, Some(region)) => Some(default_upstream(route_type.service(), region)),
        _ => None,
    };
    let upstream = match options.upstream_url {
        Some(url) => match base_url(&url, provider) {
            Ok(split) => Some(split),
            Err(why) => {
                problems.push(ConfigProblem::new(
                    field(&options_path, "upstream_url"),
                    why,
                ));
                None
            }
        },
        None => default_url.map(|url| (url, String::new())),
    };
    // Other providers have no region; their upstream's host and the path written after it name
    // them in labels, so two upstreams on one host under different paths keep their own counters
    // and cooldowns.
    let region = region.or_else(|| {
        let (url, path) = upstream.as_ref()?;
        let host = url.split_once("://").map_or(url.as_str(), |(_, host)| host);
        Some(format!("{host}{path}"))
    });
    let (upstream_url, base_path) = match upstream {
        // The OpenAI SDKs' convention: a bare host is the API's origin, its base is `/v1`.
        Some((url, path)) if path.is_empty() && provider == Some(Provider::OpenAi) => {
            (Some(url), Some(OPENAI_BASE_PATH.to_owned()))
        }
        Some((url, path)) => (Some(url), Some(path)),
        None => (None, None),
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
    let [cache_read_cost, cache_write_cost] = [
        ("cache_read_cost", options.cache_read_cost),
        ("cache_write_cost", options.cache_write_cost),
    ]
    .map(|(name, v)| cost(v, &field(&options_path, name), problems));
    let model_family = model_family(
        bedrock.model_family,
        &field(&bedrock_path, "model_family"),
        problems,
    );
    let anthropic_betas = anthropic_betas(
        options.anthropic_betas,
        &field(&options_path, "anthropic_betas"),
        problems,
    );
    let max_tokens = match options.max_tokens {
        None => Some(None),
        Some(v) => optional_non_zero_u32(Some(v), &field(&options_path, "max_tokens"), problems),
    };
    // Another provider's is reported as not its option already.
    let max_tokens_field = match options.max_tokens_field.as_deref() {
        None => Some(MaxTokensField::MaxTokens),
        Some(name) => one_of(
            name,
            "max tokens field",
            &MaxTokensField::ALL.map(|f| (f.as_str(), f)),
            &field(&options_path, "max_tokens_field"),
            problems,
        ),
    };
    Some(ModelFields {
        model_id: model_id?,
        provider: own?.0,
        region: region?,
        upstream_url: upstream_url?,
        base_path: base_path?,
        routing: routing?,
        assume_role: assume_role?,
        input_cost: input_cost?,
        output_cost: output_cost?,
        cache_read_cost: cache_read_cost?,
        cache_write_cost: cache_write_cost?,
        model_family: model_family?,
        anthropic_betas: anthropic_betas?,
        max_tokens: max_tokens?,
        max_tokens_field: max_tokens_field?,
    })
}

fn model_family(
    v: Option<String>,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Option<ModelFamily>> {
    match v.as_deref() {
        None => Some(None),
        Some("anthropic") => Some(Some(ModelFamily::Anthropic)),
        Some(other) => {
            problems.push(ConfigProblem::new(
                path,
                format!(
                    "unsupported model_family {other:?}; the only value is \"anthropic\" (other \
                     models are reached through Converse and need none)"
                ),
            ));
            None
        }
    }
}

/// Beta flags are `name-YYYY-MM-DD` tokens; one with a comma or space would split differently
/// in the `anthropic-beta` header than in the list.
fn anthropic_betas(
    v: Option<Vec<String>>,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Vec<String>> {
    let Some(betas) = v else {
        return Some(DEFAULT_ANTHROPIC_BETAS.map(str::to_owned).to_vec());
    };
    let bad: Vec<&String> = betas
        .iter()
        .filter(|b| b.is_empty() || b.contains(|c: char| c == ',' || c.is_whitespace()))
        .collect();
    if bad.is_empty() {
        Some(betas)
    } else {
        problems.push(ConfigProblem::new(
            path,
            format!("beta flags must be non-empty and hold no comma or space, got {bad:?}"),
        ));
        None
    }
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

fn default_upstream(service: Service, region: &str) -> String {
    // China regions live under their own top-level domain.
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{}.{region}.{suffix}", service.host_prefix())
}

/// Where an OpenAI target's calls go when `upstream_url` names only a host.
const OPENAI_BASE_PATH: &str = "/v1";

/// `upstream_url` as its origin and path (`/a/b`, or empty), trailing `/`s dropped. Only
/// `openai` and `anthropic` targets take a path, as their SDKs' `base_url` does (Groq's
/// `https://api.groq.com/openai/v1`); Bedrock's signed paths and Azure's deployment paths start at
/// the host.
fn base_url(url: &str, provider: Option<Provider>) -> Result<(String, String), &'static str> {
    let url = url.trim_end_matches('/');
    if url.contains(['?', '#']) {
        return Err("must have no query or fragment");
    }
    let host_at = url.find("://").map_or(0, |i| i + 3);
    let (host, path) = url.split_at(url[host_at..].find('/').map_or(url.len(), |i| host_at + i));
    let origin = origin(host)?;
    if path.is_empty() {
        return Ok((origin, String::new()));
    }
    match provider {
        Some(Provider::Bedrock | Provider::Azure) => Err(
            "must be http(s)://host[:port] with no path: only openai and anthropic targets take a \
             base path",
        ),
        _ if path.chars().any(char::is_whitespace) => Err("must not contain whitespace"),
        _ => base_path(path).map(|()| (origin, path.to_owned())),
    }
}

/// A base path the calls can go under as written: an empty, `.` or `..` segment would be
/// normalised away or refused by servers and proxies, and a character a URI cannot carry would
/// only fail as a connect error at the first request.
fn base_path(path: &str) -> Result<(), &'static str> {
    if path.split('/').skip(1).any(str::is_empty) {
        return Err("must not contain `//` in its path");
    }
    if path.split('/').any(|segment| matches!(segment, "." | "..")) {
        return Err("must not contain `.` or `..` segments in its path");
    }
    path.parse::<actix_web::http::uri::PathAndQuery>()
        .map(drop)
        .map_err(|_| "must have a path of URL characters (percent-encode others)")
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
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p != 0)
    {
        return Err("port must be 1..=65535");
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
    fn base_urls_keep_a_path_for_openai_and_anthropic_only() {
        let openai = Some(Provider::OpenAi);
        assert_eq!(
            base_url("https://api.groq.com/openai/v1/", openai),
            Ok(("https://api.groq.com".into(), "/openai/v1".into()))
        );
        assert_eq!(
            base_url("http://127.0.0.1:8000", openai),
            Ok(("http://127.0.0.1:8000".into(), String::new()))
        );
        assert_eq!(
            base_url(
                "https://proxy.example.com/anthropic",
                Some(Provider::Anthropic)
            ),
            Ok(("https://proxy.example.com".into(), "/anthropic".into()))
        );
        for closed in [Provider::Bedrock, Provider::Azure] {
            assert!(base_url("https://vpce.example.com/v1", Some(closed)).is_err());
            assert!(base_url("https://vpce.example.com/", Some(closed)).is_ok());
        }
        assert!(base_url("https://api.groq.com/openai/v1?x=1", openai).is_err());
        assert!(base_url("https://api.groq.com/a b", openai).is_err());
        for bad in [
            "//v1",
            "/openai//v1",
            "/v1/./x",
            "/openai/../v1",
            "/v1/\u{7f}",
            "/v1/<x>",
        ] {
            let url = format!("https://api.groq.com{bad}");
            assert!(base_url(&url, openai).is_err(), "{url}");
        }
        assert!(base_url("https://api.groq.com/openai/v1.2/%7Ex", openai).is_ok());
        assert!(base_url("https://user:pw@host/v1", openai).is_err());
        assert!(base_url("api.groq.com/openai/v1", openai).is_err());
    }

    #[test]
    fn default_upstreams() {
        assert_eq!(
            default_upstream(Service::Runtime, "us-east-1"),
            "https://bedrock-runtime.us-east-1.amazonaws.com"
        );
        assert_eq!(
            default_upstream(Service::Runtime, "cn-north-1"),
            "https://bedrock-runtime.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            default_upstream(Service::AgentRuntime, "eu-west-1"),
            "https://bedrock-agent-runtime.eu-west-1.amazonaws.com"
        );
    }
}
