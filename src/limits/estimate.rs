//! How many tokens a request may spend, before it is sent: its input estimated from the upstream
//! body, plus the output it allows itself (`max_tokens` in whichever spelling the body's model
//! family uses).
//!
//! The estimate only has to be in the right range: the reservation it makes is settled against
//! Bedrock's real usage when the response (or the stream's `metadata`) arrives.

use serde_json::Value;

/// Characters per token, the usual rule of thumb for English text with BPE tokenizers.
const CHARS_PER_TOKEN: usize = 4;
/// What an image costs Anthropic's models at the largest size they take without resizing
/// (about 1.15 megapixels / 750).
const TOKENS_PER_IMAGE: u32 = 1_600;
/// Output allowance when neither the client nor the target's `max_tokens` says: Bedrock's own
/// default for Claude models on Converse.
pub const DEFAULT_MAX_TOKENS: u32 = 4_096;

/// The body fields that carry the output cap, per family: Converse `inferenceConfig.maxTokens`,
/// Anthropic / Cohere / Mistral `max_tokens`, Llama `max_gen_len`, Titan
/// `textGenerationConfig.maxTokenCount`; OpenAI's `max_completion_tokens` first, as it overrides
/// the deprecated `max_tokens` next to it.
const MAX_TOKEN_FIELDS: [&str; 4] = [
    "max_completion_tokens",
    "maxTokens",
    "max_tokens",
    "max_gen_len",
];
const NESTED_CONFIGS: [(&str, &str); 2] = [
    ("inferenceConfig", "maxTokens"),
    ("textGenerationConfig", "maxTokenCount"),
];

/// What a request body says about its own size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BodyTokens {
    pub input: u32,
    /// The client's own output cap, if the body has one.
    pub max_output: Option<u32>,
}

impl BodyTokens {
    /// A request that generates nothing (a guardrail check, a retrieval, an async-invoke call):
    /// it reserves no tokens, so token limits never count it.
    pub const NONE: Self = Self {
        input: 0,
        max_output: Some(0),
    };

    /// Input plus output allowance: the client's cap, else `default_max`.
    pub fn reservation(self, default_max: u32) -> u32 {
        self.input
            .saturating_add(self.max_output.unwrap_or(default_max))
    }
}

/// Reads the upstream body (Converse or a model's native InvokeModel body). A body that is not
/// JSON is counted by its length.
pub fn estimate(body: &[u8]) -> BodyTokens {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return BodyTokens {
            input: tokens_for_chars(body.len()),
            max_output: None,
        };
    };
    let mut counter = Counter::default();
    counter.walk(&value, None);
    BodyTokens {
        input: tokens_for_chars(counter.chars).saturating_add(counter.images),
        max_output: max_output(&value),
    }
}

fn tokens_for_chars(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(CHARS_PER_TOKEN)).unwrap_or(u32::MAX)
}

fn max_output(value: &Value) -> Option<u32> {
    let as_u32 = |v: &Value| v.as_u64().map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    MAX_TOKEN_FIELDS
        .iter()
        .find_map(|field| value.get(field).and_then(as_u32))
        .or_else(|| {
            NESTED_CONFIGS
                .iter()
                .find_map(|(outer, inner)| value.get(outer)?.get(inner).and_then(as_u32))
        })
}

#[derive(Default)]
struct Counter {
    chars: usize,
    images: u32,
}

impl Counter {
    /// Counts the text a model reads. Base64 payloads (`bytes`, `data`, `data:` URLs) are images
    /// or documents: counting their characters would overestimate them a hundredfold.
    fn walk(&mut self, value: &Value, key: Option<&str>) {
        match value {
            Value::String(s) => {
                if matches!(key, Some("bytes" | "data")) || s.starts_with("data:") {
                    self.images = self.images.saturating_add(TOKENS_PER_IMAGE);
                } else {
                    self.chars = self.chars.saturating_add(s.len());
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.walk(v, key)),
            Value::Object(fields) => fields
                .iter()
                .for_each(|(k, v)| self.walk(v, Some(k.as_str()))),
            Value::Number(_) | Value::Bool(_) | Value::Null => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converse_text_and_max_tokens() {
        let body = br#"{"messages":[{"role":"user","content":[{"text":"12345678"}]}],
            "system":[{"text":"abcd"}],"inferenceConfig":{"maxTokens":50}}"#;
        // "user" (4) + "12345678" (8) + "abcd" (4) = 16 chars -> 4 tokens
        assert_eq!(
            estimate(body),
            BodyTokens {
                input: 4,
                max_output: Some(50)
            }
        );
        assert_eq!(estimate(body).reservation(4096), 54);
    }

    #[test]
    fn native_families_spell_the_cap_their_own_way() {
        for (body, cap) in [
            (
                &br#"{"anthropic_version":"x","max_tokens":7,"messages":[]}"#[..],
                7,
            ),
            (br#"{"prompt":"hi","max_gen_len":9}"#, 9),
            (
                br#"{"model":"o3","max_completion_tokens":13,"messages":[]}"#,
                13,
            ),
            (
                br#"{"inputText":"hi","textGenerationConfig":{"maxTokenCount":11}}"#,
                11,
            ),
        ] {
            assert_eq!(estimate(body).max_output, Some(cap));
        }
        let openai = br#"{"max_tokens":5,"max_completion_tokens":12,"messages":[]}"#;
        assert_eq!(estimate(openai).max_output, Some(12));
        let none = estimate(br#"{"inputText":"hello"}"#);
        assert_eq!(none.max_output, None);
        assert_eq!(none.reservation(100), none.input + 100);
    }

    #[test]
    fn images_count_as_images_not_as_base64_text() {
        let big = "A".repeat(400_000);
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"image":{{"format":"png","source":{{"bytes":"{big}"}}}}}}]}}]}}"#
        );
        let tokens = estimate(body.as_bytes());
        assert!(tokens.input >= TOKENS_PER_IMAGE && tokens.input < TOKENS_PER_IMAGE + 10);
    }

    #[test]
    fn non_json_is_counted_by_length() {
        assert_eq!(estimate(b"not json at all!").input, 4);
    }
}
