//! What both stream readers (Bedrock's event stream, the providers' SSE) do the same way: read
//! the upstream body chunk by chunk with an idle timeout, keep the lease and the tally of the
//! stream, settle usage, and end the stream as failed.

use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::dev::Payload;
use futures_util::StreamExt;

use crate::backend::Outcome;
use crate::balance::Lease;
use crate::metrics;
use crate::shutdown::AbortSignal;
use crate::translate::Usage;

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

/// What the next read of an upstream body brought.
pub(super) enum Chunk {
    Data(bytes::Bytes),
    /// The body ended cleanly.
    End,
    /// The body broke, fell silent for the idle timeout, or the gateway is stopping: what to tell
    /// the client, and what it means for the target.
    Failed(String, Outcome),
}

/// An upstream body being streamed, with the lease and tally the request record reads at its end.
pub struct StreamBody {
    /// Only the body: a held stream would otherwise keep the upstream response head alive, whose
    /// header map alone is about 3.4 KB per open stream. (awc sets no body timeout on the
    /// response, so nothing but the head is dropped with it.)
    body: Payload,
    /// Fired near the end of a graceful stop: the stream ends with an error, not a torn socket.
    abort: AbortSignal,
    idle_timeout: Duration,
    pub(super) lease: Lease,
    pub(super) summary: StreamSummary,
    /// The stream has ended either way; readers answer `None` from here on.
    pub(super) done: bool,
    /// The body reported its end: it is not polled again.
    ended: bool,
}

impl StreamBody {
    pub(super) fn new(
        mut response: awc::ClientResponse,
        lease: Lease,
        idle_timeout: Duration,
        abort: AbortSignal,
    ) -> Self {
        Self {
            body: response.take_payload(),
            abort,
            idle_timeout,
            lease,
            summary: StreamSummary::default(),
            done: false,
            ended: false,
        }
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    pub fn summary(&self) -> &StreamSummary {
        &self.summary
    }

    /// Reads the next chunk, waiting at most the idle timeout for it.
    pub(super) async fn next_chunk(&mut self) -> Chunk {
        if self.ended {
            return Chunk::End;
        }
        let chunk = tokio::select! {
            chunk = tokio::time::timeout(self.idle_timeout, self.body.next()) => chunk,
            () = self.abort.fired() => {
                let what = "the gateway is shutting down; the stream was cut short".to_owned();
                // The target did nothing wrong.
                return Chunk::Failed(what, Outcome::Abandoned);
            }
        };
        match chunk {
            Ok(Some(Ok(chunk))) => Chunk::Data(chunk),
            Ok(Some(Err(e))) => {
                Chunk::Failed(format!("upstream stream broke: {e}"), Outcome::Failure)
            }
            Ok(None) => {
                self.ended = true;
                Chunk::End
            }
            Err(_) => Chunk::Failed(
                format!(
                    "no data from upstream for {} ms",
                    self.idle_timeout.as_millis()
                ),
                Outcome::Failure,
            ),
        }
    }

    /// Ends the stream early; the target is told `outcome`.
    pub(super) fn fail(&mut self, outcome: Outcome) {
        self.done = true;
        self.upstream_error("stream_error", outcome);
    }

    /// Counts an error the upstream reported, or the stream's own failure, and tells the target.
    pub(super) fn upstream_error(&mut self, kind: &'static str, outcome: Outcome) {
        metrics::upstream_error(self.lease.target().metric_labels(), kind);
        self.lease.set_outcome(outcome);
    }

    /// Takes the upstream's token counts into the tally (not yet settled).
    pub(super) fn set_usage(&mut self, usage: Usage) {
        self.summary.input_tokens = usage.input_tokens;
        self.summary.output_tokens = usage.output_tokens;
        self.summary.cache_read_tokens = usage.cache_read_tokens;
        self.summary.cache_write_tokens = usage.cache_write_tokens;
    }

    /// Settles limits on the tally: on what is billed at the input rate, so cache reads go.
    pub(super) fn settle_usage(&mut self) {
        self.lease.record_usage_u64(
            self.summary.input_tokens - self.summary.cache_read_tokens,
            self.summary.output_tokens,
        );
    }
}
