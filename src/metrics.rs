//! Prometheus metrics and the one log line per request.
//!
//! Every metric is registered once, in one [`Registry`], when [`metrics`] is first called. Label
//! values come only from config (route name, target `region/model` label, region, model) or from
//! small fixed sets (status code, error kind, token type); a route the client names that is not
//! configured is [`OTHER`], and a request that never reached a target has target [`NONE`], so no
//! client input can create a series. Target gauges (circuit, cooldown, in-flight, EWMA latency)
//! are read from each target's atomics at scrape time rather than kept up to date on the hot path.
//!
//! The request path uses [`Obs`]: created at the start of a request, told the route, each attempt
//! and the upstream time by the handlers and [`crate::upstream::forward`], and finished once with
//! the status and usage (at response time, or when a stream ends or is dropped).

use std::cell::{Cell, RefCell};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::backend::TargetRuntime;
use crate::clock;
use crate::gateway::Gateway;
use crate::limits::Remaining;

/// Label value for anything not named in config (an unknown route).
pub const OTHER: &str = "other";
/// Target label of a request that failed before any target was tried.
pub const NONE: &str = "none";

pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const OVERHEAD_HEADER: &str = "x-bedrock-balancer-overhead-ms";

/// LLM latencies span milliseconds (embeddings, errors) to minutes (long generations), and
/// `prometheus`' default buckets stop at 10 s; these reach 300 s, past the longest read timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0,
    300.0,
];
/// Per-output-token time is typically 5-100 ms; the tail covers stalled streams.
const PER_TOKEN_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 5.0, 30.0, 300.0,
];
/// The gateway's own time is normally well under a millisecond, so the steps are fine below
/// 100 ms; the same 300 s ceiling catches a pathological stall.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    5.0, 30.0, 300.0,
];

const PREFIX: &str = "bedrock_balancer_";
/// Dollars per million tokens is how Bedrock prices are written (and how `input_cost` is set).
const TOKENS_PER_PRICE_UNIT: f64 = 1_000_000.0;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    ttft: HistogramVec,
    tpot: HistogramVec,
    overhead: prometheus::Histogram,
    tokens: IntCounterVec,
    cost: prometheus::CounterVec,
    retries: IntCounterVec,
    forced_picks: IntCounterVec,
    retry_budget_exhausted: IntCounterVec,
    failovers: IntCounterVec,
    upstream_errors: IntCounterVec,
    rate_limited: IntCounterVec,
    auth_failures: IntCounterVec,
    target_state: IntGaugeVec,
    target_cooldown: IntGaugeVec,
    in_flight: IntGaugeVec,
    ewma_latency: GaugeVec,
    limit_remaining: IntGaugeVec,
    rate_limit_fallback: IntGauge,
    reload_success: IntCounter,
    reload_failure: IntCounter,
}

static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();

/// The process-wide metrics; `None` only if registration failed (a bug caught by the unit tests),
/// in which case recording is skipped rather than crashing the gateway.
pub fn metrics() -> Option<&'static Metrics> {
    METRICS
        .get_or_init(|| match Metrics::new() {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(error = %e, "metrics registration failed; /metrics is empty");
                None
            }
        })
        .as_ref()
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(format!("{PREFIX}{name}"), help)
}

fn hist(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(format!("{PREFIX}{name}"), help).buckets(buckets.to_vec())
}

