//! Anthropic Messages <-> Converse, for models that do not speak Anthropic's API (Llama, Mistral,
//! Nova, ...).
//!
//! Mapping decisions:
//! - `system` (a string or text blocks) becomes Converse `system`; `max_tokens`, `temperature`,
//!   `top_p` and `stop_sequences` become `inferenceConfig`.
//! - Text, base64 images, `tool_use` and `tool_result` (text content, `is_error` as status
//!   `error`) map one to one; `tools` are custom tools with an `input_schema`; `tool_choice`
//!   `auto`, `any` and `tool`.
//! - Ignored, because they never change what the model writes: `cache_control` (a cost hint),
//!   `metadata`, `thinking` of type `disabled`.
//! - Refused by name: `thinking` enabled and thinking blocks (Converse has no way to ask these
//!   models to think), `top_k`, `tool_choice` `none`, server tools, image URLs, documents and
//!   every block type or parameter not listed here.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::anthropic::{self, Block, Message, MessagesUsage, OutBlock, OutMessage, required};
use super::body::{Body, encode_request, parse_raw};
use super::chat_response::ConverseResponse;
use super::converse::{
    ContentBlock, ConverseBody, Empty, Image, ImageSource, InferenceConfig, InputSchema, Role,
    SpecificTool, SystemBlock, Tool, ToolChoice, ToolConfig, ToolResult, ToolResultContent,
    ToolSpec, ToolUse, image_format,
};
use super::error::TranslateError;
use super::inference::{take_finite, take_max_tokens};
use super::usage::BedrockUsage;

/// The Converse (or ConverseStream) body for a Messages request.
pub fn converse_request(body: &[u8]) -> Result<Vec<u8>, TranslateError> {
    let capacity = body.len() + 256;
    let mut body = Body::parse(body)?;
    let _model = body.take_raw("model");
    let _stream = body.take_raw("stream");
    let _metadata = body.take_raw("metadata");
    let _version = body.take_raw("anthropic_version");
    let _betas = body.take_raw("anthropic_beta");
    let max_tokens = take_max_tokens(&mut body, "max_tokens")?
        .ok_or_else(|| TranslateError::invalid("max_tokens", "is required"))?;
    let inference = InferenceConfig {
        max_tokens: Some(max_tokens),
        temperature: take_finite(&mut body, "temperature")?,
        top_p: take_finite(&mut body, "top_p")?,
        stop_sequences: body
            .take::<Vec<Cow<'_, str>>>("stop_sequences")?
            .unwrap_or_default(),
    };
    if let Some(thinking) = body.take::<anthropic::Thinking<'_>>("thinking")?
        && thinking.kind != "disabled"
    {
        return Err(TranslateError::unsupported(
            "thinking",
            "extended thinking is available only on Claude models; this model is reached \
             through Converse",
        ));
    }
    if body.take_raw("top_k").is_some() {
        return Err(TranslateError::unsupported(
            "top_k",
            "top_k is available only on Claude models; this model is reached through Converse",
        ));
    }
    let system = take_system(&mut body)?;
    let messages: Vec<Message<'_>> = body
        .take("messages")?
        .ok_or_else(|| TranslateError::invalid("messages", "is required"))?;
    let tools = anthropic::take_custom_tools(&mut body, |(name, description, schema)| {
        Tool::Spec(ToolSpec {
            name,
            description,
            input_schema: InputSchema {
                json: Cow::Borrowed(schema),
            },
            strict: None,
        })
    })?;
    let tool_choice = take_tool_choice(&mut body)?;
    body.reject_rest()
        .map_err(|e| TranslateError::unsupported(e.param().unwrap_or(""), unknown(&e)))?;

    let mut converse = ConverseBody {
        system,
        inference_config: inference,
        ..ConverseBody::default()
    };
    let mut has_tool_blocks = false;
    for (i, message) in messages.iter().enumerate() {
        has_tool_blocks |= push_message(&mut converse, i, message)?;
    }
    if tools.is_empty() {
        if has_tool_blocks {
            return Err(TranslateError::invalid(
                "tools",
                "the conversation holds tool_use or tool_result blocks; Bedrock needs the tools \
                 they refer to",
            ));
        }
        if tool_choice.is_some() {
            return Err(TranslateError::invalid("tool_choice", "requires tools"));
        }
    } else {
        converse.tool_config = Some(ToolConfig { tools, tool_choice });
    }
    encode_request(&converse, capacity, "messages")
}

