//! OpenAI `chat.completion.chunk` stream (SSE) to Anthropic Messages stream events, for
//! Anthropic clients reaching an OpenAI-compatible or Azure OpenAI target.
//!
//! The events are written by the same [`MessagesStreamTranslator`] as for Converse streams;
//! this type reads the chunks and numbers Anthropic's content blocks: text deltas go to a text
//! block, each new tool call (a delta with an `id`) closes the current block and opens a
//! `tool_use` block at the next index, and argument fragments go to the tool call's block by
//! its OpenAI `index`. The finish reason is held until the stream ends (`[DONE]` or
//! [`ChatMessagesStream::finish`] at end of input), because the usage chunk that
//! `stream_options.include_usage` asks for comes after it; then the open blocks close and
//! `message_delta` carries the stop reason and the usage, and `message_stop` follows.

use super::anthropic::{self, MessagesUsage};
use super::error::TranslateError;
use super::error_map::anthropic_error_for_openai;
use super::messages_chat::messages_usage;
use super::messages_stream::MessagesStreamTranslator;
use super::openai_chat::{self, Chunk};
use super::sse;
use super::sse_decode::SseDecoder;

#[derive(Debug)]
pub struct ChatMessagesStream {
    decoder: SseDecoder,
    messages: MessagesStreamTranslator,
    started: bool,
    ended: bool,
    /// The Anthropic index of the open text block, if one is open.
    text_block: Option<u32>,
    /// OpenAI tool call index to Anthropic block index.
    tool_blocks: Vec<(u32, u32)>,
    next_block: u32,
    stop_reason: Option<&'static str>,
    usage: MessagesUsage,
}

impl ChatMessagesStream {
    /// `model` is the client's model name, `id` the message id (`msg_...`).
    pub fn new(model: String, id: String) -> Self {
        Self {
            decoder: SseDecoder::new(),
            messages: MessagesStreamTranslator::new(model, id),
            started: false,
            ended: false,
            text_block: None,
            tool_blocks: Vec::new(),
            next_block: 0,
            stop_reason: None,
            usage: MessagesUsage::default(),
        }
    }

