//! Anthropic Messages <-> OpenAI chat completions, for Anthropic clients reaching an
//! OpenAI-compatible or Azure OpenAI target: the request becomes a chat body, the answer an
//! Anthropic message.
//!
//! Mapping decisions:
//! - `system` (a string or text blocks) becomes one leading system message, blocks joined by a
//!   blank line: many OpenAI-compatible chat templates accept a single system message only. For
//!   the same reason `system` messages between the turns (Claude Code sends its changing context
//!   so, beta `mid-conversation-system-2026-04-07`) are appended to it, in order.
//! - A user turn's `tool_result` blocks become `tool` messages placed before the rest of the
//!   turn (OpenAI wants them right after the assistant's `tool_calls`); the remaining text and
//!   images become the user message. Tool result text blocks are joined; `is_error` has no
//!   OpenAI field, so the text is sent prefixed with `Error: ` for the model to see the failure.
//! - Images: base64 sources become data URLs, URL sources stay URLs.
//! - `tool_use` blocks become `tool_calls` with the input as the JSON `arguments` string;
//!   `tool_choice` `auto`/`any`/`tool`/`none` become `auto`/`required`/named/`none`, and
//!   `disable_parallel_tool_use` becomes `parallel_tool_calls: false`.
//! - `stream` asks for `stream_options.include_usage`, since the final usage is needed for
//!   `message_delta`, metrics and limits, unless the target refuses `stream_options`
//!   (`ask_usage` false; the usage is then unknown).
//! - Ignored, as on the Converse path: `cache_control`, `metadata`.
//! - Dropped, because they steer how Claude works rather than what the answer is, and Claude Code
//!   sends them on every request: `thinking` (any type; the model answers without a thinking
//!   block), replayed `thinking` / `redacted_thinking` blocks of assistant turns (signed for Claude,
//!   meaningless to another model, so a conversation can move to an OpenAI target),
//!   `output_config.effort`, and `context_management` (server-side clearing of old thinking and
//!   tool results: the target gets the conversation as the client sent it).
//! - Refused by name: `top_k`, `output_config` fields other than `effort` (a structured output
//!   `format` changes the answer), server tools, and every block type or parameter not listed
//!   here.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::IgnoredAny;

use serde_json::value::RawValue;

use super::anthropic::{self, Block, Message, MessagesUsage, OutBlock, OutMessage, required};
use super::body::{Body, first_byte, parse_raw};
use super::error::TranslateError;
use super::inference::{take_finite, take_max_tokens};
use super::openai_chat::{
    self, ImageUrl, NamedFunction, OutFunction, OutFunctionCall, OutMessage as ChatMessage,
    OutPart, OutRequest, OutTool, OutToolCall, OutToolChoice, StreamOptions,
};
use crate::config::MaxTokensField;

/// A Messages request translated for an OpenAI-compatible target.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamChatRequest {
    pub stream: bool,
    pub max_tokens: u32,
    /// The chat completions JSON body, `model` set to the target's model.
    pub body: Vec<u8>,
}

