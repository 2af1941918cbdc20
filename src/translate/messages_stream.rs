//! ConverseStream events to Anthropic Messages stream events (SSE), for models reached through
//! Converse.
//!
//! Converse numbers content blocks as Anthropic does, so indexes pass through. A text block has
//! no start event in Converse; its `content_block_start` is written before its first delta.
//! Usage arrives only in Converse's last event (`metadata`), so `message_start` carries zeros
//! and the closing `message_delta` the real counts, input included (the SDKs take both).
//! Reasoning deltas are skipped: thinking is refused for these models before the request goes.

use serde::Serialize;

use super::anthropic::{self, MessagesUsage, OutMessage};
use super::chat_stream::{BlockDelta, BlockStart, ExceptionPayload, MessageStop, Metadata, parse};
use super::error::TranslateError;
use super::error_map::anthropic_error_for_bedrock;
use super::messages_converse::messages_usage;
use super::sse;

#[derive(Debug)]
pub struct MessagesStreamTranslator {
    model: String,
    id: String,
    /// Content blocks whose start was written and whose stop is still due.
    open: Vec<u32>,
    stop_reason: Option<&'static str>,
    usage: Option<MessagesUsage>,
}

impl MessagesStreamTranslator {
    pub fn new(model: String, id: String) -> Self {
        Self {
            model,
            id,
            open: Vec::new(),
            stop_reason: None,
            usage: None,
        }
    }

    /// Usage from Converse's `metadata` event, once seen.
    pub fn usage(&self) -> Option<MessagesUsage> {
        self.usage
    }

