//! OpenAI chat completions wire types the gateway writes to OpenAI-compatible and Azure OpenAI
//! targets (the request) and reads back from them (the answer and its stream chunks). The
//! client-side request types live with their parser in `chat_request`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Serialize)]
pub(crate) struct OutRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) messages: Vec<OutMessage<'a>>,
    /// One of the two is set, as the target's `max_tokens_field` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) stop: Vec<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tools: Vec<OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_choice: Option<OutToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
pub(crate) struct StreamOptions {
    pub(crate) include_usage: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub(crate) enum OutMessage<'a> {
    System {
        content: String,
    },
    User {
        content: Vec<OutPart<'a>>,
    },
    Assistant {
        content: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<OutToolCall<'a>>,
    },
    Tool {
        tool_call_id: Cow<'a, str>,
        content: String,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutPart<'a> {
    Text { text: Cow<'a, str> },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Serialize)]
pub(crate) struct ImageUrl<'a> {
    pub(crate) url: Cow<'a, str>,
}

#[derive(Serialize)]
pub(crate) struct OutToolCall<'a> {
    pub(crate) id: Cow<'a, str>,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) function: OutFunctionCall<'a>,
}

#[derive(Serialize)]
pub(crate) struct OutFunctionCall<'a> {
    pub(crate) name: Cow<'a, str>,
    /// The tool input as a JSON string, as OpenAI carries arguments.
    pub(crate) arguments: &'a str,
}

#[derive(Serialize)]
pub(crate) struct OutTool<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) function: OutFunction<'a>,
}

#[derive(Serialize)]
pub(crate) struct OutFunction<'a> {
    pub(crate) name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<Cow<'a, str>>,
    pub(crate) parameters: &'a RawValue,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum OutToolChoice<'a> {
    Mode(&'static str),
    Named {
        #[serde(rename = "type")]
        kind: &'static str,
        function: NamedFunction<'a>,
    },
}

#[derive(Serialize)]
pub(crate) struct NamedFunction<'a> {
    pub(crate) name: Cow<'a, str>,
}

/// A `chat.completion` from an OpenAI-compatible upstream; only the first choice is read (the
/// gateway never asks for more).
#[derive(Deserialize)]
pub(crate) struct Completion<'a> {
    #[serde(borrow, default)]
    pub(crate) choices: Vec<CompletionChoice<'a>>,
    #[serde(default)]
    pub(crate) usage: Option<InUsage>,
}

#[derive(Deserialize)]
pub(crate) struct CompletionChoice<'a> {
    #[serde(borrow)]
    pub(crate) message: InMessage<'a>,
    #[serde(borrow, default)]
    pub(crate) finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct InMessage<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "null_as_default")]
    pub(crate) tool_calls: Vec<InToolCall<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct InToolCall<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) function: InFunctionCall<'a>,
}

#[derive(Deserialize)]
pub(crate) struct InFunctionCall<'a> {
    #[serde(borrow, default)]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) arguments: Option<Cow<'a, str>>,
}

/// OpenAI's `usage`; `prompt_tokens` includes the cached ones.
#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct InUsage {
    #[serde(default)]
    pub(crate) prompt_tokens: u64,
    #[serde(default)]
    pub(crate) completion_tokens: u64,
    #[serde(default)]
    pub(crate) prompt_tokens_details: Option<InPromptDetails>,
}

#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct InPromptDetails {
    #[serde(default)]
    pub(crate) cached_tokens: u64,
}

/// One `chat.completion.chunk`, or an error record some servers send mid-stream.
#[derive(Deserialize)]
pub(crate) struct Chunk<'a> {
    #[serde(borrow, default, deserialize_with = "null_as_default")]
    pub(crate) choices: Vec<ChunkChoice<'a>>,
    #[serde(default)]
    pub(crate) usage: Option<InUsage>,
    #[serde(borrow, default)]
    pub(crate) error: Option<ChunkError<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ChunkChoice<'a> {
    #[serde(borrow, default, deserialize_with = "null_as_default")]
    pub(crate) delta: ChunkDelta<'a>,
    #[serde(borrow, default)]
    pub(crate) finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