/// Translates an Anthropic Messages request body into a chat completions body for `model`, its
/// `max_tokens` in the target's `max_field`; a stream asks for its usage chunk when `ask_usage`.
pub fn chat_request(
    body: &[u8],
    model: &str,
    ask_usage: bool,
    max_field: MaxTokensField,
) -> Result<UpstreamChatRequest, TranslateError> {
    let capacity = body.len() + 256;
    let mut body = Body::parse(body)?;
    let _client_model = body.take_raw("model");
    let _metadata = body.take_raw("metadata");
    let _version = body.take_raw("anthropic_version");
    let _betas = body.take_raw("anthropic_beta");
    let _thinking = body.take::<anthropic::Thinking<'_>>("thinking")?;
    let _context_management = body.take_raw("context_management");
    take_output_config(&mut body)?;
    let stream = body.take::<bool>("stream")?.unwrap_or(false);
    let max_tokens = take_max_tokens(&mut body, "max_tokens")?
        .ok_or_else(|| TranslateError::invalid("max_tokens", "is required"))?;
    if body.take_raw("top_k").is_some() {
        return Err(TranslateError::unsupported(
            "top_k",
            "top_k has no equivalent on OpenAI-compatible targets",
        ));
    }
    let mut request = OutRequest {
        model,
        messages: Vec::new(),
        max_tokens: (max_field == MaxTokensField::MaxTokens).then_some(max_tokens),
        max_completion_tokens: (max_field == MaxTokensField::MaxCompletionTokens)
            .then_some(max_tokens),
        temperature: take_finite(&mut body, "temperature")?,
        top_p: take_finite(&mut body, "top_p")?,
        stop: body
            .take::<Vec<Cow<'_, str>>>("stop_sequences")?
            .unwrap_or_default(),
        tools: Vec::new(),
        tool_choice: None,
        parallel_tool_calls: None,
        stream,
        stream_options: (stream && ask_usage).then_some(StreamOptions {
            include_usage: true,
        }),
    };
    let mut system = match body.take_raw("system") {
        Some(raw) => system_texts(raw, "system")?,
        None => Vec::new(),
    };
    let messages: Vec<Message<'_>> = body
        .take("messages")?
        .ok_or_else(|| TranslateError::invalid("messages", "is required"))?;
    request.tools =
        anthropic::take_custom_tools(&mut body, |(name, description, parameters)| OutTool {
            kind: "function",
            function: OutFunction {
                name,
                description,
                parameters,
            },
        })?;
    if let Some(choice) = body.take::<anthropic::ToolChoice<'_>>("tool_choice")? {
        if request.tools.is_empty() && choice.kind != "none" {
            return Err(TranslateError::invalid("tool_choice", "requires tools"));
        }
        request.parallel_tool_calls = choice.disable_parallel_tool_use.then_some(false);
        request.tool_choice = Some(tool_choice(choice)?);
    }
    body.reject_rest().map_err(|e| {
        let param = e.param().unwrap_or("");
        TranslateError::unsupported(
            param,
            format!("unknown or unsupported parameter \"{param}\" for an OpenAI-compatible target"),
        )
    })?;
    let mut turns = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        push_message(&mut turns, &mut system, i, message)?;
    }
    if !system.is_empty() {
        request.messages.push(ChatMessage::System {
            content: system.join("\n\n"),
        });
    }
    request.messages.append(&mut turns);
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut out, &request)
        .map_err(|e| TranslateError::invalid("messages", e.to_string()))?;
    Ok(UpstreamChatRequest {
        stream,
        max_tokens,
        body: out,
    })
}

/// Refuses what of `output_config` would change the answer; `effort` is Claude's alone.
fn take_output_config(body: &mut Body<'_>) -> Result<(), TranslateError> {
    let Some(config) = body.take::<BTreeMap<Cow<'_, str>, IgnoredAny>>("output_config")? else {
        return Ok(());
    };
    match config.keys().find(|k| *k != "effort") {
        Some(key) => Err(TranslateError::unsupported(
            format!("output_config.{key}"),
            format!("output_config.{key} is not supported on OpenAI-compatible targets"),
        )),
        None => Ok(()),
    }
}

/// The non-empty texts of a system prompt or `system` message at `param`.
fn system_texts(raw: &RawValue, param: &str) -> Result<Vec<String>, TranslateError> {
    Ok(anthropic::texts(raw, param, "system blocks must be text")?
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(Cow::into_owned)
        .collect())
}

fn tool_choice(choice: anthropic::ToolChoice<'_>) -> Result<OutToolChoice<'_>, TranslateError> {
    Ok(match choice.kind.as_ref() {
        "auto" => OutToolChoice::Mode("auto"),
        "any" => OutToolChoice::Mode("required"),
        "none" => OutToolChoice::Mode("none"),
        "tool" => OutToolChoice::Named {
            kind: "function",
            function: NamedFunction {
                name: choice
                    .name
                    .ok_or_else(|| TranslateError::invalid("tool_choice.name", "is required"))?,
            },
        },
        other => {
            return Err(TranslateError::invalid(
                "tool_choice.type",
                format!("unknown tool_choice \"{other}\"; expected auto, any, tool or none"),
            ));
        }
    })
}

fn push_message<'a>(
    out: &mut Vec<ChatMessage<'a>>,
    system: &mut Vec<String>,
    i: usize,
    message: &Message<'a>,
) -> Result<(), TranslateError> {
    let param = format!("messages[{i}].content");
    if message.role == "system" {
        system.extend(system_texts(message.content, &param)?);
        return Ok(());
    }
    let blocks = anthropic::message_blocks(message.content, &param)?;
    match message.role.as_ref() {
        "user" => push_user(out, &param, blocks),
        "assistant" => push_assistant(out, &param, blocks),
        other => Err(TranslateError::invalid(
            format!("messages[{i}].role"),
            format!("unknown role \"{other}\"; use user, assistant or system"),
        )),
    }
}

