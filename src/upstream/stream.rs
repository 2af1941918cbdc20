//! Reads an upstream event stream frame by frame as it arrives: an idle timeout between chunks,
//! a side look at each frame for usage, stop reason and exceptions, and a clean ending when the
//! upstream breaks (the caller turns that into an exception frame or an SSE error).

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use super::classify::{error_name, outcome_for_stream_exception};
use super::stream_body::{Chunk, StreamBody};
use crate::backend::Outcome;
use crate::balance::Lease;
use crate::eventstream::{Decoder, Frame, RawFrame};
use crate::metrics;
use crate::shutdown::AbortSignal;
use crate::translate::Usage;

/// How a stream ended early, for the exception the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFailure {
    /// The connection broke or a chunk did not arrive in time.
    Broken(String),
    /// The bytes were not a valid event stream.
    Corrupt(String),
}

/// One item for the consumer of the stream.
pub enum StreamItem {
    Frame(RawFrame),
    Failed(StreamFailure),
}

pub struct FrameReader {
    upstream: StreamBody,
    decoder: Decoder,
    exception_seen: bool,
    /// Bedrock's last event arrived (`metadata`, or the chunk with invocation metrics). A stream
    /// that ends cleanly without it was cut at a frame boundary: awc reports that as a normal end.
    complete: bool,
}

impl FrameReader {
    pub fn new(
        response: awc::ClientResponse,
        lease: Lease,
        idle_timeout: Duration,
        abort: AbortSignal,
    ) -> Self {
        Self {
            upstream: StreamBody::new(response, lease, idle_timeout, abort),
            decoder: Decoder::new(),
            exception_seen: false,
            complete: false,
        }
    }

    /// For streams with no closing event (RetrieveAndGenerateStream): a clean end at a frame
    /// boundary is then their end, not a cut.
    #[must_use]
    pub fn without_final_event(mut self) -> Self {
        self.complete = true;
        self
    }

    /// The stream's lease and tally, for the request record.
    pub fn upstream(&self) -> &StreamBody {
        &self.upstream
    }

    /// The next frame or failure; `None` once the stream has ended either way.
    pub async fn next(&mut self) -> Option<StreamItem> {
        if self.upstream.done {
            return None;
        }
        loop {
            match self.decoder.next_frame() {
                Ok(Some(raw)) => {
                    self.observe(&raw.frame);
                    return Some(StreamItem::Frame(raw));
                }
                Ok(None) => {}
                Err(e) => {
                    return Some(
                        self.fail(StreamFailure::Corrupt(e.to_string()), Outcome::Failure),
                    );
                }
            }
            match self.upstream.next_chunk().await {
                Chunk::Data(chunk) => self.decoder.push(&chunk),
                Chunk::End => {
                    self.upstream.done = true;
                    return match self.decoder.finish() {
                        Err(e) => {
                            Some(self.fail(StreamFailure::Broken(e.to_string()), Outcome::Failure))
                        }
                        Ok(()) if self.exception_seen => None,
                        Ok(()) if !self.complete => Some(self.fail(
                            StreamFailure::Broken(
                                "upstream stream ended before its final event".to_owned(),
                            ),
                            Outcome::Failure,
                        )),
                        Ok(()) => {
                            self.upstream.lease.set_outcome(Outcome::Success);
                            None
                        }
                    };
                }
                Chunk::Failed(what, outcome) => {
                    return Some(self.fail(StreamFailure::Broken(what), outcome));
                }
            }
        }
    }

    fn fail(&mut self, failure: StreamFailure, outcome: Outcome) -> StreamItem {
        self.upstream.fail(outcome);
        StreamItem::Failed(failure)
    }

    fn observe(&mut self, frame: &Frame) {
        self.upstream.summary.frames += 1;
        match frame {
            Frame::Event {
                event_type,
                payload,
            } => self.observe_event(event_type, payload),
            Frame::Exception { exception_type, .. } => {
                let name = error_name(exception_type);
                let kind = match metrics::error_kind(0, &name) {
                    "other" => "stream_error",
                    kind => kind,
                };
                self.upstream
                    .upstream_error(kind, outcome_for_stream_exception(&name));
                self.exception_seen = true;
            }
            Frame::Error { .. } => {
                self.upstream
                    .upstream_error("stream_error", Outcome::Failure);
                self.exception_seen = true;
            }
        }
    }

    /// Bedrock's counts leave cache reads and writes out of the input; the tally has them in.
    fn settle_usage(&mut self, input: u64, output: u64, cache_read: u64, cache_write: u64) {
        self.upstream.set_usage(Usage {
            input_tokens: input + cache_read + cache_write,
            output_tokens: output,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
        });
        self.upstream.settle_usage();
    }

    fn observe_event(&mut self, event_type: &str, payload: &[u8]) {
        if matches!(event_type, "contentBlockDelta" | "chunk") {
            self.upstream.lease.record_first_token();
        }
        match event_type {
            "metadata" => {
                self.complete = true;
                if let Ok(ConverseMetadata { usage: u }) = serde_json::from_slice(payload) {
                    self.settle_usage(
                        u.input_tokens,
                        u.output_tokens,
                        u.cache_read_input_tokens,
                        u.cache_write_input_tokens,
                    );
                }
            }
            "messageStop" => {
                if let Ok(stop) = serde_json::from_slice::<MessageStop>(payload) {
                    self.upstream.summary.stop_reason = Some(stop.stop_reason);
                }
            }
            "chunk" => self.observe_invoke_chunk(payload),
            _ => {}
        }
    }

    /// InvokeModel streams wrap each model event in `{"bytes": base64}`; the last one carries
    /// Bedrock's invocation metrics.
    fn observe_invoke_chunk(&mut self, payload: &[u8]) {
        let Ok(chunk) = serde_json::from_slice::<InvokeChunk>(payload) else {
            return;
        };
        let Ok(inner) = base64::engine::general_purpose::STANDARD.decode(chunk.bytes) else {
            return;
        };
        if let Ok(event) = serde_json::from_slice::<InvokeEvent>(&inner) {
            if let Some(metrics) = event.metrics {
                self.complete = true;
                self.settle_usage(
                    metrics.input_token_count,
                    metrics.output_token_count,
                    metrics.cache_read_input_token_count,
                    metrics.cache_write_input_token_count,
                );
            }
            if let Some(reason) = event
                .stop_reason
                .or(event.delta.and_then(|d| d.stop_reason))
            {
                self.upstream.summary.stop_reason = Some(reason);
            }
        }
    }
}

#[derive(Deserialize)]
struct ConverseMetadata {
    usage: ConverseUsage,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_write_input_tokens: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    stop_reason: String,
}

#[derive(Deserialize)]
struct InvokeChunk {
    bytes: String,
}

#[derive(Deserialize)]
struct InvokeEvent {
    #[serde(rename = "amazon-bedrock-invocationMetrics")]
    metrics: Option<InvocationMetrics>,
    stop_reason: Option<String>,
    delta: Option<InvokeDelta>,
}

#[derive(Deserialize)]
struct InvokeDelta {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvocationMetrics {
    input_token_count: u64,
    output_token_count: u64,
    #[serde(default)]
    cache_read_input_token_count: u64,
    #[serde(default)]
    cache_write_input_token_count: u64,
}