impl Metrics {
    fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m;
                registry.register(Box::new(m.clone()))?;
                m
            }};
        }
        let rate_limited = reg!(IntCounterVec::new(
            opts(
                "rate_limited_total",
                "Requests refused by a rate limit, by scope"
            ),
            &["scope"]
        )?);
        // Pre-resolved so all three scopes are exported at 0 from the start.
        for scope in ["consumer", "target", "all_targets"] {
            rate_limited.with_label_values(&[scope]);
        }
        let auth_failures = reg!(IntCounterVec::new(
            opts(
                "auth_failures_total",
                "Requests refused with 401, by reason (never by key)"
            ),
            &["reason"]
        )?);
        for reason in crate::auth::Reason::ALL {
            auth_failures.with_label_values(&[reason.label()]);
        }
        let reloads = reg!(IntCounterVec::new(
            opts("config_reloads_total", "Config reloads by result"),
            &["result"]
        )?);
        Ok(Self {
            requests: reg!(IntCounterVec::new(
                opts(
                    "requests_total",
                    "Proxied requests by route, serving target and status code"
                ),
                &["route", "target", "code"]
            )?),
            request_duration: reg!(HistogramVec::new(
                hist(
                    "request_duration_seconds",
                    "Client-facing request duration (streams: until the last byte)",
                    LATENCY_BUCKETS
                ),
                &["route"]
            )?),
            upstream_duration: reg!(HistogramVec::new(
                hist(
                    "upstream_duration_seconds",
                    "Duration of each upstream attempt, from send to the end of its body",
                    LATENCY_BUCKETS
                ),
                &["target"]
            )?),
            ttft: reg!(HistogramVec::new(
                hist(
                    "time_to_first_token_seconds",
                    "Streams: time from sending upstream to the first event frame",
                    LATENCY_BUCKETS
                ),
                &["target"]
            )?),
            tpot: reg!(HistogramVec::new(
                hist(
                    "time_per_output_token_seconds",
                    "Upstream generation time per output token (streams: after the first token)",
                    PER_TOKEN_BUCKETS
                ),
                &["target"]
            )?),
            overhead: reg!(prometheus::Histogram::with_opts(hist(
                "overhead_seconds",
                "The gateway's own time per request: total minus upstream (streams: until the head)",
                OVERHEAD_BUCKETS
            ))?),
            tokens: reg!(IntCounterVec::new(
                opts(
                    "tokens_total",
                    "Tokens reported by Bedrock, by target and type"
                ),
                &["target", "token_type"]
            )?),
            cost: reg!(prometheus::CounterVec::new(
                opts(
                    "cost_total",
                    "Spend in the config's currency: tokens x input_cost/output_cost per 1M"
                ),
                &["target"]
            )?),
            retries: reg!(IntCounterVec::new(
                opts(
                    "retries_total",
                    "Upstream attempts after the first, by route"
                ),
                &["route"]
            )?),
            forced_picks: reg!(IntCounterVec::new(
                opts(
                    "forced_picks_total",
                    "Requests sent to the least-bad target because none of the route was ready"
                ),
                &["route"]
            )?),
            retry_budget_exhausted: reg!(IntCounterVec::new(
                opts(
                    "retry_budget_exhausted_total",
                    "Retries not sent because the route's retry budget was spent"
                ),
                &["route"]
            )?),
            failovers: reg!(IntCounterVec::new(
                opts(
                    "failovers_total",
                    "Moves from a failed target to another, by from and to target"
                ),
                &["from", "to"]
            )?),
            upstream_errors: reg!(IntCounterVec::new(
                opts(
                    "upstream_errors_total",
                    "Failed upstream attempts by target and kind"
                ),
                &["target", "kind"]
            )?),
            rate_limited,
            auth_failures,
            target_state: reg!(IntGaugeVec::new(
                opts(
                    "target_state",
                    "Circuit breaker: 0 closed, 1 half-open, 2 open"
                ),
                &["route", "target", "region", "model"]
            )?),
            target_cooldown: reg!(IntGaugeVec::new(
                opts(
                    "target_cooldown",
                    "1 while the target rests after a throttle"
                ),
                &["route", "target"]
            )?),
            in_flight: reg!(IntGaugeVec::new(
                opts("in_flight", "Upstream requests in flight per target"),
                &["route", "target"]
            )?),
            ewma_latency: reg!(GaugeVec::new(
                opts(
                    "ewma_latency_seconds",
                    "Peak-EWMA upstream latency per target"
                ),
                &["route", "target"]
            )?),
            limit_remaining: reg!(IntGaugeVec::new(
                opts(
                    "limit_remaining",
                    "Remaining quota per target and limit (rpm|tpm)"
                ),
                &["target", "limit"]
            )?),
            rate_limit_fallback: reg!(IntGauge::with_opts(opts(
                "rate_limit_fallback",
                "1 while Redis is unreachable and rate limits use this replica's local share"
            ))?),
            reload_success: reloads.with_label_values(&["success"]),
            reload_failure: reloads.with_label_values(&["failure"]),
            registry,
        })
    }

    /// Refreshes the target gauges from the live gateway (and `limits`, what is left of each
    /// target's quota, read by the caller because Redis is asked asynchronously), then encodes
    /// everything in the text format. Gauges are reset first so targets removed by a reload
    /// disappear.
    pub fn render(&self, gateway: &Gateway, limits: &[(String, Remaining)]) -> Vec<u8> {
        self.limit_remaining.reset();
        for (target, remaining) in limits {
            for (limit, left) in [("rpm", remaining.rpm), ("tpm", remaining.tpm)] {
                if let Some(left) = left {
                    self.limit_remaining
                        .with_label_values(&[target.as_str(), limit])
                        .set(i64::from(left));
                }
            }
        }
        self.target_state.reset();
        self.target_cooldown.reset();
        self.in_flight.reset();
        self.ewma_latency.reset();
        let now = clock::now_ms();
        for route in gateway.routes() {
            let roster = route.balancer.roster();
            for t in &roster.targets {
                let labels = [route.name.as_str(), t.label.as_str()];
                self.target_state
                    .with_label_values(&[
                        route.name.as_str(),
                        t.label.as_str(),
                        t.config.region.as_str(),
                        t.config.resource(),
                    ])
                    .set(i64::from(t.state.health() as u8));
                self.target_cooldown
                    .with_label_values(&labels)
                    .set(i64::from(t.state.cooldown_until_ms() > now));
                self.in_flight
                    .with_label_values(&labels)
                    .set(i64::from(t.state.in_flight()));
                self.ewma_latency
                    .with_label_values(&labels)
                    .set(t.state.ewma_latency_ms() / 1000.0);
            }
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }

    pub fn config_reloaded(&self, ok: bool) {
        if ok {
            self.reload_success.inc();
        } else {
            self.reload_failure.inc();
        }
    }
}

