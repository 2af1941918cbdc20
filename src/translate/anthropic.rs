//! Anthropic Messages API wire types: the request's content blocks (as the Converse conversion
//! reads them), the response message and its usage, stream events, and the error body.
//!
//! Claude targets never see these types: their requests and answers pass through as bytes (see
//! `messages_bedrock`). Only the conversion to and from Converse parses them.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::body::{Body, first_byte, parse_raw};
use super::error::TranslateError;

/// Anthropic's `stop_reason` for a Bedrock (Converse) `stopReason`. Converse already uses
/// Anthropic's words for the common four; a guardrail or content filter is Anthropic's `refusal`.
pub fn stop_reason(bedrock: &str) -> &'static str {
    match bedrock {
        "max_tokens" => "max_tokens",
        "stop_sequence" => "stop_sequence",
        "tool_use" => "tool_use",
        "guardrail_intervened" | "content_filtered" => "refusal",
        "model_context_window_exceeded" => "model_context_window_exceeded",
        _ => "end_turn",
    }
}

/// One message of the request.
#[derive(Deserialize)]
pub(crate) struct Message<'a> {
    #[serde(borrow)]
    pub(crate) role: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) content: &'a RawValue,
}

/// A content block of the request, by its `type`; the conversion reads only what Converse can
/// carry and refuses the rest by name.
#[derive(Deserialize)]
pub(crate) struct Block<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) text: Option<Cow<'a, str>>,
    /// Parsed by the block type that has one (its shape differs per type).
    #[serde(borrow, default)]
    pub(crate) source: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) tool_use_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) content: Option<&'a RawValue>,
    #[serde(default)]
    pub(crate) is_error: Option<bool>,
}

impl<'a> Block<'a> {
    /// A text block, for string content read as blocks.
    fn text(text: Cow<'a, str>) -> Self {
        Self {
            kind: Cow::Borrowed("text"),
            text: Some(text),
            source: None,
            id: None,
            name: None,
            input: None,
            tool_use_id: None,
            content: None,
            is_error: None,
        }
    }
}

/// A message's content at `param`, a string or a list of blocks, as blocks.
pub(crate) fn message_blocks<'a>(
    raw: &'a RawValue,
    param: &str,
) -> Result<Vec<Block<'a>>, TranslateError> {
    if first_byte(raw) == b'"' {
        return Ok(vec![Block::text(parse_raw(raw, param)?)]);
    }
    parse_raw(raw, param)
}

/// The texts of a value at `param` that is a string or a list of text blocks (a `system`
/// prompt, a tool result's content), empty ones too; a block of another type is refused with
/// `refusal`, completed by the type it has.
pub(crate) fn texts<'a>(
    raw: &'a RawValue,
    param: &str,
    refusal: &str,
) -> Result<Vec<Cow<'a, str>>, TranslateError> {
    message_blocks(raw, param)?
        .into_iter()
        .enumerate()
        .map(|(i, b)| match (b.kind.as_ref(), b.text) {
            ("text", Some(text)) => Ok(text),
            (kind, _) => Err(TranslateError::unsupported(
                format!("{param}[{i}].type"),
                format!("{refusal}, got \"{kind}\""),
            )),
        })
        .collect()
}

/// `v`, or the error that `{at}.{field}` is required.
pub(crate) fn required<T>(v: Option<T>, at: &str, field: &str) -> Result<T, TranslateError> {
    v.ok_or_else(|| TranslateError::invalid(format!("{at}.{field}"), "is required"))
}

/// A custom tool's parts, as every translation needs them: name, description, input schema.
pub(crate) type CustomTool<'a> = (Cow<'a, str>, Option<Cow<'a, str>>, &'a RawValue);

