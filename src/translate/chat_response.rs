//! Converse response to an OpenAI `chat.completion` object.
//!
//! Text blocks are joined into `content`; `toolUse` blocks become `tool_calls`, with `content`
//! null when there is no text, as OpenAI does. Reasoning and other block kinds OpenAI has no
//! field for are left out. With a forced `response_format` tool, that tool's input is the
//! content and the finish reason is `stop`; should the model (against the forced choice) answer
//! in text only, that text is kept here, while a stream withholds it (it cannot know in advance).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::TranslateError;
use super::finish_reason::FinishReason;
use super::usage::{BedrockUsage, OpenAiUsage, Usage};

/// A translated response plus what the gateway needs for limits and metrics without reparsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslatedResponse {
    pub body: Vec<u8>,
    pub usage: Usage,
    pub finish_reason: FinishReason,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConverseResponse<'a> {
    #[serde(borrow)]
    pub(crate) output: Output<'a>,
    #[serde(borrow)]
    pub(crate) stop_reason: Cow<'a, str>,
    #[serde(default)]
    pub(crate) usage: Option<BedrockUsage>,
}

#[derive(Deserialize)]
pub(crate) struct Output<'a> {
    #[serde(borrow, default)]
    pub(crate) message: Option<OutputMessage<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct OutputMessage<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Vec<OutputBlock<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutputBlock<'a> {
    #[serde(borrow, default)]
    pub(crate) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) tool_use: Option<OutputToolUse<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutputToolUse<'a> {
    #[serde(borrow)]
    pub(crate) tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) name: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) input: &'a RawValue,
}

/// What a Converse response says, flattened for either OpenAI object.
pub(crate) struct Parsed<'a> {
    pub(crate) text: Option<Cow<'a, str>>,
    tool_calls: Vec<ToolCall<'a>>,
    pub(crate) usage: Usage,
    pub(crate) finish_reason: FinishReason,
}

pub(crate) fn parse<'a>(
    converse_body: &'a [u8],
    json_schema_tool: Option<&str>,
) -> Result<Parsed<'a>, TranslateError> {
    let response: ConverseResponse<'a> = serde_json::from_slice(converse_body)
        .map_err(|e| TranslateError::upstream(format!("Converse response: {e}")))?;
    let usage = response.usage.as_ref().map(Usage::from).unwrap_or_default();
    let blocks = response
        .output
        .message
        .map(|m| m.content)
        .unwrap_or_default();
    let mut answer = Answer::default();
    for block in blocks {
        if let Some(t) = block.text {
            answer.text(t);
        }
        if let Some(tool) = block.tool_use {
            answer.tool_use(tool.tool_use_id, tool.name, tool.input, json_schema_tool);
        }
    }
    Ok(answer.finish(FinishReason::from_bedrock(&response.stop_reason), usage))
}

/// Gathers an answer's blocks, whichever upstream format they came in, into [`Parsed`].
#[derive(Default)]
pub(crate) struct Answer<'a> {
    text: Option<Cow<'a, str>>,
    tool_calls: Vec<ToolCall<'a>>,
    /// The input of the forced `response_format` tool.
    forced: Option<&'a str>,
}

impl<'a> Answer<'a> {
    pub(crate) fn text(&mut self, t: Cow<'a, str>) {
        self.text = Some(match self.text.take() {
            None => t,
            Some(joined) => Cow::Owned(joined.into_owned() + &t),
        });
    }

    pub(crate) fn tool_use(
        &mut self,
        id: Cow<'a, str>,
        name: Cow<'a, str>,
        input: &'a RawValue,
        json_schema_tool: Option<&str>,
    ) {
        if json_schema_tool.is_some_and(|forced| forced == name) {
            self.forced = Some(input.get());
        } else {
            self.tool_calls.push(ToolCall {
                id,
                kind: "function",
                function: FunctionCall {
                    name,
                    arguments: input.get(),
                },
            });
        }
    }

    pub(crate) fn finish(self, finish_reason: FinishReason, usage: Usage) -> Parsed<'a> {
        let finish_reason = finish_reason.hiding_forced_tool(self.forced.is_some());
        // The forced tool's input is the whole answer; any preamble text would make it invalid JSON.
        let text = match self.forced {
            Some(json) => Some(Cow::Borrowed(json)),
            None => self.text,
        };
        Parsed {
            text,
            tool_calls: self.tool_calls,
            usage,
            finish_reason,
        }
    }
}

pub fn chat_response(
    converse_body: &[u8],
    model: &str,
    id: &str,
    created: u64,
    json_schema_tool: Option<&str>,
) -> Result<TranslatedResponse, TranslateError> {
    render(parse(converse_body, json_schema_tool)?, model, id, created)
}

/// The `chat.completion` object for an answer, whichever upstream format it came in.
pub(crate) fn render(
    parsed: Parsed<'_>,
    model: &str,
    id: &str,
    created: u64,
) -> Result<TranslatedResponse, TranslateError> {
    let content = match parsed.text {
        Some(text) => Some(text),
        None if parsed.tool_calls.is_empty() => Some(Cow::Borrowed("")),
        None => None,
    };
    let completion = ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content,
                tool_calls: parsed.tool_calls,
            },
            finish_reason: parsed.finish_reason,
            logprobs: None,
        }],
        usage: OpenAiUsage::from(parsed.usage),
    };
    encode(&completion, parsed.usage, parsed.finish_reason)
}