    /// Translates one ConverseStream event, appending complete SSE records to `out`.
    pub fn on_event(
        &mut self,
        event_type: &str,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        match event_type {
            "messageStart" => self.start(out),
            "contentBlockStart" => {
                let event: BlockStart<'_> = parse(event_type, payload)?;
                match event.start.tool_use {
                    Some(tool) => self.tool_start(
                        event.content_block_index,
                        &tool.tool_use_id,
                        &tool.name,
                        out,
                    ),
                    None => Ok(()),
                }
            }
            "contentBlockDelta" => {
                let event: BlockDelta<'_> = parse(event_type, payload)?;
                let index = event.content_block_index;
                match (&event.delta.text, &event.delta.tool_use) {
                    (Some(text), _) => self.text(index, text, out),
                    (None, Some(tool)) => self.tool_input(index, &tool.input, out),
                    (None, None) => Ok(()),
                }
            }
            "contentBlockStop" => {
                let event: BlockIndex = parse(event_type, payload)?;
                self.block_stop(event.content_block_index, out)
            }
            "messageStop" => {
                let event: MessageStop<'_> = parse(event_type, payload)?;
                self.stop_reason = Some(anthropic::stop_reason(&event.stop_reason));
                Ok(())
            }
            "metadata" => {
                let event: Metadata = parse(event_type, payload)?;
                let usage = event.usage.as_ref().map(messages_usage).unwrap_or_default();
                self.end(self.stop_reason.unwrap_or("end_turn"), usage, out)
            }
            other if other.ends_with("Exception") => {
                let message = serde_json::from_slice::<ExceptionPayload<'_>>(payload)
                    .ok()
                    .and_then(|p| p.message)
                    .unwrap_or_else(|| "Bedrock reported an error mid-stream".into());
                on_exception(other, &message, out);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `message_start`, with zero usage: the upstreams report it only at the end.
    pub(crate) fn start(&mut self, out: &mut Vec<u8>) -> Result<(), TranslateError> {
        let message = OutMessage {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: MessagesUsage::default(),
        };
        write(
            out,
            "message_start",
            &MessageStart {
                kind: "message_start",
                message,
            },
        )
    }

    /// Opens tool-use block `index`.
    pub(crate) fn tool_start(
        &mut self,
        index: u32,
        id: &str,
        name: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        self.open_block(
            index,
            StartedBlock::ToolUse {
                id,
                name,
                input: Empty {},
            },
            out,
        )
    }

    fn open_block(
        &mut self,
        index: u32,
        content_block: StartedBlock<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        self.open.push(index);
        write(
            out,
            "content_block_start",
            &BlockStartEvent {
                kind: "content_block_start",
                index,
                content_block,
            },
        )
    }

    /// A text fragment of block `index`, opening the block at its first fragment.
    pub(crate) fn text(
        &mut self,
        index: u32,
        text: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        if !self.open.contains(&index) {
            self.open_block(index, StartedBlock::Text { text: "" }, out)?;
        }
        self.delta(index, Delta::TextDelta { text }, out)
    }

    /// A fragment of the JSON input of tool-use block `index`.
    pub(crate) fn tool_input(
        &mut self,
        index: u32,
        partial_json: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        self.delta(index, Delta::InputJsonDelta { partial_json }, out)
    }

    fn delta(
        &mut self,
        index: u32,
        delta: Delta<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        write(
            out,
            "content_block_delta",
            &DeltaEvent {
                kind: "content_block_delta",
                index,
                delta,
            },
        )
    }

    /// Closes block `index` if it is open.
    pub(crate) fn block_stop(
        &mut self,
        index: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        let Some(at) = self.open.iter().position(|i| *i == index) else {
            return Ok(());
        };
        self.open.swap_remove(at);
        write_stop(index, out)
    }

    /// Closes the blocks still open, then `message_delta` with the stop reason and the final
    /// usage, and `message_stop`.
    pub(crate) fn end(
        &mut self,
        stop_reason: &'static str,
        usage: MessagesUsage,
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        let mut open = std::mem::take(&mut self.open);
        open.sort_unstable();
        for index in open {
            write_stop(index, out)?;
        }
        self.stop_reason = Some(stop_reason);
        self.usage = Some(usage);
        write(
            out,
            "message_delta",
            &MessageDelta {
                kind: "message_delta",
                delta: StopDelta {
                    stop_reason,
                    stop_sequence: None,
                },
                usage,
            },
        )?;
        write(
            out,
            "message_stop",
            &Kind {
                kind: "message_stop",
            },
        )
    }
}

/// Writes Anthropic's `event: error` for a Bedrock exception; the stream ends after it.
pub fn on_exception(exception_type: &str, message: &str, out: &mut Vec<u8>) {
    let (_, error_type) = anthropic_error_for_bedrock(0, Some(exception_type));
    sse::write_event(out, "error", &anthropic::error_body(error_type, message));
}

fn write_stop(index: u32, out: &mut Vec<u8>) -> Result<(), TranslateError> {
    write(
        out,
        "content_block_stop",
        &StopEvent {
            kind: "content_block_stop",
            index,
        },
    )
}

fn write<T: Serialize>(out: &mut Vec<u8>, name: &str, event: &T) -> Result<(), TranslateError> {
    let json = serde_json::to_vec(event)
        .map_err(|e| TranslateError::upstream(format!("could not encode {name}: {e}")))?;
    sse::write_event(out, name, &json);
    Ok(())
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockIndex {
    content_block_index: u32,
}

#[derive(Serialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: OutMessage<'a>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartedBlock<'a> {
    Text {
        text: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Empty,
    },
}

#[derive(Serialize)]
struct BlockStartEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    content_block: StartedBlock<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct DeltaEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: Delta<'a>,
}

#[derive(Serialize)]
struct StopEvent {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct MessageDelta {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopDelta,
    usage: MessagesUsage,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::{Value, json};

    fn run(events: &[(&str, Value)]) -> (Vec<(String, Value)>, MessagesStreamTranslator) {
        let mut t = MessagesStreamTranslator::new("llama".into(), "msg_1".into());
        let mut out = Vec::new();
        for (name, payload) in events {
            t.on_event(name, payload.to_string().as_bytes(), &mut out)
                .unwrap();
        }
        let records = sse::read_back::named(&out);
        (records, t)
    }

    #[test]
    fn text_then_tool_in_anthropic_order() {
        let (records, t) = run(&[
            ("messageStart", json!({"role": "assistant"})),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
            ),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": " there"}}),
            ),
            ("contentBlockStop", json!({"contentBlockIndex": 0})),
            (
                "contentBlockStart",
                json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}}),
            ),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"a\":"}}}),
            ),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "1}"}}}),
            ),
            ("contentBlockStop", json!({"contentBlockIndex": 1})),
            ("messageStop", json!({"stopReason": "tool_use"})),
            (
                "metadata",
                json!({"usage": {"inputTokens": 5, "outputTokens": 9, "totalTokens": 14, "cacheWriteInputTokens": 3}, "metrics": {"latencyMs": 1}}),
            ),
        ]);
        let names: Vec<&str> = records.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        for (name, data) in &records {
            assert_eq!(data["type"], name.as_str());
        }
        assert_eq!(records[0].1["message"]["id"], "msg_1");
        assert_eq!(records[0].1["message"]["content"], json!([]));
        assert_eq!(
            records[1].1["content_block"],
            json!({"type": "text", "text": ""})
        );
        assert_eq!(
            records[3].1["delta"],
            json!({"type": "text_delta", "text": " there"})
        );
        assert_eq!(
            records[5].1["content_block"],
            json!({"type": "tool_use", "id": "t1", "name": "f", "input": {}})
        );
        assert_eq!(
            records[6].1["delta"],
            json!({"type": "input_json_delta", "partial_json": "{\"a\":"})
        );
        assert_eq!(
            records[9].1,
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                   "usage": {"input_tokens": 5, "output_tokens": 9, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 0}})
        );
        assert_eq!(t.usage().unwrap().output_tokens, 9);
    }

    #[test]
    fn exceptions_become_anthropic_errors() {
        let (records, _) = run(&[
            ("messageStart", json!({"role": "assistant"})),
            ("throttlingException", json!({"message": "slow down"})),
        ]);
        assert_eq!(
            records[1],
            (
                "error".to_owned(),
                json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
            )
        );
        let mut out = Vec::new();
        on_exception("serviceUnavailableException", "busy", &mut out);
        assert!(String::from_utf8(out).unwrap().contains("overloaded_error"));
    }
}
