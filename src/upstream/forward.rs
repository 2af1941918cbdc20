//! Sends a request to the route's targets: pick, sign, send, and on a failover criterion try the
//! next untried target, re-signed. Nothing is retried once a byte of the response reached the
//! client: this returns at the response head, and the caller streams the body.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::StatusCode;
use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use awc::error::{ConnectError, SendRequestError};
use bytes::Bytes;

use super::backoff;
use super::body::{BodyError, read_body};
use super::classify::{error_name, outcome_for_status, parse_retry_after};
use super::operation::Operation;
use super::request::{Params, prepare};
use super::timeouts::{self, Phase, SendFailure, Timeouts};
use crate::aws::sign::Unsigned;
use crate::backend::{Health, Outcome, TargetRuntime};
use crate::balance::Lease;
use crate::clock;
use crate::config::{FailoverCriteria, FailoverCriterion, Target};
use crate::error::{GatewayError, LimitScope};
use crate::gateway::RouteRuntime;
use crate::limits::estimate::{BodyTokens, DEFAULT_MAX_TOKENS};
use crate::limits::{self, Refusal, Reservation};
use crate::metrics;
use crate::observe::Obs;

/// The client's request, reduced to what may go upstream.
pub struct ProxyRequest {
    pub operation: Operation,
    pub params: Params,
    /// What the body may cost in tokens (all zero when no token limit applies).
    pub tokens: BodyTokens,
    /// The consumer's token reservation for the whole client request, settled by the usage of
    /// whichever attempt delivers.
    pub consumer_reservation: Option<Arc<Reservation>>,
    /// The value of the route's `hash_on_header`, for consistent hashing.
    pub hash_key: Option<String>,
    /// The client named this model id: only the route's targets of that id may serve it.
    pub pinned_model: Option<Arc<str>>,
    /// The session the request belongs to, for session affinity.
    pub session: Option<String>,
    pub body: Bytes,
    pub content_type: String,
    pub accept: String,
    /// Set when the operation and body depend on the picked target; `operation` and `body` then
    /// go only to targets it leaves them to.
    pub per_target: Option<Box<dyn PerTarget>>,
}

/// Shapes a request for one target: Anthropic Messages go to Claude as InvokeModel with that
/// target's betas, to other models as Converse. An error means this target cannot serve the
/// request (the client asked for something only other models do); another target may.
pub trait PerTarget {
    fn prepare(&self, target: &Target) -> Result<(Operation, Bytes), GatewayError>;
}

impl ProxyRequest {
    fn prepare(&self, target: &Target) -> Result<(Operation, Bytes), GatewayError> {
        match &self.per_target {
            Some(shape) => shape.prepare(target),
            None => Ok((self.operation, self.body.clone())),
        }
    }
}

/// A successful response head from the target that will serve the request.
pub struct Delivered {
    pub lease: Lease,
    pub response: awc::ClientResponse,
    /// 1 for a first-try success.
    pub attempts: u32,
    /// When this attempt went upstream (time to first token and upstream time count from here).
    pub sent_at: Instant,
}

/// A Bedrock error response, buffered so it can be passed on after failover gave up.
#[derive(Debug, Clone)]
pub struct UpstreamError {
    pub status: StatusCode,
    /// Bedrock's error name, e.g. `ThrottlingException`.
    pub error_type: String,
    pub body: Bytes,
    pub retry_after: Option<Duration>,
    pub target: String,
    pub attempts: u32,
}

pub enum ProxyError {
    /// Bedrock answered with an error: pass it on (native) or translate it (OpenAI).
    Upstream(UpstreamError),
    /// The gateway could not get an answer.
    Gateway(GatewayError),
}

impl From<GatewayError> for ProxyError {
    fn from(e: GatewayError) -> Self {
        Self::Gateway(e)
    }
}

/// Why an attempt failed before a response head arrived.
pub(crate) struct AttemptFailure {
    kind: FailureKind,
    /// Some of the request may have reached the target, which may be generating (and billing) it.
    sent: bool,
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    /// No connection, or it broke (`error`).
    Error,
    Timeout,
    InvalidHeader,
    /// The request could not be written for this target (see [`super::request::PrepareError`]):
    /// no target's fault, so never failed over.
    Request,
}

enum LastFailure {
    Attempt(AttemptFailure),
    Status(UpstreamError),
}