    /// Feeds upstream bytes, split anywhere, appending the events they complete to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), TranslateError> {
        for event in self
            .decoder
            .feed(bytes)
            .map_err(|e| TranslateError::upstream(e.to_string()))?
        {
            self.on_data(&event.data, out)?;
        }
        Ok(())
    }

    /// Translates one `data:` payload: a chunk, an error record, or `[DONE]`.
    pub fn on_data(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), TranslateError> {
        if self.ended {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            return self.finish(out);
        }
        let chunk: Chunk<'_> = serde_json::from_str(data)
            .map_err(|e| TranslateError::upstream(format!("chat.completion.chunk: {e}")))?;
        if let Some(error) = chunk.error {
            let (_, error_type) = anthropic_error_for_openai(error.status());
            let message = error
                .message
                .unwrap_or_else(|| "the upstream reported an error mid-stream".into());
            sse::write_event(out, "error", &anthropic::error_body(error_type, &message));
            self.ended = true;
            return Ok(());
        }
        if !self.started {
            self.started = true;
            self.messages.start(out)?;
        }
        if let Some(usage) = chunk.usage {
            self.usage = messages_usage(usage);
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                let index = match self.text_block {
                    Some(index) => index,
                    None => {
                        self.close_open(out)?;
                        let index = self.next_index();
                        self.text_block = Some(index);
                        index
                    }
                };
                self.messages.text(index, &text, out)?;
            }
            for (position, call) in (0u32..).zip(choice.delta.tool_calls) {
                let openai_index = call.index.unwrap_or(position);
                let (name, arguments) = match call.function {
                    Some(f) => (f.name, f.arguments),
                    None => (None, None),
                };
                if let Some(id) = call.id {
                    let name = name.ok_or_else(|| {
                        TranslateError::upstream(format!(
                            "tool call {} starts without a function name",
                            openai_index
                        ))
                    })?;
                    self.close_open(out)?;
                    let index = self.next_index();
                    self.tool_blocks.push((openai_index, index));
                    self.messages.tool_start(index, &id, &name, out)?;
                }
                let Some(arguments) = arguments.filter(|a| !a.is_empty()) else {
                    continue;
                };
                let index = self
                    .tool_blocks
                    .iter()
                    .rev()
                    .find(|(openai, _)| *openai == openai_index)
                    .map(|(_, block)| *block)
                    .ok_or_else(|| {
                        TranslateError::upstream(format!(
                            "arguments for tool call {} that never started",
                            openai_index
                        ))
                    })?;
                self.messages.tool_input(index, &arguments, out)?;
            }
            if let Some(reason) = choice.finish_reason {
                self.stop_reason = Some(openai_chat::stop_reason(&reason));
            }
        }
        Ok(())
    }

    /// Ends the message (`message_delta`, `message_stop`) if `[DONE]` has not already; call it
    /// at the end of the upstream body, since some servers send no `[DONE]`.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), TranslateError> {
        if std::mem::replace(&mut self.ended, true) {
            return Ok(());
        }
        if !self.started {
            self.started = true;
            self.messages.start(out)?;
        }
        let stop_reason = self.stop_reason.unwrap_or("end_turn");
        self.messages.end(stop_reason, self.usage, out)
    }

    /// Usage, once the stream ended.
    pub fn usage(&self) -> Option<MessagesUsage> {
        self.messages.usage()
    }

    /// Whether the upstream stream was cut in the middle of an event.
    pub fn truncated(&self) -> bool {
        self.decoder.pending()
    }

    fn next_index(&mut self) -> u32 {
        let index = self.next_block;
        self.next_block += 1;
        index
    }

    /// Anthropic blocks do not interleave: a new block closes the one before.
    fn close_open(&mut self, out: &mut Vec<u8>) -> Result<(), TranslateError> {
        if self.next_block > 0 {
            self.text_block = None;
            self.messages.block_stop(self.next_block - 1, out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const TOOL_STREAM: &str =
        include_str!("../../tests/golden/messages_chat/tool_stream.openai.sse");

    use super::super::sse::read_back::named as events;

    fn run(sse: &str) -> (ChatMessagesStream, Vec<u8>) {
        let mut t = ChatMessagesStream::new("claude-route".into(), "msg_1".into());
        let mut out = Vec::new();
        t.feed(sse.as_bytes(), &mut out).unwrap();
        t.finish(&mut out).unwrap();
        (t, out)
    }

    #[test]
    fn text_then_two_tools_in_anthropic_order() {
        let (t, out) = run(TOOL_STREAM);
        let e = events(&out);
        for (name, data) in &e {
            assert_eq!(data["type"], name.as_str());
        }
        let summary: Vec<Value> = e
            .iter()
            .map(|(name, d)| match name.as_str() {
                "content_block_start" => json!([d["index"], d["content_block"]]),
                "content_block_delta" => json!([d["index"], d["delta"]]),
                "content_block_stop" => json!([d["index"]]),
                "message_delta" => json!([d["delta"]["stop_reason"], d["usage"]]),
                _ => json!(name),
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                json!("message_start"),
                json!([0, {"type": "text", "text": ""}]),
                json!([0, {"type": "text_delta", "text": "Checking "}]),
                json!([0, {"type": "text_delta", "text": "both."}]),
                json!([0]),
                json!([1, {"type": "tool_use", "id": "call_A", "name": "weather", "input": {}}]),
                json!([1, {"type": "input_json_delta", "partial_json": "{\"city\": \"Pa"}]),
                json!([1, {"type": "input_json_delta", "partial_json": "ris\"}"}]),
                json!([1]),
                json!([2, {"type": "tool_use", "id": "call_B", "name": "weather", "input": {}}]),
                json!([2, {"type": "input_json_delta", "partial_json": "{\"city\": \"Rome\"}"}]),
                json!([2]),
                json!(["tool_use", {"input_tokens": 25, "output_tokens": 61,
                    "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100}]),
                json!("message_stop"),
            ]
        );
        assert_eq!(e[0].1["message"]["id"], "msg_1");
        assert_eq!(e[0].1["message"]["model"], "claude-route");
        assert_eq!(t.usage().unwrap().output_tokens, 61);
        assert!(!t.truncated());
    }

    #[test]
    fn stream_without_done_ends_at_finish_once() {
        let sse = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"length\"}]}\n\n";
        let (mut t, mut out) = run(sse);
        t.finish(&mut out).unwrap();
        let names: Vec<String> = events(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events(&out)[4].1["delta"]["stop_reason"], "max_tokens");
    }

    /// `null` where OpenAI omits a field (LiteLLM), and whole tool calls without `index`
    /// (Gemini's OpenAI API, older Ollama), translate as OpenAI's own stream does.
    #[test]
    fn nulls_and_calls_without_an_index() {
        let sse = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"Looking\",\"tool_calls\":null}}]}\n\n",
            "data: {\"choices\":[{\"delta\":null}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[",
            "{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},",
            "{\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{\\\"x\\\":1}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
            "data: {\"choices\":null,\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}\n\n",
            "data: [DONE]\n\n",
        );
        let (t, out) = run(sse);
        let events = events(&out);
        let starts: Vec<&Value> = events
            .iter()
            .filter(|(name, _)| name == "content_block_start")
            .map(|(_, e)| &e["content_block"])
            .collect();
        assert_eq!(starts[0]["type"], "text");
        assert_eq!(
            (starts[1]["id"].as_str(), starts[1]["name"].as_str()),
            (Some("a"), Some("f"))
        );
        assert_eq!(
            (starts[2]["id"].as_str(), starts[2]["name"].as_str()),
            (Some("b"), Some("g"))
        );
        let inputs: Vec<&str> = events
            .iter()
            .filter(|(_, e)| e["delta"]["type"] == "input_json_delta")
            .map(|(_, e)| e["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(inputs, ["{}", "{\"x\":1}"]);
        assert_eq!(t.usage().unwrap().output_tokens, 3);
    }

    #[test]
    fn error_records_and_protocol_errors() {
        let (_, out) =
            run("data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n");
        assert_eq!(
            events(&out),
            vec![(
                "error".to_owned(),
                json!({"type": "error", "error": {"type": "api_error", "message": "boom"}})
            )]
        );
        for (error, expected) in [
            (
                r#"{"message":"m","type":"requests","code":"rate_limit_exceeded"}"#,
                "rate_limit_error",
            ),
            (r#"{"message":"m","code":"503"}"#, "overloaded_error"),
            (
                r#"{"message":"m","type":"BadRequestError","code":400}"#,
                "invalid_request_error",
            ),
            // The upstream refused the gateway's key: never the client's fault.
            (
                r#"{"message":"m","type":"authentication_error"}"#,
                "api_error",
            ),
        ] {
            let (_, out) = run(&format!("data: {{\"error\":{error}}}\n\n"));
            assert_eq!(events(&out)[0].1["error"]["type"], expected, "{error}");
        }
        let mut t = ChatMessagesStream::new("m".into(), "i".into());
        let mut out = Vec::new();
        assert!(t.feed(b"data: {nope}\n\n", &mut out).is_err());
        let orphan = "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":3,\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n";
        assert!(t.feed(orphan.as_bytes(), &mut out).is_err());
        let nameless =
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\"}]}}]}\n\n";
        assert!(t.feed(nameless.as_bytes(), &mut out).is_err());
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events(cuts in proptest::collection::vec(0usize..=TOOL_STREAM.len(), 0..12)) {
            let (_, whole) = run(TOOL_STREAM);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let bytes = TOOL_STREAM.as_bytes();
            let mut t = ChatMessagesStream::new("claude-route".into(), "msg_1".into());
            let mut out = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                t.feed(&bytes[from..cut], &mut out).unwrap();
                from = cut;
            }
            t.finish(&mut out).unwrap();
            prop_assert_eq!(out, whole);
        }
    }
}
