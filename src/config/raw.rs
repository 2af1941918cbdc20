//! Serde types mirroring the YAML exactly. Unknown fields are refused; every field is optional so
//! a missing one is reported by validation with its path, and defaults live in one place
//! (`defaults.rs`). Integers are `i64` so an out-of-range value gets a range message, not a serde
//! type error.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::duration::RawDuration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: Option<RawServer>,
    pub consumers: Option<Vec<RawConsumer>>,
    pub rate_limits: Option<RawRateLimits>,
    pub routes: Option<Vec<RawRoute>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub admin_token: Option<Secret>,
    pub max_request_body_size: Option<i64>,
    pub max_response_body_size: Option<i64>,
    pub max_embedding_inputs: Option<i64>,
    pub workers: Option<i64>,
    pub max_concurrent_requests: Option<i64>,
    pub drain_grace: Option<RawDuration>,
    pub shutdown_timeout: Option<RawDuration>,
    pub client_request_timeout: Option<RawDuration>,
    pub client_body_timeout: Option<RawDuration>,
    pub log_payloads: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsumer {
    pub name: Option<String>,
    pub api_key: Option<Secret>,
    pub api_key_sha256: Option<Secret>,
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<Secret>,
    pub limits: Option<RawLimits>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    pub backend: Option<String>,
    pub redis_url: Option<Secret>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    pub route_type: Option<String>,
    pub model_aliases: Option<Vec<String>>,
    pub balancer: Option<RawBalancer>,
    pub targets: Option<Vec<RawTarget>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBalancer {
    pub algorithm: Option<String>,
    pub latency_strategy: Option<String>,
    pub tokens_count_strategy: Option<String>,
    pub hash_on_header: Option<String>,
    pub slots: Option<i64>,
    pub retries: Option<i64>,
    pub failover_criteria: Option<Vec<String>>,
    pub connect_timeout: Option<RawDuration>,
    pub read_timeout: Option<RawDuration>,
    pub write_timeout: Option<RawDuration>,
    pub max_fails: Option<i64>,
    pub fail_timeout: Option<RawDuration>,
    pub session_affinity_ttl: Option<RawDuration>,
    pub session_affinity_max_sessions: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub model: Option<RawModel>,
    pub auth: Option<RawAuth>,
    pub weight: Option<i64>,
    pub priority: Option<i64>,
    pub limits: Option<RawLimits>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub provider: Option<String>,
    pub name: Option<String>,
    pub options: Option<RawModelOptions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelOptions {
    pub bedrock: Option<RawBedrockOptions>,
    pub upstream_url: Option<String>,
    pub input_cost: Option<f64>,
    pub output_cost: Option<f64>,
    pub cache_read_cost: Option<f64>,
    pub cache_write_cost: Option<f64>,
    pub max_tokens: Option<i64>,
    pub anthropic_betas: Option<Vec<String>>,
    pub anthropic_version: Option<String>,
    pub azure_instance: Option<String>,
    pub azure_deployment_id: Option<String>,
    pub azure_api_version: Option<String>,
    pub stream_include_usage: Option<bool>,
    pub max_tokens_field: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBedrockOptions {
    pub aws_region: Option<String>,
    pub aws_assume_role_arn: Option<String>,
    pub aws_role_session_name: Option<String>,
    pub aws_sts_endpoint_url: Option<String>,
    pub model_family: Option<String>,
    pub invoke_headers: Option<BTreeMap<String, String>>,
    pub invoke_headers_overridable: Option<bool>,
    pub guardrail_map: Option<BTreeMap<String, RawGuardrailRef>>,
    pub knowledge_base_map: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuardrailRef {
    pub identifier: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<Secret>,
    pub aws_session_token: Option<Secret>,
    pub aws_bearer_token: Option<Secret>,
    pub header_name: Option<String>,
    pub header_value: Option<Secret>,
}

/// The fields of type [`Secret`]: a `${VAR}` in one that resolves empty is refused, as it would
/// leave a key like `Bearer ` that passes every other check.
pub const SECRET_FIELDS: [&str; 8] = [
    "admin_token",
    "api_key",
    "api_key_sha256",
    "aws_secret_access_key",
    "redis_url",
    "aws_session_token",
    "aws_bearer_token",
    "header_value",
];

/// A secret string. Its `Debug` and its type error never show the value: serde's usual
/// "invalid type: integer `12345`" would print a numeric key into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

const SECRET_TYPE_ERROR: &str = "must be a string (quote the value)";

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;

        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = Secret;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(E::custom(SECRET_TYPE_ERROR))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(E::custom(SECRET_TYPE_ERROR))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(E::custom(SECRET_TYPE_ERROR))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(E::custom(SECRET_TYPE_ERROR))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(de::Error::custom(SECRET_TYPE_ERROR))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(de::Error::custom(SECRET_TYPE_ERROR))
            }
        }

        deserializer.deserialize_any(SecretVisitor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn secret_type_errors_do_not_echo_the_value() {
        let err =
            serde_yaml_ng::from_str::<RawAuth>("aws_secret_access_key: 123456789\n").unwrap_err();
        assert!(!err.to_string().contains("123456789"), "{err}");
        assert!(err.to_string().contains(SECRET_TYPE_ERROR), "{err}");
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Secret("hunter2".into())),
            "Secret(<redacted>)"
        );
    }

    /// The list is what the types say: every `Option<Secret>` field in this file, and no other.
    #[test]
    fn secret_fields_are_the_secret_typed_ones() {
        let mut declared: Vec<&str> = include_str!("raw.rs")
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("pub ")?
                    .strip_suffix(": Option<Secret>,")
            })
            .collect();
        let mut listed = SECRET_FIELDS.to_vec();
        declared.sort_unstable();
        declared.dedup();
        listed.sort_unstable();
        assert_eq!(declared, listed);
    }

    #[test]
    fn whole_document_deserializes() {
        let raw: RawConfig = serde_yaml_ng::from_str(
            "routes:\n  - name: a\n    targets:\n      - model: { provider: bedrock, name: m }\n",
        )
        .unwrap();
        assert_eq!(raw.routes.unwrap()[0].targets.as_ref().unwrap().len(), 1);
    }
}
