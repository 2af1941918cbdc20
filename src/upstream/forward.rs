//! Sends a request to the route's targets: pick, sign, send, and on a failover criterion try the
//! next untried target, re-signed. Nothing is retried once a byte of the response reached the
//! client: this returns at the response head, and the caller streams the body.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::StatusCode;
use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use bytes::Bytes;

use super::backoff;
use super::classify::{error_name, outcome_for_status, parse_retry_after};
use super::operation::Operation;
use super::request::{Params, prepare};
use crate::aws::sign::Unsigned;
use crate::backend::{Health, Outcome, TargetRuntime};
use crate::balance::Lease;
use crate::clock;
use crate::config::FailoverCriterion;
use crate::error::{GatewayError, LimitScope};
use crate::gateway::RouteRuntime;
use crate::limits::estimate::{BodyTokens, DEFAULT_MAX_TOKENS};
use crate::limits::{self, Refusal, Reservation};
use crate::metrics::{self, Obs};

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
    pub body: Bytes,
    pub content_type: String,
    pub accept: String,
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
pub(crate) enum AttemptFailure {
    Connect(String),
    Timeout(String),
    InvalidHeader(String),
    /// The request could not be written for this target (see [`super::request::PrepareError`]).
    Request(String),
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
    // Every attempt, backoff included, fits in one attempt's worth of time from the start.
    let deadline =
        Instant::now() + config.connect_timeout + config.write_timeout + config.read_timeout;
    route.retry_budget.deposit();
    let mut tried = vec![false; roster.targets.len()];
    let mut last: Option<LastFailure> = None;
    let mut attempts = 0u32;
    let mut previous: Option<Arc<TargetRuntime>> = None;
    // The most hopeful refusal by a target's limits: the soonest wait, else the largest cap.
    let mut refused: Option<Refusal> = None;
    while attempts < max_attempts {
        let mut _retry_permit = None;
        if attempts > 0 {
            if tried.iter().all(|t| *t) {
                // Every target has had its try: nothing to spend the budget or a backoff on.
                break;
            }
            let Some(permit) = route.retry_budget.try_withdraw() else {
                metrics::retry_budget_exhausted(&route.name);
                tracing::debug!(route = %route.name, "retry budget spent; not retrying");
                break;
            };
            _retry_permit = Some(permit);
            let pause = backoff::before_retry(attempts, fastrand::f64());
            if Instant::now() + pause >= deadline {
                break;
            }
            actix_rt::time::sleep(pause).await;
        }
        let hash_key = request.hash_key.as_deref().map(str::as_bytes);
        let picked = loop {
            let candidate = roster.pick(&tried, clock::now_ms(), hash_key).or_else(|| {
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
            match admit_target(target, request.tokens).await {
                Ok(reservation) => break Some((index, reservation)),
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
        let Some((index, reservation)) = picked else {
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
        match send_once(client, &target, request, config).await {
            Ok(response) if response.status().is_success() => {
                lease.mark_delivered();
                return Ok(Delivered {
                    lease,
                    response,
                    attempts,
                    sent_at,
                });
            }
            Ok(mut response) => {
                let error = read_error(&mut response, &target, attempts).await;
                obs.upstream_time(&target, sent_at.elapsed());
                metrics::upstream_error(
                    &target,
                    metrics::error_kind(error.status.as_u16(), &error.error_type),
                );
                lease.set_outcome(outcome_for_status(
                    error.status.as_u16(),
                    &error.error_type,
                    error.retry_after,
                ));
                let may_fail_over = criteria.contains(FailoverCriterion::NonIdempotent)
                    && FailoverCriterion::for_status(error.status.as_u16())
                        .is_some_and(|c| criteria.contains(c));
                tracing::debug!(target_id = %target.label, status = error.status.as_u16(), may_fail_over, "upstream error");
                if !may_fail_over {
                    return Err(ProxyError::Upstream(error));
                }
                last = Some(LastFailure::Status(error));
            }
            Err(failure) => {
                lease.set_outcome(Outcome::Failure);
                obs.upstream_time(&target, sent_at.elapsed());
                let (criterion, kind) = match &failure {
                    AttemptFailure::Connect(_) => (FailoverCriterion::Error, "connect"),
                    AttemptFailure::Timeout(_) => (FailoverCriterion::Timeout, "timeout"),
                    AttemptFailure::InvalidHeader(_) => (FailoverCriterion::InvalidHeader, "other"),
                    AttemptFailure::Request(_) => (FailoverCriterion::Error, "other"),
                };
                metrics::upstream_error(&target, kind);
                tracing::debug!(target_id = %target.label, error = failure.describe(), "upstream attempt failed");
                // A request that cannot be written for one target is no target's fault.
                let may_fail_over =
                    criteria.contains(criterion) && !matches!(failure, AttemptFailure::Request(_));
                last = Some(LastFailure::Attempt(failure));
                if !may_fail_over {
                    break;
                }
            }
        }
    }
    Err(match (last, refused) {
        (None, Some(refusal)) => ProxyError::Gateway(limits::refused(LimitScope::Targets, refusal)),
        (None, None) => ProxyError::Gateway(GatewayError::NoTarget {
            route: route.name.clone(),
        }),
        (Some(LastFailure::Status(error)), _) => ProxyError::Upstream(error),
        (Some(LastFailure::Attempt(AttemptFailure::Timeout(what))), _) => {
            ProxyError::Gateway(GatewayError::UpstreamTimeout(what))
        }
        (Some(LastFailure::Attempt(AttemptFailure::Request(what))), _) => {
            ProxyError::Gateway(GatewayError::Internal(what))
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
        .admit(tokens.reservation(default_max))
        .await
        .map(|r| Some(Arc::new(r)))
}

impl AttemptFailure {
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Connect(e) => format!("connection failed: {e}"),
            Self::Timeout(e) => format!("timed out: {e}"),
            Self::InvalidHeader(e) => format!("invalid response head: {e}"),
            Self::Request(e) => format!("could not write the upstream request: {e}"),
        }
    }
}

/// Sends one attempt of `request` to `target`, signed for the target's region.
pub(crate) async fn send_once(
    client: &awc::Client,
    target: &TargetRuntime,
    request: &ProxyRequest,
    config: &crate::config::BalancerConfig,
) -> Result<awc::ClientResponse, AttemptFailure> {
    let credentials = target
        .state
        .credentials
        .load_full()
        .ok_or_else(|| AttemptFailure::Connect("no credentials loaded yet".to_owned()))?;
    let upstream = prepare(
        &target.config,
        request.operation,
        &request.params,
        &request.body,
    )
    .map_err(|e| AttemptFailure::Request(e.to_string()))?;
    let method = request.operation.method();
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
        .map_err(|e| AttemptFailure::InvalidHeader(e.to_string()))?;
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
        .timeout(config.write_timeout + config.read_timeout)
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
    outgoing
        .send_body(upstream.body)
        .await
        .map_err(|e| match e {
            awc::error::SendRequestError::Timeout => {
                AttemptFailure::Timeout(format!("no response head from {}", target.label))
            }
            awc::error::SendRequestError::Connect(awc::error::ConnectError::Timeout) => {
                AttemptFailure::Timeout(format!("connecting to {}", target.label))
            }
            awc::error::SendRequestError::Response(e) => {
                AttemptFailure::InvalidHeader(e.to_string())
            }
            other => AttemptFailure::Connect(other.to_string()),
        })
}

/// Error bodies are small JSON documents; anything larger is cut, never buffered whole.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub(crate) async fn read_error(
    response: &mut awc::ClientResponse,
    target: &TargetRuntime,
    attempts: u32,
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
    let body = response
        .body()
        .limit(MAX_ERROR_BODY)
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

/// Reads a successful non-streaming body, bounded in size and time, and settles the lease.
pub async fn read_success_body(
    delivered: &mut Delivered,
    read_timeout: Duration,
    max_body: usize,
    obs: &Obs,
) -> Result<Bytes, ProxyError> {
    let label = delivered.lease.target().label.clone();
    let body = tokio::time::timeout(read_timeout, delivered.response.body().limit(max_body)).await;
    obs.upstream_time(delivered.lease.target(), delivered.sent_at.elapsed());
    if !matches!(body, Ok(Ok(_))) {
        let kind = if body.is_err() { "timeout" } else { "other" };
        metrics::upstream_error(delivered.lease.target(), kind);
    }
    let failure = match body {
        Ok(Ok(body)) => {
            delivered.lease.set_outcome(Outcome::Success);
            return Ok(body);
        }
        Ok(Err(e)) => GatewayError::BadUpstreamResponse {
            target: label,
            message: format!("reading the body: {e}"),
        },
        Err(_) => GatewayError::UpstreamTimeout(format!("response body from {label}")),
    };
    delivered.lease.set_outcome(Outcome::Failure);
    Err(ProxyError::Gateway(failure))
}
