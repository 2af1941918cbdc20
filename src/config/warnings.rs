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
        .filter_map(|(i, route)| mixed_families(route, &field(&index("routes", i), "targets")))
        .collect()
}

/// Whether a target serves a Claude model: Bedrock's Claude, the Anthropic API, or an
/// OpenAI-compatible server (a LiteLLM or OpenRouter in front of Claude) whose model says so.
fn is_claude(target: &Target) -> bool {
    match target.provider.provider() {
        Provider::Bedrock => target.speaks_anthropic(),
        Provider::Anthropic => true,
        Provider::OpenAi | Provider::Azure => target
            .model_id
            .as_deref()
            .is_some_and(|m| m.to_ascii_lowercase().contains("claude")),
    }
}

/// A route whose targets are Claude and other models: a request that fails over from one to the
/// other is answered by another model family (its tools, output and prompt cache differ), which
/// peers such as Kong and LiteLLM allow on purpose, so it is said, not refused.
fn mixed_families(route: &Route, path: &str) -> Option<ConfigProblem> {
    if !route.route_type.serves_models() {
        return None;
    }
    let (claude, other): (Vec<_>, Vec<_>) = route
        .targets
        .iter()
        .enumerate()
        .partition(|(_, t)| is_claude(t));
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
