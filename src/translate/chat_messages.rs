//! OpenAI chat completions <-> Anthropic Messages, for OpenAI clients reaching an Anthropic API
//! target: the request becomes a Messages body, the answer a `chat.completion`.
//!
//! Mapping decisions:
//! - `system` and `developer` messages become Anthropic's `system` blocks in order.
//! - `tool` messages become `tool_result` blocks in a user turn; consecutive same-role turns
//!   are merged, so a run of tool results (and the user text after them) shares one turn.
//! - `image_url` data URLs become base64 image sources; `http(s)` URLs become URL image
//!   sources, which Anthropic fetches itself.
//! - `max_completion_tokens` (or the deprecated `max_tokens`) is required by Anthropic; when
//!   absent the caller's default is sent.
//! - `response_format` `json_schema` / `json_object` becomes a tool the model is forced to call,
//!   whose input is the answer, exactly as on the Converse path; the answer then reads as
//!   content with finish reason `stop`.
//! - Refused by name, as on the Converse path: `n` > 1, logprobs, audio, penalties, deprecated
//!   functions, unknown parameters; and the Bedrock-only fields (`additionalModelRequestFields`,
//!   `guardrailConfig`, `performanceConfig`), which an Anthropic target cannot honour.
//! - `parallel_tool_calls: false` becomes `tool_choice.disable_parallel_tool_use`.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::anthropic::{self, InBlock, InImageSource, InMessage, InTool, InToolChoice, OutRequest};
use super::body::{Body, encode_request};
use super::chat_request::{
    ChatBasics, ChatTooling, Choice, DataUrl, FromPart, PartsAllowed, RawMessage, content_blocks,
    data_url, empty_content, parse_message, take_chat_basics, take_chat_tooling, tool_call_input,
};
use super::chat_response::{Answer, TranslatedResponse, render};
use super::error::TranslateError;
use super::finish_reason::FinishReason;
use super::usage::Usage;

/// A chat request translated for an Anthropic API target.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagesRequest {
    pub stream: bool,
    /// `stream_options.include_usage`: end the stream with a usage chunk.
    pub include_usage: bool,
    /// What was sent as `max_tokens` (the client's value or the default).
    pub max_tokens: u32,
    /// Name of the tool forced for `response_format`; its input is the answer's content.
    pub json_schema_tool: Option<String>,
    /// The Messages JSON body, `model` set to the target's model.
    pub body: Vec<u8>,
}

/// Translates an OpenAI chat request body into a Messages body for `model`.
/// `default_max_tokens` is sent when the client gave no limit, since Anthropic requires one.
pub fn messages_request(
    body: &[u8],
    model: &str,
    default_max_tokens: u32,
) -> Result<MessagesRequest, TranslateError> {
    let capacity = body.len() + 256;
    let mut body = Body::parse(body)?;
    // The client's model named the route; the target's goes upstream.
    let ChatBasics {
        messages, common, ..
    } = take_chat_basics(&mut body)?;
    for (param, value) in [
        (
            "additionalModelRequestFields",
            common.passthrough.additional_model_request_fields,
        ),
        ("guardrailConfig", common.passthrough.guardrail_config),
        ("performanceConfig", common.passthrough.performance_config),
    ] {
        if value.is_some() {
            return Err(TranslateError::unsupported(
                param,
                format!("{param} is a Bedrock setting; this route's target is the Anthropic API"),
            ));
        }
    }
    // Anthropic can forbid parallel tool calls (on `tool_choice`), so this is not refused here.
    let serial_tools = body.take::<bool>("parallel_tool_calls")? == Some(false);
    let ChatTooling {
        tools,
        tool_choice: choice,
        response_format,
    } = take_chat_tooling(body)?;

    let max_tokens = common.inference.max_tokens.unwrap_or(default_max_tokens);
    let mut request = OutRequest {
        model,
        max_tokens,
        system: Vec::new(),
        messages: Vec::with_capacity(messages.len()),
        tools: tools
            .into_iter()
            .map(|t| InTool {
                name: t.name,
                description: t.description,
                input_schema: t.input_schema.json,
            })
            .collect(),
        tool_choice: None,
        temperature: common.inference.temperature,
        top_p: common.inference.top_p,
        stop_sequences: common.inference.stop_sequences,
        stream: common.stream,
    };
    for (i, raw) in messages.iter().enumerate() {
        push_message(&mut request, i, raw)?;
    }
    let json_schema_tool = match response_format {
        Some(format) => {
            if !request.tools.is_empty() || choice.is_some() {
                return Err(TranslateError::unsupported(
                    "response_format",
                    "response_format json_schema/json_object cannot be combined with tools or \
                     tool_choice: it is enforced by forcing a tool call",
                ));
            }
            request.tools.push(InTool {
                name: format.spec.name,
                description: format.spec.description,
                input_schema: format.spec.input_schema.json,
            });
            request.tool_choice = Some(InToolChoice::tool(Cow::Owned(format.name.clone())));
            Some(format.name)
        }
        None => {
            request.tool_choice = tool_choice(&request.tools, choice)?;
            if serial_tools && !request.tools.is_empty() {
                request
                    .tool_choice
                    .get_or_insert_with(|| InToolChoice::mode("auto"))
                    .disable_parallel_tool_use = true;
            }
            None
        }
    };
    let out = encode_request(&request, capacity, "messages")?;
    Ok(MessagesRequest {
        stream: common.stream,
        include_usage: common.include_usage,
        max_tokens,
        json_schema_tool,
        body: out,
    })
}

