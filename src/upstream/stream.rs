//! Reads an upstream event stream frame by frame as it arrives: an idle timeout between chunks,
//! a side look at each frame for usage, stop reason and exceptions, and a clean ending when the
//! upstream breaks (the caller turns that into an exception frame or an SSE error).

use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::dev::Payload;
use base64::Engine;
use futures_util::StreamExt;
use serde::Deserialize;

use super::classify::{error_name, outcome_for_stream_exception};
use crate::backend::Outcome;
use crate::balance::Lease;
use crate::eventstream::{Decoder, Frame, RawFrame};
use crate::metrics;
use crate::shutdown::AbortSignal;

/// Tokens and stop reason learned from the stream, for metrics, limits and the request log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// Every prompt token, cache reads and writes included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub stop_reason: Option<String>,
    pub frames: u64,
}

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
    /// Only the body: a held stream would otherwise keep the upstream response head alive, whose
    /// header map alone is about 3.4 KB per open stream. (awc sets no body timeout on the
    /// response, so nothing but the head is dropped with it.)
    body: Payload,
    /// Fired near the end of a graceful stop: the stream ends with an error, not a torn socket.
    abort: AbortSignal,
    decoder: Decoder,
    idle_timeout: Duration,
    lease: Lease,
    pub summary: StreamSummary,
    exception_seen: bool,
    /// Bedrock's last event arrived (`metadata`, or the chunk with invocation metrics). A stream
    /// that ends cleanly without it was cut at a frame boundary: awc reports that as a normal end.
    complete: bool,
    done: bool,
}

impl FrameReader {
    pub fn new(
        mut response: awc::ClientResponse,
        lease: Lease,
        idle_timeout: Duration,
        abort: AbortSignal,
    ) -> Self {
        Self {
            body: response.take_payload(),
            abort,
            decoder: Decoder::new(),
            idle_timeout,
            lease,
            summary: StreamSummary::default(),
            exception_seen: false,
            complete: false,
            done: false,
        }
    }

    /// For streams with no closing event (RetrieveAndGenerateStream): a clean end at a frame
    /// boundary is then their end, not a cut.
    #[must_use]
    pub fn without_final_event(mut self) -> Self {
        self.complete = true;
        self
    }

    /// The next frame or failure; `None` once the stream has ended either way.
    pub async fn next(&mut self) -> Option<StreamItem> {
        if self.done {
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
            match next_chunk(&mut self.body, self.idle_timeout, &mut self.abort).await {
                Chunk::Data(chunk) => self.decoder.push(&chunk),
                Chunk::End => {
                    self.done = true;
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
                            self.lease.set_outcome(Outcome::Success);
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
        self.done = true;
        metrics::upstream_error(self.lease.target().metric_labels(), "stream_error");
        self.lease.set_outcome(outcome);
        StreamItem::Failed(failure)
    }

    fn observe(&mut self, frame: &Frame) {
        self.summary.frames += 1;
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
                metrics::upstream_error(self.lease.target().metric_labels(), kind);
                self.lease.set_outcome(outcome_for_stream_exception(&name));
                self.exception_seen = true;
            }
            Frame::Error { .. } => {
                metrics::upstream_error(self.lease.target().metric_labels(), "stream_error");
                self.lease.set_outcome(Outcome::Failure);
                self.exception_seen = true;
            }
        }
    }

    /// Limits count what Bedrock's quota settles on: cache reads are released at settlement.
    fn record_usage(&mut self) {
        self.lease.record_usage_u64(
            self.summary.input_tokens - self.summary.cache_read_tokens,
            self.summary.output_tokens,
        );
    }

    fn set_usage(&mut self, input: u64, output: u64, cache_read: u64, cache_write: u64) {
        self.summary.input_tokens = input + cache_read + cache_write;
        self.summary.output_tokens = output;
        self.summary.cache_read_tokens = cache_read;
        self.summary.cache_write_tokens = cache_write;
        self.record_usage();
    }

    fn observe_event(&mut self, event_type: &str, payload: &[u8]) {
        if matches!(event_type, "contentBlockDelta" | "chunk") {
            self.lease.record_first_token();
        }
        match event_type {
            "metadata" => {
                self.complete = true;
                if let Ok(ConverseMetadata { usage: u }) = serde_json::from_slice(payload) {
                    self.set_usage(
                        u.input_tokens,
                        u.output_tokens,
                        u.cache_read_input_tokens,
                        u.cache_write_input_tokens,
                    );
                }
            }
            "messageStop" => {
                if let Ok(stop) = serde_json::from_slice::<MessageStop>(payload) {
                    self.summary.stop_reason = Some(stop.stop_reason);
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
                self.set_usage(
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
                self.summary.stop_reason = Some(reason);
            }
        }
    }
}

/// What the next read of an upstream body brought.
pub(crate) enum Chunk {
    Data(bytes::Bytes),
    /// The body ended cleanly.
    End,
    /// The body broke, fell silent for the idle timeout, or the gateway is stopping: what to tell
    /// the client, and what it means for the target.
    Failed(String, Outcome),
}

/// Reads the next chunk of an upstream body, waiting at most `idle_timeout` for it.
pub(crate) async fn next_chunk(
    body: &mut Payload,
    idle_timeout: Duration,
    abort: &mut AbortSignal,
) -> Chunk {
    let chunk = tokio::select! {
        chunk = tokio::time::timeout(idle_timeout, body.next()) => chunk,
        () = abort.fired() => {
            let what = "the gateway is shutting down; the stream was cut short".to_owned();
            // The target did nothing wrong.
            return Chunk::Failed(what, Outcome::Abandoned);
        }
    };
    match chunk {
        Ok(Some(Ok(chunk))) => Chunk::Data(chunk),
        Ok(Some(Err(e))) => Chunk::Failed(format!("upstream stream broke: {e}"), Outcome::Failure),
        Ok(None) => Chunk::End,
        Err(_) => Chunk::Failed(
            format!("no data from upstream for {} ms", idle_timeout.as_millis()),
            Outcome::Failure,
        ),
    }
}

/// A stream reader's account of its stream, for the request record when it ends.
pub trait StreamRecord {
    fn lease(&self) -> &Lease;
    fn summary(&self) -> &StreamSummary;
}

impl StreamRecord for FrameReader {
    fn lease(&self) -> &Lease {
        &self.lease
    }

    fn summary(&self) -> &StreamSummary {
        &self.summary
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
