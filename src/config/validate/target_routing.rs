//! The `options.bedrock` fields that shape what a target sends upstream, each allowed only on the
//! route type it serves: `invoke_headers` on model routes, `guardrail_map` on `bedrock/guardrail`,
//! `knowledge_base_map` on `bedrock/agent`.

use std::collections::BTreeMap;

use crate::config::de::field;
use crate::config::error::ConfigProblem;
use crate::config::model::*;
use crate::config::raw::RawGuardrailRef;

/// A client's value replaces a target's default unless the target says otherwise: a target that
/// sets no defaults then passes every client header, as Bedrock itself would take them.
const DEFAULT_INVOKE_HEADERS_OVERRIDABLE: bool = true;

/// The raw fields, taken out of `RawBedrockOptions`.
pub(super) struct RawRouting {
    pub invoke_headers: Option<BTreeMap<String, String>>,
    pub invoke_headers_overridable: Option<bool>,
    pub guardrail_map: Option<BTreeMap<String, RawGuardrailRef>>,
    pub knowledge_base_map: Option<BTreeMap<String, String>>,
}

pub(super) struct RoutingOptions {
    pub invoke_headers: InvokeHeaders,
    pub guardrail_map: BTreeMap<String, GuardrailRef>,
    pub knowledge_base_map: BTreeMap<String, String>,
}

pub(super) fn routing_options(
    route_type: RouteType,
    raw: RawRouting,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<RoutingOptions> {
    let before = problems.len();
    let only_on = |name: &str, set: bool, allowed: bool, problems: &mut Vec<ConfigProblem>| {
        if set && !allowed {
            problems.push(ConfigProblem::new(
                field(path, name),
                format!("not allowed on a {} route", route_type.as_str()),
            ));
        }
    };
    only_on(
        "invoke_headers",
        raw.invoke_headers.is_some(),
        route_type.serves_models(),
        problems,
    );
    only_on(
        "invoke_headers_overridable",
        raw.invoke_headers_overridable.is_some(),
        route_type.serves_models(),
        problems,
    );
    only_on(
        "guardrail_map",
        raw.guardrail_map.is_some(),
        route_type == RouteType::Guardrail,
        problems,
    );
    only_on(
        "knowledge_base_map",
        raw.knowledge_base_map.is_some(),
        route_type == RouteType::Agent,
        problems,
    );

    let mut defaults = Vec::new();
    for (name, value) in raw.invoke_headers.unwrap_or_default() {
        let here = field(&field(path, "invoke_headers"), &name);
        let lower = name.to_ascii_lowercase();
        let Some(known) = INVOKE_HEADERS.iter().find(|h| **h == lower) else {
            problems.push(ConfigProblem::new(
                &here,
                format!(
                    "not a header Bedrock reads on InvokeModel; expected one of {}",
                    INVOKE_HEADERS.join(", ")
                ),
            ));
            continue;
        };
        if defaults.iter().any(|(n, _)| n == known) {
            problems.push(ConfigProblem::new(&here, "set twice (names ignore case)"));
        } else if value.is_empty() || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            problems.push(ConfigProblem::new(
                &here,
                "must be a non-empty header value of printable ASCII",
            ));
        } else {
            defaults.push((*known, value));
        }
    }
    defaults.sort_by_key(|(n, _)| INVOKE_HEADERS.iter().position(|h| h == n));

    let mut guardrail_map = BTreeMap::new();
    for (client, region) in raw.guardrail_map.unwrap_or_default() {
        let here = field(&field(path, "guardrail_map"), &client);
        let identifier = match region.identifier {
            None => {
                problems.push(ConfigProblem::new(field(&here, "identifier"), "required"));
                None
            }
            Some(id) => resource_id(id, &field(&here, "identifier"), problems),
        };
        let version = match region.version {
            None => Some(None),
            Some(v) => resource_id(v, &field(&here, "version"), problems).map(Some),
        };
        if let (Some(identifier), Some(version)) = (identifier, version) {
            guardrail_map.insert(
                client,
                GuardrailRef {
                    identifier,
                    version,
                },
            );
        }
    }

    let mut knowledge_base_map = BTreeMap::new();
    for (client, region) in raw.knowledge_base_map.unwrap_or_default() {
        let here = field(&field(path, "knowledge_base_map"), &client);
        if let Some(region) = resource_id(region, &here, problems) {
            knowledge_base_map.insert(client, region);
        }
    }

    (problems.len() == before).then_some(RoutingOptions {
        invoke_headers: InvokeHeaders {
            defaults,
            overridable: raw
                .invoke_headers_overridable
                .unwrap_or(DEFAULT_INVOKE_HEADERS_OVERRIDABLE),
        },
        guardrail_map,
        knowledge_base_map,
    })
}

/// An AWS resource id or ARN: non-empty, no whitespace.
fn resource_id(value: String, path: &str, problems: &mut Vec<ConfigProblem>) -> Option<String> {
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        problems.push(ConfigProblem::new(
            path,
            format!("must be a non-empty id without whitespace, got {value:?}"),
        ));
        return None;
    }
    Some(value)
}
