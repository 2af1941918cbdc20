//! ConverseStream events to OpenAI `chat.completion.chunk` server-sent events.
//!
//! The gateway decodes the AWS event stream and hands each event here by its `:event-type` and
//! JSON payload; this type keeps the little state the translation needs (which content block is
//! which tool call, what usage and stop reason were seen) and appends complete SSE records.
//!
//! - Tool call `index` counts tool blocks (0, 1, ...), as OpenAI clients expect, not Bedrock's
//!   content block index, which also counts text blocks.
//! - With a forced `response_format` tool, its input fragments are sent as `delta.content` and any
//!   text is withheld, exactly as in the non-streaming response.
//! - Reasoning deltas and event types added to Bedrock later are skipped: OpenAI has no field for
//!   them, and a stream must not fail over something the client never asked for.
//! - The same machine drives legacy `text_completion` streams (see `completions`).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::error::TranslateError;
use super::error_map::{self, OpenAiErrorKind, classify};
use super::finish_reason::FinishReason;
use super::sse;
use super::usage::{BedrockUsage, OpenAiUsage, Usage};

/// What one event meant for the stream, beyond the bytes it produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStep {
    Continue,
    /// The first text or tool-call bytes went out: the moment for time-to-first-token.
    FirstContent,
    /// Bedrock's final event (`metadata`) arrived; usage and finish reason are known.
    Complete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Chat,
    Completion,
}

#[derive(Debug, Clone, Copy)]
enum Block {
    /// A client-visible tool call with its OpenAI index.
    Tool(u32),
    /// The forced `response_format` tool, streamed as content.
    ForcedJson,
}

#[derive(Debug)]
pub struct ChatStreamTranslator {
    model: String,
    id: String,
    created: u64,
    include_usage: bool,
    json_schema_tool: Option<String>,
    flavor: Flavor,
    /// Bedrock content block index to what that block is; blocks are few, so a Vec beats a map.
    blocks: Vec<(u32, Block)>,
    next_tool_index: u32,
    forced_tool_seen: bool,
    sent_content: bool,
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    failed: bool,
}

impl ChatStreamTranslator {
    pub fn new(
        model: String,
        id: String,
        created: u64,
        include_usage: bool,
        json_schema_tool: Option<String>,
    ) -> Self {
        Self::with_flavor(
            Flavor::Chat,
            model,
            id,
            created,
            include_usage,
            json_schema_tool,
        )
    }

    pub(crate) fn with_flavor(
        flavor: Flavor,
        model: String,
        id: String,
        created: u64,
        include_usage: bool,
        json_schema_tool: Option<String>,
    ) -> Self {
        Self {
            model,
            id,
            created,
            include_usage,
            json_schema_tool,
            flavor,
            blocks: Vec::new(),
            next_tool_index: 0,
            forced_tool_seen: false,
            sent_content: false,
            finish_reason: None,
            usage: None,
            failed: false,
        }
    }

