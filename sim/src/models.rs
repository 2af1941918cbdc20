//! Model ids, families and the deterministic replies every operation is built from.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::errors::{ErrorKind, SimError};

/// Cross-region inference profile prefixes, which route but do not change the model.
const PROFILE_PREFIXES: [&str; 4] = ["us.", "eu.", "apac.", "global."];

/// Tool-call input is streamed in about this many pieces, as Bedrock splits partial JSON.
pub const TOOL_INPUT_FRAGMENTS: usize = 3;

/// The resource type in an application inference profile's ARN.
const APPLICATION_PROFILE: &str = ":application-inference-profile/";

/// Words of the user's text echoed back, enough to check routing without huge replies.
const ECHO_WORDS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Anthropic,
    Llama,
    TitanEmbedV1,
    TitanEmbedV2,
    CohereEmbed,
    /// Chat models the simulator only serves through Converse (Nova, Mistral).
    GenericChat,
}

impl Family {
    pub fn of(model_id: &str) -> Result<Self, SimError> {
        // An application inference profile's id names no model; the simulator's all wrap Claude.
        if model_id.contains(APPLICATION_PROFILE) {
            return Ok(Self::Anthropic);
        }
        let base = model_id.rsplit('/').next().unwrap_or(model_id);
        let base = PROFILE_PREFIXES
            .iter()
            .find_map(|p| base.strip_prefix(p))
            .unwrap_or(base);
        let family = if base.starts_with("anthropic.") {
            Self::Anthropic
        } else if base.starts_with("meta.llama") {
            Self::Llama
        } else if base.starts_with("amazon.titan-embed-text-v1") {
            Self::TitanEmbedV1
        } else if base.starts_with("amazon.titan-embed-text-v2") {
            Self::TitanEmbedV2
        } else if base.starts_with("cohere.embed") {
            Self::CohereEmbed
        } else if base.starts_with("amazon.nova") || base.starts_with("mistral.") {
            Self::GenericChat
        } else {
            return Err(SimError::new(
                ErrorKind::ResourceNotFound,
                format!(
                    "Could not resolve the foundation model from the model identifier {model_id}."
                ),
            ));
        };
        Ok(family)
    }

    pub fn is_chat(self) -> bool {
        matches!(self, Self::Anthropic | Self::Llama | Self::GenericChat)
    }
}

/// A conversation role, spelt the same way by Converse and the Anthropic messages API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

pub fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Why generation stopped, in Converse's spelling; the invoke formats map from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
}

impl StopReason {
    pub fn converse(self) -> &'static str {
        match self {
            Self::EndTurn => "end_turn",
            Self::MaxTokens => "max_tokens",
            Self::StopSequence => "stop_sequence",
            Self::ToolUse => "tool_use",
        }
    }
}

/// A reply after limits were applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub stop: StopReason,
    /// The stop sequence that cut the reply, if one did.
    pub stop_sequence: Option<String>,
}

impl Reply {
    pub fn words(&self) -> u64 {
        count_words(&self.text)
    }
}

/// The reply text: names region and model so a test can see where a request landed.
pub fn reply_text(region: &str, model_id: &str, user_text: &str) -> String {
    format!(
        "Hello from {region} ({model_id}). You said: {}",
        echo(user_text)
    )
}

/// The first words of the user's text, single-spaced.
pub fn echo(user_text: &str) -> String {
    let words: Vec<&str> = user_text.split_whitespace().take(ECHO_WORDS).collect();
    words.join(" ")
}

/// Cuts `text` at the first stop sequence, else at `max_tokens` words.
pub fn limit(text: &str, max_tokens: Option<u64>, stop_sequences: &[String]) -> Reply {
    let cut = stop_sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at);
    let (mut text, mut stop, mut stop_sequence) = match cut {
        Some((at, seq)) => (
            text[..at].trim_end().to_owned(),
            StopReason::StopSequence,
            Some(seq.clone()),
        ),
        None => (text.to_owned(), StopReason::EndTurn, None),
    };
    if let Some(max) = max_tokens
        && count_words(&text) > max
    {
        let words: Vec<&str> = text.split_whitespace().take(max as usize).collect();
        text = words.join(" ");
        stop = StopReason::MaxTokens;
        stop_sequence = None;
    }
    Reply {
        text,
        stop,
        stop_sequence,
    }
}