fn push_user<'a>(
    out: &mut Vec<ChatMessage<'a>>,
    param: &str,
    blocks: Vec<Block<'a>>,
) -> Result<(), TranslateError> {
    let mut parts = Vec::with_capacity(blocks.len());
    for (j, block) in blocks.into_iter().enumerate() {
        let at = format!("{param}[{j}]");
        match block.kind.as_ref() {
            "text" => {
                let text = required(block.text, &at, "text")?;
                if !text.is_empty() {
                    parts.push(OutPart::Text { text });
                }
            }
            "image" => parts.push(OutPart::ImageUrl {
                image_url: ImageUrl {
                    url: image_url(required(block.source, &at, "source")?, &at)?,
                },
            }),
            "tool_result" => {
                let mut content = tool_result_text(block.content, &at)?;
                if block.is_error == Some(true) {
                    content.insert_str(0, "Error: ");
                }
                out.push(ChatMessage::Tool {
                    tool_call_id: required(block.tool_use_id, &at, "tool_use_id")?,
                    content,
                });
            }
            other => return Err(unsupported_block(&at, other)),
        }
    }
    if !parts.is_empty() {
        out.push(ChatMessage::User { content: parts });
    }
    Ok(())
}

fn push_assistant<'a>(
    out: &mut Vec<ChatMessage<'a>>,
    param: &str,
    blocks: Vec<Block<'a>>,
) -> Result<(), TranslateError> {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let at = format!("{param}[{j}]");
        match block.kind.as_ref() {
            "text" => text.push_str(&required(block.text, &at, "text")?),
            "thinking" | "redacted_thinking" => {}
            "tool_use" => tool_calls.push(OutToolCall {
                id: required(block.id, &at, "id")?,
                kind: "function",
                function: OutFunctionCall {
                    name: required(block.name, &at, "name")?,
                    arguments: required(block.input, &at, "input")?.get(),
                },
            }),
            other => return Err(unsupported_block(&at, other)),
        }
    }
    out.push(ChatMessage::Assistant {
        content: (!text.is_empty() || tool_calls.is_empty()).then_some(text),
        tool_calls,
    });
    Ok(())
}

fn unsupported_block(at: &str, kind: &str) -> TranslateError {
    TranslateError::unsupported(
        format!("{at}.type"),
        format!("content block type \"{kind}\" is not supported on OpenAI-compatible targets"),
    )
}

fn image_url<'a>(source: &'a RawValue, at: &str) -> Result<Cow<'a, str>, TranslateError> {
    let param = format!("{at}.source");
    let source: anthropic::ImageSource<'a> = parse_raw(source, &param)?;
    match source.kind.as_ref() {
        "base64" => {
            let media_type = required(source.media_type, &param, "media_type")?;
            let data = required(source.data, &param, "data")?;
            super::converse::image_format(&media_type, &data, &param)?;
            Ok(Cow::Owned(format!("data:{media_type};base64,{data}")))
        }
        "url" => required(source.url, &param, "url"),
        other => Err(TranslateError::unsupported(
            format!("{param}.type"),
            format!("image source \"{other}\" is not supported; use base64 or url"),
        )),
    }
}

fn tool_result_text(content: Option<&RawValue>, at: &str) -> Result<String, TranslateError> {
    let Some(raw) = content else {
        return Ok(String::new());
    };
    Ok(anthropic::texts(
        raw,
        &format!("{at}.content"),
        "tool results on OpenAI-compatible targets hold text only",
    )?
    .concat())
}

