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
    /// E.g. `rate_limit_exceeded`, `server_error`.
    #[serde(borrow, default, rename = "type")]
    pub(crate) kind: Option<Cow<'a, str>>,
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