fn unknown(e: &TranslateError) -> String {
    format!(
        "unknown or unsupported parameter \"{}\" for a model reached through Converse",
        e.param().unwrap_or("")
    )
}

/// `system` as Converse system blocks; an empty text says nothing (Bedrock refuses blank text).
fn take_system<'a>(body: &mut Body<'a>) -> Result<Vec<SystemBlock<'a>>, TranslateError> {
    let Some(raw) = body.take_raw("system") else {
        return Ok(Vec::new());
    };
    Ok(
        anthropic::texts(raw, "system", "system blocks must be text")?
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(SystemBlock::Text)
            .collect(),
    )
}

/// Adds one message; returns whether it held tool blocks.
fn push_message<'a>(
    converse: &mut ConverseBody<'a>,
    i: usize,
    message: &Message<'a>,
) -> Result<bool, TranslateError> {
    let role = match message.role.as_ref() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(TranslateError::invalid(
                format!("messages[{i}].role"),
                format!("unknown role \"{other}\"; use user or assistant"),
            ));
        }
    };
    let param = format!("messages[{i}].content");
    let blocks = anthropic::message_blocks(message.content, &param)?;
    let mut out = Vec::with_capacity(blocks.len());
    let mut has_tools = false;
    for (j, block) in blocks.into_iter().enumerate() {
        let at = format!("{param}[{j}]");
        has_tools |= matches!(block.kind.as_ref(), "tool_use" | "tool_result");
        if let Some(converted) = convert_block(block, &at)? {
            out.push(converted);
        }
    }
    if out.is_empty() {
        return Err(TranslateError::invalid(
            &param,
            "must hold at least one block",
        ));
    }
    converse.push(role, out);
    Ok(has_tools)
}

fn convert_block<'a>(
    block: Block<'a>,
    at: &str,
) -> Result<Option<ContentBlock<'a>>, TranslateError> {
    Ok(Some(match block.kind.as_ref() {
        // Bedrock refuses blank text blocks; an empty one says nothing.
        "text" => match required(block.text, at, "text")? {
            text if text.is_empty() => return Ok(None),
            text => ContentBlock::Text(text),
        },
        "image" => {
            let source: anthropic::ImageSource<'a> = parse_raw(
                required(block.source, at, "source")?,
                &format!("{at}.source"),
            )?;
            if source.kind != "base64" {
                return Err(TranslateError::unsupported(
                    format!("{at}.source.type"),
                    "the gateway does not fetch images; send base64 image data",
                ));
            }
            let media_type = required(source.media_type, at, "source.media_type")?;
            let data = required(source.data, at, "source.data")?;
            ContentBlock::Image(Image {
                format: image_format(&media_type, &data, &format!("{at}.source"))?,
                source: ImageSource { bytes: data },
            })
        }
        "tool_use" => ContentBlock::ToolUse(ToolUse {
            tool_use_id: required(block.id, at, "id")?,
            name: required(block.name, at, "name")?,
            input: Cow::Borrowed(required(block.input, at, "input")?),
        }),
        "tool_result" => ContentBlock::ToolResult(ToolResult {
            tool_use_id: required(block.tool_use_id, at, "tool_use_id")?,
            content: tool_result_content(block.content, at)?,
            status: block.is_error.filter(|e| *e).map(|_| "error"),
        }),
        "thinking" | "redacted_thinking" => {
            return Err(TranslateError::unsupported(
                format!("{at}.type"),
                "thinking blocks can be replayed only to Claude models; this model is reached \
                 through Converse",
            ));
        }
        other => {
            return Err(TranslateError::unsupported(
                format!("{at}.type"),
                format!("content block type \"{other}\" is not supported through Converse"),
            ));
        }
    }))
}

