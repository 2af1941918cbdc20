//! `consumers`: names, API keys (kept only as SHA-256 digests) and SigV4 key pairs, each unique.

use std::collections::HashMap;

use serde_yaml_ng::Value;

use super::checks::*;
use crate::config::de::{self, field, index};
use crate::config::error::ConfigProblem;
use crate::config::model::*;
use crate::config::raw::*;

/// Which field a consumer's API key came from, for messages about duplicates.
struct KeyOrigin {
    digest: [u8; 32],
    field: &'static str,
}

pub(super) fn consumers(value: Value, problems: &mut Vec<ConfigProblem>) -> Option<Vec<Consumer>> {
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
            digest: key_digest(key.0.as_bytes()),
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
