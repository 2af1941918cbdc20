//! One request's observation: created when the request arrives, told the route, each attempt and
//! the upstream time by the handlers and the forwarding loop, and finished once with the
//! status and usage (at response time, or when a stream ends or is dropped), which records the
//! metrics and writes the access log line.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::REQUEST_ID_HEADER;
use super::access_log::{self, AccessRecord};
use crate::backend::TargetRuntime;
use crate::metrics::{OTHER, TargetLabels, TokenCounts, metrics};

/// Dollars per million tokens is how Bedrock prices are written (and how `input_cost` is set).
const TOKENS_PER_PRICE_UNIT: f64 = 1_000_000.0;

/// One request's observations. Shared (`Rc`) between the handler and a streaming body; finished
/// exactly once, by the handler, the stream's end, or — if the client went away mid-stream —
/// by `Drop`.
pub struct Obs {
    pub id: String,
    started: Instant,
    route: RefCell<String>,
    /// The authenticated consumer's configured name, for the log line only (not a label).
    consumer: RefCell<Option<Arc<str>>>,
    target: RefCell<Option<Arc<TargetRuntime>>>,
    attempts: Cell<u32>,
    upstream: Cell<Duration>,
    ttft: Cell<Option<Duration>>,
    /// Streams: when the serving attempt went upstream (its time is still running at the head).
    stream_sent_at: Cell<Option<Instant>>,
    /// Streams: overhead measured when the head was sent.
    head_overhead: Cell<Option<Duration>>,
    error_kind: Cell<Option<&'static str>>,
    /// Prompt tokens read from and written to Bedrock's prompt cache (part of the input).
    cache: Cell<(u64, u64)>,
    finished: Cell<bool>,
}

/// A 128-bit random id, unless the client sent a sane one of its own (for tracing across hops).
fn request_id(incoming: Option<&str>) -> String {
    match incoming {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            id.to_owned()
        }
        _ => format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
    }
}

