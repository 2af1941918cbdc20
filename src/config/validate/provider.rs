//! `model.provider` and what depends on it: which route types it serves, its own options
//! (Anthropic version, Azure deployment) and which `auth` fields it takes.

use super::checks::{aws_keys, both_or_neither};
use crate::config::de::field;
use crate::config::defaults::*;
use crate::config::error::ConfigProblem;
use crate::config::model::*;
use crate::config::raw::*;

pub(super) fn provider(
    v: Option<&str>,
    route_type: RouteType,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Provider> {
    let Some(name) = v else {
        problems.push(ConfigProblem::new(path, "required"));
        return None;
    };
    let Some(provider) = Provider::ALL.into_iter().find(|p| p.as_str() == name) else {
        problems.push(ConfigProblem::new(
            path,
            format!(
                "unsupported provider {name:?}; expected one of bedrock, anthropic, openai, azure"
            ),
        ));
        return None;
    };
    if !provider.serves(route_type) {
        let served: Vec<&str> = Provider::ALL
            .into_iter()
            .filter(|p| p.serves(route_type))
            .map(Provider::as_str)
            .collect();
        problems.push(ConfigProblem::new(
            path,
            format!(
                "provider {name:?} cannot serve a {} route; its targets may be: {}",
                route_type.as_str(),
                served.join(", ")
            ),
        ));
        return None;
    }
    Some(provider)
}

/// The provider's own options and its default upstream (`None`: Bedrock's, which depends on the
/// region, or none without `azure_instance`).
pub(super) fn provider_options(
    provider: Provider,
    options: &RawModelOptions,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<(ProviderOptions, Option<String>)> {
    let own: &[&str] = match provider {
        Provider::Bedrock => &["bedrock"],
        Provider::OpenAi => &["stream_include_usage", "max_tokens_field"],
        Provider::Anthropic => &["anthropic_version"],
        Provider::Azure => &[
            "azure_instance",
            "azure_deployment_id",
            "azure_api_version",
            "stream_include_usage",
            "max_tokens_field",
        ],
    };
    let foreign = [
        ("bedrock", options.bedrock.is_some()),
        ("anthropic_version", options.anthropic_version.is_some()),
        ("azure_instance", options.azure_instance.is_some()),
        ("azure_deployment_id", options.azure_deployment_id.is_some()),
        ("azure_api_version", options.azure_api_version.is_some()),
        (
            "stream_include_usage",
            options.stream_include_usage.is_some(),
        ),
        ("max_tokens_field", options.max_tokens_field.is_some()),
    ]
    .map(|(name, set)| (name, set && !own.contains(&name)));
    let ok = refuse_set(
        &foreign,
        &format!("not an option of provider {:?}", provider.as_str()),
        path,
        problems,
    );
    let word = |name: &str, v: &Option<String>, problems: &mut Vec<ConfigProblem>| match v {
        Some(v) if v.is_empty() || !v.bytes().all(is_url_safe) => {
            problems.push(ConfigProblem::new(
                field(path, name),
                format!("must be non-empty letters, digits, '-', '_' or '.', got {v:?}"),
            ));
            false
        }
        _ => true,
    };
    let stream_include_usage = options
        .stream_include_usage
        .unwrap_or(DEFAULT_STREAM_INCLUDE_USAGE);
    let parsed = match provider {
        Provider::Bedrock => Some((ProviderOptions::Bedrock, None)),
        Provider::OpenAi => Some((
            ProviderOptions::OpenAi {
                stream_include_usage,
            },
            Some(DEFAULT_OPENAI_URL.to_owned()),
        )),
        Provider::Anthropic => word("anthropic_version", &options.anthropic_version, problems)
            .then(|| {
                let version = options
                    .anthropic_version
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ANTHROPIC_VERSION.to_owned());
                (
                    ProviderOptions::Anthropic { version },
                    Some(DEFAULT_ANTHROPIC_URL.to_owned()),
                )
            }),
        Provider::Azure => {
            let mut azure_ok = ["azure_instance", "azure_deployment_id", "azure_api_version"]
                .into_iter()
                .zip([
                    &options.azure_instance,
                    &options.azure_deployment_id,
                    &options.azure_api_version,
                ])
                .fold(true, |ok, (name, v)| word(name, v, problems) && ok);
            if options.azure_deployment_id.is_none() {
                problems.push(ConfigProblem::new(
                    field(path, "azure_deployment_id"),
                    "required for provider \"azure\"",
                ));
                azure_ok = false;
            }
            if options.azure_instance.is_none() && options.upstream_url.is_none() {
                problems.push(ConfigProblem::new(
                    field(path, "azure_instance"),
                    "required for provider \"azure\" unless upstream_url is set",
                ));
                azure_ok = false;
            }
            azure_ok.then(|| {
                (
                    ProviderOptions::Azure {
                        deployment_id: options.azure_deployment_id.clone().unwrap_or_default(),
                        api_version: options
                            .azure_api_version
                            .clone()
                            .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned()),
                        stream_include_usage,
                    },
                    options
                        .azure_instance
                        .as_ref()
                        .map(|instance| format!("https://{instance}.openai.azure.com")),
                )
            })
        }
    };
    ok.then_some(parsed).flatten()
}

