//! What a valid config may mean by mistake: `check-config` prints these as warnings and `serve`
//! logs them at start and on every reload, but the config is served as written.

use super::de::{field, index};
use super::error::ConfigProblem;
use super::model::{Config, Provider, Route, Target};

/// Every warning about `config`, each at the path it concerns.
pub fn warnings(config: &Config) -> Vec<ConfigProblem> {
    config
        .routes
        .iter()
        .enumerate()
        .flat_map(|(i, route)| {
            let path = field(&index("routes", i), "targets");
            let bases = route.targets.iter().enumerate().filter_map({
                let path = path.clone();
                move |(k, target)| doubled_base_path(target, &index(&path, k))
            });
            mixed_families(route, &path).into_iter().chain(bases)
        })
        .collect()
}

/// An `upstream_url` path that already ends in what the gateway appends: an `anthropic` one
/// ending in `/v1` sends `/v1/v1/messages`, an `openai` one ending in `/chat/completions` sends
/// `/chat/completions/chat/completions`. A proxy may serve such a path, so it is said, not refused.
fn doubled_base_path(target: &Target, path: &str) -> Option<ConfigProblem> {
    let (suffix, calls) = match target.provider.provider() {
        Provider::Anthropic => ("/v1", "/v1/messages"),
        Provider::OpenAi => ("/chat/completions", "/chat/completions"),
        Provider::Bedrock | Provider::Azure => return None,
    };
    target.base_path.ends_with(suffix).then(|| {
        ConfigProblem::new(
            field(&field(&field(path, "model"), "options"), "upstream_url"),
            format!(
                "its path ends in {suffix:?}, and the gateway appends {calls:?} to it \
                 (sending {:?}): give the API's base, as an SDK's base_url",
                format!("{}{calls}", target.base_path)
            ),
        )
    })
}

/// Whether a target serves a Claude model (Bedrock's Claude, the Anthropic API, or an
/// OpenAI-compatible server, a LiteLLM or OpenRouter in front of Claude, whose model says so);
/// `None` when the config cannot tell: a Bedrock ARN (an application inference profile, a
/// provisioned or imported model) names no model, and without `model_family` may be Claude.
fn is_claude(target: &Target) -> Option<bool> {
    match target.provider.provider() {
        Provider::Bedrock if target.speaks_anthropic() => Some(true),
        Provider::Bedrock => (!target
            .model_id
            .as_deref()
            .is_some_and(|m| m.starts_with("arn:")))
        .then_some(false),
        Provider::Anthropic => Some(true),
        Provider::OpenAi | Provider::Azure => Some(
            target
                .model_id
                .as_deref()
                .is_some_and(|m| m.to_ascii_lowercase().contains("claude")),
        ),
    }
}

/// A route whose targets are Claude and other models: a request that fails over from one to the
/// other is answered by another model family (its tools, output and prompt cache differ), which
/// peers such as Kong and LiteLLM allow on purpose, so it is said, not refused.
fn mixed_families(route: &Route, path: &str) -> Option<ConfigProblem> {
    if !route.route_type.serves_models() {
        return None;
    }
    let family = |want| {
        route
            .targets
            .iter()
            .enumerate()
            .filter(|(_, t)| is_claude(t) == Some(want))
            .collect::<Vec<_>>()
    };
    let (claude, other) = (family(true), family(false));
    if claude.is_empty() || other.is_empty() {
        return None;
    }
    let list = |targets: &[(usize, &Target)]| {
        targets
            .iter()
            .map(|(k, t)| format!("{} ({})", index(path, *k), t.label()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(ConfigProblem::new(
        path,
        format!(
            "route {:?} mixes Claude targets [{}] with other models [{}]: a request that fails \
             over between them is answered by another model family (tools, output and prompt \
             caching differ); give each family its own route unless that is meant",
            route.name,
            list(&claude),
            list(&other),
        ),
    ))
}