/// Takes the body's `tools`, each custom tool made into the target's shape by `make`. Anthropic's
/// server and client tools (any `type` but `custom`) run only on Claude, so they are refused.
pub(crate) fn take_custom_tools<'a, T>(
    body: &mut Body<'a>,
    make: impl Fn(CustomTool<'a>) -> T,
) -> Result<Vec<T>, TranslateError> {
    let Some(tools) = body.take::<Vec<ToolDef<'a>>>("tools")? else {
        return Ok(Vec::new());
    };
    tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            if let Some(kind) = t.kind.as_deref().filter(|k| *k != "custom") {
                return Err(TranslateError::unsupported(
                    format!("tools[{i}].type"),
                    format!(
                        "tool type \"{kind}\" is an Anthropic server or client tool, available \
                         only on Claude models"
                    ),
                ));
            }
            let schema = required(t.input_schema, &format!("tools[{i}]"), "input_schema")?;
            Ok(make((t.name, t.description, schema)))
        })
        .collect()
}

#[derive(Deserialize)]
pub(crate) struct ImageSource<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) media_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) data: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) url: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ToolDef<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input_schema: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct ToolChoice<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) disable_parallel_tool_use: bool,
}

#[derive(Deserialize)]
pub(crate) struct Thinking<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
}

/// Anthropic's `usage`. `input_tokens` leaves out cache reads and writes, as Bedrock's own
/// `inputTokens` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

/// A content block of the response.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutBlock<'a> {
    Text {
        text: Cow<'a, str>,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: Cow<'a, str>,
        input: &'a RawValue,
    },
}

/// The response message (and, with empty content and no stop reason, a stream's
/// `message_start`).
#[derive(Serialize)]
pub(crate) struct OutMessage<'a> {
    pub(crate) id: &'a str,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) role: &'static str,
    pub(crate) model: &'a str,
    pub(crate) content: Vec<OutBlock<'a>>,
    pub(crate) stop_reason: Option<&'static str>,
    pub(crate) stop_sequence: Option<()>,
    pub(crate) usage: MessagesUsage,
}

/// A Messages request as the gateway writes it for an Anthropic API target.
#[derive(Serialize)]
pub(crate) struct OutRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) max_tokens: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) system: Vec<InBlock<'a>>,
    pub(crate) messages: Vec<InMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tools: Vec<InTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_choice: Option<InToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) stop_sequences: Vec<Cow<'a, str>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) stream: bool,
}

#[derive(Serialize)]
pub(crate) struct InMessage<'a> {
    pub(crate) role: &'static str,
    pub(crate) content: Vec<InBlock<'a>>,
}

/// A content block the gateway writes into a request.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum InBlock<'a> {
    Text {
        text: Cow<'a, str>,
    },
    Image {
        source: InImageSource<'a>,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: Cow<'a, str>,
        input: Cow<'a, RawValue>,
    },
    ToolResult {
        tool_use_id: Cow<'a, str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<InBlock<'a>>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum InImageSource<'a> {
    Base64 {
        media_type: Cow<'a, str>,
        data: Cow<'a, str>,
    },
    Url {
        url: Cow<'a, str>,
    },
}

#[derive(Serialize)]
pub(crate) struct InTool<'a> {
    pub(crate) name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<Cow<'a, str>>,
    pub(crate) input_schema: Cow<'a, RawValue>,
}

/// `tool_choice`: `type` is `auto`, `any`, `none` or `tool` (with `name`).
#[derive(Serialize)]
pub(crate) struct InToolChoice<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) disable_parallel_tool_use: bool,
}

impl<'a> InToolChoice<'a> {
    pub(crate) fn mode(kind: &'static str) -> Self {
        Self {
            kind,
            name: None,
            disable_parallel_tool_use: false,
        }
    }

    pub(crate) fn tool(name: Cow<'a, str>) -> Self {
        Self {
            kind: "tool",
            name: Some(name),
            disable_parallel_tool_use: false,
        }
    }
}

/// A Messages response from an Anthropic API target; content blocks read as request blocks do.
#[derive(Deserialize)]
pub(crate) struct Response<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Vec<Block<'a>>,
    #[serde(borrow, default)]
    pub(crate) stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) usage: MessagesUsage,
}

/// The `type` of a stream event's data, for servers that send no `event:` name.
#[derive(Deserialize)]
pub(crate) struct EventKind<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
}

