//! One attempt at one target: shape, sign and send the request with Kong's per-phase timeouts,
//! then say whether the answer is the one to deliver, or a failure and whether another target may
//! try (the failover criteria, and never a request that may be generating unless `non_idempotent`).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use awc::error::{ConnectError, SendRequestError};
use bytes::Bytes;

use super::body::read_body;
use super::classify::{
    error_name, named_error, outcome_for_status, parse_ratelimit_reset, parse_retry_after,
    parse_retry_after_ms, refuses_the_gateway,
};
use super::forward::{LastFailure, ProxyError, ProxyRequest, UpstreamError};
use super::operation::Operation;
use super::request::{Upstream, prepare};
use super::stream_head::{FirstEvent, NoEvent, first_event};
use super::timeouts::{self, Phase, SendFailure, Timeouts};
use crate::aws::sign::Unsigned;
use crate::backend::{Outcome, TargetRuntime};
use crate::balance::Lease;
use crate::config::{BalancerConfig, FailoverCriteria, FailoverCriterion, TargetAuth};
use crate::error::GatewayError;
use crate::metrics;
use crate::observe::Obs;

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
    /// The gateway is stopping and ended the attempt: no target's fault, and no other target
    /// would get to answer either.
    Aborted,
}

/// A failed attempt, and whether the request may go on to another target.
pub(crate) struct Failed {
    pub failure: LastFailure,
    pub may_fail_over: bool,
}

/// Sends attempt number `nth` of `request` to the lease's target as `operation` with `body`. A
/// success is the response head to deliver; a failure has been counted, logged and reported to
/// the target through the lease.
pub(crate) async fn attempt(
    client: &awc::Client,
    request: &ProxyRequest,
    (operation, body): (Operation, Bytes),
    config: &BalancerConfig,
    lease: &mut Lease,
    nth: u32,
    obs: &Obs,
) -> Result<(awc::ClientResponse, Instant), Failed> {
    let target = Arc::clone(lease.target());
    let sent_at = Instant::now();
    let criteria = config.failover_criteria;
    let failure = match send_once(client, &target, request, operation, body, config).await {
        Ok(response) if response.status().is_success() => {
            let provider = target.config.provider.provider();
            let abort = request.abort.clone();
            match first_event(response, (operation, provider), config.read_timeout, abort).await {
                FirstEvent::Relay(response) => return Ok((response, sent_at)),
                FirstEvent::Error(first) => {
                    let error = UpstreamError {
                        provider,
                        status: first.status,
                        error_type: first.error_type,
                        error_code: first.error_code.into(),
                        body: first.body,
                        retry_after: None,
                        target: target.label.clone(),
                        attempts: nth,
                    };
                    tracing::debug!(target_id = %target.label, status = error.status.as_u16(), "upstream stream opened with an error");
                    LastFailure::from(record_error(error, lease, sent_at, obs))
                }
                FirstEvent::NoEvent(no_event) => {
                    LastFailure::Attempt(AttemptFailure::no_event(no_event, &target.label))
                }
            }
        }
        Ok(mut response) => LastFailure::from(
            error_answer(&mut response, lease, nth, sent_at, config.read_timeout, obs).await,
        ),
        Err(failure) => LastFailure::Attempt(failure),
    };
    let may_fail_over = match &failure {
        LastFailure::Status(error) => {
            let may_fail_over = FailoverCriterion::for_status(error.status.as_u16())
                .is_some_and(|c| may_fail_over(criteria, c, true));
            tracing::debug!(target_id = %target.label, status = error.status.as_u16(), may_fail_over, "upstream error");
            may_fail_over
        }
        // Another target has credentials and a config of its own, and nothing was generated:
        // whatever the criteria, this one's refusal is never the answer.
        LastFailure::Refused(_) => true,
        LastFailure::Attempt(failure) => {
            failed_attempt(failure, lease, sent_at, obs);
            let may_fail_over = failure
                .kind
                .criterion()
                .is_some_and(|c| may_fail_over(criteria, c, failure.sent));
            tracing::debug!(target_id = %target.label, error = failure.describe(), sent = failure.sent, may_fail_over, "upstream attempt failed");
            may_fail_over
        }
    };
    Err(Failed {
        failure,
        may_fail_over,
    })
}