fn tool_result_content<'a>(
    content: Option<&'a RawValue>,
    at: &str,
) -> Result<Vec<ToolResultContent<'a>>, TranslateError> {
    let Some(raw) = content else {
        return Ok(Vec::new());
    };
    Ok(anthropic::texts(
        raw,
        &format!("{at}.content"),
        "tool results through Converse hold text only",
    )?
    .into_iter()
    .map(ToolResultContent::Text)
    .collect())
}

fn take_tool_choice<'a>(body: &mut Body<'a>) -> Result<Option<ToolChoice<'a>>, TranslateError> {
    let Some(choice) = body.take::<anthropic::ToolChoice<'a>>("tool_choice")? else {
        return Ok(None);
    };
    Ok(Some(match choice.kind.as_ref() {
        "auto" => ToolChoice::Auto(Empty {}),
        "any" => ToolChoice::Any(Empty {}),
        "tool" => ToolChoice::Tool(SpecificTool {
            name: required(choice.name, "tool_choice", "name")?,
        }),
        other => {
            return Err(TranslateError::unsupported(
                "tool_choice.type",
                format!("tool_choice \"{other}\" cannot be expressed through Converse"),
            ));
        }
    }))
}

/// Anthropic usage from Converse's: `inputTokens` already leaves cache tokens out, as
/// Anthropic's `input_tokens` does.
pub(crate) fn messages_usage(u: &BedrockUsage) -> MessagesUsage {
    MessagesUsage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cache_creation_input_tokens: u.cache_write_input_tokens,
        cache_read_input_tokens: u.cache_read_input_tokens,
    }
}