fn tool_choice<'a>(
    tools: &[InTool<'a>],
    choice: Option<Choice<'a>>,
) -> Result<Option<InToolChoice<'a>>, TranslateError> {
    let Some(choice) = choice else {
        return Ok(None);
    };
    if tools.is_empty() {
        return match choice {
            Choice::None => Ok(None),
            _ => Err(TranslateError::invalid(
                "tool_choice",
                "tool_choice requires tools",
            )),
        };
    }
    Ok(Some(match choice {
        Choice::None => InToolChoice::mode("none"),
        Choice::Auto => InToolChoice::mode("auto"),
        Choice::Required => InToolChoice::mode("any"),
        Choice::Named(name) => {
            if !tools.iter().any(|t| t.name == name) {
                return Err(TranslateError::invalid(
                    "tool_choice.function.name",
                    format!("no tool named \"{name}\" in tools"),
                ));
            }
            InToolChoice::tool(name)
        }
    }))
}

/// Appends blocks to the last turn when it has the same role: Anthropic wants the tool
/// results answering one assistant turn together in the next user turn.
fn push_turn<'a>(request: &mut OutRequest<'a>, role: &'static str, blocks: Vec<InBlock<'a>>) {
    match request.messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => request.messages.push(InMessage {
            role,
            content: blocks,
        }),
    }
}

fn push_message<'a>(
    request: &mut OutRequest<'a>,
    i: usize,
    raw: &'a RawValue,
) -> Result<(), TranslateError> {
    let m: RawMessage<'a> = parse_message(raw, i)?;
    match m.role.as_ref() {
        "system" | "developer" => {
            let blocks = content_blocks(m.content, i, PartsAllowed::TextOnly)?;
            request.system.extend(blocks);
        }
        "user" => {
            let blocks = content_blocks(m.content, i, PartsAllowed::TextAndImages)?;
            if blocks.is_empty() {
                return Err(empty_content(i));
            }
            push_turn(request, "user", blocks);
        }
        "assistant" => {
            let mut blocks = content_blocks(m.content, i, PartsAllowed::TextOnly)?;
            for (j, call) in m.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let input = tool_call_input(&call, i, j)?;
                blocks.push(InBlock::ToolUse {
                    id: call.id,
                    name: call.function.name,
                    input,
                });
            }
            if blocks.is_empty() {
                return Err(empty_content(i));
            }
            push_turn(request, "assistant", blocks);
        }
        "tool" => {
            let tool_use_id = m.tool_call_id.ok_or_else(|| {
                TranslateError::invalid(
                    format!("messages[{i}].tool_call_id"),
                    "is required for tool messages",
                )
            })?;
            let content = content_blocks(m.content, i, PartsAllowed::TextOnly)?;
            push_turn(
                request,
                "user",
                vec![InBlock::ToolResult {
                    tool_use_id,
                    content,
                }],
            );
        }
        "function" => {
            return Err(TranslateError::unsupported(
                format!("messages[{i}].role"),
                "the deprecated \"function\" role is not supported; use \"tool\"",
            ));
        }
        other => {
            return Err(TranslateError::invalid(
                format!("messages[{i}].role"),
                format!("unknown role \"{other}\""),
            ));
        }
    }
    Ok(())
}

impl<'a> FromPart<'a> for InBlock<'a> {
    fn text(text: Cow<'a, str>) -> Self {
        InBlock::Text { text }
    }

    fn image(url: Cow<'a, str>, param: &str) -> Result<Self, TranslateError> {
        image_source(url, param).map(|source| InBlock::Image { source })
    }
}