    /// Usage from Bedrock's `metadata` event, once seen.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The finish reason sent to the client, once `messageStop` was seen.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish_reason
    }

    /// Whether an error record was written.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Translates one ConverseStream event, appending zero or more complete SSE records to `out`.
    /// On error nothing is appended for this event.
    pub fn on_event(
        &mut self,
        event_type: &str,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<StreamStep, TranslateError> {
        match event_type {
            "messageStart" => self.start(out),
            "contentBlockStart" => self.on_block_start(payload, out),
            "contentBlockDelta" => self.on_block_delta(payload, out),
            "contentBlockStop" => Ok(StreamStep::Continue),
            "messageStop" => {
                let event: MessageStop<'_> = parse(event_type, payload)?;
                self.stop(FinishReason::from_bedrock(&event.stop_reason), out)
            }
            "metadata" => {
                let event: Metadata = parse(event_type, payload)?;
                let usage = event.usage.as_ref().map(Usage::from).unwrap_or_default();
                self.complete(usage, out)
            }
            other if other.ends_with("Exception") => {
                let message = serde_json::from_slice::<ExceptionPayload<'_>>(payload)
                    .ok()
                    .and_then(|p| p.message)
                    .unwrap_or(Cow::Borrowed("Bedrock reported an error mid-stream"));
                self.on_exception(other, &message, out);
                Ok(StreamStep::Continue)
            }
            _ => Ok(StreamStep::Continue),
        }
    }

    /// Writes an OpenAI-shaped error record for a Bedrock stream exception. The stream should
    /// end after it (`finish` may still be called).
    pub fn on_exception(&mut self, exception_type: &str, message: &str, out: &mut Vec<u8>) {
        self.error(classify(0, Some(exception_type)), message, out);
    }

    /// Ends the stream with `data: [DONE]`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        sse::write_done(out);
    }

    fn on_block_start(
        &mut self,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<StreamStep, TranslateError> {
        let event: BlockStart<'_> = parse("contentBlockStart", payload)?;
        match event.start.tool_use {
            Some(tool) => self.tool_start(
                event.content_block_index,
                &tool.tool_use_id,
                &tool.name,
                out,
            ),
            None => Ok(StreamStep::Continue),
        }
    }

    fn on_block_delta(
        &mut self,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<StreamStep, TranslateError> {
        let event: BlockDelta<'_> = parse("contentBlockDelta", payload)?;
        if let Some(text) = event.delta.text {
            return self.text(&text, out);
        }
        match event.delta.tool_use {
            Some(tool) => self.tool_input(event.content_block_index, &tool.input, out),
            None => Ok(StreamStep::Continue),
        }
    }

    /// The role chunk that opens a chat stream.
    pub(crate) fn start(&mut self, out: &mut Vec<u8>) -> Result<StreamStep, TranslateError> {
        if self.flavor == Flavor::Chat {
            self.write(
                out,
                Delta {
                    role: Some("assistant"),
                    content: Some(""),
                    ..Delta::default()
                },
                None,
            )?;
        }
        Ok(StreamStep::Continue)
    }

    /// A tool-use block opened as upstream content block `block`.
    pub(crate) fn tool_start(
        &mut self,
        block: u32,
        id: &str,
        name: &str,
        out: &mut Vec<u8>,
    ) -> Result<StreamStep, TranslateError> {
        if self.json_schema_tool.as_deref() == Some(name) {
            self.forced_tool_seen = true;
            self.blocks.push((block, Block::ForcedJson));
            return Ok(StreamStep::Continue);
        }
        let index = self.next_tool_index;
        self.next_tool_index += 1;
        self.blocks.push((block, Block::Tool(index)));
        let call = ToolCallDelta {
            index,
            id: Some(id),
            kind: Some("function"),
            function: FunctionDelta {
                name: Some(name),
                arguments: "",
            },
        };
        self.write(
            out,
            Delta {
                tool_calls: Some([call]),
                ..Delta::default()
            },
            None,
        )?;
        Ok(self.content_sent())
    }

    /// A fragment of answer text.
    pub(crate) fn text(
        &mut self,
        text: &str,
        out: &mut Vec<u8>,
    ) -> Result<StreamStep, TranslateError> {
        if text.is_empty() || self.json_schema_tool.is_some() {
            return Ok(StreamStep::Continue);
        }
        self.write(
            out,
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
        )?;
        Ok(self.content_sent())
    }

    /// A fragment of the JSON input of the tool-use block `block`.
    pub(crate) fn tool_input(
        &mut self,
        block: u32,
        input: &str,
        out: &mut Vec<u8>,
    ) -> Result<StreamStep, TranslateError> {
        let found = self
            .blocks
            .iter()
            .rev()
            .find(|(i, _)| *i == block)
            .map(|(_, b)| *b);
        let delta = match found {
            Some(Block::ForcedJson) => Delta {
                content: Some(input),
                ..Delta::default()
            },
            Some(Block::Tool(index)) => Delta {
                tool_calls: Some([ToolCallDelta {
                    index,
                    id: None,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments: input,
                    },
                }]),
                ..Delta::default()
            },
            None => {
                return Err(TranslateError::upstream(format!(
                    "tool input for content block {block} that never started"
                )));
            }
        };
        if input.is_empty() {
            return Ok(StreamStep::Continue);
        }
        self.write(out, delta, None)?;
        Ok(self.content_sent())
    }

    /// The chunk carrying the finish reason.
    pub(crate) fn stop(
        &mut self,
        finish: FinishReason,
        out: &mut Vec<u8>,
    ) -> Result<StreamStep, TranslateError> {
        let finish = finish.hiding_forced_tool(self.forced_tool_seen);
        self.finish_reason = Some(finish);
        self.write(out, Delta::default(), Some(finish))?;
        Ok(StreamStep::Continue)
    }

    /// The final usage, written as its own chunk when the client asked for it.
    pub(crate) fn complete(
        &mut self,
        usage: Usage,
        out: &mut Vec<u8>,
    ) -> Result<StreamStep, TranslateError> {
        self.usage = Some(usage);
        if self.include_usage {
            self.write_usage(out, usage)?;
        }
        Ok(StreamStep::Complete)
    }

    /// Writes an OpenAI-shaped error record; the stream should end after it.
    pub(crate) fn error(&mut self, kind: OpenAiErrorKind, message: &str, out: &mut Vec<u8>) {
        self.failed = true;
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&error_map::openai_error_body(
            kind.status,
            kind.error_type,
            Some(kind.code),
            None,
            message,
        ));
        out.extend_from_slice(b"\n\n");
    }

    fn content_sent(&mut self) -> StreamStep {
        if std::mem::replace(&mut self.sent_content, true) {
            StreamStep::Continue
        } else {
            StreamStep::FirstContent
        }
    }

    fn write(
        &self,
        out: &mut Vec<u8>,
        delta: Delta<'_>,
        finish_reason: Option<FinishReason>,
    ) -> Result<(), TranslateError> {
        match self.flavor {
            Flavor::Chat => {
                let choice = ChunkChoice {
                    index: 0,
                    delta,
                    finish_reason,
                    logprobs: None,
                };
                sse::write_json(out, &self.chat_chunk(std::slice::from_ref(&choice), None))
            }
            Flavor::Completion => {
                // Legacy completions have no roles or tools; only text and the finish matter.
                if delta.content.is_none() && finish_reason.is_none() {
                    return Ok(());
                }
                let choice = TextChoice {
                    text: delta.content.unwrap_or(""),
                    index: 0,
                    logprobs: None,
                    finish_reason,
                };
                sse::write_json(out, &self.text_chunk(std::slice::from_ref(&choice), None))
            }
        }
    }

    fn write_usage(&self, out: &mut Vec<u8>, usage: Usage) -> Result<(), TranslateError> {
        let usage = Some(OpenAiUsage::from(usage));
        match self.flavor {
            Flavor::Chat => sse::write_json(out, &self.chat_chunk(&[], usage)),
            Flavor::Completion => sse::write_json(out, &self.text_chunk(&[], usage)),
        }
    }

    fn chat_chunk<'a>(
        &'a self,
        choices: &'a [ChunkChoice<'a>],
        usage: Option<OpenAiUsage>,
    ) -> Chunk<'a, ChunkChoice<'a>> {
        Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        }
    }

    fn text_chunk<'a>(
        &'a self,
        choices: &'a [TextChoice<'a>],
        usage: Option<OpenAiUsage>,
    ) -> Chunk<'a, TextChoice<'a>> {
        Chunk {
            id: &self.id,
            object: "text_completion",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        }
    }
}

