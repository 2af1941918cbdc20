//! OpenAI `POST /v1/chat/completions` request to a Converse request body.
//!
//! Mapping decisions:
//! - `system` and `developer` messages become Converse `system` blocks in order; Converse has one
//!   system prompt, so where such a message sat in the conversation is not kept.
//! - `tool` messages become `toolResult` blocks in a user turn; consecutive same-role turns are
//!   merged (tool results and the user message after them share one turn) because Bedrock
//!   requires user and assistant turns to alternate.
//! - Empty text is dropped (Bedrock rejects blank text blocks; clients send `content: ""` next to
//!   `tool_calls`), but a message left with nothing at all is an error.
//! - `response_format` `json_schema` and `json_object` become a tool the model is forced to call,
//!   whose input is the JSON answer; `json_object` uses the schema `{"type":"object"}`. Combining
//!   either with the client's own `tools` is refused: the forced choice would hide them.
//! - Ignored: a message's `name` (Converse has no speaker names), an image's `detail` (a resolution
//!   hint with no Bedrock counterpart), `metadata` (only meaningful for stored completions),
//!   `service_tier` `auto`/`default`, and the knobs listed in `inference`.
//! - Refused: `n` > 1, `logprobs`, `top_logprobs`, `audio`, audio `modalities`, `prediction`,
//!   `store: true`, `parallel_tool_calls: false`, deprecated `functions`/`function_call`, image
//!   URLs that would need fetching, and every parameter this module does not know.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::body::{Body, encode_request, first_byte, parse_raw, strip_position};
use super::converse::{
    ContentBlock, ConverseBody, Empty, Image, ImageSource, InputSchema, Role, SpecificTool,
    SystemBlock, Tool, ToolChoice, ToolConfig, ToolResult, ToolResultContent, ToolSpec, ToolUse,
    image_format,
};
use super::error::TranslateError;
use super::inference::{Common, StrCow, take_common, take_max_tokens};

/// Tool name used for `response_format` when the schema has no name of its own.
pub const DEFAULT_JSON_TOOL: &str = "json_response";