pub async fn forward(
    route: &RouteRuntime,
    client: &awc::Client,
    request: &ProxyRequest,
    obs: &Obs,
) -> Result<Delivered, ProxyError> {
    let roster = route.balancer.roster();
    let config = &route.balancer_config;
    let criteria = config.failover_criteria;
    let max_attempts = config.retries.saturating_add(1);
    // No retry starts later than one attempt's worth of time (each phase's timeout) from the
    // start, so slow failures are not repeated `retries` times; a started attempt keeps its own
    // timeouts, as in Kong.
    let deadline =
        Instant::now() + config.connect_timeout + config.write_timeout + config.read_timeout;
    route.retry_budget.deposit();
    let pinned = request.pinned_model.as_deref();
    let mut tried = roster.untried(pinned);
    let mut last: Option<LastFailure> = None;
    let mut attempts = 0u32;
    let mut previous: Option<Arc<TargetRuntime>> = None;
    // The most hopeful refusal by a target's limits: the soonest wait, else the largest cap.
    let mut refused: Option<Refusal> = None;
    // Why a picked target could not take this request at all, if none could.
    let mut unservable: Option<GatewayError> = None;
    let session = route
        .balancer
        .session(request.session.as_deref(), clock::now_ms());
    while attempts < max_attempts {
        if attempts > 0 {
            if tried.iter().all(|t| *t) {
                // Every target has had its try: nothing to spend the budget or a backoff on.
                break;
            }
            if !route.retry_budget.try_withdraw() {
                metrics::retry_budget_exhausted(&route.name);
                tracing::debug!(route = %route.name, "retry budget spent; not retrying");
                break;
            }
            let pause = backoff::before_retry(attempts, fastrand::f64());
            if Instant::now() + pause >= deadline {
                break;
            }
            actix_rt::time::sleep(pause).await;
        }
        let hash_key = request.hash_key.as_deref().map(str::as_bytes);
        let picked = loop {
            // The session's own target first, while it is ready: its prompt cache is there.
            let session_target = session.target_ready(&tried, clock::now_ms());
            let candidate =
                session_target.or_else(|| roster.pick(pinned, &tried, clock::now_ms(), hash_key));
            let candidate = candidate.or_else(|| {
                // Never fail a request without trying: with nothing ready, take the least-bad
                // target. Not when targets are only at their limits: that is a 429, not an outage.
                let forced = (attempts == 0 && refused.is_none())
                    .then(|| roster.least_bad(&tried))
                    .flatten();
                if forced.is_some() {
                    metrics::forced_pick(&route.name);
                    tracing::warn!(route = %route.name, "no target ready; trying the least-bad one");
                }
                forced
            });
            let Some(index) = candidate else { break None };
            tried[index] = true;
            let target = &roster.targets[index];
            let prepared = match request.prepare(&target.config) {
                Ok(prepared) => prepared,
                Err(why) => {
                    if target.state.health() == Health::HalfOpen {
                        target.state.release_trial();
                    }
                    unservable = Some(why);
                    continue;
                }
            };
            match admit_target(target, request.tokens).await {
                Ok(reservation) => break Some((index, reservation, prepared)),
                Err(refusal) => {
                    // The pick may have claimed the target's half-open trial: hand it back.
                    if target.state.health() == Health::HalfOpen {
                        target.state.release_trial();
                    }
                    metrics::rate_limited("target");
                    tracing::debug!(target_id = %target.label, ?refusal, "target at its limit");
                    refused = Some(refused.map_or(refusal, |r| r.sooner(refusal)));
                }
            }
        };
        let Some((index, reservation, (operation, body))) = picked else {
            break;
        };
        attempts += 1;
        let target = Arc::clone(&roster.targets[index]);
        let mut lease = Lease::new(Arc::clone(&target));
        if let Some(reservation) = reservation {
            lease.hold(reservation);
        }
        if let Some(consumer) = &request.consumer_reservation {
            lease.hold(Arc::clone(consumer));
        }
        obs.attempt(&route.name, &target, attempts, previous.as_deref());
        previous = Some(Arc::clone(&target));
        let sent_at = Instant::now();
        match send_once(client, &target, request, operation, body, config).await {
            Ok(response) if response.status().is_success() => {
                lease.mark_delivered();
                session.served_by(&target, clock::now_ms());
                return Ok(Delivered {
                    lease,
                    response,
                    attempts,
                    sent_at,
                });
            }
            Ok(mut response) => {
                let error = read_error(&mut response, &target, attempts, config.read_timeout).await;
                obs.upstream_time(&target, sent_at.elapsed());
                metrics::upstream_error(
                    &target.label,
                    metrics::error_kind(error.status.as_u16(), &error.error_type),
                );
                lease.set_outcome(outcome_for_status(
                    error.status.as_u16(),
                    &error.error_type,
                    error.retry_after,
                ));
                let may_fail_over = FailoverCriterion::for_status(error.status.as_u16())
                    .is_some_and(|c| may_fail_over(criteria, c, true));
                tracing::debug!(target_id = %target.label, status = error.status.as_u16(), may_fail_over, "upstream error");
                if !may_fail_over {
                    return Err(ProxyError::Upstream(error));
                }
                last = Some(LastFailure::Status(error));
            }
            Err(failure) => {
                lease.set_outcome(Outcome::Failure);
                obs.upstream_time(&target, sent_at.elapsed());
                metrics::upstream_error(&target.label, failure.kind.metric());
                let may_fail_over = failure
                    .kind
                    .criterion()
                    .is_some_and(|c| may_fail_over(criteria, c, failure.sent));
                tracing::debug!(target_id = %target.label, error = failure.describe(), sent = failure.sent, may_fail_over, "upstream attempt failed");
                last = Some(LastFailure::Attempt(failure));
                if !may_fail_over {
                    break;
                }
            }
        }
    }
    Err(match (last, refused) {
        (None, Some(refusal)) => ProxyError::Gateway(limits::refused(LimitScope::Targets, refusal)),
        (None, None) => ProxyError::Gateway(unservable.unwrap_or_else(|| GatewayError::NoTarget {
            route: route.name.clone(),
        })),
        (Some(LastFailure::Status(error)), _) => ProxyError::Upstream(error),
        (Some(LastFailure::Attempt(failure)), _) if failure.kind == FailureKind::Timeout => {
            ProxyError::Gateway(GatewayError::UpstreamTimeout(failure.detail))
        }
        (Some(LastFailure::Attempt(failure)), _) if failure.kind == FailureKind::Request => {
            ProxyError::Gateway(GatewayError::Internal(failure.detail))
        }
        (Some(LastFailure::Attempt(failure)), _) => {
            ProxyError::Gateway(GatewayError::AllTargetsFailed {
                route: route.name.clone(),
                last: failure.describe(),
            })
        }
    })
}