/// Reads an error answer and records it (see [`record_error`]).
pub(crate) async fn error_answer(
    response: &mut awc::ClientResponse,
    lease: &mut Lease,
    nth: u32,
    sent_at: Instant,
    read_timeout: Duration,
    obs: &Obs,
) -> ProxyError {
    let target = Arc::clone(lease.target());
    let error = read_error(response, &target, nth, read_timeout).await;
    record_error(error, lease, sent_at, obs)
}

/// Records an upstream error: upstream time, the error metric, and the outcome the target's
/// breaker and cooldown learn from. The answer is the client's to see, unless the target refused
/// the gateway's own credentials or config: then it is a failure of the target, told to the
/// client as the gateway's error without the upstream body (which may quote the target's key).
fn record_error(
    error: UpstreamError,
    lease: &mut Lease,
    sent_at: Instant,
    obs: &Obs,
) -> ProxyError {
    let target = Arc::clone(lease.target());
    let status = error.status.as_u16();
    obs.upstream_time(&target, sent_at.elapsed());
    metrics::upstream_error(
        target.metric_labels(),
        metrics::error_kind(status, &error.error_type),
    );
    if refuses_the_gateway(error.provider, status, &error.error_type, &error.error_code) {
        tracing::warn!(
            target_id = %target.label,
            provider = error.provider.as_str(),
            status,
            error_type = %error.error_type,
            error_code = %error.error_code,
            "target refused the gateway's credentials or configuration; check its auth and model"
        );
        lease.set_outcome(Outcome::Failure);
        let upstream = [error.error_type.as_str(), &*error.error_code]
            .into_iter()
            .filter(|name| !name.is_empty())
            .fold(status.to_string(), |told, name| format!("{told} {name}"));
        return ProxyError::Gateway(GatewayError::TargetRefused {
            target: error.target,
            upstream,
        });
    }
    lease.set_outcome(outcome_for_status(
        status,
        &error.error_type,
        error.retry_after,
    ));
    ProxyError::Upstream(error)
}

/// Records an attempt that got no answer: upstream time, the error metric, and a failure for the
/// target, unless the request could not be written for it (which says nothing of its health).
pub(crate) fn failed_attempt(
    failure: &AttemptFailure,
    lease: &mut Lease,
    sent_at: Instant,
    obs: &Obs,
) {
    match failure.kind {
        FailureKind::Request => {}
        FailureKind::Aborted => lease.set_outcome(Outcome::Abandoned),
        FailureKind::Error | FailureKind::Timeout | FailureKind::InvalidHeader => {
            lease.set_outcome(Outcome::Failure);
        }
    }
    let target = lease.target();
    obs.upstream_time(target, sent_at.elapsed());
    if let Some(kind) = failure.kind.metric() {
        metrics::upstream_error(target.metric_labels(), kind);
    }
}

/// Whether an attempt that failed by `criterion` may go on to another target. Every Bedrock call
/// is a POST: once any of it was sent, only `non_idempotent` allows that, as nginx's
/// `proxy_next_upstream` (a timed-out generation is likely still running, and billed).
fn may_fail_over(criteria: FailoverCriteria, criterion: FailoverCriterion, sent: bool) -> bool {
    criteria.contains(criterion) && (!sent || criteria.contains(FailoverCriterion::NonIdempotent))
}

impl AttemptFailure {
    /// A 2xx stream answer without a first event: the request was sent whole.
    fn no_event(no_event: NoEvent, target: &str) -> Self {
        let (kind, detail) = match no_event {
            NoEvent::Invalid(what) => (FailureKind::InvalidHeader, what),
            NoEvent::Broken(what) => (
                FailureKind::Error,
                format!("stream from {target} broke: {what}"),
            ),
            NoEvent::Silent => (
                FailureKind::Timeout,
                format!("no first event from {target}"),
            ),
            NoEvent::Aborted => (
                FailureKind::Aborted,
                format!("the gateway stopped while reading the stream from {target}"),
            ),
        };
        Self {
            kind,
            sent: true,
            detail,
        }
    }

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