#[derive(Deserialize)]
pub(crate) struct MessageStartEvent {
    pub(crate) message: StartedMessage,
}

#[derive(Deserialize)]
pub(crate) struct StartedMessage {
    #[serde(default)]
    pub(crate) usage: MessagesUsage,
}

#[derive(Deserialize)]
pub(crate) struct BlockStartEvent<'a> {
    pub(crate) index: u32,
    #[serde(borrow)]
    pub(crate) content_block: Block<'a>,
}

#[derive(Deserialize)]
pub(crate) struct BlockDeltaEvent<'a> {
    pub(crate) index: u32,
    #[serde(borrow)]
    pub(crate) delta: BlockDelta<'a>,
}

/// `text_delta`, `input_json_delta`, and the thinking deltas OpenAI has no field for.
#[derive(Deserialize)]
pub(crate) struct BlockDelta<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) partial_json: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct MessageDeltaEvent<'a> {
    #[serde(borrow)]
    pub(crate) delta: StopDelta<'a>,
    #[serde(default)]
    pub(crate) usage: UsageDelta,
}

#[derive(Deserialize)]
pub(crate) struct StopDelta<'a> {
    #[serde(borrow, default)]
    pub(crate) stop_reason: Option<Cow<'a, str>>,
}

/// `message_delta` usage: cumulative counts, each present only when the server reports it.
#[derive(Deserialize, Default)]
pub(crate) struct UsageDelta {
    pub(crate) input_tokens: Option<u64>,
    pub(crate) output_tokens: Option<u64>,
    pub(crate) cache_creation_input_tokens: Option<u64>,
    pub(crate) cache_read_input_tokens: Option<u64>,
}

impl MessagesUsage {
    /// Takes the counts a `message_delta` reports, keeping the others.
    pub(crate) fn update(&mut self, delta: &UsageDelta) {
        let set = |field: &mut u64, value: Option<u64>| {
            if let Some(v) = value {
                *field = v;
            }
        };
        set(&mut self.input_tokens, delta.input_tokens);
        set(&mut self.output_tokens, delta.output_tokens);
        set(
            &mut self.cache_creation_input_tokens,
            delta.cache_creation_input_tokens,
        );
        set(
            &mut self.cache_read_input_tokens,
            delta.cache_read_input_tokens,
        );
    }
}

/// An Anthropic error body (`{"type":"error","error":{...}}`), as a response or a stream event.
#[derive(Deserialize)]
pub(crate) struct ErrorEvent<'a> {
    #[serde(borrow)]
    pub(crate) error: ErrorDetail<'a>,
}

#[derive(Deserialize)]
pub(crate) struct ErrorDetail<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) message: Option<Cow<'a, str>>,
}

/// `{"type":"error","error":{"type","message"}}`.
pub fn error_body(error_type: &str, message: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Inner<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        message: &'a str,
    }
    #[derive(Serialize)]
    struct Outer<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        error: Inner<'a>,
    }
    // Plain strings cannot fail to serialise; the fallback keeps this infallible.
    serde_json::to_vec(&Outer {
        kind: "error",
        error: Inner {
            kind: error_type,
            message,
        },
    })
    .unwrap_or_else(|_| {
        br#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#.to_vec()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn error_shape() {
        let v: serde_json::Value =
            serde_json::from_slice(&error_body("overloaded_error", "busy \"now\"")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"error","error":{"type":"overloaded_error","message":"busy \"now\""}})
        );
    }

    #[test]
    fn stop_reasons() {
        for (bedrock, want) in [
            ("end_turn", "end_turn"),
            ("tool_use", "tool_use"),
            ("max_tokens", "max_tokens"),
            ("stop_sequence", "stop_sequence"),
            ("guardrail_intervened", "refusal"),
            ("content_filtered", "refusal"),
            ("something_new", "end_turn"),
        ] {
            assert_eq!(stop_reason(bedrock), want, "{bedrock}");
        }
    }
}
