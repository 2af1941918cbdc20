//! Sends a request to the route's targets: pick, sign, send, and on a failover criterion try the
//! next untried target, re-signed. Nothing is retried once a byte of the response reached the
//! client: this returns at the response head, and the caller streams the body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use bytes::Bytes;

use super::attempt::{AttemptFailure, Failed, attempt};
use super::backoff;
use super::body::{BodyError, read_body};
use super::operation::Operation;
use super::pick::Picker;
use super::request::Params;
use crate::backend::{Outcome, TargetRuntime};
use crate::balance::Lease;
use crate::config::{Provider, ProviderOptions, Target};
use crate::error::GatewayError;
use crate::gateway::RouteRuntime;
use crate::limits::Reservation;
use crate::limits::estimate::BodyTokens;
use crate::metrics;
use crate::observe::Obs;
use crate::shutdown::AbortSignal;

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
    /// Fired when a graceful stop ends the streams: a stream's head being read ends with it.
    pub abort: Option<AbortSignal>,
}

/// Shapes a request for one target: Anthropic Messages go to Claude as InvokeModel with that
/// target's betas, to other models as Converse. An error means this target cannot serve the
/// request (the client asked for something only other models do); another target may.
pub trait PerTarget {
    fn prepare(&self, target: &Target) -> Result<(Operation, Bytes), GatewayError>;
}

impl ProxyRequest {
    pub(crate) fn prepare(&self, target: &Target) -> Result<(Operation, Bytes), GatewayError> {
        // A request not shaped per target is a Bedrock operation, which only Bedrock targets
        // take; the route's other targets are passed over without spending an attempt.
        if self.per_target.is_none() && target.provider != ProviderOptions::Bedrock {
            return Err(GatewayError::bad_request(format!(
                "target {} has provider {:?}; this request goes only to bedrock targets",
                target.label(),
                target.provider.provider().as_str()
            )));
        }
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

/// An upstream error response, buffered so it can be passed on after failover gave up.
#[derive(Debug, Clone)]
pub struct UpstreamError {
    /// Whose API the body is in.
    pub provider: Provider,
    pub status: StatusCode,
    /// Bedrock's error name (`ThrottlingException`), or the error `type` of an Anthropic or
    /// OpenAI-compatible body.
    pub error_type: String,
    /// An OpenAI-compatible error's `code` name (`invalid_api_key`); empty for other APIs. Boxed
    /// (16 bytes): results carrying this error stay small.
    pub error_code: Box<str>,
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

/// How the last attempt failed, once no other target may try.
pub(crate) enum LastFailure {
    Attempt(AttemptFailure),
    Status(UpstreamError),
    /// The target refused the gateway's own credentials or config.
    Refused(GatewayError),
}

impl From<ProxyError> for LastFailure {
    fn from(error: ProxyError) -> Self {
        match error {
            ProxyError::Upstream(error) => Self::Status(error),
            ProxyError::Gateway(refused) => Self::Refused(refused),
        }
    }
}

impl LastFailure {
    /// What the client is told: Bedrock's own error, else the gateway's account of the failure.
    fn into_error(self, route: &str) -> ProxyError {
        match self {
            Self::Status(error) => ProxyError::Upstream(error),
            Self::Refused(error) => ProxyError::Gateway(error),
            Self::Attempt(failure) => ProxyError::Gateway(failure.into_gateway_error(route)),
        }
    }
}

pub async fn forward(
    route: &RouteRuntime,
    client: &awc::Client,
    request: &ProxyRequest,
    obs: &Obs,
) -> Result<Delivered, ProxyError> {
    let roster = route.balancer.roster();
    let config = &route.balancer_config;
    let max_attempts = config.retries.saturating_add(1);
    // No retry starts later than one attempt's worth of time (each phase's timeout) from the
    // start, so slow failures are not repeated `retries` times; a started attempt keeps its own
    // timeouts, as in Kong.
    let deadline =
        Instant::now() + config.connect_timeout + config.write_timeout + config.read_timeout;
    route.retry_budget.deposit();
    let mut picker = Picker::new(route, roster, request);
    let mut last: Option<LastFailure> = None;
    let mut attempts = 0u32;
    let mut previous: Option<Arc<TargetRuntime>> = None;
    while attempts < max_attempts {
        if attempts > 0 && !may_retry(route, &mut picker, attempts, deadline).await {
            break;
        }
        let Some(picked) = picker.next(attempts == 0).await else {
            break;
        };
        attempts += 1;
        let target = Arc::clone(&roster.targets[picked.index]);
        let mut lease = Lease::new(Arc::clone(&target));
        if let Some(reservation) = picked.reservation {
            lease.hold(reservation);
        }
        if let Some(consumer) = &request.consumer_reservation {
            lease.hold(Arc::clone(consumer));
        }
        obs.attempt(&route.name, &target, attempts, previous.as_deref());
        previous = Some(Arc::clone(&target));
        match attempt(
            client,
            request,
            picked.shaped,
            config,
            &mut lease,
            attempts,
            obs,
        )
        .await
        {
            Ok((response, sent_at)) => {
                lease.mark_delivered();
                picker.served_by(&target);
                return Ok(Delivered {
                    lease,
                    response,
                    attempts,
                    sent_at,
                });
            }
            Err(Failed {
                failure,
                may_fail_over,
            }) => {
                last = Some(failure);
                if !may_fail_over {
                    break;
                }
            }
        }
    }
    Err(match last {
        None => ProxyError::Gateway(picker.nothing_tried()),
        Some(failure) => failure.into_error(&route.name),
    })
}

/// Whether a further attempt may start: an untried target that can take the request is left
/// (else no retry token or backoff is spent), the route's retry budget grants it, and its
/// backoff ends before the deadline (then it is waited out).
async fn may_retry(
    route: &RouteRuntime,
    picker: &mut Picker<'_>,
    attempts: u32,
    deadline: Instant,
) -> bool {
    if picker.exhausted() {
        return false;
    }
    if !route.retry_budget.try_withdraw() {
        metrics::retry_budget_exhausted(&route.name);
        tracing::debug!(route = %route.name, "retry budget spent; not retrying");
        return false;
    }
    let pause = backoff::before_retry(attempts, fastrand::f64());
    if Instant::now() + pause >= deadline {
        return false;
    }
    actix_rt::time::sleep(pause).await;
    true
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
            metrics::upstream_error(delivered.lease.target().metric_labels(), "timeout");
            GatewayError::UpstreamTimeout(format!("response body from {label}"))
        }
        Err(e @ (BodyError::TooLarge(_) | BodyError::Broken(_))) => {
            metrics::upstream_error(delivered.lease.target().metric_labels(), "other");
            GatewayError::BadUpstreamResponse {
                target: label,
                message: format!("reading the body: {e}"),
            }
        }
    };
    delivered.lease.set_outcome(Outcome::Failure);
    Err(ProxyError::Gateway(failure))
}
