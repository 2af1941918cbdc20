//! The Converse request body, as serialized upstream.
//!
//! Unions are externally tagged enums, which is exactly Smithy's JSON shape for a union
//! (`{"text":"..."}`). Strings and schemas borrow from the client's request.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;

use super::error::TranslateError;

#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConverseBody<'a> {
    pub(crate) messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) system: Vec<SystemBlock<'a>>,
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    pub(crate) inference_config: InferenceConfig<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_config: Option<ToolConfig<'a>>,
    #[serde(flatten)]
    pub(crate) passthrough: Passthrough<'a>,
}

/// Bedrock's own request fields, accepted at the top level of an OpenAI body and forwarded
/// untouched so callers can reach features OpenAI has no name for.
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Passthrough<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) additional_model_request_fields: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) guardrail_config: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) performance_config: Option<&'a RawValue>,
}

#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    User,
    Assistant,
}

#[derive(Debug, Serialize)]
pub(crate) struct Message<'a> {
    pub(crate) role: Role,
    pub(crate) content: Vec<ContentBlock<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) enum SystemBlock<'a> {
    #[serde(rename = "text")]
    Text(Cow<'a, str>),
}

#[derive(Debug, Serialize)]
pub(crate) enum ContentBlock<'a> {
    #[serde(rename = "text")]
    Text(Cow<'a, str>),
    #[serde(rename = "image")]
    Image(Image<'a>),
    #[serde(rename = "toolUse")]
    ToolUse(ToolUse<'a>),
    #[serde(rename = "toolResult")]
    ToolResult(ToolResult<'a>),
}

#[derive(Debug, Serialize)]
pub(crate) struct Image<'a> {
    pub(crate) format: &'static str,
    pub(crate) source: ImageSource<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ImageSource<'a> {
    /// Smithy blobs travel as base64 in JSON, so the data URL's payload goes through as is.
    pub(crate) bytes: Cow<'a, str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolUse<'a> {
    pub(crate) tool_use_id: Cow<'a, str>,
    pub(crate) name: Cow<'a, str>,
    pub(crate) input: Cow<'a, RawValue>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolResult<'a> {
    pub(crate) tool_use_id: Cow<'a, str>,
    pub(crate) content: Vec<ToolResultContent<'a>>,
    /// `error` when the tool failed; absent means success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub(crate) enum ToolResultContent<'a> {
    #[serde(rename = "text")]
    Text(Cow<'a, str>),
}

/// Converse's image `format` for a MIME type, once the base64 `data` passed a cheap alphabet
/// check (decoding here would copy the image only to throw it away).
pub(crate) fn image_format(
    mime: &str,
    data: &str,
    param: &str,
) -> Result<&'static str, TranslateError> {
    let format = match mime.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => {
            return Err(TranslateError::unsupported(
                param,
                format!("image type \"{mime}\" is not supported; use png, jpeg, gif or webp"),
            ));
        }
    };
    let is_base64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
    if data.is_empty() || !data.bytes().all(is_base64) {
        return Err(TranslateError::invalid(
            param,
            "the image data is not valid base64",
        ));
    }
    Ok(format)
}

#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InferenceConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) stop_sequences: Vec<Cow<'a, str>>,
}

impl InferenceConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolConfig<'a> {
    pub(crate) tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_choice: Option<ToolChoice<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) enum Tool<'a> {
    #[serde(rename = "toolSpec")]
    Spec(ToolSpec<'a>),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolSpec<'a> {
    pub(crate) name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<Cow<'a, str>>,
    pub(crate) input_schema: InputSchema<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) strict: Option<bool>,
}

#[derive(Debug, Serialize)]
pub(crate) struct InputSchema<'a> {
    pub(crate) json: Cow<'a, RawValue>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ToolChoice<'a> {
    Auto(Empty),
    Any(Empty),
    Tool(SpecificTool<'a>),
}

#[derive(Debug, Serialize)]
pub(crate) struct Empty {}

#[derive(Debug, Serialize)]
pub(crate) struct SpecificTool<'a> {
    pub(crate) name: Cow<'a, str>,
}

impl<'a> ConverseBody<'a> {
    /// Appends blocks to the conversation, merging into the last turn when the role repeats:
    /// Bedrock requires user and assistant turns to alternate.
    pub(crate) fn push(&mut self, role: Role, blocks: impl IntoIterator<Item = ContentBlock<'a>>) {
        match self.messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => self.messages.push(Message {
                role,
                content: blocks.into_iter().collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn union_shapes() {
        let input: Box<RawValue> = serde_json::from_str(r#"{"a":1}"#).unwrap();
        let schema: Box<RawValue> = serde_json::from_str(r#"{"type":"object"}"#).unwrap();
        let mut body = ConverseBody::default();
        body.push(Role::User, [ContentBlock::Text("hi".into())]);
        body.push(
            Role::User,
            [ContentBlock::Image(Image {
                format: "png",
                source: ImageSource {
                    bytes: "AAAA".into(),
                },
            })],
        );
        body.push(
            Role::Assistant,
            [ContentBlock::ToolUse(ToolUse {
                tool_use_id: "t1".into(),
                name: "f".into(),
                input: Cow::Borrowed(&input),
            })],
        );
        body.tool_config = Some(ToolConfig {
            tools: vec![Tool::Spec(ToolSpec {
                name: "f".into(),
                description: None,
                input_schema: InputSchema {
                    json: Cow::Borrowed(&schema),
                },
                strict: None,
            })],
            tool_choice: Some(ToolChoice::Any(Empty {})),
        });
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "messages": [
                    {"role":"user","content":[{"text":"hi"},{"image":{"format":"png","source":{"bytes":"AAAA"}}}]},
                    {"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"f","input":{"a":1}}}]}
                ],
                "toolConfig": {"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}],"toolChoice":{"any":{}}}
            })
        );
    }
}