/// A Converse response as an Anthropic message, with its usage for metrics and limits.
pub fn messages_response(
    converse_body: &[u8],
    model: &str,
    id: &str,
) -> Result<(Vec<u8>, MessagesUsage), TranslateError> {
    let response: ConverseResponse<'_> = serde_json::from_slice(converse_body)
        .map_err(|e| TranslateError::upstream(format!("Converse response: {e}")))?;
    let usage = response
        .usage
        .as_ref()
        .map(messages_usage)
        .unwrap_or_default();
    let content = response
        .output
        .message
        .map(|m| m.content)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|b| match (b.text, b.tool_use) {
            (Some(text), _) => Some(OutBlock::Text { text }),
            (None, Some(tool)) => Some(OutBlock::ToolUse {
                id: tool.tool_use_id,
                name: tool.name,
                input: tool.input,
            }),
            // Reasoning and block kinds added later carry nothing these models were asked for.
            (None, None) => None,
        })
        .collect();
    let message = OutMessage {
        id,
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason: Some(anthropic::stop_reason(&response.stop_reason)),
        stop_sequence: None,
        usage,
    };
    let body = serde_json::to_vec(&message)
        .map_err(|e| TranslateError::upstream(format!("could not encode the message: {e}")))?;
    Ok((body, usage))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::{Value, json};

    fn convert(v: Value) -> Result<Value, TranslateError> {
        converse_request(v.to_string().as_bytes()).map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn a_tool_conversation_maps_block_for_block() {
        let out = convert(json!({
            "model": "llama", "max_tokens": 100, "stream": true, "temperature": 0.5,
            "stop_sequences": ["END"], "metadata": {"user_id": "u"},
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": "weather", "description": "Weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "auto"},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": ""},
                    {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "sunny", "is_error": false},
                    {"type": "text", "text": "And?"}
                ]}
            ]
        }))
        .unwrap();
        assert_eq!(
            out,
            json!({
                "messages": [
                    {"role": "user", "content": [
                        {"text": "Weather?"},
                        {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}
                    ]},
                    {"role": "assistant", "content": [
                        {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Paris"}}}
                    ]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}},
                        {"text": "And?"}
                    ]}
                ],
                "system": [{"text": "Be brief."}],
                "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "stopSequences": ["END"]},
                "toolConfig": {
                    "tools": [{"toolSpec": {"name": "weather", "description": "Weather", "inputSchema": {"json": {"type": "object"}}}}],
                    "toolChoice": {"auto": {}}
                }
            })
        );
    }

    #[test]
    fn failed_tools_and_string_content() {
        let out = convert(json!({
            "model": "m", "max_tokens": 10, "system": "sys",
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "f"},
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "is_error": true,
                    "content": [{"type": "text", "text": "boom"}]}]}
            ]
        }))
        .unwrap();
        assert_eq!(out["system"], json!([{"text": "sys"}]));
        assert_eq!(
            out["messages"][2]["content"][0]["toolResult"],
            json!({"toolUseId": "a", "content": [{"text": "boom"}], "status": "error"})
        );
        assert_eq!(
            out["toolConfig"]["toolChoice"],
            json!({"tool": {"name": "f"}})
        );
    }

    #[test]
    fn what_converse_cannot_say_is_refused_by_name() {
        let base = || json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        let cases: Vec<(Value, &str)> = vec![
            (
                {
                    let mut v = base();
                    v["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
                    v
                },
                "thinking",
            ),
            (
                {
                    let mut v = base();
                    v["top_k"] = json!(5);
                    v
                },
                "top_k",
            ),
            (
                {
                    let mut v = base();
                    v["tool_choice"] = json!({"type": "none"});
                    v["tools"] = json!([{"name": "f", "input_schema": {}}]);
                    v
                },
                "tool_choice.type",
            ),
            (
                {
                    let mut v = base();
                    v["tools"] = json!([{"type": "bash_20250124", "name": "bash"}]);
                    v
                },
                "tools[0].type",
            ),
            (
                {
                    let mut v = base();
                    v["messages"] =
                        json!([{"role": "user", "content": [{"type": "document", "source": {}}]}]);
                    v
                },
                "messages[0].content[0].type",
            ),
            (
                {
                    let mut v = base();
                    v["messages"] = json!([{"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "signature": "s"}]}]);
                    v
                },
                "messages[0].content[0].type",
            ),
            (
                {
                    let mut v = base();
                    v["messages"] = json!([{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x"}}]}]);
                    v
                },
                "messages[0].content[0].source.type",
            ),
            (
                {
                    let mut v = base();
                    v["service_tier"] = json!("auto");
                    v
                },
                "service_tier",
            ),
            (
                {
                    let mut v = base();
                    v.as_object_mut().unwrap().remove("max_tokens");
                    v
                },
                "max_tokens",
            ),
            (
                {
                    let mut v = base();
                    v["messages"] = json!([{"role": "system", "content": "x"}]);
                    v
                },
                "messages[0].role",
            ),
        ];
        for (body, param) in cases {
            let e = convert(body).unwrap_err();
            assert_eq!(e.param(), Some(param), "{e}");
            assert_eq!(e.status(), 400);
        }
        let mut disabled = base();
        disabled["thinking"] = json!({"type": "disabled"});
        assert!(convert(disabled).is_ok());
    }

    #[test]
    fn converse_answer_becomes_a_message() {
        let converse = json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "hmm"}}},
                {"text": "Let me check."},
                {"toolUse": {"toolUseId": "t9", "name": "weather", "input": {"city": "Oslo"}}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 12, "outputTokens": 7, "totalTokens": 119,
                      "cacheReadInputTokens": 100, "cacheWriteInputTokens": 0}
        });
        let (body, usage) =
            messages_response(converse.to_string().as_bytes(), "llama", "msg_1").unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "llama",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "t9", "name": "weather", "input": {"city": "Oslo"}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 12, "output_tokens": 7,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100}
            })
        );
        assert_eq!(usage.cache_read_input_tokens, 100);
        assert!(messages_response(b"<html>", "m", "i").is_err());
    }
}
