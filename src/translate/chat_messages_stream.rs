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
        for event in self
            .decoder
            .feed(bytes)
            .map_err(|e| TranslateError::upstream(e.to_string()))?
        {
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

    /// Writes the OpenAI error record for a stream the gateway saw break (a Bedrock-style
    /// exception name, as [`ChatStreamTranslator::on_exception`]); the stream should end after it.
    pub fn on_exception(&mut self, exception_type: &str, message: &str, out: &mut Vec<u8>) {
        self.chat.on_exception(exception_type, message, out);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const TOOL_STREAM: &str =
        include_str!("../../tests/golden/chat_messages/tool_stream.anthropic.sse");

    fn translator(include_usage: bool, json_tool: Option<&str>) -> MessagesChatStream {
        MessagesChatStream::new(
            "route-a".into(),
            "chatcmpl-1".into(),
            1700000000,
            include_usage,
            json_tool.map(str::to_owned),
        )
    }

    use super::super::sse::read_back::data as records;

    fn run(t: &mut MessagesChatStream, sse: &str) -> (Vec<u8>, StreamStep) {
        let mut out = Vec::new();
        let step = t.feed(sse.as_bytes(), &mut out).unwrap();
        t.finish(&mut out);
        (out, step)
    }

    #[test]
    fn text_and_two_tool_calls_in_openai_order() {
        let mut t = translator(true, None);
        let (out, step) = run(&mut t, TOOL_STREAM);
        assert_eq!(step, StreamStep::Complete);
        let r = records(&out);
        let deltas: Vec<Value> = r[..r.len() - 2]
            .iter()
            .map(|c| {
                assert_eq!(c["id"], "chatcmpl-1");
                assert_eq!(c["object"], "chat.completion.chunk");
                assert_eq!(c["model"], "route-a");
                json!([c["choices"][0]["delta"], c["choices"][0]["finish_reason"]])
            })
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!([{"role": "assistant", "content": ""}, null]),
                json!([{"content": "Checking "}, null]),
                json!([{"content": "both.\n\ndata: [DONE]"}, null]),
                json!([{"tool_calls": [{"index": 0, "id": "toolu_A", "type": "function",
                    "function": {"name": "weather", "arguments": ""}}]}, null]),
                json!([{"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": \"Pa"}}]}, null]),
                json!([{"tool_calls": [{"index": 0, "function": {"arguments": "ris\"}"}}]}, null]),
                json!([{"tool_calls": [{"index": 1, "id": "toolu_B", "type": "function",
                    "function": {"name": "weather", "arguments": ""}}]}, null]),
                json!([{"tool_calls": [{"index": 1, "function": {"arguments": "{\"city\": \"Rome\"}"}}]}, null]),
                json!([{}, "tool_calls"]),
            ]
        );
        assert_eq!(
            r[r.len() - 2]["usage"],
            json!({"prompt_tokens": 125, "completion_tokens": 61, "total_tokens": 186,
                   "prompt_tokens_details": {"cached_tokens": 100}})
        );
        assert_eq!(r[r.len() - 2]["choices"], json!([]));
        assert_eq!(r[r.len() - 1], json!("[DONE]"));
        assert_eq!(t.usage().unwrap().cache_read_tokens, 100);
        assert_eq!(t.finish_reason(), Some(FinishReason::ToolCalls));
        assert!(!t.failed() && !t.truncated());
    }

    #[test]
    fn first_content_and_no_usage_unless_asked() {
        let mut t = translator(false, None);
        let mut out = Vec::new();
        let (head, tail) = TOOL_STREAM.split_at(TOOL_STREAM.find("Checking").unwrap());
        assert_eq!(
            t.feed(head.as_bytes(), &mut out).unwrap(),
            StreamStep::Continue
        );
        assert_eq!(
            t.feed(tail.as_bytes(), &mut out).unwrap(),
            StreamStep::Complete
        );
        assert!(records(&out).iter().all(|c| c.get("usage").is_none()));
        assert_eq!(t.usage().unwrap().output_tokens, 61);
    }

    #[test]
    fn events_without_names_and_forced_json() {
        let mut t = translator(false, Some("person"));
        let sse = "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\n\n\
            data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"person\",\"input\":{}}}\n\n\
            data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"name\\\":\"}}\n\n\
            data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Ada\\\"}\"}}\n\n\
            data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":4}}\n\n\
            data: {\"type\":\"message_stop\"}\n\n";
        let (out, _) = run(&mut t, sse);
        let r = records(&out);
        let content: String = r
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content, "{\"name\":\"Ada\"}");
        assert_eq!(r[r.len() - 2]["choices"][0]["finish_reason"], "stop");
        assert!(
            r.iter()
                .all(|c| c["choices"][0]["delta"].get("tool_calls").is_none())
        );
    }

    #[test]
    fn error_event_becomes_an_openai_error_record() {
        let mut t = translator(false, None);
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{}}}\n\n\
            event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let (out, step) = run(&mut t, sse);
        assert_eq!(step, StreamStep::Continue);
        assert!(t.failed());
        assert_eq!(
            records(&out)[1],
            json!({"error": {"message": "Overloaded", "type": "api_error", "param": null, "code": "service_unavailable"}})
        );
    }

    #[test]
    fn protocol_errors_and_truncation() {
        let mut t = translator(false, None);
        let mut out = Vec::new();
        assert!(
            t.feed(b"event: content_block_delta\ndata: {oops}\n\n", &mut out)
                .is_err()
        );
        let bad = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"name\":\"f\"}}\n\n";
        assert!(t.feed(bad.as_bytes(), &mut out).is_err());
        t.feed(b"event: message_stop\ndata: {\"type\":", &mut out)
            .unwrap();
        assert!(t.truncated());
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_chunks(cuts in proptest::collection::vec(0usize..=TOOL_STREAM.len(), 0..12)) {
            let (whole, _) = run(&mut translator(true, None), TOOL_STREAM);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let bytes = TOOL_STREAM.as_bytes();
            let mut t = translator(true, None);
            let mut out = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                t.feed(&bytes[from..cut], &mut out).unwrap();
                from = cut;
            }
            t.finish(&mut out);
            prop_assert_eq!(out, whole);
        }
    }
}