    /// The gateway's error for a request whose last attempt failed this way.
    pub(crate) fn into_gateway_error(self, route: &str) -> GatewayError {
        match self.kind {
            FailureKind::Timeout => GatewayError::UpstreamTimeout(self.detail),
            FailureKind::Request => GatewayError::Internal(self.detail),
            FailureKind::Aborted => GatewayError::ShuttingDown,
            FailureKind::Error | FailureKind::InvalidHeader => GatewayError::AllTargetsFailed {
                route: route.to_owned(),
                last: self.describe(),
            },
        }
    }

    pub(crate) fn describe(&self) -> String {
        let what = match self.kind {
            FailureKind::Error => "connection failed",
            FailureKind::Timeout => "timed out",
            FailureKind::InvalidHeader => "invalid response head",
            FailureKind::Request => "could not write the upstream request",
            FailureKind::Aborted => "ended by the gateway's stop",
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
            Self::Request | Self::Aborted => None,
        }
    }

    /// The `kind` label of `upstream_errors_total`; none for a stop of the gateway's own.
    fn metric(self) -> Option<&'static str> {
        match self {
            Self::Error => Some("connect"),
            Self::Timeout => Some("timeout"),
            Self::InvalidHeader | Self::Request => Some("other"),
            Self::Aborted => None,
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
    let upstream = prepare(&target.config, operation, &request.params, &body)
        .map_err(|e| AttemptFailure::unsent(FailureKind::Request, e.to_string()))?;
    let method = operation.method();
    let has_body = method == "POST";
    let auth_headers = match &target.config.auth {
        TargetAuth::SigV4 { .. } => sign(target, request, &upstream, method, has_body)?,
        TargetAuth::Key(key) => vec![(key.name.as_str().into(), key.value.clone())],
        TargetAuth::None => Vec::new(),
    };
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
        .insert_header((ACCEPT, operation.accept().unwrap_or(&request.accept)));
    if has_body {
        outgoing = outgoing.insert_header((CONTENT_TYPE, request.content_type.as_str()));
    }
    for (name, value) in &upstream.headers {
        outgoing = outgoing.insert_header((*name, value.as_str()));
    }
    for (name, value) in auth_headers {
        outgoing = outgoing.insert_header((name.as_ref(), value));
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

/// SigV4 headers for the request, signed for the target's region with its loaded credentials.
fn sign(
    target: &TargetRuntime,
    request: &ProxyRequest,
    upstream: &Upstream,
    method: &'static str,
    has_body: bool,
) -> Result<Vec<(Cow<'static, str>, String)>, AttemptFailure> {
    let credentials = target.state.credentials.load_full().ok_or_else(|| {
        AttemptFailure::unsent(FailureKind::Error, "no credentials loaded yet".to_owned())
    })?;
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
    Ok(signed.headers().map(|(n, v)| (n.into(), v)).collect())
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
    let bedrock_error = header("x-amzn-errortype").map(|v| error_name(&v));
    // Azure's milliseconds first, then the standard header, then OpenAI's quota reset.
    let retry_after = parse_retry_after_ms(header("retry-after-ms").as_deref())
        .or_else(|| parse_retry_after(header("retry-after").as_deref()))
        .or_else(|| {
            ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
                .into_iter()
                .filter_map(|name| parse_ratelimit_reset(header(name).as_deref()?))
                .max()
        });
    // An unreadable body is empty, which no API's error shape matches: the client gets one
    // written in its own format.
    let body = read_body(response, MAX_ERROR_BODY, read_timeout)
        .await
        .unwrap_or_default();
    let provider = target.config.provider.provider();
    let (error_type, error_code) = match bedrock_error {
        Some(name) => (name, String::new()),
        None => named_error(provider, response.status().as_u16(), &body),
    };
    UpstreamError {
        provider,
        status: response.status(),
        error_type,
        error_code: error_code.into(),
        body,
        retry_after,
        target: target.label.clone(),
        attempts,
    }
}
