//! Prometheus metrics: the registry and what may be recorded in it. A leaf: callers hand it plain
//! label values and numbers (target gauges arrive as rows built by the admin handler at scrape
//! time), so it imports nothing of the gateway.
//!
//! Every metric is registered once, in one [`Registry`], when [`metrics`] is first called. Label
//! values come only from config (route name, target `region/model` label, region, model, the
//! target's provider) or from small fixed sets (status code, error kind, token type); a route the
//! client names that is not configured is [`OTHER`], and a request that never reached a target has
//! target and provider [`NONE`], so no client input can create a series. Target gauges (circuit, cooldown, in-flight, EWMA latency)
//! are read from each target's atomics at scrape time rather than kept up to date on the hot path.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Label value for anything not named in config (an unknown route).
pub const OTHER: &str = "other";
/// Target and provider label of a request that failed before any target was tried.
pub const NONE: &str = "none";

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

/// The labels naming a target in the series about its requests: its `region/model` label and
/// its provider (`bedrock`, `anthropic`, `openai`, `azure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetLabels<'a> {
    pub target: &'a str,
    pub provider: &'a str,
}

impl TargetLabels<'_> {
    /// A request no target served.
    pub const NONE: TargetLabels<'static> = TargetLabels {
        target: NONE,
        provider: NONE,
    };
}

/// One target's live state, as the target gauges show it.
#[derive(Debug, Clone, Copy)]
pub struct TargetRow<'a> {
    pub route: &'a str,
    pub target: &'a str,
    pub provider: &'a str,
    pub region: &'a str,
    pub model: &'a str,
    /// 0 closed, 1 half-open, 2 open.
    pub health: u8,
    pub cooling_down: bool,
    pub in_flight: u32,
    pub ewma_latency_secs: f64,
}

/// The tokens of one request, as `tokens_total` counts them.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