/// Takes the target's request and token cells for this request, if it has limits.
async fn admit_target(
    target: &TargetRuntime,
    tokens: BodyTokens,
) -> Result<Option<Arc<Reservation>>, Refusal> {
    let Some(meter) = &target.limits else {
        return Ok(None);
    };
    let default_max = target
        .config
        .max_tokens
        .map_or(DEFAULT_MAX_TOKENS, std::num::NonZeroU32::get);
    meter
        .admit(1, tokens.reservation(default_max))
        .await
        .map(|r| Some(Arc::new(r)))
}

/// Whether an attempt that failed by `criterion` may go on to another target. Every Bedrock call
/// is a POST: once any of it was sent, only `non_idempotent` allows that, as nginx's
/// `proxy_next_upstream` (a timed-out generation is likely still running, and billed).
fn may_fail_over(criteria: FailoverCriteria, criterion: FailoverCriterion, sent: bool) -> bool {
    criteria.contains(criterion) && (!sent || criteria.contains(FailoverCriterion::NonIdempotent))
}

impl AttemptFailure {
    /// A failure before anything was sent.
    fn unsent(kind: FailureKind, detail: String) -> Self {
        Self {
            kind,
            sent: false,
            detail,
        }
    }

    fn of(failure: SendFailure, target: &str) -> Self {
        let (kind, phase, detail) = match failure {
            SendFailure::TimedOut(phase) => {
                let what = match phase {
                    Phase::Connecting => "connecting to",
                    Phase::Writing => "sending the request to",
                    Phase::AwaitingHead => "no response head from",
                };
                (FailureKind::Timeout, phase, format!("{what} {target}"))
            }
            SendFailure::Failed(_, SendRequestError::Connect(ConnectError::Timeout)) => (
                FailureKind::Timeout,
                Phase::Connecting,
                format!("connecting to {target}"),
            ),
            SendFailure::Failed(phase, SendRequestError::Response(e)) => {
                (FailureKind::InvalidHeader, phase, e.to_string())
            }
            SendFailure::Failed(phase, e) => (FailureKind::Error, phase, e.to_string()),
        };
        Self {
            kind,
            sent: phase.sent(),
            detail,
        }
    }

    pub(crate) fn describe(&self) -> String {
        let what = match self.kind {
            FailureKind::Error => "connection failed",
            FailureKind::Timeout => "timed out",
            FailureKind::InvalidHeader => "invalid response head",
            FailureKind::Request => "could not write the upstream request",
        };
        format!("{what}: {}", self.detail)
    }
}

impl FailureKind {
    /// The failover criterion this failure falls under; `None` for one no other target could
    /// avoid.
    fn criterion(self) -> Option<FailoverCriterion> {
        match self {
            Self::Error => Some(FailoverCriterion::Error),
            Self::Timeout => Some(FailoverCriterion::Timeout),
            Self::InvalidHeader => Some(FailoverCriterion::InvalidHeader),
            Self::Request => None,
        }
    }

    /// The `kind` label of `upstream_errors_total`.
    fn metric(self) -> &'static str {
        match self {
            Self::Error => "connect",
            Self::Timeout => "timeout",
            Self::InvalidHeader | Self::Request => "other",
        }
    }
}