/// Splits text into stream deltas, one word each, keeping the spaces so they join back exactly.
pub fn word_deltas(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, word) in text.split(' ').enumerate() {
        if i == 0 {
            out.push(word.to_owned());
        } else {
            out.push(format!(" {word}"));
        }
    }
    out.retain(|d| !d.is_empty());
    out
}

/// Hex of a SHA-256 over the parts, for ids that are stable across runs.
pub fn stable_id(parts: &[&str], len: usize) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let mut hex = hex::encode(hasher.finalize());
    hex.truncate(len);
    hex
}

/// A vector seeded from the text, so the same text always embeds the same way.
pub fn embedding(text: &str, dimensions: usize, normalize: bool) -> Vec<f64> {
    let digest = Sha256::digest(text.as_bytes());
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&digest[..8]);
    let mut rng = fastrand::Rng::with_seed(u64::from_le_bytes(seed));
    let mut values: Vec<f64> = (0..dimensions).map(|_| rng.f64() * 2.0 - 1.0).collect();
    if normalize {
        let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            values.iter_mut().for_each(|v| *v /= norm);
        }
    }
    values
}

/// An input object with every declared or required property set to a fixed value of its type.
pub fn sample_input(schema: &Value) -> Value {
    let mut input = Map::new();
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let value = match property.get("type").and_then(Value::as_str) {
                Some("number" | "integer") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!("sample"),
            };
            input.insert(name.clone(), value);
        }
    }
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        input
            .entry(name.to_owned())
            .or_insert_with(|| json!("sample"));
    }
    Value::Object(input)
}

/// Splits text into up to `n` non-empty pieces on character boundaries.
pub fn fragments(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(n).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn families_ignore_profile_and_arn_prefixes() {
        let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0";
        assert_eq!(Family::of(arn).unwrap(), Family::Anthropic);
        assert_eq!(
            Family::of("global.anthropic.claude-sonnet-4").unwrap(),
            Family::Anthropic
        );
        assert_eq!(
            Family::of("meta.llama3-8b-instruct-v1:0").unwrap(),
            Family::Llama
        );
        assert_eq!(
            Family::of("amazon.titan-embed-text-v2:0").unwrap(),
            Family::TitanEmbedV2
        );
        assert_eq!(
            Family::of("cohere.embed-english-v3").unwrap(),
            Family::CohereEmbed
        );
        assert_eq!(
            Family::of("eu.amazon.nova-pro-v1:0").unwrap(),
            Family::GenericChat
        );
        assert_eq!(
            Family::of(
                "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
            )
            .unwrap(),
            Family::Anthropic
        );
        assert_eq!(
            Family::of("openai.gpt-9").unwrap_err().name,
            "ResourceNotFoundException"
        );
    }

    #[test]
    fn reply_names_region_and_model_and_echoes() {
        let text = reply_text("eu-west-1", "m", "what   is up");
        assert_eq!(text, "Hello from eu-west-1 (m). You said: what is up");
    }

    #[test]
    fn limits_cut_at_stop_sequences_then_max_tokens() {
        let text = "one two three four";
        assert_eq!(limit(text, None, &[]).stop, StopReason::EndTurn);
        let cut = limit(text, Some(2), &[]);
        assert_eq!(
            (cut.text.as_str(), cut.stop),
            ("one two", StopReason::MaxTokens)
        );
        let cut = limit(text, None, &["three".to_owned()]);
        assert_eq!(
            (cut.text.as_str(), cut.stop),
            ("one two", StopReason::StopSequence)
        );
        assert_eq!(cut.stop_sequence.as_deref(), Some("three"));
    }

    #[test]
    fn deltas_join_back_to_the_text() {
        let text = "Hello from us-east-1 (m). You said: hi";
        assert_eq!(word_deltas(text).concat(), text);
        assert_eq!(word_deltas(text).len(), 7);
    }

    #[test]
    fn embeddings_are_deterministic_and_unit_when_normalized() {
        let a = embedding("hello", 256, true);
        assert_eq!(a, embedding("hello", 256, true));
        assert_ne!(a, embedding("hello!", 256, true));
        let norm: f64 = a.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-9);
    }

    #[test]
    fn fragments_rejoin() {
        let text = r#"{"city":"sample"}"#;
        let parts = fragments(text, 3);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.concat(), text);
    }
}