/// What is left of one target's quota (`None`: no such limit).
#[derive(Debug, Clone, Copy)]
pub struct LimitRow<'a> {
    pub target: &'a str,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
}

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
    betas_dropped: IntCounterVec,
    target_state: IntGaugeVec,
    target_cooldown: IntGaugeVec,
    in_flight: IntGaugeVec,
    ewma_latency: GaugeVec,
    limit_remaining: IntGaugeVec,
    rate_limit_fallback: IntGauge,
    target_actors: IntGauge,
    session_affinity: IntCounterVec,
    sessions_held: IntGaugeVec,
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
        for reason in crate::error::AuthReason::ALL {
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
                    "Proxied requests by route, serving target, its provider and status code"
                ),
                &["route", "target", "provider", "code"]
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
                    "Tokens reported upstream, by target, provider and type"
                ),
                &["target", "provider", "token_type"]
            )?),
            cost: reg!(prometheus::CounterVec::new(
                opts(
                    "cost_total",
                    "Spend in the config's currency: tokens x input/output/cache_read/cache_write_cost per 1M"
                ),
                &["target", "provider"]
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
                    "Failed upstream attempts by target, provider and kind"
                ),
                &["target", "provider", "kind"]
            )?),
            rate_limited,
            auth_failures,
            betas_dropped: reg!(IntCounterVec::new(
                opts(
                    "anthropic_betas_dropped_total",
                    "Beta flags a client asked for that the target's anthropic_betas does not allow, by target"
                ),
                &["target"]
            )?),
            target_state: reg!(IntGaugeVec::new(
                opts(
                    "target_state",
                    "Circuit breaker: 0 closed, 1 half-open, 2 open"
                ),
                &["route", "target", "provider", "region", "model"]
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
            target_actors: reg!(IntGauge::with_opts(opts(
                "target_actors",
                "Target actors running; after a reload settles, the number of configured targets"
            ))?),
            session_affinity: reg!(IntCounterVec::new(
                opts(
                    "session_affinity_total",
                    "Requests naming a session, by how they were served: by the session's target (hit), by another (moved), or as a new session (new)"
                ),
                &["route", "result"]
            )?),
            sessions_held: reg!(IntGaugeVec::new(
                opts(
                    "session_affinity_sessions",
                    "Sessions a route's affinity table holds (exact after each 10 s sweep)"
                ),
                &["route"]
            )?),
            reload_success: reloads.with_label_values(&["success"]),
            reload_failure: reloads.with_label_values(&["failure"]),
            registry,
        })
    }

    /// Refreshes the target gauges from `targets` and `limits` (rows the admin handler reads from
    /// the running gateway at scrape time), then encodes everything in the text format. Gauges are
    /// reset first so targets removed by a reload disappear.
    pub fn render(&self, targets: &[TargetRow<'_>], limits: &[LimitRow<'_>]) -> Vec<u8> {
        self.limit_remaining.reset();
        for row in limits {
            for (limit, left) in [("rpm", row.rpm), ("tpm", row.tpm)] {
                if let Some(left) = left {
                    self.limit_remaining
                        .with_label_values(&[row.target, limit])
                        .set(i64::from(left));
                }
            }
        }
        self.target_state.reset();
        self.target_cooldown.reset();
        self.in_flight.reset();
        self.ewma_latency.reset();
        for row in targets {
            let labels = [row.route, row.target];
            self.target_state
                .with_label_values(&[row.route, row.target, row.provider, row.region, row.model])
                .set(i64::from(row.health));
            self.target_cooldown
                .with_label_values(&labels)
                .set(i64::from(row.cooling_down));
            self.in_flight
                .with_label_values(&labels)
                .set(i64::from(row.in_flight));
            self.ewma_latency
                .with_label_values(&labels)
                .set(row.ewma_latency_secs);
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }

    /// One finished client request: its count, duration and the gateway's own time.
    pub fn request(
        &self,
        route: &str,
        served: TargetLabels<'_>,
        status: u16,
        total: Duration,
        overhead: Duration,
    ) {
        self.requests
            .with_label_values(&[route, served.target, served.provider, &status.to_string()])
            .inc();
        self.request_duration
            .with_label_values(&[route])
            .observe(total.as_secs_f64());
        self.overhead.observe(overhead.as_secs_f64());
    }

    /// Tokens a target reported for one request (the prompt-cache reads and writes among the
    /// input as well), and what they cost.
    pub fn usage(&self, served: TargetLabels<'_>, tokens: TokenCounts, cost: f64) {
        let TargetLabels { target, provider } = served;
        for (kind, count) in [
            ("prompt", tokens.input),
            ("completion", tokens.output),
            ("cache_read", tokens.cache_read),
            ("cache_write", tokens.cache_write),
        ] {
            self.tokens
                .with_label_values(&[target, provider, kind])
                .inc_by(count);
        }
        self.cost
            .with_label_values(&[target, provider])
            .inc_by(cost);
    }

    /// Streams: time from sending upstream to the first event.
    pub fn time_to_first_token(&self, target: &str, took: Duration) {
        self.ttft
            .with_label_values(&[target])
            .observe(took.as_secs_f64());
    }

    pub fn time_per_output_token(&self, target: &str, took: Duration) {
        self.tpot
            .with_label_values(&[target])
            .observe(took.as_secs_f64());
    }

    /// One upstream attempt's time, send to the end of its body or its error.
    pub fn upstream_time(&self, target: &str, took: Duration) {
        self.upstream_duration
            .with_label_values(&[target])
            .observe(took.as_secs_f64());
    }

    /// An attempt after the first, and the move between targets it made (if it moved).
    pub fn retry(&self, route: &str, failover: Option<(&str, &str)>) {
        self.retries.with_label_values(&[route]).inc();
        if let Some((from, to)) = failover {
            self.failovers.with_label_values(&[from, to]).inc();
        }
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

/// A target actor started (`1`) or stopped (`-1`).
pub fn target_actors(delta: i64) {
    if let Some(m) = metrics() {
        m.target_actors.add(delta);
    }
}

/// A request naming a session was served; `result` is `hit`, `moved` or `new`.
pub fn session_affinity(route: &str, result: &'static str) {
    if let Some(m) = metrics() {
        m.session_affinity.with_label_values(&[route, result]).inc();
    }
}

/// A route's affinity table took a new session.
pub fn session_affinity_added(route: &str) {
    if let Some(m) = metrics() {
        m.sessions_held.with_label_values(&[route]).inc();
    }
}

/// The sessions a route's affinity table holds after a sweep.
pub fn session_affinity_held(route: &str, held: usize) {
    if let Some(m) = metrics() {
        m.sessions_held
            .with_label_values(&[route])
            .set(i64::try_from(held).unwrap_or(i64::MAX));
    }
}

/// The route left the config: its sessions gauge goes with it.
pub fn session_affinity_route_removed(route: &str) {
    if let Some(m) = metrics() {
        let _ = m.sessions_held.remove_label_values(&[route]);
    }
}

/// A 429 the gateway itself returns (`scope`: consumer, target or all_targets).
pub fn rate_limited(scope: &'static str) {
    if let Some(m) = metrics() {
        m.rate_limited.with_label_values(&[scope]).inc();
    }
}

/// `GET /metrics` body; empty if registration failed.
pub fn render(targets: &[TargetRow<'_>], limits: &[LimitRow<'_>]) -> Vec<u8> {
    metrics()
        .map(|m| m.render(targets, limits))
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
        429 | 529 => "throttling",
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
pub fn upstream_error(target: TargetLabels<'_>, kind: &'static str) {
    if let Some(m) = metrics() {
        m.upstream_errors
            .with_label_values(&[target.target, target.provider, kind])
            .inc();
    }
}

/// Beta flags dropped for a target (labelled by the target, never by the client's flag).
pub fn betas_dropped(target_label: &str, count: u64) {
    if let Some(m) = metrics() {
        m.betas_dropped
            .with_label_values(&[target_label])
            .inc_by(count);
    }
}

/// A request refused with 401.
pub fn auth_failure(reason: crate::error::AuthReason) {
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
}