/// Whether shared (Redis) rate limits are falling back to this replica's local share.
pub fn rate_limit_fallback(active: bool) {
    if let Some(m) = metrics() {
        m.rate_limit_fallback.set(i64::from(active));
    }
}

/// A 429 the gateway itself returns (`scope`: consumer, target or all_targets).
pub fn rate_limited(scope: &'static str) {
    if let Some(m) = metrics() {
        m.rate_limited.with_label_values(&[scope]).inc();
    }
}

/// `GET /metrics` body; empty if registration failed.
pub fn render(gateway: &Gateway, limits: &[(String, Remaining)]) -> Vec<u8> {
    metrics()
        .map(|m| m.render(gateway, limits))
        .unwrap_or_default()
}

/// Bedrock's error, reduced to the `kind` label of `upstream_errors_total`.
pub fn error_kind(status: u16, error_name: &str) -> &'static str {
    match error_name {
        "ThrottlingException" | "ServiceQuotaExceededException" => return "throttling",
        "ServiceUnavailableException" => return "unavailable",
        "ModelTimeoutException" => return "timeout",
        "ValidationException" => return "validation",
        "AccessDeniedException" => return "access_denied",
        "ModelErrorException" | "ModelNotReadyException" => return "model_error",
        "ModelStreamErrorException" => return "stream_error",
        _ => {}
    }
    match status {
        429 => "throttling",
        503 => "unavailable",
        408 | 504 => "timeout",
        400 => "validation",
        403 => "access_denied",
        424 => "model_error",
        _ => "other",
    }
}

/// Keeps a value only if config names it; used where a client's word could become a label.
pub fn bounded<'a>(value: &'a str, known: impl IntoIterator<Item = &'a str>) -> &'a str {
    known
        .into_iter()
        .find(|k| *k == value)
        .map_or(OTHER, |_| value)
}

/// Counts one failed upstream attempt (`kind` from [`error_kind`] or the transport failure).
pub fn upstream_error(target: &TargetRuntime, kind: &'static str) {
    if let Some(m) = metrics() {
        m.upstream_errors
            .with_label_values(&[target.label.as_str(), kind])
            .inc();
    }
}

/// A request refused with 401.
pub fn auth_failure(reason: crate::auth::Reason) {
    if let Some(m) = metrics() {
        m.auth_failures.with_label_values(&[reason.label()]).inc();
    }
}

/// None of the route's targets was ready, so the least-bad one was tried rather than none.
pub fn forced_pick(route: &str) {
    if let Some(m) = metrics() {
        m.forced_picks.with_label_values(&[route]).inc();
    }
}