impl Obs {
    pub fn start(req: &actix_web::HttpRequest) -> std::rc::Rc<Self> {
        let incoming = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok());
        std::rc::Rc::new(Self {
            id: request_id(incoming),
            started: Instant::now(),
            route: RefCell::new(OTHER.to_owned()),
            consumer: RefCell::new(None),
            target: RefCell::new(None),
            attempts: Cell::new(0),
            upstream: Cell::new(Duration::ZERO),
            ttft: Cell::new(None),
            stream_sent_at: Cell::new(None),
            head_overhead: Cell::new(None),
            error_kind: Cell::new(None),
            cache: Cell::new((0, 0)),
            finished: Cell::new(false),
        })
    }

    /// The configured route now serving the request (its name comes from config).
    pub fn set_route(&self, name: &str) {
        name.clone_into(&mut self.route.borrow_mut());
    }

    pub fn set_consumer(&self, consumer: Option<&Arc<str>>) {
        self.consumer.replace(consumer.cloned());
    }

    pub fn set_error_kind(&self, kind: &'static str) {
        self.error_kind.set(Some(kind));
    }

    /// The part of the usage's input that Bedrock read from and wrote to its prompt cache.
    pub fn cache_tokens(&self, read: u64, write: u64) {
        self.cache.set((read, write));
    }

    /// Attempt `nth` (1-based, within one `forward` call) begins on `target`; a later attempt
    /// counts a retry for the route and a failover from the `previous` target.
    pub fn attempt(
        &self,
        route: &str,
        target: &Arc<TargetRuntime>,
        nth: u32,
        previous: Option<&TargetRuntime>,
    ) {
        self.attempts.set(self.attempts.get() + 1);
        self.target.replace(Some(Arc::clone(target)));
        if nth > 1
            && let Some(m) = metrics()
        {
            let moved = previous
                .filter(|p| p.label != target.label)
                .map(|p| (p.label.as_str(), target.label.as_str()));
            m.retry(route, moved);
        }
    }

    /// An attempt's upstream time (send to end of its body, or to its error): per target, and
    /// towards the total that overhead is measured against.
    pub fn upstream_time(&self, target: &TargetRuntime, took: Duration) {
        self.upstream.set(self.upstream.get() + took);
        if let Some(m) = metrics() {
            m.upstream_time(&target.label, took);
        }
    }

    /// Streams: the first frame arrived, `since_sent` after the request went upstream.
    pub fn first_token(&self, since_sent: Duration) {
        if self.ttft.get().is_none() {
            self.ttft.set(Some(since_sent));
        }
    }

    /// The gateway's own time so far: everything not spent waiting on upstream.
    pub fn overhead(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.upstream.get())
    }

    /// Streams: the response will be streamed from the attempt sent at `sent_at`.
    pub fn streaming_from(&self, sent_at: Instant) {
        self.stream_sent_at.set(Some(sent_at));
    }

    /// Streams: the head is about to be sent; its overhead is what the stream reports (the
    /// serving attempt's time so far is upstream time, not the gateway's).
    pub fn head_sent(&self) -> Duration {
        let waiting = self
            .stream_sent_at
            .get()
            .map_or(Duration::ZERO, |t| t.elapsed());
        let overhead = self.overhead().saturating_sub(waiting);
        self.head_overhead.set(Some(overhead));
        overhead
    }

    /// Records the request's counters and histograms and writes its log line. Idempotent.
    pub fn finish(&self, status: u16, usage: Option<(u64, u64)>) {
        if self.finished.replace(true) {
            return;
        }
        let total = self.started.elapsed();
        let overhead = self.head_overhead.get().unwrap_or_else(|| self.overhead());
        let route = self.route.borrow();
        let target = self.target.borrow();
        let served = target
            .as_deref()
            .map_or(TargetLabels::NONE, TargetRuntime::metric_labels);
        let (input, output) = usage.unwrap_or((0, 0));
        if let Some(m) = metrics() {
            m.request(&route, served, status, total, overhead);
            if let (Some(t), Some(ttft)) = (target.as_ref(), self.ttft.get()) {
                m.time_to_first_token(&t.label, ttft);
            }
            if let Some(t) = target.as_ref().filter(|_| usage.is_some()) {
                let (read, write) = self.cache.get();
                let c = &t.config;
                let uncached = input.saturating_sub(read + write);
                let cost = (uncached as f64 * c.input_cost
                    + read as f64 * c.cache_read_cost
                    + write as f64 * c.cache_write_cost
                    + output as f64 * c.output_cost)
                    / TOKENS_PER_PRICE_UNIT;
                let tokens = TokenCounts {
                    input,
                    output,
                    cache_read: read,
                    cache_write: write,
                };
                m.usage(served, tokens, cost);
                if let Some(per_token) =
                    per_output_token(self.upstream.get(), self.ttft.get(), output)
                {
                    m.time_per_output_token(&t.label, per_token);
                }
            }
        }
        access_log::write(&AccessRecord {
            request_id: &self.id,
            route: &route,
            consumer: self.consumer.borrow().as_deref().unwrap_or(""),
            target: served.target,
            provider: served.provider,
            attempts: self.attempts.get(),
            status,
            error: self.error_kind.get().unwrap_or(""),
            input_tokens: input,
            output_tokens: output,
            total,
            ttft: self.ttft.get(),
            overhead,
        });
    }
}

impl Drop for Obs {
    /// A stream dropped before its end: the client went away (nginx's 499).
    fn drop(&mut self) {
        if !self.finished.get() {
            self.set_error_kind("client_closed");
            self.finish(499, None);
        }
    }
}

/// Time per output token: for streams the time after the first token over the tokens after it,
/// otherwise the whole upstream time over all output tokens.
fn per_output_token(upstream: Duration, ttft: Option<Duration>, output: u64) -> Option<Duration> {
    match ttft {
        Some(first) if output > 1 => {
            let rest = u32::try_from(output - 1).ok()?;
            Some(upstream.saturating_sub(first) / rest)
        }
        Some(_) => None,
        None if output > 0 => Some(upstream / u32::try_from(output).ok()?),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_token_time_excludes_the_first_token_of_a_stream() {
        let s = Duration::from_secs;
        assert_eq!(per_output_token(s(11), Some(s(1)), 11), Some(s(1)));
        assert_eq!(per_output_token(s(10), None, 5), Some(s(2)));
        assert_eq!(per_output_token(s(10), None, 0), None);
        assert_eq!(per_output_token(s(10), Some(s(1)), 1), None);
    }

    #[test]
    fn request_ids_are_generated_unless_the_client_sent_a_sane_one() {
        assert_eq!(request_id(Some("abc-123")), "abc-123");
        assert_eq!(request_id(Some("bad id\n")).len(), 32);
        assert_eq!(request_id(None).len(), 32);
    }
}
