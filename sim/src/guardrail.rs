//! ApplyGuardrail, deterministically: text holding the word `forbidden` (any case) is blocked, the
//! rest passes. The reason names the guardrail, version and region, so a test can see which of a
//! region's guardrails a request reached.

use serde::Deserialize;
use serde_json::{Value, json};

use super::errors::SimError;

/// The word the simulated topic policy denies.
const DENIED_WORD: &str = "forbidden";
/// Bedrock bills guardrail text in units of up to 1,000 characters.
const CHARACTERS_PER_UNIT: usize = 1000;

#[derive(Deserialize)]
struct Request {
    source: Option<String>,
    content: Option<Vec<Value>>,
}

pub fn apply(
    body: &[u8],
    identifier: &str,
    version: &str,
    region: &str,
) -> Result<Value, SimError> {
    let request: Request = serde_json::from_slice(body)
        .map_err(|e| SimError::validation(format!("Malformed input request: {e}")))?;
    match request.source.as_deref() {
        Some("INPUT" | "OUTPUT") => {}
        _ => {
            return Err(SimError::validation(
                "1 validation error detected: Value at 'source' failed to satisfy constraint: Member must satisfy enum value set: [INPUT, OUTPUT]",
            ));
        }
    }
    let content = request.content.filter(|c| !c.is_empty()).ok_or_else(|| {
        SimError::validation("1 validation error detected: Value at 'content' failed to satisfy constraint: Member must have length greater than or equal to 1")
    })?;
    let texts: Vec<&str> = content
        .iter()
        .filter_map(|block| block.pointer("/text/text").and_then(Value::as_str))
        .collect();
    let characters: usize = texts.iter().map(|t| t.chars().count()).sum();
    let units = characters.div_ceil(CHARACTERS_PER_UNIT).max(1);
    let blocked = texts.iter().any(|t| {
        t.split(|c: char| !c.is_alphanumeric())
            .any(|w| w.eq_ignore_ascii_case(DENIED_WORD))
    });
    let reason = format!("guardrail {identifier} version {version} in {region}");
    let (action, outputs, assessments) = if blocked {
        (
            "GUARDRAIL_INTERVENED",
            json!([{ "text": format!("Blocked by {reason}.") }]),
            json!([{ "topicPolicy": { "topics": [{ "name": DENIED_WORD, "type": "DENY", "action": "BLOCKED", "detected": true }] } }]),
        )
    } else {
        ("NONE", json!([]), json!([]))
    };
    Ok(json!({
        "usage": {
            "topicPolicyUnits": units,
            "contentPolicyUnits": units,
            "wordPolicyUnits": units,
            "sensitiveInformationPolicyUnits": units,
            "sensitiveInformationPolicyFreeUnits": 0,
            "contextualGroundingPolicyUnits": 0
        },
        "action": action,
        "actionReason": reason,
        "outputs": outputs,
        "assessments": assessments
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_denied_word_is_blocked_and_the_reason_names_the_guardrail() {
        let body = br#"{"source":"INPUT","content":[{"text":{"text":"a Forbidden topic"}}]}"#;
        let out = apply(body, "gr-1", "2", "eu-west-1").unwrap();
        assert_eq!(out["action"], "GUARDRAIL_INTERVENED");
        assert_eq!(out["actionReason"], "guardrail gr-1 version 2 in eu-west-1");
        let body = br#"{"source":"OUTPUT","content":[{"text":{"text":"fine"}}]}"#;
        assert_eq!(apply(body, "g", "1", "r").unwrap()["action"], "NONE");
        assert!(apply(br#"{"content":[]}"#, "g", "1", "r").is_err());
    }
}