fn image_source<'a>(url: Cow<'a, str>, param: &str) -> Result<InImageSource<'a>, TranslateError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(InImageSource::Url { url });
    }
    let DataUrl {
        media_type, data, ..
    } = data_url(url, param)?;
    Ok(InImageSource::Base64 {
        media_type: Cow::Owned(media_type),
        data,
    })
}

/// An Anthropic Messages response as an OpenAI `chat.completion`, with usage and finish reason
/// for the gateway. Thinking blocks are left out: OpenAI's chat object has no field for them.
pub fn chat_response(
    messages_body: &[u8],
    model: &str,
    id: &str,
    created: u64,
    json_schema_tool: Option<&str>,
) -> Result<TranslatedResponse, TranslateError> {
    let response: anthropic::Response<'_> = serde_json::from_slice(messages_body)
        .map_err(|e| TranslateError::upstream(format!("Anthropic Messages response: {e}")))?;
    let mut answer = Answer::default();
    for (k, block) in response.content.into_iter().enumerate() {
        match block.kind.as_ref() {
            "text" => answer.text(block.text.unwrap_or_default()),
            "tool_use" => {
                let missing = |field: &str| {
                    TranslateError::upstream(format!("content[{k}] tool_use has no {field}"))
                };
                let id = block.id.ok_or_else(|| missing("id"))?;
                let name = block.name.ok_or_else(|| missing("name"))?;
                let input = block.input.ok_or_else(|| missing("input"))?;
                answer.tool_use(id, name, input, json_schema_tool);
            }
            _ => {}
        }
    }
    let finish_reason =
        FinishReason::from_anthropic(response.stop_reason.as_deref().unwrap_or("end_turn"));
    let parsed = answer.finish(finish_reason, Usage::from(response.usage));
    render(parsed, model, id, created)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::{Value, json};

    fn translate(v: Value) -> Result<(MessagesRequest, Value), TranslateError> {
        let req = messages_request(v.to_string().as_bytes(), "claude-sonnet-4-5", 4096)?;
        let body = serde_json::from_slice(&req.body).unwrap();
        Ok((req, body))
    }

    fn err(v: Value) -> TranslateError {
        translate(v).unwrap_err()
    }

    #[test]
    fn tool_conversation_maps_turn_for_turn() {
        let (req, body) = translate(json!({
            "model": "route-a", "stream": true, "stream_options": {"include_usage": true},
            "max_completion_tokens": 300, "temperature": 0.5, "top_p": 0.9, "stop": "END",
            "tools": [{"type": "function", "function": {"name": "w", "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "now"}}],
            "tool_choice": "required",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": "data:image/PNG;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}
                ]},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                {"role": "user", "content": "thanks"}
            ]
        }))
        .unwrap();
        assert!(req.stream && req.include_usage);
        assert_eq!(req.max_tokens, 300);
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5", "max_tokens": 300,
                "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather here?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "call_2", "name": "now", "input": {}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
                        {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                        {"type": "text", "text": "thanks"}
                    ]}
                ],
                "tools": [
                    {"name": "w", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                    {"name": "now", "input_schema": {"type": "object", "properties": {}}}
                ],
                "tool_choice": {"type": "any"},
                "temperature": 0.5, "top_p": 0.9, "stop_sequences": ["END"], "stream": true
            })
        );
    }

    #[test]
    fn max_tokens_default_and_alias() {
        let user = json!([{"role": "user", "content": "hi"}]);
        let (req, body) = translate(json!({"model": "m", "messages": user})).unwrap();
        assert_eq!((req.max_tokens, &body["max_tokens"]), (4096, &json!(4096)));
        assert!(body.get("stream").is_none());
        let (req, _) = translate(json!({"model": "m", "messages": user, "max_tokens": 7})).unwrap();
        assert_eq!(req.max_tokens, 7);
        let (req, _) = translate(
            json!({"model": "m", "messages": user, "max_tokens": 7, "max_completion_tokens": 9}),
        )
        .unwrap();
        assert_eq!(req.max_tokens, 9);
    }

    #[test]
    fn tool_choices() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        for (choice, want) in [
            (json!("auto"), json!({"type": "auto"})),
            (json!("none"), json!({"type": "none"})),
            (json!("required"), json!({"type": "any"})),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                json!({"type": "tool", "name": "f"}),
            ),
        ] {
            let (_, body) = translate(
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": tools, "tool_choice": choice}),
            )
            .unwrap();
            assert_eq!(body["tool_choice"], want);
        }
        let e = err(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "g"}}}),
        );
        assert_eq!(e.param(), Some("tool_choice.function.name"));
        let e = err(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"}),
        );
        assert_eq!(e.param(), Some("tool_choice"));
    }

    #[test]
    fn json_schema_forces_a_tool() {
        let (req, body) = translate(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "person",
                "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}}}),
        )
        .unwrap();
        assert_eq!(req.json_schema_tool.as_deref(), Some("person"));
        assert_eq!(
            body["tool_choice"],
            json!({"type": "tool", "name": "person"})
        );
        assert_eq!(body["tools"][0]["name"], "person");
        assert_eq!(
            body["tools"][0]["input_schema"]["properties"]["name"]["type"],
            "string"
        );
        let e = err(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "f"}}]}),
        );
        assert_eq!(e.param(), Some("response_format"));
    }

    #[test]
    fn refused_by_name() {
        for (param, value, want) in [
            ("n", json!(2), "n"),
            ("logprobs", json!(true), "logprobs"),
            ("frequency_penalty", json!(0.5), "frequency_penalty"),
            (
                "additionalModelRequestFields",
                json!({"top_k": 3}),
                "additionalModelRequestFields",
            ),
            (
                "guardrailConfig",
                json!({"guardrailIdentifier": "g"}),
                "guardrailConfig",
            ),
            ("reasoning_effort", json!("high"), "reasoning_effort"),
        ] {
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
            body[param] = value;
            let e = err(body);
            assert_eq!(e.param(), Some(want), "{e}");
            assert_eq!(e.status(), 400);
        }
        for (message, want) in [
            (
                json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}),
                "messages[0].content[0].image_url",
            ),
            (
                json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AAAA"}}]}),
                "messages[0].content[0].image_url",
            ),
            (
                json!({"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"role": "tool", "content": "x"}),
                "messages[0].tool_call_id",
            ),
            (json!({"role": "robot", "content": "x"}), "messages[0].role"),
            (
                json!({"role": "assistant", "content": null}),
                "messages[0].content",
            ),
            (
                json!({"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}),
                "messages[0].tool_calls[0].function.arguments",
            ),
        ] {
            let e = err(json!({"model": "m", "messages": [message]}));
            assert_eq!(e.param(), Some(want), "{e}");
        }
    }

    fn answer(content: Value, stop: &str) -> Value {
        json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": content, "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 20}})
    }

    fn respond(v: Value, json_tool: Option<&str>) -> (TranslatedResponse, Value) {
        let r = chat_response(
            v.to_string().as_bytes(),
            "route-a",
            "chatcmpl-1",
            1700000000,
            json_tool,
        )
        .unwrap();
        let body = serde_json::from_slice(&r.body).unwrap();
        (r, body)
    }

    #[test]
    fn answer_with_tool_calls_and_cache_usage() {
        let (r, v) = respond(
            answer(
                json!([
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Oslo"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}
                ]),
                "tool_use",
            ),
            None,
        );
        assert_eq!(
            v,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "route-a",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Checking.",
                    "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Oslo\"}"}},
                        {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                    ]}, "finish_reason": "tool_calls", "logprobs": null}],
                "usage": {"prompt_tokens": 33, "completion_tokens": 5, "total_tokens": 38,
                    "prompt_tokens_details": {"cached_tokens": 20}}
            })
        );
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 33,
                output_tokens: 5,
                cache_read_tokens: 20,
                cache_write_tokens: 3
            }
        );
    }

    #[test]
    fn finish_reasons() {
        for (stop, want) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
        ] {
            let (_, v) = respond(answer(json!([{"type": "text", "text": "x"}]), stop), None);
            assert_eq!(v["choices"][0]["finish_reason"], want, "{stop}");
        }
    }

    #[test]
    fn forced_tool_reads_as_content() {
        let (r, v) = respond(
            answer(
                json!([{"type": "tool_use", "id": "t", "name": "person", "input": {"name": "Ada"}}]),
                "tool_use",
            ),
            Some("person"),
        );
        assert_eq!(v["choices"][0]["message"]["content"], "{\"name\":\"Ada\"}");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(r.finish_reason, FinishReason::Stop);
    }

    #[test]
    fn broken_answers_are_upstream_errors() {
        for body in [
            "<html>".to_owned(),
            answer(
                json!([{"type": "tool_use", "name": "w", "input": {}}]),
                "tool_use",
            )
            .to_string(),
        ] {
            let e = chat_response(body.as_bytes(), "m", "i", 0, None).unwrap_err();
            assert_eq!(e.status(), 502, "{e}");
        }
    }
}