/// A chat request ready to send upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The client's `model`: a route name or a Bedrock model id, for the gateway to resolve.
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`: end the stream with a usage chunk.
    pub include_usage: bool,
    pub max_tokens: Option<u32>,
    /// Name of the tool forced for `response_format`; its input is the answer's content.
    pub json_schema_tool: Option<String>,
    /// The Converse / ConverseStream JSON body (the model id travels in the URL, not here).
    pub converse_body: Vec<u8>,
}

pub fn chat_request(body: &[u8]) -> Result<ChatRequest, TranslateError> {
    let capacity = body.len() + 256;
    let mut body = Body::parse(body)?;
    let ChatBasics {
        model,
        messages,
        common,
    } = take_chat_basics(&mut body)?;
    let ChatTooling {
        tools,
        tool_choice,
        response_format,
    } = take_chat_tooling(body)?;

    let mut converse = ConverseBody {
        inference_config: common.inference,
        passthrough: common.passthrough,
        ..ConverseBody::default()
    };
    let mut has_tool_blocks = false;
    for (i, raw) in messages.iter().enumerate() {
        has_tool_blocks |= push_message(&mut converse, i, raw)?;
    }
    let json_schema_tool = match response_format {
        Some(format) => {
            if !tools.is_empty() {
                return Err(TranslateError::unsupported(
                    "response_format",
                    "response_format json_schema/json_object cannot be combined with tools: \
                     Bedrock enforces it by forcing a tool call",
                ));
            }
            if tool_choice.is_some() {
                return Err(TranslateError::invalid(
                    "tool_choice",
                    "tool_choice requires tools",
                ));
            }
            let name = format.name.clone();
            converse.tool_config = Some(ToolConfig {
                tools: vec![Tool::Spec(format.spec)],
                tool_choice: Some(ToolChoice::Tool(SpecificTool {
                    name: Cow::Owned(name.clone()),
                })),
            });
            Some(name)
        }
        None => {
            converse.tool_config = tool_config(tools, tool_choice, has_tool_blocks)?;
            None
        }
    };
    let max_tokens = converse.inference_config.max_tokens;
    let converse_body = encode_request(&converse, capacity, "messages")?;
    Ok(ChatRequest {
        model,
        stream: common.stream,
        include_usage: common.include_usage,
        max_tokens,
        json_schema_tool,
        converse_body,
    })
}

/// What every translation of a chat request reads first.
pub(crate) struct ChatBasics<'a> {
    /// The client's `model`: a route name or a Bedrock model id.
    pub(crate) model: String,
    pub(crate) messages: Vec<&'a RawValue>,
    pub(crate) common: Common<'a>,
}

pub(crate) fn take_chat_basics<'a>(body: &mut Body<'a>) -> Result<ChatBasics<'a>, TranslateError> {
    let model = body.take_model()?;
    let messages = take_messages(body)?;
    let max_completion_tokens = take_max_tokens(body, "max_completion_tokens")?;
    let mut common = take_common(body)?;
    // `max_completion_tokens` is OpenAI's current name; `max_tokens` is the deprecated alias.
    if max_completion_tokens.is_some() {
        common.inference.max_tokens = max_completion_tokens;
    }
    Ok(ChatBasics {
        model,
        messages,
        common,
    })
}

/// What every translation of a chat request reads last, once its own fields are taken: the
/// knobs no target here honours are refused, then the tools; anything left is unknown.
pub(crate) struct ChatTooling<'a> {
    pub(crate) tools: Vec<ToolSpec<'a>>,
    pub(crate) tool_choice: Option<Choice<'a>>,
    pub(crate) response_format: Option<JsonFormat<'a>>,
}

pub(crate) fn take_chat_tooling(mut body: Body<'_>) -> Result<ChatTooling<'_>, TranslateError> {
    refuse_chat_only(&mut body)?;
    let tools = take_tools(&mut body)?;
    let tool_choice = take_tool_choice(&mut body)?;
    let response_format = take_response_format(&mut body)?;
    body.reject_rest()?;
    Ok(ChatTooling {
        tools,
        tool_choice,
        response_format,
    })
}

fn take_messages<'a>(body: &mut Body<'a>) -> Result<Vec<&'a RawValue>, TranslateError> {
    let messages: Vec<&'a RawValue> = body
        .take("messages")?
        .ok_or_else(|| TranslateError::invalid("messages", "is required"))?;
    if messages.is_empty() {
        return Err(TranslateError::invalid(
            "messages",
            "must contain at least one message",
        ));
    }
    Ok(messages)
}

fn refuse_chat_only(body: &mut Body<'_>) -> Result<(), TranslateError> {
    let unsupported = |param: &str, why: &str| Err(TranslateError::unsupported(param, why));
    if body.take::<bool>("logprobs")? == Some(true) {
        return unsupported(
            "logprobs",
            "logprobs are not available from Bedrock Converse",
        );
    }
    if body.take_raw("top_logprobs").is_some() {
        return unsupported(
            "top_logprobs",
            "logprobs are not available from Bedrock Converse",
        );
    }
    if body.take_raw("audio").is_some() {
        return unsupported("audio", "audio output is not supported");
    }
    if let Some(modalities) = body.take::<Vec<StrCow<'_>>>("modalities")?
        && let Some(m) = modalities.iter().find(|m| m.0 != "text")
    {
        return unsupported(
            "modalities",
            &format!(
                "output modality \"{}\" is not supported; only \"text\"",
                m.0
            ),
        );
    }
    if body.take_raw("prediction").is_some() {
        return unsupported("prediction", "predicted outputs are not supported");
    }
    if body.take_raw("functions").is_some() {
        return unsupported(
            "functions",
            "the deprecated functions parameter is not supported; use tools",
        );
    }
    if body.take_raw("function_call").is_some() {
        return unsupported(
            "function_call",
            "the deprecated function_call parameter is not supported; use tool_choice",
        );
    }
    if body.take::<bool>("parallel_tool_calls")? == Some(false) {
        return unsupported(
            "parallel_tool_calls",
            "Bedrock Converse cannot forbid parallel tool calls",
        );
    }
    if body.take::<bool>("store")? == Some(true) {
        return unsupported("store", "the gateway does not store completions");
    }
    let _metadata: Option<&RawValue> = body.take_raw("metadata");
    match body.take::<Cow<'_, str>>("service_tier")?.as_deref() {
        None | Some("auto" | "default") => {}
        Some(tier) => {
            return unsupported(
                "service_tier",
                &format!("service_tier \"{tier}\" is not supported"),
            );
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMessage<'a> {
    #[serde(borrow)]
    pub(crate) role: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) content: Option<&'a RawValue>,
    /// Speaker names have no Converse counterpart; declared so they are type-checked, not refused.
    #[serde(borrow, default, rename = "name")]
    pub(crate) _name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) tool_calls: Option<Vec<RawToolCall<'a>>>,
    #[serde(borrow, default)]
    pub(crate) tool_call_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) function_call: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) audio: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct RawToolCall<'a> {
    #[serde(borrow)]
    pub(crate) id: Cow<'a, str>,
    #[serde(borrow, rename = "type", default)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) function: RawFunctionCall<'a>,
}

#[derive(Deserialize)]
pub(crate) struct RawFunctionCall<'a> {
    #[serde(borrow)]
    pub(crate) name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) arguments: Cow<'a, str>,
}

/// Parses message `i` and refuses what no upstream can carry, whatever the target's format.
pub(crate) fn parse_message<'a>(
    raw: &'a RawValue,
    i: usize,
) -> Result<RawMessage<'a>, TranslateError> {
    let m: RawMessage<'a> = serde_json::from_str(raw.get())
        .map_err(|e| TranslateError::invalid(format!("messages[{i}]"), strip_position(&e)))?;
    let role = m.role.as_ref();
    if m.function_call.is_some() {
        return Err(TranslateError::unsupported(
            format!("messages[{i}].function_call"),
            "the deprecated function_call is not supported; use tool_calls",
        ));
    }
    if m.audio.is_some() {
        return Err(TranslateError::unsupported(
            format!("messages[{i}].audio"),
            "audio is not supported",
        ));
    }
    if m.tool_calls.is_some() && role != "assistant" {
        return Err(TranslateError::invalid(
            format!("messages[{i}].tool_calls"),
            "only assistant messages carry tool_calls",
        ));
    }
    if m.tool_call_id.is_some() && role != "tool" {
        return Err(TranslateError::invalid(
            format!("messages[{i}].tool_call_id"),
            "only tool messages carry tool_call_id",
        ));
    }
    if m.refusal.is_some() {
        return Err(TranslateError::unsupported(
            format!("messages[{i}].refusal"),
            "refusal messages are not supported",
        ));
    }
    Ok(m)
}

/// Adds message `i`; returns whether it carried tool calls or a tool result.
fn push_message<'a>(
    converse: &mut ConverseBody<'a>,
    i: usize,
    raw: &'a RawValue,
) -> Result<bool, TranslateError> {
    let m = parse_message(raw, i)?;
    let role = m.role.as_ref();
    match role {
        "system" | "developer" => {
            let blocks = content_blocks::<ContentBlock<'a>>(m.content, i, PartsAllowed::TextOnly)?;
            converse
                .system
                .extend(blocks.into_iter().filter_map(|b| match b {
                    ContentBlock::Text(t) => Some(SystemBlock::Text(t)),
                    _ => None,
                }));
            Ok(false)
        }
        "user" => {
            let blocks = content_blocks(m.content, i, PartsAllowed::TextAndImages)?;
            if blocks.is_empty() {
                return Err(empty_content(i));
            }
            converse.push(Role::User, blocks);
            Ok(false)
        }
        "assistant" => {
            let mut blocks = content_blocks(m.content, i, PartsAllowed::TextOnly)?;
            let calls = m.tool_calls.unwrap_or_default();
            let has_calls = !calls.is_empty();
            for (j, call) in calls.into_iter().enumerate() {
                blocks.push(tool_use(call, i, j)?);
            }
            if blocks.is_empty() {
                return Err(empty_content(i));
            }
            converse.push(Role::Assistant, blocks);
            Ok(has_calls)
        }
        "tool" => {
            let tool_use_id = m.tool_call_id.ok_or_else(|| {
                TranslateError::invalid(
                    format!("messages[{i}].tool_call_id"),
                    "is required for tool messages",
                )
            })?;
            let content = content_blocks::<ContentBlock<'a>>(m.content, i, PartsAllowed::TextOnly)?
                .into_iter()
                .filter_map(|b| match b {
                    ContentBlock::Text(t) => Some(ToolResultContent::Text(t)),
                    _ => None,
                })
                .collect::<Vec<_>>();
            // A tool that printed nothing still needs a result for the call it answers.
            let content = if content.is_empty() {
                vec![ToolResultContent::Text(Cow::Borrowed(""))]
            } else {
                content
            };
            converse.push(
                Role::User,
                [ContentBlock::ToolResult(ToolResult {
                    tool_use_id,
                    content,
                    status: None,
                })],
            );
            Ok(true)
        }
        "function" => Err(TranslateError::unsupported(
            format!("messages[{i}].role"),
            "the deprecated \"function\" role is not supported; use \"tool\"",
        )),
        other => Err(TranslateError::invalid(
            format!("messages[{i}].role"),
            format!("unknown role \"{other}\""),
        )),
    }
}

pub(crate) fn empty_content(i: usize) -> TranslateError {
    TranslateError::invalid(format!("messages[{i}].content"), "must not be empty")
}

fn tool_use<'a>(
    call: RawToolCall<'a>,
    i: usize,
    j: usize,
) -> Result<ContentBlock<'a>, TranslateError> {
    let input = tool_call_input(&call, i, j)?;
    Ok(ContentBlock::ToolUse(ToolUse {
        tool_use_id: call.id,
        name: call.function.name,
        input,
    }))
}

/// The arguments of tool call `j` of message `i` as a JSON object, borrowed when unescaped.
pub(crate) fn tool_call_input<'a>(
    call: &RawToolCall<'a>,
    i: usize,
    j: usize,
) -> Result<Cow<'a, RawValue>, TranslateError> {
    if let Some(kind) = call.kind.as_deref().filter(|k| *k != "function") {
        return Err(TranslateError::unsupported(
            format!("messages[{i}].tool_calls[{j}].type"),
            format!("tool call type \"{kind}\" is not supported; only \"function\""),
        ));
    }
    let param = || format!("messages[{i}].tool_calls[{j}].function.arguments");
    let input: Cow<'a, RawValue> = match &call.function.arguments {
        // Some clients send "" for a call without arguments.
        args if args.trim().is_empty() => Cow::Owned(empty_object()?),
        Cow::Borrowed(args) => Cow::Borrowed(
            serde_json::from_str::<&'a RawValue>(args)
                .map_err(|e| TranslateError::invalid(param(), format!("is not valid JSON: {e}")))?,
        ),
        Cow::Owned(args) => Cow::Owned(
            RawValue::from_string(args.clone())
                .map_err(|e| TranslateError::invalid(param(), format!("is not valid JSON: {e}")))?,
        ),
    };
    if first_byte(&input) != b'{' {
        return Err(TranslateError::invalid(param(), "must be a JSON object"));
    }
    Ok(input)
}

fn empty_object() -> Result<Box<RawValue>, TranslateError> {
    RawValue::from_string("{}".to_owned()).map_err(|e| TranslateError::upstream(e.to_string()))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartsAllowed {
    TextOnly,
    TextAndImages,
}

#[derive(Deserialize)]
struct RawPart<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    image_url: Option<RawImageUrl<'a>>,
}

#[derive(Deserialize)]
struct RawImageUrl<'a> {
    #[serde(borrow)]
    url: Cow<'a, str>,
}

/// A content block of an upstream format, built from an OpenAI content part.
pub(crate) trait FromPart<'a>: Sized {
    fn text(text: Cow<'a, str>) -> Self;
    /// An `image_url` part's URL; `param` names it in errors.
    fn image(url: Cow<'a, str>, param: &str) -> Result<Self, TranslateError>;
}

impl<'a> FromPart<'a> for ContentBlock<'a> {
    fn text(text: Cow<'a, str>) -> Self {
        ContentBlock::Text(text)
    }

    fn image(url: Cow<'a, str>, param: &str) -> Result<Self, TranslateError> {
        image_block(url, param)
    }
}

/// Message `i`'s content (a string or an array of parts) as blocks; empty text is dropped.
pub(crate) fn content_blocks<'a, B: FromPart<'a>>(
    content: Option<&'a RawValue>,
    i: usize,
    allowed: PartsAllowed,
) -> Result<Vec<B>, TranslateError> {
    let Some(raw) = content else {
        return Ok(Vec::new());
    };
    let param = || format!("messages[{i}].content");
    match first_byte(raw) {
        b'"' => {
            let text: Cow<'a, str> = serde_json::from_str(raw.get())
                .map_err(|e| TranslateError::invalid(param(), strip_position(&e)))?;
            Ok(if text.is_empty() {
                Vec::new()
            } else {
                vec![B::text(text)]
            })
        }
        b'[' => {
            let parts: Vec<&'a RawValue> = parse_raw(raw, &param())?;
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                if let Some(block) = content_part(part, i, j, allowed)? {
                    blocks.push(block);
                }
            }
            Ok(blocks)
        }
        _ => Err(TranslateError::invalid(
            param(),
            "must be a string or an array of content parts",
        )),
    }
}

fn content_part<'a, B: FromPart<'a>>(
    raw: &'a RawValue,
    i: usize,
    j: usize,
    allowed: PartsAllowed,
) -> Result<Option<B>, TranslateError> {
    let param = |field: &str| format!("messages[{i}].content[{j}]{field}");
    let part: RawPart<'a> = serde_json::from_str(raw.get())
        .map_err(|e| TranslateError::invalid(param(""), strip_position(&e)))?;
    match part.kind.as_ref() {
        "text" => {
            let text = part
                .text
                .ok_or_else(|| TranslateError::invalid(param(".text"), "is required"))?;
            Ok((!text.is_empty()).then(|| B::text(text)))
        }
        "image_url" if allowed == PartsAllowed::TextAndImages => {
            let url = part
                .image_url
                .ok_or_else(|| TranslateError::invalid(param(".image_url"), "is required"))?
                .url;
            B::image(url, &param(".image_url")).map(Some)
        }
        "image_url" => Err(TranslateError::unsupported(
            param(".type"),
            "images are only supported in user messages",
        )),
        other => Err(TranslateError::unsupported(
            param(".type"),
            format!("content part type \"{other}\" is not supported"),
        )),
    }
}

fn image_block<'a>(url: Cow<'a, str>, param: &str) -> Result<ContentBlock<'a>, TranslateError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(TranslateError::unsupported(
            param,
            "the gateway does not fetch image URLs; send a base64 data URL",
        ));
    }
    let DataUrl { format, data, .. } = data_url(url, param)?;
    Ok(ContentBlock::Image(Image {
        format,
        source: ImageSource { bytes: data },
    }))
}

/// A checked base64 `data:` image URL.
pub(crate) struct DataUrl<'a> {
    pub(crate) media_type: String,
    /// The Converse image format for the media type.
    pub(crate) format: &'static str,
    /// The base64 data, borrowed unless the client escaped a character (some encoders write
    /// `\/`).
    pub(crate) data: Cow<'a, str>,
}

pub(crate) fn data_url<'a>(url: Cow<'a, str>, param: &str) -> Result<DataUrl<'a>, TranslateError> {
    let Some((mime, data)) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
    else {
        return Err(TranslateError::invalid(
            param,
            "url must be a base64 data URL (data:image/png;base64,...)",
        ));
    };
    let format = image_format(mime, data, param)?;
    let media_type = mime.to_ascii_lowercase();
    let start = url.len() - data.len();
    let data = match url {
        Cow::Borrowed(url) => Cow::Borrowed(&url[start..]),
        Cow::Owned(mut url) => {
            url.drain(..start);
            Cow::Owned(url)
        }
    };
    Ok(DataUrl {
        media_type,
        format,
        data,
    })
}

#[derive(Deserialize)]
struct RawTool<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    function: Option<RawFunctionDef<'a>>,
}

#[derive(Deserialize)]
struct RawFunctionDef<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
}

fn take_tools<'a>(body: &mut Body<'a>) -> Result<Vec<ToolSpec<'a>>, TranslateError> {
    let Some(raw) = body.take::<Vec<&'a RawValue>>("tools")? else {
        return Ok(Vec::new());
    };
    let mut specs = Vec::with_capacity(raw.len());
    for (k, raw) in raw.into_iter().enumerate() {
        let tool: RawTool<'a> = parse_raw(raw, &format!("tools[{k}]"))?;
        if tool.kind != "function" {
            return Err(TranslateError::unsupported(
                format!("tools[{k}].type"),
                format!(
                    "tool type \"{}\" is not supported; only \"function\"",
                    tool.kind
                ),
            ));
        }
        let f = tool.function.ok_or_else(|| {
            TranslateError::invalid(format!("tools[{k}].function"), "is required")
        })?;
        specs.push(ToolSpec {
            name: f.name,
            description: f.description.filter(|d| !d.is_empty()),
            input_schema: InputSchema {
                json: schema_or_any_object(f.parameters)?,
            },
            strict: f.strict.filter(|s| *s),
        });
    }
    Ok(specs)
}

/// OpenAI allows a function without `parameters`; Bedrock requires a schema.
fn schema_or_any_object(schema: Option<&RawValue>) -> Result<Cow<'_, RawValue>, TranslateError> {
    match schema {
        Some(schema) => Ok(Cow::Borrowed(schema)),
        None => RawValue::from_string(r#"{"type":"object","properties":{}}"#.to_owned())
            .map(Cow::Owned)
            .map_err(|e| TranslateError::upstream(e.to_string())),
    }
}

pub(crate) enum Choice<'a> {
    None,
    Auto,
    Required,
    Named(Cow<'a, str>),
}

#[derive(Deserialize)]
struct RawNamedChoice<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    function: Option<RawChoiceFunction<'a>>,
}

#[derive(Deserialize)]
struct RawChoiceFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

fn take_tool_choice<'a>(body: &mut Body<'a>) -> Result<Option<Choice<'a>>, TranslateError> {
    let Some(raw) = body.take_raw("tool_choice") else {
        return Ok(None);
    };
    if first_byte(raw) == b'"' {
        let choice: Cow<'a, str> = parse_raw(raw, "tool_choice")?;
        return match choice.as_ref() {
            "none" => Ok(Some(Choice::None)),
            "auto" => Ok(Some(Choice::Auto)),
            "required" => Ok(Some(Choice::Required)),
            other => Err(TranslateError::invalid(
                "tool_choice",
                format!(
                    "unknown tool_choice \"{other}\"; expected none, auto, required or an object"
                ),
            )),
        };
    }
    let named: RawNamedChoice<'a> = parse_raw(raw, "tool_choice")?;
    if named.kind != "function" {
        return Err(TranslateError::unsupported(
            "tool_choice.type",
            format!(
                "tool_choice type \"{}\" is not supported; only \"function\"",
                named.kind
            ),
        ));
    }
    let f = named
        .function
        .ok_or_else(|| TranslateError::invalid("tool_choice.function", "is required"))?;
    Ok(Some(Choice::Named(f.name)))
}

fn tool_config<'a>(
    tools: Vec<ToolSpec<'a>>,
    choice: Option<Choice<'a>>,
    has_tool_blocks: bool,
) -> Result<Option<ToolConfig<'a>>, TranslateError> {
    if tools.is_empty() {
        return match choice {
            None | Some(Choice::None) => Ok(None),
            Some(_) => Err(TranslateError::invalid(
                "tool_choice",
                "tool_choice requires tools",
            )),
        };
    }
    let tool_choice = match choice {
        None => None,
        Some(Choice::None) if has_tool_blocks => {
            return Err(TranslateError::unsupported(
                "tool_choice",
                "tool_choice \"none\" is not supported when the conversation holds tool calls: \
                 Bedrock needs the tools declared then and cannot forbid calling them",
            ));
        }
        Some(Choice::None) => return Ok(None),
        Some(Choice::Auto) => Some(ToolChoice::Auto(Empty {})),
        Some(Choice::Required) => Some(ToolChoice::Any(Empty {})),
        Some(Choice::Named(name)) => {
            if !tools.iter().any(|t| t.name == name) {
                return Err(TranslateError::invalid(
                    "tool_choice.function.name",
                    format!("no tool named \"{name}\" in tools"),
                ));
            }
            Some(ToolChoice::Tool(SpecificTool { name }))
        }
    };
    Ok(Some(ToolConfig {
        tools: tools.into_iter().map(Tool::Spec).collect(),
        tool_choice,
    }))
}

pub(crate) struct JsonFormat<'a> {
    pub(crate) name: String,
    pub(crate) spec: ToolSpec<'a>,
}

#[derive(Deserialize)]
struct RawResponseFormat<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    json_schema: Option<RawJsonSchema<'a>>,
}

#[derive(Deserialize)]
struct RawJsonSchema<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
}

/// The tool a `json_schema` format is forced through: the schema's own name, if it has one.
fn json_tool_name(name: Option<Cow<'_, str>>) -> Cow<'_, str> {
    name.filter(|n| !n.is_empty())
        .unwrap_or(Cow::Borrowed(DEFAULT_JSON_TOOL))
}

/// The name of the tool a `response_format` value is forced through, read on its own: the answer's
/// translation needs it whichever target the request goes to. A malformed value names none; each
/// target's translation refuses it in full.
pub fn json_schema_tool(response_format: &RawValue) -> Option<String> {
    let format: RawResponseFormat<'_> = serde_json::from_str(response_format.get()).ok()?;
    match format.kind.as_ref() {
        "json_object" => Some(DEFAULT_JSON_TOOL.to_owned()),
        "json_schema" => Some(json_tool_name(format.json_schema?.name).into_owned()),
        _ => None,
    }
}

fn take_response_format<'a>(body: &mut Body<'a>) -> Result<Option<JsonFormat<'a>>, TranslateError> {
    let Some(format) = body.take::<RawResponseFormat<'a>>("response_format")? else {
        return Ok(None);
    };
    let description = "Respond by calling this tool; its input is the complete answer.";
    match format.kind.as_ref() {
        "text" => Ok(None),
        "json_object" => {
            let schema = RawValue::from_string(r#"{"type":"object"}"#.to_owned())
                .map_err(|e| TranslateError::upstream(e.to_string()))?;
            Ok(Some(JsonFormat {
                name: DEFAULT_JSON_TOOL.to_owned(),
                spec: ToolSpec {
                    name: Cow::Borrowed(DEFAULT_JSON_TOOL),
                    description: Some(Cow::Borrowed(description)),
                    input_schema: InputSchema {
                        json: Cow::Owned(schema),
                    },
                    strict: None,
                },
            }))
        }
        "json_schema" => {
            let js = format.json_schema.ok_or_else(|| {
                TranslateError::invalid("response_format.json_schema", "is required")
            })?;
            let name = json_tool_name(js.name);
            Ok(Some(JsonFormat {
                name: name.clone().into_owned(),
                spec: ToolSpec {
                    name,
                    description: Some(
                        js.description
                            .filter(|d| !d.is_empty())
                            .unwrap_or(Cow::Borrowed(description)),
                    ),
                    input_schema: InputSchema {
                        json: schema_or_any_object(js.schema)?,
                    },
                    strict: js.strict.filter(|s| *s),
                },
            }))
        }
        other => Err(TranslateError::invalid(
            "response_format.type",
            format!(
                "unknown response_format type \"{other}\"; expected text, json_object or json_schema"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::{Value, json};

    fn translate(body: Value) -> Result<(ChatRequest, Value), TranslateError> {
        let req = chat_request(body.to_string().as_bytes())?;
        let converse = serde_json::from_slice(&req.converse_body).unwrap();
        Ok((req, converse))
    }

    fn err(body: Value) -> TranslateError {
        translate(body).err().unwrap()
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn minimal() {
        let (req, c) = translate(json!({"model": "claude", "messages": [user("hi")]})).unwrap();
        assert_eq!(req.model, "claude");
        assert!(!req.stream && !req.include_usage);
        assert_eq!(req.max_tokens, None);
        assert_eq!(req.json_schema_tool, None);
        assert_eq!(
            c,
            json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
        );
    }

    #[test]
    fn system_developer_and_sampling() {
        let (req, c) = translate(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "be kind"}]},
                {"role": "system", "content": ""},
                user("hi"),
            ],
            "max_tokens": 10, "max_completion_tokens": 20,
            "temperature": 0.2, "top_p": 0.5, "stop": "STOP",
            "stream": true, "stream_options": {"include_usage": true},
        }))
        .unwrap();
        assert!(req.stream && req.include_usage);
        assert_eq!(req.max_tokens, Some(20));
        assert_eq!(
            c["system"],
            json!([{"text": "be brief"}, {"text": "be kind"}])
        );
        assert_eq!(
            c["inferenceConfig"],
            json!({"maxTokens": 20, "temperature": 0.2, "topP": 0.5, "stopSequences": ["STOP"]})
        );
    }

    #[test]
    fn images() {
        let (_, c) = translate(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/4AAQ"}},
            {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGRg=="}},
            {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGOD=="}},
        ]}]}))
        .unwrap();
        assert_eq!(
            c["messages"][0]["content"],
            json!([
                {"text": "what is this"},
                {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}},
                {"image": {"format": "webp", "source": {"bytes": "UklGRg=="}}},
                {"image": {"format": "gif", "source": {"bytes": "R0lGOD=="}}},
            ])
        );
    }

    #[test]
    fn escaped_data_url_still_works() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image\/png;base64,ab\/c"}}]}]}"#;
        let req = chat_request(body).unwrap();
        let c: Value = serde_json::from_slice(&req.converse_body).unwrap();
        assert_eq!(
            c["messages"][0]["content"][0]["image"]["source"]["bytes"],
            "ab/c"
        );
    }

    #[test]
    fn image_errors() {
        let image = |url: &str| {
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "x"},
                {"type": "image_url", "image_url": {"url": url}}]}]})
        };
        let e = err(image("https://example.com/cat.png"));
        assert_eq!(
            e.to_string(),
            "messages[0].content[1].image_url: the gateway does not fetch image URLs; send a base64 data URL"
        );
        assert!(matches!(e, TranslateError::Unsupported { .. }));
        assert!(matches!(
            err(image("data:image/tiff;base64,AAAA")),
            TranslateError::Unsupported { .. }
        ));
        assert!(matches!(
            err(image("data:image/png;base64,@@@")),
            TranslateError::Invalid { .. }
        ));
        assert!(matches!(
            err(image("data:image/png,rawbytes")),
            TranslateError::Invalid { .. }
        ));
        let e = err(
            json!({"model": "m", "messages": [{"role": "system", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}),
        );
        assert_eq!(e.param(), Some("messages[0].content[0].type"));
        let e = err(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {}}]}]}),
        );
        assert_eq!(e.param(), Some("messages[0].content[0].type"));
    }

    #[test]
    fn tools_and_choices() {
        let tools = json!([
            {"type": "function", "function": {"name": "get_weather", "description": "Weather",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}},
            {"type": "function", "function": {"name": "now", "description": ""}},
        ]);
        let cases = [
            (json!("auto"), Some(json!({"auto": {}}))),
            (json!("required"), Some(json!({"any": {}}))),
            (
                json!({"type": "function", "function": {"name": "now"}}),
                Some(json!({"tool": {"name": "now"}})),
            ),
            (Value::Null, None),
        ];
        for (choice, want) in cases {
            let (_, c) = translate(json!({"model": "m", "messages": [user("hi")], "tools": tools, "tool_choice": choice}))
                .unwrap();
            assert_eq!(
                c["toolConfig"]["tools"],
                json!([
                    {"toolSpec": {"name": "get_weather", "description": "Weather",
                      "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}, "strict": true}},
                    {"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
                ])
            );
            assert_eq!(c["toolConfig"].get("toolChoice").cloned(), want);
        }
        let (_, c) = translate(
            json!({"model": "m", "messages": [user("hi")], "tools": tools, "tool_choice": "none"}),
        )
        .unwrap();
        assert!(c.get("toolConfig").is_none());
    }

    #[test]
    fn tool_choice_errors() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let e = err(
            json!({"model": "m", "messages": [user("x")], "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "g"}}}),
        );
        assert_eq!(e.param(), Some("tool_choice.function.name"));
        let e = err(json!({"model": "m", "messages": [user("x")], "tool_choice": "required"}));
        assert_eq!(e.param(), Some("tool_choice"));
        let e = err(
            json!({"model": "m", "messages": [user("x")], "tools": tools, "tool_choice": "sometimes"}),
        );
        assert_eq!(e.param(), Some("tool_choice"));
        let e = err(
            json!({"model": "m", "messages": [user("x")], "tools": [{"type": "code_interpreter"}]}),
        );
        assert_eq!(e.param(), Some("tools[0].type"));
    }

    fn tool_conversation() -> Value {
        json!([
            user("weather in Paris and Rome?"),
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
            user("thanks; and tomorrow?"),
            {"role": "assistant", "content": "Let me check."},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_3", "type": "function", "function": {"name": "w", "arguments": ""}}]},
        ])
    }

    #[test]
    fn tool_calls_and_results_merge() {
        let tools = json!([{"type": "function", "function": {"name": "w"}}]);
        let (_, c) =
            translate(json!({"model": "m", "messages": tool_conversation(), "tools": tools}))
                .unwrap();
        assert_eq!(
            c["messages"],
            json!([
                {"role": "user", "content": [{"text": "weather in Paris and Rome?"}]},
                {"role": "assistant", "content": [
                    {"toolUse": {"toolUseId": "call_1", "name": "w", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "call_2", "name": "w", "input": {"city": "Rome"}}},
                ]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "call_1", "content": [{"text": "sunny"}]}},
                    {"toolResult": {"toolUseId": "call_2", "content": [{"text": "rain"}]}},
                    {"text": "thanks; and tomorrow?"},
                ]},
                {"role": "assistant", "content": [
                    {"text": "Let me check."},
                    {"toolUse": {"toolUseId": "call_3", "name": "w", "input": {}}},
                ]},
            ])
        );
    }

    #[test]
    fn tool_choice_none_with_tool_history_is_refused() {
        let tools = json!([{"type": "function", "function": {"name": "w"}}]);
        let e = err(
            json!({"model": "m", "messages": tool_conversation(), "tools": tools, "tool_choice": "none"}),
        );
        assert!(matches!(e, TranslateError::Unsupported { .. }));
        assert_eq!(e.param(), Some("tool_choice"));
    }

    #[test]
    fn bad_tool_arguments() {
        let call = |args: &str| {
            json!({"model": "m", "messages": [user("x"), {"role": "assistant", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}]}]})
        };
        let e = err(call("{not json"));
        assert_eq!(
            e.param(),
            Some("messages[1].tool_calls[0].function.arguments")
        );
        assert!(e.to_string().contains("is not valid JSON"), "{e}");
        let e = err(call("[1,2]"));
        assert!(e.to_string().contains("must be a JSON object"), "{e}");
    }

    #[test]
    fn json_schema_forces_a_tool() {
        let (req, c) = translate(
            json!({"model": "m", "messages": [user("x")], "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "person", "strict": true,
                "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}}}),
        )
        .unwrap();
        assert_eq!(req.json_schema_tool.as_deref(), Some("person"));
        assert_eq!(
            c["toolConfig"]["toolChoice"],
            json!({"tool": {"name": "person"}})
        );
        let spec = &c["toolConfig"]["tools"][0]["toolSpec"];
        assert_eq!(spec["name"], "person");
        assert_eq!(
            spec["inputSchema"]["json"]["properties"]["name"]["type"],
            "string"
        );
        assert_eq!(spec["strict"], true);

        let (req, _) = translate(json!({"model": "m", "messages": [user("x")],
            "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}}))
        .unwrap();
        assert_eq!(req.json_schema_tool.as_deref(), Some(DEFAULT_JSON_TOOL));
    }

    #[test]
    fn the_forced_tool_is_named_alike_when_read_on_its_own() {
        let named = |format: Value| {
            let raw = RawValue::from_string(format.to_string()).unwrap();
            json_schema_tool(&raw)
        };
        let schema =
            json!({"type": "json_schema", "json_schema": {"name": "person", "schema": {}}});
        assert_eq!(named(schema).as_deref(), Some("person"));
        let unnamed = json!({"type": "json_schema", "json_schema": {"name": "", "schema": {}}});
        assert_eq!(named(unnamed).as_deref(), Some(DEFAULT_JSON_TOOL));
        assert_eq!(
            named(json!({"type": "json_object"})).as_deref(),
            Some(DEFAULT_JSON_TOOL)
        );
        for none in [
            json!({"type": "text"}),
            json!({"type": "json_schema"}),
            json!("json"),
        ] {
            assert_eq!(named(none), None);
        }
    }

    #[test]
    fn json_object_and_text_formats() {
        let (req, c) =
            translate(json!({"model": "m", "messages": [user("x")], "response_format": {"type": "json_object"}})).unwrap();
        assert_eq!(req.json_schema_tool.as_deref(), Some(DEFAULT_JSON_TOOL));
        assert_eq!(
            c["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
            json!({"type": "object"})
        );
        let (req, c) = translate(
            json!({"model": "m", "messages": [user("x")], "response_format": {"type": "text"}}),
        )
        .unwrap();
        assert_eq!(req.json_schema_tool, None);
        assert!(c.get("toolConfig").is_none());
        let e = err(
            json!({"model": "m", "messages": [user("x")], "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "f"}}]}),
        );
        assert_eq!(e.param(), Some("response_format"));
        let e = err(
            json!({"model": "m", "messages": [user("x")], "response_format": {"type": "yaml"}}),
        );
        assert_eq!(e.param(), Some("response_format.type"));
    }

    #[test]
    fn bedrock_fields_pass_through() {
        let (_, c) = translate(json!({"model": "m", "messages": [user("x")],
            "additionalModelRequestFields": {"top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 1024}},
            "guardrailConfig": {"guardrailIdentifier": "g1", "guardrailVersion": "1", "trace": "enabled"},
            "performanceConfig": {"latency": "optimized"}}))
        .unwrap();
        assert_eq!(
            c["additionalModelRequestFields"]["thinking"]["budget_tokens"],
            1024
        );
        assert_eq!(c["guardrailConfig"]["guardrailIdentifier"], "g1");
        assert_eq!(c["performanceConfig"], json!({"latency": "optimized"}));
    }

    #[test]
    fn harmless_fields_are_ignored() {
        let (_, c) = translate(json!({"model": "m", "messages": [
            {"role": "user", "content": "x", "name": "alice"}],
            "user": "u-1", "seed": 42, "n": 1, "logprobs": false, "metadata": {"a": "b"},
            "store": false, "parallel_tool_calls": true, "service_tier": "auto",
            "frequency_penalty": 0, "presence_penalty": 0, "logit_bias": {}, "modalities": ["text"]}))
        .unwrap();
        assert_eq!(
            c,
            json!({"messages": [{"role": "user", "content": [{"text": "x"}]}]})
        );
    }

    #[test]
    fn each_unsupported_parameter() {
        let cases = [
            ("n", json!(2)),
            ("logprobs", json!(true)),
            ("top_logprobs", json!(3)),
            ("audio", json!({"voice": "alloy", "format": "wav"})),
            ("modalities", json!(["text", "audio"])),
            ("prediction", json!({"type": "content", "content": "x"})),
            ("functions", json!([{"name": "f"}])),
            ("function_call", json!("auto")),
            ("parallel_tool_calls", json!(false)),
            ("store", json!(true)),
            ("service_tier", json!("flex")),
            ("reasoning_effort", json!("high")),
            ("frequency_penalty", json!(1.0)),
            ("some_future_knob", json!(1)),
        ];
        for (param, value) in cases {
            let mut body = json!({"model": "m", "messages": [user("x")]});
            body[param] = value;
            let e = err(body);
            assert!(
                matches!(e, TranslateError::Unsupported { .. }),
                "{param}: {e:?}"
            );
            assert_eq!(e.param(), Some(param));
            assert!(e.to_string().starts_with(param), "{e}");
        }
    }

    #[test]
    fn validation_messages() {
        let e = err(
            json!({"model": "m", "messages": [user("a"), user("b"), {"role": "robot", "content": "x"}]}),
        );
        assert_eq!(e.to_string(), "messages[2].role: unknown role \"robot\"");
        assert_eq!(e.param(), Some("messages[2].role"));
        assert_eq!(err(json!({"messages": [user("x")]})).param(), Some("model"));
        assert_eq!(
            err(json!({"model": 5, "messages": [user("x")]})).param(),
            Some("model")
        );
        assert_eq!(
            err(json!({"model": "", "messages": [user("x")]})).param(),
            Some("model")
        );
        assert_eq!(err(json!({"model": "m"})).param(), Some("messages"));
        assert_eq!(
            err(json!({"model": "m", "messages": []})).param(),
            Some("messages")
        );
        assert_eq!(
            err(json!({"model": "m", "messages": "hi"})).param(),
            Some("messages")
        );
        assert_eq!(
            err(json!({"model": "m", "messages": [{"content": "x"}]})).param(),
            Some("messages[0]")
        );
        assert_eq!(
            err(json!({"model": "m", "messages": [{"role": "user", "content": 5}]})).param(),
            Some("messages[0].content")
        );
        assert_eq!(
            err(json!({"model": "m", "messages": [{"role": "user", "content": ""}]})).param(),
            Some("messages[0].content")
        );
        assert_eq!(
            err(json!({"model": "m", "messages": [{"role": "user", "content": "x", "colour": 1}]}))
                .param(),
            Some("messages[0]")
        );
        assert_eq!(
            err(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})).param(),
            Some("messages[0].tool_call_id")
        );
        assert_eq!(err(json!({"model": "m", "messages": [{"role": "function", "content": "x", "name": "f"}]})).param(), Some("messages[0].role"));
        assert_eq!(
            err(json!({"model": "m", "messages": [{"role": "user", "content": "x", "tool_calls": []}]})).param(),
            Some("messages[0].tool_calls")
        );
        assert_eq!(
            err(json!({"model": "m", "messages": [{"role": "assistant", "content": null}]}))
                .param(),
            Some("messages[0].content")
        );
    }

    #[test]
    fn not_json() {
        let e = chat_request(b"{\"model\": \"m\",\n \"messages\": [").unwrap_err();
        assert!(matches!(e, TranslateError::Json { .. }));
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(matches!(
            chat_request(b"[]").unwrap_err(),
            TranslateError::Json { .. }
        ));
    }
}