/// Serialises a translated answer with what the gateway learns from it.
pub(crate) fn encode(
    completion: &impl Serialize,
    usage: Usage,
    finish_reason: FinishReason,
) -> Result<TranslatedResponse, TranslateError> {
    let body = serde_json::to_vec(completion)
        .map_err(|e| TranslateError::upstream(format!("could not encode the completion: {e}")))?;
    Ok(TranslatedResponse {
        body,
        usage,
        finish_reason,
    })
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: OpenAiUsage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    finish_reason: FinishReason,
    logprobs: Option<()>,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: Cow<'a, str>,
    /// OpenAI carries arguments as a JSON string; the upstream's input object is copied verbatim.
    arguments: &'a str,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::{Value, json};

    fn run(converse: Value, json_tool: Option<&str>) -> (TranslatedResponse, Value) {
        let r = chat_response(
            converse.to_string().as_bytes(),
            "claude",
            "chatcmpl-1",
            1700000000,
            json_tool,
        )
        .unwrap();
        let v = serde_json::from_slice(&r.body).unwrap();
        (r, v)
    }

    fn converse(content: Value, stop: &str) -> Value {
        json!({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": {"inputTokens": 12, "outputTokens": 7, "totalTokens": 19},
            "metrics": {"latencyMs": 321}
        })
    }

    #[test]
    fn text_completion() {
        let (r, v) = run(
            converse(json!([{"text": "Hello"}, {"text": ", world"}]), "end_turn"),
            None,
        );
        assert_eq!(
            v,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "claude",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello, world"},
                             "finish_reason": "stop", "logprobs": null}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
            })
        );
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 7,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            }
        );
        assert_eq!(r.finish_reason, FinishReason::Stop);
    }

    #[test]
    fn tool_calls_only() {
        let (r, v) = run(
            converse(
                json!([
                    {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s"}}},
                    {"toolUse": {"toolUseId": "tooluse_1", "name": "w", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "tooluse_2", "name": "w", "input": {}}}
                ]),
                "tool_use",
            ),
            None,
        );
        let msg = &v["choices"][0]["message"];
        assert_eq!(msg["content"], Value::Null);
        assert_eq!(
            msg["tool_calls"],
            json!([
                {"id": "tooluse_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "tooluse_2", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ])
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    }

    #[test]
    fn text_and_tool_calls() {
        let (_, v) = run(
            converse(
                json!([{"text": "Checking."}, {"toolUse": {"toolUseId": "t", "name": "w", "input": {"a": [1]}}}]),
                "tool_use",
            ),
            None,
        );
        assert_eq!(v["choices"][0]["message"]["content"], "Checking.");
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":[1]}"
        );
    }

    #[test]
    fn every_finish_reason() {
        for (stop, want) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
            ("model_context_window_exceeded", "length"),
            ("malformed_model_output", "stop"),
            ("brand_new_reason", "stop"),
        ] {
            let (_, v) = run(converse(json!([{"text": "x"}]), stop), None);
            assert_eq!(v["choices"][0]["finish_reason"], want, "{stop}");
        }
    }

    #[test]
    fn forced_json_tool_becomes_content() {
        let (r, v) = run(
            converse(
                json!([{"toolUse": {"toolUseId": "t", "name": "person", "input": {"name": "Ada", "age": 36}}}]),
                "tool_use",
            ),
            Some("person"),
        );
        let msg = &v["choices"][0]["message"];
        assert!(msg.get("tool_calls").is_none());
        let content: Value = serde_json::from_str(msg["content"].as_str().unwrap()).unwrap();
        assert_eq!(content, json!({"name": "Ada", "age": 36}));
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(r.finish_reason, FinishReason::Stop);
    }

    #[test]
    fn empty_output_and_cache_usage() {
        let body = json!({
            "output": {"message": {"role": "assistant", "content": []}},
            "stopReason": "max_tokens",
            "usage": {"inputTokens": 1, "outputTokens": 0, "totalTokens": 1, "cacheReadInputTokens": 100},
            "metrics": {"latencyMs": 1}
        });
        let (r, v) = run(body, None);
        assert_eq!(v["choices"][0]["message"]["content"], "");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["usage"]["prompt_tokens"], 101);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
        assert_eq!(r.usage.input_tokens, 101);
    }

    #[test]
    fn text_with_newlines_and_unicode_survives() {
        let text = "line1\nline2\r\n\"quoted\" \u{1F600} data: x";
        let (_, v) = run(converse(json!([{"text": text}]), "end_turn"), None);
        assert_eq!(v["choices"][0]["message"]["content"], text);
    }

    #[test]
    fn garbage_is_an_upstream_error() {
        let e = chat_response(b"<html>", "m", "id", 0, None).unwrap_err();
        assert_eq!(e.status(), 502);
        let e = chat_response(br#"{"output":{}}"#, "m", "id", 0, None).unwrap_err();
        assert!(matches!(e, TranslateError::Upstream { .. }));
    }
}
