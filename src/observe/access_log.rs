//! The one log line per request: who asked, what served it, how it ended and how long it took.
//! Never a key, a header or a body.

use std::time::Duration;

/// What the access log line says of one finished request.
pub struct AccessRecord<'a> {
    pub request_id: &'a str,
    pub route: &'a str,
    /// The authenticated consumer's configured name ("" when anonymous).
    pub consumer: &'a str,
    pub target: &'a str,
    /// The serving target's provider (`none` when no target was reached).
    pub provider: &'a str,
    pub attempts: u32,
    pub status: u16,
    pub error: &'a str,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total: Duration,
    pub ttft: Option<Duration>,
    pub overhead: Duration,
}

pub fn write(record: &AccessRecord<'_>) {
    tracing::info!(
        request_id = %record.request_id,
        route = %record.route,
        consumer = record.consumer,
        target_id = %record.target,
        provider = record.provider,
        attempts = record.attempts,
        status = record.status,
        error = record.error,
        input_tokens = record.input_tokens,
        output_tokens = record.output_tokens,
        latency_ms = millis(record.total),
        ttft_ms = record.ttft.map(millis),
        overhead_ms = millis(record.overhead),
        "request"
    );
}

/// Milliseconds with microsecond precision, as the log's readers expect.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}
