//! Reads an Anthropic API event stream (server-sent events) as it arrives, for passing through
//! unchanged: the bytes go to the client as they came, while a side look at each event takes
//! usage, the stop reason and errors for the lease, as [`super::stream::FrameReader`] does for
//! Bedrock's event streams.

use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::dev::Payload;
use bytes::Bytes;
use serde::Deserialize;

use super::classify::outcome_for_anthropic_error;
use super::stream::{Chunk, StreamFailure, StreamRecord, StreamSummary, next_chunk};
use crate::backend::Outcome;
use crate::balance::Lease;
use crate::metrics;
use crate::shutdown::AbortSignal;
use crate::translate::sse_decode::{SseDecoder, SseEvent};

/// One item for the consumer of the stream.
pub enum SseItem {
    /// Upstream bytes, to pass on as they are.
    Bytes(Bytes),
    Failed(StreamFailure),
}

pub struct SseReader {
    body: Payload,
    abort: AbortSignal,
    decoder: SseDecoder,
    idle_timeout: Duration,
    lease: Lease,
    summary: StreamSummary,
    /// An `error` event arrived: the stream ends there, and the lease has its outcome.
    error_seen: bool,
    /// `message_stop` arrived; a stream that ends without it was cut.
    complete: bool,
    done: bool,
}

impl SseReader {
    pub fn new(
        mut response: awc::ClientResponse,
        lease: Lease,
        idle_timeout: Duration,
        abort: AbortSignal,
    ) -> Self {
        Self {
            body: response.take_payload(),
            abort,
            decoder: SseDecoder::new(),
            idle_timeout,
            lease,
            summary: StreamSummary::default(),
            error_seen: false,
            complete: false,
            done: false,
        }
    }

    /// The next bytes or failure; `None` once the stream has ended either way.
    pub async fn next(&mut self) -> Option<SseItem> {
        if self.done {
            return None;
        }
        match next_chunk(&mut self.body, self.idle_timeout, &mut self.abort).await {
            Chunk::Data(bytes) => {
                for event in self.decoder.feed(&bytes) {
                    self.observe(&event);
                }
                Some(SseItem::Bytes(bytes))
            }
            Chunk::End => {
                self.done = true;
                if self.error_seen {
                    return None;
                }
                if !self.complete || self.decoder.pending() {
                    return Some(self.fail(
                        "upstream stream ended before message_stop".to_owned(),
                        Outcome::Failure,
                    ));
                }
                self.lease.set_outcome(Outcome::Success);
                None
            }
            Chunk::Failed(what, outcome) => Some(self.fail(what, outcome)),
        }
    }

    fn fail(&mut self, what: String, outcome: Outcome) -> SseItem {
        self.done = true;
        metrics::upstream_error(&self.lease.target().label, "stream_error");
        self.lease.set_outcome(outcome);
        SseItem::Failed(StreamFailure::Broken(what))
    }

    fn observe(&mut self, event: &SseEvent) {
        self.summary.frames += 1;
        let Ok(data) = serde_json::from_str::<EventData>(&event.data) else {
            return;
        };
        match data.kind.as_str() {
            "message_start" => {
                if let Some(usage) = data.message.and_then(|m| m.usage) {
                    self.summary.cache_read_tokens = usage.cache_read_input_tokens;
                    self.summary.cache_write_tokens = usage.cache_creation_input_tokens;
                    self.summary.input_tokens = usage.input_tokens
                        + usage.cache_read_input_tokens
                        + usage.cache_creation_input_tokens;
                    self.summary.output_tokens = usage.output_tokens;
                }
            }
            "content_block_delta" => self.lease.record_first_token(),
            "message_delta" => {
                if let Some(usage) = data.usage {
                    // Anthropic's counts here are cumulative.
                    self.summary.output_tokens = usage.output_tokens;
                }
                if let Some(reason) = data.delta.and_then(|d| d.stop_reason) {
                    self.summary.stop_reason = Some(reason);
                }
            }
            "message_stop" => {
                self.complete = true;
                // Limits settle on what Anthropic bills at the input rate: cache reads go.
                self.lease.record_usage_u64(
                    self.summary.input_tokens - self.summary.cache_read_tokens,
                    self.summary.output_tokens,
                );
            }
            "error" => {
                let kind = data.error.map(|e| e.kind).unwrap_or_default();
                metrics::upstream_error(&self.lease.target().label, "stream_error");
                self.lease.set_outcome(outcome_for_anthropic_error(&kind));
                self.error_seen = true;
            }
            _ => {}
        }
    }
}

impl StreamRecord for SseReader {
    fn lease(&self) -> &Lease {
        &self.lease
    }

    fn summary(&self) -> &StreamSummary {
        &self.summary
    }
}

#[derive(Deserialize)]
struct EventData {
    #[serde(rename = "type")]
    kind: String,
    message: Option<StartMessage>,
    usage: Option<Usage>,
    delta: Option<Delta>,
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct StartMessage {
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
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