pub(crate) struct ChunkDelta<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "null_as_default")]
    pub(crate) tool_calls: Vec<ChunkToolCall<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ChunkToolCall<'a> {
    /// Some servers (Gemini's OpenAI API, older Ollama) send each call whole and leave it out.
    #[serde(default)]
    pub(crate) index: Option<u32>,
    #[serde(borrow, default)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) function: Option<InFunctionCall<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ChunkError<'a> {
    #[serde(borrow, default)]
    pub(crate) message: Option<Cow<'a, str>>,
    /// E.g. `rate_limit_exceeded`, `server_error`; vLLM's exception class, `BadRequestError`.
    #[serde(borrow, default, rename = "type")]
    pub(crate) kind: Option<Cow<'a, str>>,
    /// A name (`rate_limit_exceeded`), the status as a number (vLLM) or a string (Azure).
    #[serde(default)]
    pub(crate) code: Option<serde_json::Value>,
}

impl ChunkError<'_> {
    /// The HTTP status the error stands for, as the same failure would have as a response: a
    /// status code if the error carries one, else by its code name, else by its type name (the
    /// code is the narrower: OpenAI's `model_not_found` and `invalid_api_key` come with type
    /// `invalid_request_error` but as a 404 and a 401); an unknown error is the server's (500).
    pub(crate) fn status(&self) -> u16 {
        let code = self.code.as_ref();
        let numeric = code
            .and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()))
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| (400..=599).contains(n));
        numeric
            .or_else(|| {
                code.and_then(serde_json::Value::as_str)
                    .and_then(status_named)
            })
            .or_else(|| self.kind.as_deref().and_then(status_named))
            .unwrap_or(500)
    }
}

/// The status an OpenAI, vLLM or LiteLLM error type or code names.
fn status_named(name: &str) -> Option<u16> {
    Some(match name {
        "invalid_request_error" | "BadRequestError" | "context_length_exceeded" => 400,
        "authentication_error" | "AuthenticationError" | "invalid_api_key" => 401,
        "permission_error" | "PermissionDeniedError" => 403,
        "not_found_error" | "NotFoundError" | "model_not_found" => 404,
        "rate_limit_exceeded"
        | "rate_limit_error"
        | "RateLimitError"
        | "insufficient_quota"
        | "requests"
        | "tokens" => 429,
        "overloaded_error" | "overloaded" | "service_unavailable" | "ServiceUnavailableError" => {
            503
        }
        _ => return None,
    })
}

/// An explicit `null` read as the field's default, as a missing field is: LiteLLM and other
/// OpenAI-compatible servers write `"tool_calls": null` (and `"delta": null`) where OpenAI omits them.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
pub(crate) fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn status(error: &str) -> u16 {
        let text = format!(r#"{{"error":{error}}}"#);
        let chunk: Chunk<'_> = serde_json::from_str(&text).unwrap();
        chunk.error.unwrap().status()
    }

    #[test]
    fn an_error_chunk_stands_for_a_status_by_code_or_name() {
        // vLLM: its exception class and the status.
        assert_eq!(
            status(
                r#"{"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400}"#
            ),
            400
        );
        // Azure: the status as a string.
        assert_eq!(status(r#"{"message":"slow down","code":"429"}"#), 429);
        // OpenAI: names only.
        assert_eq!(
            status(r#"{"message":"m","type":"requests","code":"rate_limit_exceeded"}"#),
            429
        );
        assert_eq!(
            status(r#"{"message":"m","type":"invalid_request_error","code":null}"#),
            400
        );
        assert_eq!(
            status(r#"{"message":"m","type":"authentication_error"}"#),
            401
        );
        assert_eq!(status(r#"{"message":"m","code":"invalid_api_key"}"#), 401);
        // The code is the narrower name: OpenAI sends these as a 401 and a 404.
        assert_eq!(
            status(r#"{"message":"m","type":"invalid_request_error","code":"invalid_api_key"}"#),
            401
        );
        assert_eq!(
            status(r#"{"message":"m","type":"invalid_request_error","code":"model_not_found"}"#),
            404
        );
        assert_eq!(status(r#"{"message":"m","type":"overloaded_error"}"#), 503);
        assert_eq!(status(r#"{"message":"m","type":"server_error"}"#), 500);
        assert_eq!(status(r#"{"message":"m","code":7}"#), 500);
        assert_eq!(status(r#"{}"#), 500);
    }
}
