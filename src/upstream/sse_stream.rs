//! Reads a server-sent-event stream from the Anthropic API or an OpenAI-compatible server as it
//! arrives, event by event: a side look at each event takes usage, the stop reason and errors for
//! the lease, as [`super::stream::FrameReader`] does for Bedrock's event streams; the caller
//! relays or translates the events.

use std::time::Duration;

use serde::Deserialize;

use super::classify::{outcome_for_anthropic_error, outcome_for_status};
use super::stream::StreamFailure;
use super::stream_body::{Chunk, StreamBody};
use crate::backend::Outcome;
use crate::balance::Lease;
use crate::shutdown::AbortSignal;
use crate::translate::Usage;
use crate::translate::anthropic::MessagesUsage;
use crate::translate::openai_chat::Chunk as ChatChunk;
use crate::translate::sse_decode::{SseDecoder, SseEvent};

/// One item for the consumer of the stream.
pub enum SseItem {
    /// The events one upstream chunk completed (possibly none).
    Events(Vec<SseEvent>),
    Failed(StreamFailure),
}

/// Whose event stream it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Named events ending with `message_stop`; failures as an `error` event.
    Anthropic,
    /// `data:` chunks ending with `data: [DONE]`; failures as a chunk with `error`.
    OpenAi,
}

pub struct SseReader {
    dialect: Dialect,
    upstream: StreamBody,
    decoder: SseDecoder,
    /// An error event arrived: the stream ends there, and the lease has its outcome.
    error_seen: bool,
    /// `message_stop` or `[DONE]` arrived; a stream that ends without it was cut.
    complete: bool,
    /// The upstream reported usage (a server asked for no `stream_options` reports none).
    usage_seen: bool,
}

impl SseReader {
    pub fn new(
        dialect: Dialect,
        response: awc::ClientResponse,
        lease: Lease,
        idle_timeout: Duration,
        abort: AbortSignal,
    ) -> Self {
        Self {
            dialect,
            upstream: StreamBody::new(response, lease, idle_timeout, abort),
            decoder: SseDecoder::new(),
            error_seen: false,
            complete: false,
            usage_seen: false,
        }
    }

    /// The stream's lease and tally, for the request record.
    pub fn upstream(&self) -> &StreamBody {
        &self.upstream
    }

    /// The next bytes or failure; `None` once the stream has ended either way.
    pub async fn next(&mut self) -> Option<SseItem> {
        if self.upstream.done {
            return None;
        }
        match self.upstream.next_chunk().await {
            Chunk::Data(bytes) => match self.decoder.feed(&bytes) {
                Ok(events) => Some(self.observed(events)),
                Err(e) => Some(self.fail(e.to_string(), Outcome::Failure)),
            },
            Chunk::End => {
                // An event whose lines all ended is whole though no blank line followed it: it
                // goes out, and the end is judged on the next call.
                if let Some(last) = self.decoder.finish() {
                    return Some(self.observed(vec![last]));
                }
                self.upstream.done = true;
                if self.error_seen {
                    return None;
                }
                // Some OpenAI-compatible servers end without `[DONE]` once the finish reason
                // went out.
                if !self.complete
                    && self.dialect == Dialect::OpenAi
                    && self.upstream.summary.stop_reason.is_some()
                    && !self.decoder.pending()
                {
                    self.end();
                }
                if !self.complete || self.decoder.pending() {
                    return Some(self.fail(
                        "upstream stream ended before its final event".to_owned(),
                        Outcome::Failure,
                    ));
                }
                self.upstream.lease.set_outcome(Outcome::Success);
                None
            }
            Chunk::Failed(what, outcome) => Some(self.fail(what, outcome)),
        }
    }

    fn observed(&mut self, events: Vec<SseEvent>) -> SseItem {
        for event in &events {
            match self.dialect {
                Dialect::Anthropic => self.observe_anthropic(event),
                Dialect::OpenAi => self.observe_openai(event),
            }
        }
        SseItem::Events(events)
    }

    fn fail(&mut self, what: String, outcome: Outcome) -> SseItem {
        self.upstream.fail(outcome);
        SseItem::Failed(StreamFailure::Broken(what))
    }

    fn observe_anthropic(&mut self, event: &SseEvent) {
        self.upstream.summary.frames += 1;
        let Ok(data) = serde_json::from_str::<EventData>(&event.data) else {
            return;
        };
        match data.kind.as_str() {
            "message_start" => {
                if let Some(usage) = data.message.and_then(|m| m.usage) {
                    self.set_usage(usage.into());
                }
            }
            "content_block_delta" => self.upstream.lease.record_first_token(),
            "message_delta" => {
                if let Some(usage) = data.usage {
                    // Anthropic's counts here are cumulative.
                    self.upstream.summary.output_tokens = usage.output_tokens;
                    self.usage_seen = true;
                }
                if let Some(reason) = data.delta.and_then(|d| d.stop_reason) {
                    self.upstream.summary.stop_reason = Some(reason);
                }
            }
            "message_stop" => self.end(),
            "error" => {
                let kind = data.error.map(|e| e.kind).unwrap_or_default();
                self.upstream
                    .upstream_error("stream_error", outcome_for_anthropic_error(&kind));
                self.error_seen = true;
            }
            _ => {}
        }
    }

    fn set_usage(&mut self, usage: Usage) {
        self.usage_seen = true;
        self.upstream.set_usage(usage);
    }

    /// The final event: the usage is whole. Without any, the request's token estimate stays
    /// taken from the limits and the target's usage averages are not pulled toward zero.
    fn end(&mut self) {
        self.complete = true;
        if self.usage_seen {
            self.upstream.settle_usage();
        }
    }

    fn observe_openai(&mut self, event: &SseEvent) {
        self.upstream.summary.frames += 1;
        if event.data == "[DONE]" {
            self.end();
            return;
        }
        let Ok(chunk) = serde_json::from_str::<ChatChunk<'_>>(&event.data) else {
            return;
        };
        if let Some(error) = chunk.error {
            let outcome = outcome_for_status(error.status(), "", None);
            self.upstream.upstream_error("stream_error", outcome);
            self.error_seen = true;
            return;
        }
        if !chunk.choices.is_empty() {
            self.upstream.lease.record_first_token();
        }
        if let Some(reason) = chunk.choices.into_iter().find_map(|c| c.finish_reason) {
            self.upstream.summary.stop_reason = Some(reason.into_owned());
        }
        if let Some(usage) = chunk.usage {
            self.set_usage(usage.into());
        }
    }
}

#[derive(Deserialize)]
struct EventData {
    #[serde(rename = "type")]
    kind: String,
    message: Option<StartMessage>,
    usage: Option<MessagesUsage>,
    delta: Option<Delta>,
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct StartMessage {
    usage: Option<MessagesUsage>,
}

#[derive(Deserialize)]
struct Delta {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type", default)]
    kind: String,
}