/// Anthropic usage from OpenAI's: `prompt_tokens` includes cached tokens, which Anthropic
/// counts apart.
pub(crate) fn messages_usage(u: openai_chat::InUsage) -> MessagesUsage {
    let cached = u.prompt_tokens_details.map_or(0, |d| d.cached_tokens);
    MessagesUsage {
        input_tokens: u.prompt_tokens.saturating_sub(cached),
        output_tokens: u.completion_tokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
    }
}

/// An OpenAI `chat.completion` as an Anthropic message, with its usage for metrics and limits
/// (`None` when the server reported none: the message then says zero, the gateway counts nothing).
pub fn messages_response(
    chat_body: &[u8],
    model: &str,
    id: &str,
) -> Result<(Vec<u8>, Option<MessagesUsage>), TranslateError> {
    let completion: openai_chat::Completion<'_> = serde_json::from_slice(chat_body)
        .map_err(|e| TranslateError::upstream(format!("chat completion: {e}")))?;
    let usage = completion.usage.map(messages_usage);
    let choice = completion
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| TranslateError::upstream("chat completion without choices"))?;
    let inputs = choice
        .message
        .tool_calls
        .iter()
        .enumerate()
        .map(|(k, call)| tool_input(call.function.arguments.as_deref(), k))
        .collect::<Result<Vec<_>, _>>()?;
    let mut content = Vec::with_capacity(1 + inputs.len());
    if let Some(text) = choice.message.content.filter(|t| !t.is_empty()) {
        content.push(OutBlock::Text { text });
    }
    for (k, (call, input)) in choice
        .message
        .tool_calls
        .into_iter()
        .zip(&inputs)
        .enumerate()
    {
        let missing =
            |field: &str| TranslateError::upstream(format!("tool_calls[{k}] has no {field}"));
        content.push(OutBlock::ToolUse {
            id: call.id.ok_or_else(|| missing("id"))?,
            name: call.function.name.ok_or_else(|| missing("function.name"))?,
            input,
        });
    }
    let message = OutMessage {
        id,
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason: Some(openai_chat::stop_reason(
            choice.finish_reason.as_deref().unwrap_or("stop"),
        )),
        stop_sequence: None,
        usage: usage.unwrap_or_default(),
    };
    let body = serde_json::to_vec(&message)
        .map_err(|e| TranslateError::upstream(format!("could not encode the message: {e}")))?;
    Ok((body, usage))
}