/// Sends one attempt to `target`: `operation` with `body` (the target's own shape of the
/// request), signed for the target's region.
pub(crate) async fn send_once(
    client: &awc::Client,
    target: &TargetRuntime,
    request: &ProxyRequest,
    operation: Operation,
    body: Bytes,
    config: &crate::config::BalancerConfig,
) -> Result<awc::ClientResponse, AttemptFailure> {
    let credentials = target.state.credentials.load_full().ok_or_else(|| {
        AttemptFailure::unsent(FailureKind::Error, "no credentials loaded yet".to_owned())
    })?;
    let upstream = prepare(&target.config, operation, &request.params, &body)
        .map_err(|e| AttemptFailure::unsent(FailureKind::Request, e.to_string()))?;
    let method = operation.method();
    let has_body = method == "POST";
    let mut unsigned_headers: Vec<(&str, &str)> = vec![("host", target.authority.as_str())];
    if has_body {
        unsigned_headers.push(("content-type", request.content_type.as_str()));
    }
    unsigned_headers.extend(upstream.headers.iter().map(|(n, v)| (*n, v.as_str())));
    let signed = target
        .signer
        .sign(
            Unsigned {
                method,
                path: &upstream.path,
                query: &upstream.query,
                headers: &unsigned_headers,
                body: &upstream.body,
            },
            &credentials,
            SystemTime::now(),
        )
        .map_err(|e| AttemptFailure::unsent(FailureKind::InvalidHeader, e.to_string()))?;
    let url = if upstream.query.is_empty() {
        format!("{}{}", target.config.upstream_url, upstream.path)
    } else {
        format!(
            "{}{}?{}",
            target.config.upstream_url, upstream.path, upstream.query
        )
    };
    let mut outgoing = client
        .request(
            if has_body {
                awc::http::Method::POST
            } else {
                awc::http::Method::GET
            },
            &url,
        )
        .insert_header((ACCEPT, request.accept.as_str()));
    if has_body {
        outgoing = outgoing.insert_header((CONTENT_TYPE, request.content_type.as_str()));
    }
    for (name, value) in &upstream.headers {
        outgoing = outgoing.insert_header((*name, value.as_str()));
    }
    for (name, value) in signed.headers() {
        outgoing = outgoing.insert_header((name, value));
    }
    let timeouts = Timeouts {
        connect: config.connect_timeout,
        write: config.write_timeout,
        read: config.read_timeout,
    };
    timeouts::send(outgoing, upstream.body, timeouts)
        .await
        .map_err(|failure| AttemptFailure::of(failure, &target.label))
}

/// Error bodies are small JSON documents; anything larger is cut, never buffered whole.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub(crate) async fn read_error(
    response: &mut awc::ClientResponse,
    target: &TargetRuntime,
    attempts: u32,
    read_timeout: Duration,
) -> UpstreamError {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let error_type = header("x-amzn-errortype")
        .map(|v| error_name(&v))
        .unwrap_or_default();
    let retry_after = parse_retry_after(header("retry-after").as_deref());
    let body = read_body(response, MAX_ERROR_BODY, read_timeout)
        .await
        .unwrap_or_else(|_| {
            Bytes::from_static(b"{\"message\":\"upstream error body unreadable\"}")
        });
    UpstreamError {
        status: response.status(),
        error_type,
        body,
        retry_after,
        target: target.label.clone(),
        attempts,
    }
}

/// Reads a successful non-streaming body, bounded in size and in silence between chunks, and
/// settles the lease.
pub async fn read_success_body(
    delivered: &mut Delivered,
    read_timeout: Duration,
    max_body: usize,
    obs: &Obs,
) -> Result<Bytes, ProxyError> {
    let label = delivered.lease.target().label.clone();
    let body = read_body(&mut delivered.response, max_body, read_timeout).await;
    obs.upstream_time(delivered.lease.target(), delivered.sent_at.elapsed());
    let failure = match body {
        Ok(body) => {
            delivered.lease.set_outcome(Outcome::Success);
            return Ok(body);
        }
        Err(BodyError::Idle(_)) => {
            metrics::upstream_error(&delivered.lease.target().label, "timeout");
            GatewayError::UpstreamTimeout(format!("response body from {label}"))
        }
        Err(e @ (BodyError::TooLarge(_) | BodyError::Broken(_))) => {
            metrics::upstream_error(&delivered.lease.target().label, "other");
            GatewayError::BadUpstreamResponse {
                target: label,
                message: format!("reading the body: {e}"),
            }
        }
    };
    delivered.lease.set_outcome(Outcome::Failure);
    Err(ProxyError::Gateway(failure))
}