/// Characters that go into a URL path, query or host label unescaped.
fn is_url_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// The target's credentials: AWS keys or the credential chain (SigV4), or a Bedrock API key for
/// Bedrock; a key header for the others, or none for an OpenAI-compatible server that takes none.
/// A Bedrock target's role is added by [`with_role`].
pub(super) fn target_auth(
    raw: Option<RawAuth>,
    provider: Provider,
    assumes_role: bool,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<TargetAuth> {
    // No `auth` at all is judged as an empty one: the same fields are required.
    let raw = raw.unwrap_or_default();
    if provider == Provider::Bedrock {
        let mut ok = refuse_set(
            &[
                ("header_name", raw.header_name.is_some()),
                ("header_value", raw.header_value.is_some()),
            ],
            "not for provider \"bedrock\"; a Bedrock API key goes in aws_bearer_token",
            path,
            problems,
        );
        let Some(token) = raw.aws_bearer_token else {
            let keys = aws_keys(
                raw.aws_access_key_id,
                raw.aws_secret_access_key,
                raw.aws_session_token,
                path,
                problems,
            );
            return ok
                .then_some(keys.map(|keys| TargetAuth::SigV4 {
                    keys,
                    assume_role: None,
                }))
                .flatten();
        };
        ok &= refuse_set(
            &[
                ("aws_access_key_id", raw.aws_access_key_id.is_some()),
                ("aws_secret_access_key", raw.aws_secret_access_key.is_some()),
                ("aws_session_token", raw.aws_session_token.is_some()),
            ],
            "not allowed with aws_bearer_token (a Bedrock API key replaces SigV4)",
            path,
            problems,
        );
        if assumes_role {
            problems.push(ConfigProblem::new(
                field(path, "aws_bearer_token"),
                "not allowed with options.bedrock.aws_assume_role_arn (a Bedrock API key replaces SigV4)",
            ));
            ok = false;
        }
        ok &= header_value_ok(&token.0, &field(path, "aws_bearer_token"), problems);
        return ok.then(|| {
            TargetAuth::Key(KeyHeader {
                name: "authorization".to_owned(),
                value: format!("Bearer {}", token.0),
            })
        });
    }
    let ok = refuse_set(
        &[
            ("aws_access_key_id", raw.aws_access_key_id.is_some()),
            ("aws_secret_access_key", raw.aws_secret_access_key.is_some()),
            ("aws_session_token", raw.aws_session_token.is_some()),
            ("aws_bearer_token", raw.aws_bearer_token.is_some()),
        ],
        &format!(
            "only for provider \"bedrock\"; a {:?} key goes in header_name / header_value",
            provider.as_str()
        ),
        path,
        problems,
    );
    let pair = both_or_neither(
        ("header_name", raw.header_name),
        ("header_value", raw.header_value),
        path,
        problems,
    );
    let header = match pair {
        Some(Some((name, value))) => {
            let name_ok = header_name_ok(&name, &field(path, "header_name"), problems);
            let value_ok = header_value_ok(&value.0, &field(path, "header_value"), problems);
            (name_ok && value_ok).then(|| {
                TargetAuth::Key(KeyHeader {
                    name: name.to_ascii_lowercase(),
                    value: value.0,
                })
            })
        }
        Some(None) if provider == Provider::OpenAi => Some(TargetAuth::None),
        Some(None) => {
            problems.push(ConfigProblem::new(
                field(path, "header_name"),
                format!(
                    "required for provider {:?} (with header_value)",
                    provider.as_str()
                ),
            ));
            None
        }
        None => None,
    };
    ok.then_some(header).flatten()
}

/// A Bedrock target's SigV4 credentials, assumed through `role` (`aws_assume_role_arn`), which
/// only a Bedrock target without `aws_bearer_token` may have: [`target_auth`] refused it otherwise.
pub(super) fn with_role(auth: TargetAuth, role: Option<AssumeRole>) -> TargetAuth {
    match auth {
        TargetAuth::SigV4 { keys, .. } => TargetAuth::SigV4 {
            keys,
            assume_role: role,
        },
        other => other,
    }
}

/// Reports each `(field, set)` that is set with `message`; true when none is.
fn refuse_set(
    fields: &[(&str, bool)],
    message: &str,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> bool {
    let mut ok = true;
    for (name, _) in fields.iter().filter(|(_, set)| *set) {
        problems.push(ConfigProblem::new(field(path, name), message));
        ok = false;
    }
    ok
}

/// Headers the gateway sets itself, which a key must not replace.
const RESERVED_HEADERS: [&str; 7] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "anthropic-version",
    "anthropic-beta",
];

fn header_name_ok(name: &str, path: &str, problems: &mut Vec<ConfigProblem>) -> bool {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        problems.push(ConfigProblem::new(
            path,
            format!("must be an HTTP header name, got {name:?}"),
        ));
        return false;
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        problems.push(ConfigProblem::new(
            path,
            format!("{name:?} is set by the gateway; name the header that carries the key"),
        ));
        return false;
    }
    true
}

/// The value never appears in the message: it is a secret.
fn header_value_ok(value: &str, path: &str, problems: &mut Vec<ConfigProblem>) -> bool {
    let why = if value.is_empty() {
        "must not be empty"
    } else if !value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        "must be printable ASCII (no line breaks)"
    } else {
        return true;
    };
    problems.push(ConfigProblem::new(path, why));
    false
}