/// A tool call's `arguments` string as the JSON object Anthropic's `input` must be; blank
/// arguments (some servers send "" for a call without any) are `{}`.
fn tool_input(arguments: Option<&str>, k: usize) -> Result<Box<RawValue>, TranslateError> {
    let args = arguments
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or("{}");
    let raw = RawValue::from_string(args.to_owned()).map_err(|e| {
        TranslateError::upstream(format!(
            "tool_calls[{k}].function.arguments is not JSON: {e}"
        ))
    })?;
    if first_byte(&raw) != b'{' {
        return Err(TranslateError::upstream(format!(
            "tool_calls[{k}].function.arguments is not a JSON object"
        )));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::{Value, json};

    fn convert(v: Value) -> Result<(UpstreamChatRequest, Value), TranslateError> {
        let req = chat_request(
            v.to_string().as_bytes(),
            "gpt-4o",
            true,
            MaxTokensField::MaxTokens,
        )?;
        let body = serde_json::from_slice(&req.body).unwrap();
        Ok((req, body))
    }

    #[test]
    fn tool_conversation_maps_message_for_message() {
        let (req, body) = convert(json!({
            "model": "claude-route", "max_tokens": 200, "stream": true, "temperature": 0.2,
            "stop_sequences": ["END"], "metadata": {"user_id": "u"},
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                       {"type": "text", "text": "Use tools."}],
            "tools": [{"name": "weather", "description": "Weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "thinking": {"type": "disabled"},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                     "content": [{"type": "text", "text": "no "}, {"type": "text", "text": "data"}]},
                    {"type": "text", "text": "And tomorrow?"}
                ]}
            ]
        }))
        .unwrap();
        assert!(req.stream);
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "Be brief.\n\nUse tools."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                    ]},
                    {"role": "assistant", "content": "Checking.", "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                    {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no data"},
                    {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]}
                ],
                "max_tokens": 200, "temperature": 0.2, "stop": ["END"],
                "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather", "parameters": {"type": "object"}}}],
                "tool_choice": "required", "parallel_tool_calls": false,
                "stream": true, "stream_options": {"include_usage": true}
            })
        );
    }

    /// What Claude Code sends on every request: the Claude-only steering is dropped, its
    /// mid-conversation system context joins the system prompt, a replayed thinking block goes.
    #[test]
    fn claude_codes_request_keeps_its_conversation_and_drops_claudes_steering() {
        let (req, body) = convert(json!({
            "model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": true,
            "thinking": {"type": "adaptive"},
            "output_config": {"effort": "high"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "metadata": {"user_id": "{\"session_id\":\"s\"}"},
            "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2"},
                       {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": "Bash", "description": "Runs a command",
                       "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
                       "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "<system-reminder>today</system-reminder>"},
                    {"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}}]},
                {"role": "system", "content": "Available agent types: Explore."},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "ls will do", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "a.txt"}], "cache_control": {"type": "ephemeral"}}]},
                {"role": "system", "content": [{"type": "text", "text": "Skills: verify."}]}
            ]
        }))
        .unwrap();
        assert!(req.stream);
        assert_eq!(req.max_tokens, 32000);
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "x-anthropic-billing-header: cc_version=2\n\nYou are Claude Code.\n\nAvailable agent types: Explore.\n\nSkills: verify."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "<system-reminder>today</system-reminder>"},
                        {"type": "text", "text": "list files"}]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"}
                ],
                "max_tokens": 32000,
                "tools": [{"type": "function", "function": {"name": "Bash", "description": "Runs a command",
                    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}],
                "stream": true, "stream_options": {"include_usage": true}
            })
        );
    }

    #[test]
    fn a_reasoning_model_target_gets_the_cap_as_max_completion_tokens() {
        let body = json!({"model": "m", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]});
        let req = chat_request(
            body.to_string().as_bytes(),
            "o3",
            true,
            MaxTokensField::MaxCompletionTokens,
        )
        .unwrap();
        let sent: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(sent["max_completion_tokens"], 5);
        assert!(sent.get("max_tokens").is_none(), "{sent}");
        assert_eq!(req.max_tokens, 5);
    }

    #[test]
    fn a_stream_to_a_target_refusing_stream_options_carries_none() {
        let body = json!({"model": "m", "max_tokens": 5, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]});
        let req = chat_request(
            body.to_string().as_bytes(),
            "gpt-4o",
            false,
            MaxTokensField::MaxTokens,
        )
        .unwrap();
        let sent: Value = serde_json::from_slice(&req.body).unwrap();
        assert!(req.stream);
        assert_eq!(sent["stream"], true);
        assert!(sent.get("stream_options").is_none(), "{sent}");
    }

    #[test]
    fn tool_choices_and_plain_strings() {
        let tools = json!([{"name": "f", "input_schema": {"type": "object"}}]);
        for (choice, want) in [
            (json!({"type": "auto"}), json!("auto")),
            (json!({"type": "none"}), json!("none")),
            (
                json!({"type": "tool", "name": "f"}),
                json!({"type": "function", "function": {"name": "f"}}),
            ),
        ] {
            let (_, body) = convert(
                json!({"model": "m", "max_tokens": 5, "system": "sys", "tools": tools,
                "tool_choice": choice, "messages": [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": "ok"}]}),
            )
            .unwrap();
            assert_eq!(body["tool_choice"], want);
            assert!(body.get("parallel_tool_calls").is_none());
            assert_eq!(
                body["messages"][0],
                json!({"role": "system", "content": "sys"})
            );
            assert_eq!(
                body["messages"][1],
                json!({"role": "user", "content": [{"type": "text", "text": "hi"}]})
            );
            assert_eq!(
                body["messages"][2],
                json!({"role": "assistant", "content": "ok"})
            );
            assert!(body.get("stream_options").is_none());
        }
    }

    #[test]
    fn refused_by_name() {
        let base = || json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        let with = |field: &str, value: Value| {
            let mut v = base();
            v[field] = value;
            v
        };
        let message =
            |content: Value| with("messages", json!([{"role": "user", "content": content}]));
        for (body, param) in [
            (with("top_k", json!(5)), "top_k"),
            (
                with(
                    "output_config",
                    json!({"effort": "high", "format": {"type": "json_schema", "schema": {}}}),
                ),
                "output_config.format",
            ),
            (with("thinking", json!({"budget_tokens": 1024})), "thinking"),
            (
                with(
                    "messages",
                    json!([{"role": "system", "content": [{"type": "image", "source": {}}]}]),
                ),
                "messages[0].content[0].type",
            ),
            (with("service_tier", json!("auto")), "service_tier"),
            (
                with(
                    "tools",
                    json!([{"type": "web_search_20250305", "name": "web_search"}]),
                ),
                "tools[0].type",
            ),
            (with("tool_choice", json!({"type": "auto"})), "tool_choice"),
            (
                message(json!([{"type": "document", "source": {}}])),
                "messages[0].content[0].type",
            ),
            (
                message(json!([{"type": "thinking", "thinking": "x", "signature": "s"}])),
                "messages[0].content[0].type",
            ),
            (
                message(json!([{"type": "image", "source": {"type": "file", "file_id": "f"}}])),
                "messages[0].content[0].source.type",
            ),
            (
                message(
                    json!([{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AAAA"}}]),
                ),
                "messages[0].content[0].source",
            ),
            (
                message(
                    json!([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}]),
                ),
                "messages[0].content[0].content[0].type",
            ),
            (
                with("messages", json!([{"role": "developer", "content": "x"}])),
                "messages[0].role",
            ),
            (
                {
                    let mut v = base();
                    v.as_object_mut().unwrap().remove("max_tokens");
                    v
                },
                "max_tokens",
            ),
        ] {
            let e = convert(body).unwrap_err();
            assert_eq!(e.param(), Some(param), "{e}");
            assert_eq!(e.status(), 400);
        }
    }

    fn completion(message: Value, finish: &str) -> Value {
        json!({"id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129,
                      "prompt_tokens_details": {"cached_tokens": 100}}})
    }

    #[test]
    fn completion_becomes_a_message() {
        let chat = completion(
            json!({"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}]}),
            "tool_calls",
        );
        let (body, usage) =
            messages_response(chat.to_string().as_bytes(), "claude-route", "msg_1").unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-route",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
                    {"type": "tool_use", "id": "call_2", "name": "now", "input": {}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 20, "output_tokens": 9,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100}
            })
        );
        assert_eq!(usage.unwrap().cache_read_input_tokens, 100);
    }

    /// LiteLLM and other OpenAI-compatible servers write `null` where OpenAI leaves a field out.
    #[test]
    fn null_tool_calls_read_as_none() {
        let chat = completion(
            json!({"role": "assistant", "content": "hi", "tool_calls": null}),
            "stop",
        );
        let (body, _) = messages_response(chat.to_string().as_bytes(), "m", "i").unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["content"], json!([{"type": "text", "text": "hi"}]));
    }

    #[test]
    fn stop_reasons_and_broken_answers() {
        for (finish, want) in [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("content_filter", "refusal"),
            ("tool_calls", "tool_use"),
        ] {
            let chat = completion(json!({"role": "assistant", "content": "x"}), finish);
            let (body, _) = messages_response(chat.to_string().as_bytes(), "m", "i").unwrap();
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["stop_reason"], want, "{finish}");
        }
        for chat in [
            json!({"choices": []}),
            completion(
                json!({"content": null, "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}),
                "tool_calls",
            ),
            completion(
                json!({"content": null, "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}),
                "tool_calls",
            ),
            completion(
                json!({"content": null, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}),
                "tool_calls",
            ),
        ] {
            let e = messages_response(chat.to_string().as_bytes(), "m", "i").unwrap_err();
            assert_eq!(e.status(), 502, "{e}");
        }
    }
}