pub(crate) fn parse<'a, T: Deserialize<'a>>(
    event_type: &str,
    payload: &'a [u8],
) -> Result<T, TranslateError> {
    serde_json::from_slice(payload)
        .map_err(|e| TranslateError::upstream(format!("{event_type} event: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockStart<'a> {
    pub(crate) content_block_index: u32,
    #[serde(borrow)]
    pub(crate) start: BlockStartUnion<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockStartUnion<'a> {
    #[serde(borrow, default)]
    pub(crate) tool_use: Option<ToolUseStart<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolUseStart<'a> {
    #[serde(borrow)]
    pub(crate) tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) name: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockDelta<'a> {
    pub(crate) content_block_index: u32,
    #[serde(borrow)]
    pub(crate) delta: DeltaUnion<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeltaUnion<'a> {
    #[serde(borrow, default)]
    pub(crate) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) tool_use: Option<ToolUseDelta<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ToolUseDelta<'a> {
    #[serde(borrow, default)]
    pub(crate) input: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageStop<'a> {
    #[serde(borrow)]
    pub(crate) stop_reason: Cow<'a, str>,
}

#[derive(Deserialize)]
pub(crate) struct Metadata {
    #[serde(default)]
    pub(crate) usage: Option<BedrockUsage>,
}

#[derive(Deserialize)]
pub(crate) struct ExceptionPayload<'a> {
    #[serde(borrow, default, alias = "Message")]
    pub(crate) message: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct Chunk<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [C],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OpenAiUsage>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<FinishReason>,
    logprobs: Option<()>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    text: &'a str,
    index: u32,
    logprobs: Option<()>,
    finish_reason: Option<FinishReason>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn translator(include_usage: bool, json_tool: Option<&str>) -> ChatStreamTranslator {
        ChatStreamTranslator::new(
            "claude".into(),
            "chatcmpl-9".into(),
            1700000000,
            include_usage,
            json_tool.map(Into::into),
        )
    }

    /// Feeds one event and returns the records it produced, each parsed.
    fn feed(t: &mut ChatStreamTranslator, event: &str, payload: Value) -> (StreamStep, Vec<Value>) {
        let mut out = Vec::new();
        let step = t
            .on_event(event, payload.to_string().as_bytes(), &mut out)
            .unwrap();
        (step, records(&out))
    }

    fn records(out: &[u8]) -> Vec<Value> {
        sse::read_back::data(out)
    }

    fn delta(v: &Value) -> &Value {
        &v["choices"][0]["delta"]
    }

    #[test]
    fn text_stream_event_by_event() {
        let mut t = translator(true, None);
        let (step, r) = feed(
            &mut t,
            "messageStart",
            json!({"role": "assistant", "p": "abc"}),
        );
        assert_eq!(step, StreamStep::Continue);
        assert_eq!(
            r,
            vec![
                json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1700000000, "model": "claude",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null, "logprobs": null}]})
            ]
        );
        let (step, r) = feed(
            &mut t,
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
        );
        assert_eq!(step, StreamStep::FirstContent);
        assert_eq!(*delta(&r[0]), json!({"content": "Hel"}));
        let (step, r) = feed(
            &mut t,
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "lo"}}),
        );
        assert_eq!(step, StreamStep::Continue);
        assert_eq!(*delta(&r[0]), json!({"content": "lo"}));
        let (_, r) = feed(&mut t, "contentBlockStop", json!({"contentBlockIndex": 0}));
        assert!(r.is_empty());
        let (_, r) = feed(&mut t, "messageStop", json!({"stopReason": "end_turn"}));
        assert_eq!(*delta(&r[0]), json!({}));
        assert_eq!(r[0]["choices"][0]["finish_reason"], "stop");
        assert_eq!(t.finish_reason(), Some(FinishReason::Stop));
        let (step, r) = feed(
            &mut t,
            "metadata",
            json!({"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}, "metrics": {"latencyMs": 10}}),
        );
        assert_eq!(step, StreamStep::Complete);
        assert_eq!(r[0]["choices"], json!([]));
        assert_eq!(
            r[0]["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
        );
        assert_eq!(r[0]["object"], "chat.completion.chunk");
        assert_eq!(
            t.usage(),
            Some(Usage {
                input_tokens: 5,
                output_tokens: 2,
                ..Usage::default()
            })
        );
        let mut out = Vec::new();
        t.finish(&mut out);
        assert_eq!(out, b"data: [DONE]\n\n");
    }

    #[test]
    fn no_usage_chunk_unless_asked() {
        let mut t = translator(false, None);
        let (step, r) = feed(
            &mut t,
            "metadata",
            json!({"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}}),
        );
        assert_eq!(step, StreamStep::Complete);
        assert!(r.is_empty());
        assert_eq!(t.usage().unwrap().output_tokens, 2);
    }

    #[test]
    fn tool_calls_are_indexed_by_tool() {
        let mut t = translator(false, None);
        feed(&mut t, "messageStart", json!({"role": "assistant"}));
        feed(
            &mut t,
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Checking."}}),
        );
        feed(&mut t, "contentBlockStop", json!({"contentBlockIndex": 0}));
        let (step, r) = feed(
            &mut t,
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_a", "name": "w"}}}),
        );
        assert_eq!(step, StreamStep::Continue);
        assert_eq!(
            *delta(&r[0]),
            json!({"tool_calls": [{"index": 0, "id": "tooluse_a", "type": "function", "function": {"name": "w", "arguments": ""}}]})
        );
        let (_, r) = feed(
            &mut t,
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}}),
        );
        assert_eq!(
            *delta(&r[0]),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]})
        );
        feed(
            &mut t,
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
        );
        feed(&mut t, "contentBlockStop", json!({"contentBlockIndex": 1}));
        let (_, r) = feed(
            &mut t,
            "contentBlockStart",
            json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_b", "name": "w"}}}),
        );
        assert_eq!(delta(&r[0])["tool_calls"][0]["index"], 1);
        let (_, r) = feed(
            &mut t,
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{}"}}}),
        );
        assert_eq!(
            *delta(&r[0]),
            json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]})
        );
        let (_, r) = feed(&mut t, "messageStop", json!({"stopReason": "tool_use"}));
        assert_eq!(r[0]["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn first_content_can_be_a_tool_call() {
        let mut t = translator(false, None);
        let (step, _) = feed(
            &mut t,
            "contentBlockStart",
            json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t", "name": "w"}}}),
        );
        assert_eq!(step, StreamStep::FirstContent);
    }

    #[test]
    fn forced_json_tool_streams_as_content() {
        let mut t = translator(false, Some("person"));
        feed(&mut t, "messageStart", json!({"role": "assistant"}));
        let (_, r) = feed(
            &mut t,
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Sure:"}}),
        );
        assert!(r.is_empty(), "text before the forced tool is withheld");
        let (_, r) = feed(
            &mut t,
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t", "name": "person"}}}),
        );
        assert!(r.is_empty());
        let (step, r) = feed(
            &mut t,
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"name\":"}}}),
        );
        assert_eq!(step, StreamStep::FirstContent);
        assert_eq!(*delta(&r[0]), json!({"content": "{\"name\":"}));
        let (_, r) = feed(&mut t, "messageStop", json!({"stopReason": "tool_use"}));
        assert_eq!(r[0]["choices"][0]["finish_reason"], "stop");
        assert_eq!(t.finish_reason(), Some(FinishReason::Stop));
    }

    #[test]
    fn finish_reasons_in_stream() {
        for (stop, want) in [
            ("max_tokens", "length"),
            ("stop_sequence", "stop"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
        ] {
            let mut t = translator(false, None);
            let (_, r) = feed(&mut t, "messageStop", json!({"stopReason": stop}));
            assert_eq!(r[0]["choices"][0]["finish_reason"], want);
        }
    }

    #[test]
    fn ignored_events_and_reasoning() {
        let mut t = translator(false, None);
        let (_, r) = feed(
            &mut t,
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}}),
        );
        assert!(r.is_empty());
        let (_, r) = feed(&mut t, "someFutureEvent", json!({}));
        assert!(r.is_empty());
        let (_, r) = feed(
            &mut t,
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": ""}}),
        );
        assert!(r.is_empty());
    }

    #[test]
    fn protocol_errors() {
        let mut t = translator(false, None);
        let mut out = Vec::new();
        let e = t
            .on_event(
                "contentBlockDelta",
                br#"{"contentBlockIndex":3,"delta":{"toolUse":{"input":"{"}}}"#,
                &mut out,
            )
            .unwrap_err();
        assert!(matches!(e, TranslateError::Upstream { .. }));
        assert!(t.on_event("messageStop", b"not json", &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn exceptions_become_error_records() {
        let mut t = translator(false, None);
        let mut out = Vec::new();
        t.on_exception(
            "throttlingException",
            "Too many tokens, please wait.",
            &mut out,
        );
        let r = records(&out);
        assert_eq!(
            r,
            vec![
                json!({"error": {"message": "Too many tokens, please wait.", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
            ]
        );
        assert!(t.failed());

        let mut t = translator(false, None);
        let (_, r) = feed(
            &mut t,
            "modelStreamErrorException",
            json!({"message": "model \n broke", "originalStatusCode": 500}),
        );
        assert_eq!(r[0]["error"]["message"], "model \n broke");
        assert_eq!(r[0]["error"]["code"], "model_error");
    }

    #[test]
    fn hostile_text_cannot_break_framing() {
        let mut t = translator(false, None);
        let text = "\n\ndata: [DONE]\n\ndata: {\"error\":1}\r\n\r\nevent: x\n:comment\n";
        let mut out = Vec::new();
        t.on_event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": text}})
                .to_string()
                .as_bytes(),
            &mut out,
        )
        .unwrap();
        let s = std::str::from_utf8(&out).unwrap();
        assert_eq!(s.matches("\n\n").count(), 1);
        assert_eq!(s.matches('\n').count(), 2);
        assert!(!s.contains('\r'));
        let r = records(&out);
        assert_eq!(r.len(), 1);
        assert_eq!(delta(&r[0])["content"], text);
    }

    fn hostile_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            proptest::collection::vec(
                prop_oneof![
                    Just("\n".to_owned()),
                    Just("\r".to_owned()),
                    Just("data: ".to_owned()),
                    Just("[DONE]".to_owned()),
                    Just("\"".to_owned()),
                    Just("\\".to_owned()),
                    Just("\u{2028}".to_owned()),
                    any::<char>().prop_map(String::from),
                ],
                1..20
            )
            .prop_map(|parts| parts.concat()),
        ]
        .prop_filter("empty text yields no chunk", |s| !s.is_empty())
    }

    proptest! {
        #[test]
        fn any_text_is_one_record_that_round_trips(text in hostile_text()) {
            let mut t = translator(false, None);
            let payload = serde_json::to_vec(&json!({"contentBlockIndex": 0, "delta": {"text": text}})).unwrap();
            let mut out = Vec::new();
            t.on_event("contentBlockDelta", &payload, &mut out).unwrap();
            let s = std::str::from_utf8(&out).unwrap();
            prop_assert!(s.starts_with("data: "));
            prop_assert!(s.ends_with("\n\n"));
            let json = &s["data: ".len()..s.len() - 2];
            prop_assert!(!json.contains('\n') && !json.contains('\r'));
            let v: Value = serde_json::from_str(json).unwrap();
            prop_assert_eq!(v["choices"][0]["delta"]["content"].as_str(), Some(text.as_str()));
        }
    }
}
