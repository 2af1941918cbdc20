//! Anthropic Messages stream (SSE) to OpenAI `chat.completion.chunk` records, for OpenAI
//! clients reaching an Anthropic API target.
//!
//! The chunks are written by the same [`ChatStreamTranslator`] as for Converse streams (role
//! chunk first, tool calls indexed 0, 1, ... by tool, forced `response_format` tool streamed as
//! content); this type only reads Anthropic's events:
//! - `message_start` opens the stream and carries input and cache counts;
//! - `content_block_start` of a `tool_use` opens a tool call; text blocks need no start;
//! - `text_delta` and `input_json_delta` are content and argument fragments; thinking deltas and
//!   server-tool blocks are skipped (OpenAI's chunk has no field for them);
//! - `message_delta` carries the stop reason (the finish chunk) and the final counts;
//!   `message_stop` ends the stream (the usage chunk when asked for);
//! - `error` becomes an OpenAI error record; `ping` and unknown events are skipped.

use serde::Deserialize;

use super::anthropic::{
    BlockDeltaEvent, BlockStartEvent, ErrorEvent, EventKind, MessageDeltaEvent, MessageStartEvent,
    MessagesUsage,
};
use super::chat_stream::{ChatStreamTranslator, StreamStep};
use super::error::TranslateError;
use super::error_map::openai_kind_for_anthropic;
use super::finish_reason::FinishReason;
use super::sse_decode::SseDecoder;
use super::usage::Usage;

#[derive(Debug)]
pub struct MessagesChatStream {
    decoder: SseDecoder,
    chat: ChatStreamTranslator,
    /// Anthropic content block indexes that are `tool_use` blocks.
    tool_blocks: Vec<u32>,
    usage: MessagesUsage,
}

impl MessagesChatStream {
    /// Arguments as for [`ChatStreamTranslator::new`]: the client's model name, the chunk id,
    /// the creation time, `stream_options.include_usage`, and the forced `response_format` tool.
    pub fn new(
        model: String,
        id: String,
        created: u64,
        include_usage: bool,
        json_schema_tool: Option<String>,
    ) -> Self {
        Self {
            decoder: SseDecoder::new(),
            chat: ChatStreamTranslator::new(model, id, created, include_usage, json_schema_tool),
            tool_blocks: Vec::new(),
            usage: MessagesUsage::default(),
        }
    }

    /// Feeds upstream bytes, split anywhere, appending the chunks they complete to `out`.
    /// Of the steps the events took, returns `Complete` if the stream ended, else
    /// `FirstContent` if the first content went out, else `Continue`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<StreamStep, TranslateError> {
        let mut step = StreamStep::Continue;
        for event in self.decoder.feed(bytes) {
            step = match (step, self.on_event(&event.event, &event.data, out)?) {
                (StreamStep::Complete, _) | (_, StreamStep::Complete) => StreamStep::Complete,
                (StreamStep::FirstContent, _) | (_, StreamStep::FirstContent) => {
                    StreamStep::FirstContent
                }
                _ => StreamStep::Continue,
            };
        }
        Ok(step)
    }

    /// Translates one decoded event; `name` is its `event:` field, empty if none was sent.
    pub fn on_event(
        &mut self,
        name: &str,
        data: &str,
        out: &mut Vec<u8>,
    ) -> Result<StreamStep, TranslateError> {
        let kind;
        let name = if name.is_empty() {
            kind = parse::<EventKind<'_>>("event", data)?.kind;
            kind.as_ref()
        } else {
            name
        };
        match name {
            "message_start" => {
                self.usage = parse::<MessageStartEvent>(name, data)?.message.usage;
                self.chat.start(out)
            }
            "content_block_start" => {
                let event: BlockStartEvent<'_> = parse(name, data)?;
                let block = event.content_block;
                match block.kind.as_ref() {
                    "tool_use" => {
                        let missing = |field: &str| {
                            TranslateError::upstream(format!(
                                "content_block_start {}: tool_use has no {field}",
                                event.index
                            ))
                        };
                        let id = block.id.ok_or_else(|| missing("id"))?;
                        let name = block.name.ok_or_else(|| missing("name"))?;
                        self.tool_blocks.push(event.index);
                        self.chat.tool_start(event.index, &id, &name, out)
                    }
                    "text" => self.chat.text(block.text.as_deref().unwrap_or(""), out),
                    _ => Ok(StreamStep::Continue),
                }
            }
            "content_block_delta" => {
                let event: BlockDeltaEvent<'_> = parse(name, data)?;
                match (
                    event.delta.kind.as_ref(),
                    event.delta.text,
                    event.delta.partial_json,
                ) {
                    ("text_delta", Some(text), _) => self.chat.text(&text, out),
                    ("input_json_delta", _, Some(json))
                        if self.tool_blocks.contains(&event.index) =>
                    {
                        self.chat.tool_input(event.index, &json, out)
                    }
                    _ => Ok(StreamStep::Continue),
                }
            }
            "message_delta" => {
                let event: MessageDeltaEvent<'_> = parse(name, data)?;
                self.usage.update(&event.usage);
                match event.delta.stop_reason {
                    Some(reason) => self.chat.stop(FinishReason::from_anthropic(&reason), out),
                    None => Ok(StreamStep::Continue),
                }
            }
            "message_stop" => self.chat.complete(Usage::from(self.usage), out),
            "error" => {
                let event: ErrorEvent<'_> = parse(name, data)?;
                let kind = openai_kind_for_anthropic(0, event.error.kind.as_deref());
                let message = event
                    .error
                    .message
                    .unwrap_or_else(|| "the Anthropic API reported an error mid-stream".into());
                self.chat.error(kind, &message, out);
                Ok(StreamStep::Continue)
            }
            _ => Ok(StreamStep::Continue),
        }
    }

    /// Ends the stream with `data: [DONE]`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.chat.finish(out);
    }

    /// Usage, once `message_stop` was seen.
    pub fn usage(&self) -> Option<Usage> {
        self.chat.usage()
    }

    /// The finish reason sent to the client, once `message_delta` carried one.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.chat.finish_reason()
    }

    /// Whether an error record was written.
    pub fn failed(&self) -> bool {
        self.chat.failed()
    }

    /// Whether the upstream stream was cut in the middle of an event.
    pub fn truncated(&self) -> bool {
        self.decoder.pending()
    }
}

fn parse<'a, T: Deserialize<'a>>(name: &str, data: &'a str) -> Result<T, TranslateError> {
    serde_json::from_str(data).map_err(|e| TranslateError::upstream(format!("{name} event: {e}")))
}
