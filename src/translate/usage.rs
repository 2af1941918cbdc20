//! Token usage as Bedrock reports it, and its OpenAI rendering.

use serde::{Deserialize, Serialize};

use super::anthropic::MessagesUsage;

/// Token counts of one upstream call, handed back to the gateway for limits and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt tokens served from Bedrock's prompt cache; already counted in `input_tokens`.
    pub cache_read_tokens: u64,
    /// Prompt tokens written to Bedrock's prompt cache; already counted in `input_tokens`.
    pub cache_write_tokens: u64,
}

impl Usage {
    /// Prompt tokens as Bedrock's quota settles them: cache reads are released at settlement.
    pub fn quota_input(&self) -> u64 {
        self.input_tokens - self.cache_read_tokens
    }
}

/// Bedrock's `TokenUsage`. Its `inputTokens` leaves out cache reads and writes, which OpenAI's
/// `prompt_tokens` includes, so they are added back.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BedrockUsage {
    #[serde(default)]
    pub(crate) input_tokens: u64,
    #[serde(default)]
    pub(crate) output_tokens: u64,
    #[serde(default)]
    pub(crate) cache_read_input_tokens: u64,
    #[serde(default)]
    pub(crate) cache_write_input_tokens: u64,
}

impl From<&BedrockUsage> for Usage {
    fn from(u: &BedrockUsage) -> Self {
        Self {
            input_tokens: u.input_tokens + u.cache_read_input_tokens + u.cache_write_input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_input_tokens,
            cache_write_tokens: u.cache_write_input_tokens,
        }
    }
}

/// OpenAI's `prompt_tokens` already counts its cached tokens.
impl From<super::openai_chat::InUsage> for Usage {
    fn from(u: super::openai_chat::InUsage) -> Self {
        let cached = u.prompt_tokens_details.map_or(0, |d| d.cached_tokens);
        Self {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cache_read_tokens: cached.min(u.prompt_tokens),
            cache_write_tokens: 0,
        }
    }
}

/// The `usage` of an OpenAI answer (a `chat.completion` or an embeddings list), if it has one.
pub fn openai_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct WithUsage {
        usage: super::openai_chat::InUsage,
    }
    serde_json::from_slice::<WithUsage>(body)
        .ok()
        .map(|w| w.usage.into())
}

/// Anthropic's `input_tokens` leaves cache reads and writes out, as Bedrock's does.
impl From<MessagesUsage> for Usage {
    fn from(u: MessagesUsage) -> Self {
        Self {
            input_tokens: u.input_tokens
                + u.cache_read_input_tokens
                + u.cache_creation_input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_input_tokens,
            cache_write_tokens: u.cache_creation_input_tokens,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct OpenAiUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Debug, Serialize)]
struct PromptTokensDetails {
    cached_tokens: u64,
}

impl From<Usage> for OpenAiUsage {
    fn from(u: Usage) -> Self {
        Self {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.input_tokens + u.output_tokens,
            prompt_tokens_details: (u.cache_read_tokens > 0).then_some(PromptTokensDetails {
                cached_tokens: u.cache_read_tokens,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn cache_tokens_count_as_prompt() {
        let b: BedrockUsage = serde_json::from_str(
            r#"{"inputTokens":10,"outputTokens":5,"totalTokens":45,"cacheReadInputTokens":20,"cacheWriteInputTokens":10}"#,
        )
        .unwrap();
        let u = Usage::from(&b);
        assert_eq!(
            u,
            Usage {
                input_tokens: 40,
                output_tokens: 5,
                cache_read_tokens: 20,
                cache_write_tokens: 10,
            }
        );
        assert_eq!(u.quota_input(), 20);
        let v = serde_json::to_value(OpenAiUsage::from(u)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"prompt_tokens":40,"completion_tokens":5,"total_tokens":45,
                "prompt_tokens_details":{"cached_tokens":20}})
        );
    }

    #[test]
    fn plain_usage_has_no_details() {
        let b: BedrockUsage =
            serde_json::from_str(r#"{"inputTokens":3,"outputTokens":4,"totalTokens":7}"#).unwrap();
        let v = serde_json::to_value(OpenAiUsage::from(Usage::from(&b))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"prompt_tokens":3,"completion_tokens":4,"total_tokens":7})
        );
    }
}
