//! Checks shared by several sections: names, enums, integer ranges, durations, key pairs and limits.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::config::de::field;
use crate::config::duration::RawDuration;
use crate::config::error::ConfigProblem;
use crate::config::model::*;
use crate::config::raw::*;

pub(super) fn name(
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
        Some(name) => identifier(
            name,
            &format!("{what} name"),
            &path,
            problems,
            allowed,
            allowed_text,
        ),
    }
}

/// A non-empty string of `allowed` characters; `what` names it in the error.
pub(super) fn identifier(
    value: String,
    what: &str,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
    allowed: impl Fn(char) -> bool,
    allowed_text: &str,
) -> Option<String> {
    if value.is_empty() {
        problems.push(ConfigProblem::new(path, "must not be empty"));
        None
    } else if !value.chars().all(allowed) {
        problems.push(ConfigProblem::new(
            path,
            format!("invalid {what} {value:?}; use only {allowed_text}"),
        ));
        None
    } else {
        Some(value)
    }
}

pub(super) fn one_of<T: Copy>(
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
pub(super) fn in_range(
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
pub(super) fn at_least(
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

pub(super) fn duration(
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

/// Two fields set together or not at all: `Some(None)` for neither, `None` (reported) for one
/// without the other.
pub(super) fn both_or_neither<A, B>(
    (first, a): (&str, Option<A>),
    (second, b): (&str, Option<B>),
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Option<(A, B)>> {
    let (missing, set) = match (a, b) {
        (Some(a), Some(b)) => return Some(Some((a, b))),
        (None, None) => return Some(None),
        (Some(_), None) => (second, first),
        (None, Some(_)) => (first, second),
    };
    problems.push(ConfigProblem::new(
        field(path, missing),
        format!("required when {set} is set"),
    ));
    None
}

/// A static key pair: both halves or neither; a session token only with both.
pub(super) fn aws_keys(
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    session_token: Option<Secret>,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Option<AwsKeys>> {
    let pair = both_or_neither(
        ("aws_access_key_id", access_key_id),
        ("aws_secret_access_key", secret_access_key),
        path,
        problems,
    )?;
    match pair {
        Some((id, secret)) => {
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
        None if session_token.is_some() => {
            problems.push(ConfigProblem::new(
                field(path, "aws_session_token"),
                "only allowed with aws_access_key_id and aws_secret_access_key",
            ));
            None
        }
        None => Some(None),
    }
}

pub(super) fn limits(
    raw: Option<RawLimits>,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Limits> {
    let raw = raw.unwrap_or_default();
    let rpm = optional_non_zero_u32(raw.rpm, &field(path, "rpm"), problems);
    let tpm = optional_non_zero_u32(raw.tpm, &field(path, "tpm"), problems);
    Some(Limits {
        rpm: rpm?,
        tpm: tpm?,
    })
}

pub(super) fn optional_non_zero_u32(
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