/// A retry the budget refused.
pub fn retry_budget_exhausted(route: &str) {
    if let Some(m) = metrics() {
        m.retry_budget_exhausted.with_label_values(&[route]).inc();
    }
}

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
            m.retries.with_label_values(&[route]).inc();
            if let Some(prev) = previous.filter(|p| p.label != target.label) {
                m.failovers
                    .with_label_values(&[prev.label.as_str(), target.label.as_str()])
                    .inc();
            }
        }
    }

    /// An attempt's upstream time (send to end of its body, or to its error): per target, and
    /// towards the total that overhead is measured against.
    pub fn upstream_time(&self, target: &TargetRuntime, took: Duration) {
        self.upstream.set(self.upstream.get() + took);
        if let Some(m) = metrics() {
            m.upstream_duration
                .with_label_values(&[target.label.as_str()])
                .observe(took.as_secs_f64());
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

    fn target_label(&self) -> String {
        self.target
            .borrow()
            .as_ref()
            .map_or_else(|| NONE.to_owned(), |t| t.label.clone())
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
        let target_label = self.target_label();
        let (input, output) = usage.unwrap_or((0, 0));
        if let Some(m) = metrics() {
            m.requests
                .with_label_values(&[route.as_str(), target_label.as_str(), &status.to_string()])
                .inc();
            m.request_duration
                .with_label_values(&[route.as_str()])
                .observe(total.as_secs_f64());
            m.overhead.observe(overhead.as_secs_f64());
            if let (Some(t), Some(ttft)) = (target.as_ref(), self.ttft.get()) {
                m.ttft
                    .with_label_values(&[t.label.as_str()])
                    .observe(ttft.as_secs_f64());
            }
            if let Some(t) = target.as_ref().filter(|_| usage.is_some()) {
                let label = t.label.as_str();
                m.tokens.with_label_values(&[label, "prompt"]).inc_by(input);
                m.tokens
                    .with_label_values(&[label, "completion"])
                    .inc_by(output);
                let cost = (input as f64 * t.config.input_cost
                    + output as f64 * t.config.output_cost)
                    / TOKENS_PER_PRICE_UNIT;
                m.cost.with_label_values(&[label]).inc_by(cost);
                if let Some(per_token) =
                    per_output_token(self.upstream.get(), self.ttft.get(), output)
                {
                    m.tpot
                        .with_label_values(&[label])
                        .observe(per_token.as_secs_f64());
                }
            }
        }
        tracing::info!(
            request_id = %self.id,
            route = %route,
            consumer = self.consumer.borrow().as_deref().unwrap_or(""),
            target_id = %target_label,
            attempts = self.attempts.get(),
            status,
            error = self.error_kind.get().unwrap_or(""),
            input_tokens = input,
            output_tokens = output,
            latency_ms = millis(total),
            ttft_ms = self.ttft.get().map(millis),
            overhead_ms = millis(overhead),
            "request"
        );
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

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
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

/// Adds `x-request-id` and the overhead header to a proxied response.
pub fn stamp(response: &mut actix_web::HttpResponse, id: &str, overhead: Duration) {
    use actix_web::http::header::{HeaderName, HeaderValue};
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", overhead.as_secs_f64() * 1000.0)) {
        headers.insert(HeaderName::from_static(OVERHEAD_HEADER), v);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unknown_values_become_other() {
        let routes = ["claude", "titan-embed"];
        assert_eq!(bounded("claude", routes), "claude");
        assert_eq!(bounded("gpt-17-ultra", routes), OTHER);
        assert_eq!(bounded("", routes), OTHER);
    }

    #[test]
    fn every_histogram_reaches_300_seconds() {
        for buckets in [LATENCY_BUCKETS, PER_TOKEN_BUCKETS, OVERHEAD_BUCKETS] {
            assert_eq!(buckets.last().copied(), Some(300.0));
            assert!(buckets.windows(2).all(|w| w[0] < w[1]));
        }
        let fine = OVERHEAD_BUCKETS.iter().filter(|b| **b < 0.1).count();
        assert!(fine >= 8, "overhead needs fine steps below 100 ms");
    }

    #[test]
    fn registration_succeeds_and_exports_fixed_series() {
        let m = metrics().unwrap();
        let text = String::from_utf8({
            let mut out = Vec::new();
            TextEncoder::new()
                .encode(&m.registry.gather(), &mut out)
                .unwrap();
            out
        })
        .unwrap();
        for scope in ["consumer", "target", "all_targets"] {
            assert!(text.contains(&format!(
                "bedrock_balancer_rate_limited_total{{scope=\"{scope}\"}} 0"
            )));
        }
        assert!(text.contains("bedrock_balancer_config_reloads_total{result=\"failure\"} 0"));
        assert!(text.contains("bedrock_balancer_auth_failures_total{reason=\"bad_signature\"}"));
    }

    #[test]
    fn bedrock_errors_map_to_kinds() {
        assert_eq!(error_kind(429, "ThrottlingException"), "throttling");
        assert_eq!(
            error_kind(400, "ServiceQuotaExceededException"),
            "throttling"
        );
        assert_eq!(error_kind(503, ""), "unavailable");
        assert_eq!(error_kind(424, "ModelErrorException"), "model_error");
        assert_eq!(error_kind(403, "AccessDeniedException"), "access_denied");
        assert_eq!(error_kind(418, "TeapotException"), "other");
    }

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
