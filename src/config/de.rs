//! From the parsed YAML document to raw types, one section or list element at a time, so that two
//! bad targets give two messages instead of serde stopping at the first. Also the document-side
//! helpers: paths and document order for problems.

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use serde_yaml_ng::{Mapping, Value};

use super::error::ConfigProblem;

/// The path reported for problems with the document as a whole.
pub const ROOT: &str = "(root)";

/// `parent.key`, or `key` at the top level.
pub fn field(parent: &str, key: &str) -> String {
    if parent.is_empty() || parent == ROOT {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub fn index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Deserializes `value` as `T`; on failure records one problem at the exact path inside `value`.
pub fn deserialize<T: DeserializeOwned>(
    value: Value,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(err) => {
            let message = shape_message(&err.inner().to_string());
            let segments: Vec<&Segment> = err.path().iter().collect();
            // serde points at the unknown key; the mistake is in the mapping that holds it.
            let segments = match segments.split_last() {
                Some((Segment::Map { .. }, parent)) if message.starts_with("unknown field") => {
                    parent
                }
                _ => &segments[..],
            };
            let mut at = path.to_owned();
            for segment in segments {
                at = match segment {
                    Segment::Seq { index: i } => index(&at, *i),
                    Segment::Map { key } | Segment::Enum { variant: key } => field(&at, key),
                    Segment::Unknown => field(&at, "?"),
                };
            }
            problems.push(ConfigProblem::new(at, message));
            None
        }
    }
}

/// Takes `key` out of a mapping, so the rest can be deserialized without it.
pub fn take(map: &mut Mapping, key: &str) -> Option<Value> {
    map.shift_remove(key)
}

/// "mapping", "sequence", ... for messages about the wrong kind of node.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// serde's messages speak Rust (`expected i64`, `struct RawTarget`, backticks); operators read
/// YAML.
fn shape_message(message: &str) -> String {
    let mut message = message.to_owned();
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((name, tail)) = rest.split_once('`')
    {
        message = format!("unknown field \"{name}\"{tail}");
    }
    let mut shaped = message.replace('`', "");
    for (rust, yaml) in [
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a borrowed string", "expected a string"),
        ("unit value", "null"),
    ] {
        shaped = shaped.replace(rust, yaml);
    }
    if let Some(at) = shaped.find("expected struct Raw") {
        shaped.truncate(at);
        shaped.push_str("expected a mapping");
    }
    shaped
}

/// A mapping key as it appears in a path.
pub fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_default(),
    }
}

/// Sorts problems by where their path points in the document (stable, so problems at one place
/// keep the order validation found them in). A path to a missing field sorts first in its parent.
pub fn sort_in_document_order(problems: &mut [ConfigProblem], doc: &Value) {
    problems.sort_by_cached_key(|problem| document_position(doc, &problem.path));
}

fn document_position(doc: &Value, path: &str) -> Vec<usize> {
    let mut position = Vec::new();
    if path == ROOT {
        return position;
    }
    let mut node = Some(doc);
    for segment in split_path(path) {
        let next = match (node, segment) {
            (Some(Value::Mapping(map)), PathSegment::Key(key)) => map
                .iter()
                .position(|(k, _)| k.as_str() == Some(key))
                .map(|i| (i, map.get(key))),
            (Some(Value::Sequence(items)), PathSegment::Index(i)) => Some((i, items.get(i))),
            _ => None,
        };
        match next {
            Some((i, child)) => {
                position.push(i + 1);
                node = child;
            }
            None => {
                position.push(0);
                break;
            }
        }
    }
    position
}

enum PathSegment<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<PathSegment<'_>> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, indexes) = part
            .split_once('[')
            .map_or((part, ""), |(k, _)| (k, &part[k.len()..]));
        if !key.is_empty() {
            segments.push(PathSegment::Key(key));
        }
        for i in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            match i.parse() {
                Ok(i) => segments.push(PathSegment::Index(i)),
                Err(_) => return segments,
            }
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::config::raw::RawBalancer;

    #[test]
    fn paths_point_inside_the_element() {
        let value: Value = serde_yaml_ng::from_str("{ retries: five }").unwrap();
        let mut problems = Vec::new();
        assert!(deserialize::<RawBalancer>(value, "routes[3].balancer", &mut problems).is_none());
        assert_eq!(
            problems[0].to_string(),
            "routes[3].balancer.retries: invalid type: string \"five\", expected an integer"
        );
    }

    #[test]
    fn unknown_field_message_is_shaped() {
        assert_eq!(
            shape_message("unknown field `algoritm`, expected one of `algorithm`, `retries`"),
            "unknown field \"algoritm\", expected one of algorithm, retries"
        );
        assert_eq!(
            shape_message("invalid type: integer `5`, expected struct RawServer"),
            "invalid type: integer 5, expected a mapping"
        );
    }

    #[test]
    fn document_order_follows_keys_and_indexes() {
        let doc: Value =
            serde_yaml_ng::from_str("routes:\n  - { b: 1, a: 2 }\n  - { a: 1 }\nserver: {}\n")
                .unwrap();
        let mut problems = vec![
            ConfigProblem::new("server.listen", "x"),
            ConfigProblem::new("routes[1].a", "x"),
            ConfigProblem::new("routes[0].a", "x"),
            ConfigProblem::new("routes[0].b", "x"),
            ConfigProblem::new("routes[0].name", "x"),
            ConfigProblem::new(ROOT, "x"),
        ];
        sort_in_document_order(&mut problems, &doc);
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "(root)",
                "routes[0].name",
                "routes[0].b",
                "routes[0].a",
                "routes[1].a",
                "server.listen"
            ]
        );
    }
}
