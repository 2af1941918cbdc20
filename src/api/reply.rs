//! What every surface's handler shares around forwarding: the consistent-hashing and session
//! keys, a request each target shapes for itself, the response headers that say which target
//! served it, reading and settling a whole answer, and how a reply is finished.

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;

use super::quota::Quota;
use super::state::AppState;
use crate::error::GatewayError;
use crate::gateway::{Gateway, RouteRuntime, Selection};
use crate::limits::estimate::BodyTokens;
use crate::observe::Obs;
use crate::translate::Usage;
use crate::upstream::forward::{Delivered, PerTarget, ProxyError, ProxyRequest, read_success_body};
use crate::upstream::operation::Operation;
use crate::upstream::pick::some_target_takes;
use crate::upstream::request::Params;
use crate::upstream::stream_body::StreamBody;

pub const TARGET_HEADER: &str = "x-bedrock-balancer-target";
pub const ATTEMPTS_HEADER: &str = "x-bedrock-balancer-attempts";

/// The value of the route's `hash_on_header`, the key for consistent hashing.
pub fn hash_key(req: &HttpRequest, route: &RouteRuntime) -> Option<String> {
    let name = route.balancer_config.hash_on_header.as_deref()?;
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The session the request names: the value of the first of the route's session headers it
/// carries (none when the route has session affinity off).
pub fn session_key(req: &HttpRequest, route: &RouteRuntime) -> Option<String> {
    let affinity = route.balancer_config.session_affinity.as_ref()?;
    affinity.headers.iter().find_map(|name| {
        req.headers()
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
}

/// A request whose operation and body each target shapes for itself, once the consumer's quota
/// admitted `tokens`.
pub(crate) async fn shaped_request(
    req: &HttpRequest,
    selection: &Selection<'_>,
    quota: &Quota,
    tokens: BodyTokens,
    stream: bool,
    params: Params,
    per_target: Box<dyn PerTarget>,
) -> Result<ProxyRequest, GatewayError> {
    let route = selection.route;
    some_target_takes(
        route.balancer.roster(),
        selection.pinned_model.as_deref(),
        &*per_target,
    )?;
    let consumer_reservation = quota.admit_consumer([tokens]).await?;
    Ok(ProxyRequest {
        hash_key: hash_key(req, route),
        pinned_model: selection.pinned_model.clone(),
        session: session_key(req, route),
        params,
        tokens,
        consumer_reservation,
        // Every target gets its own shape; these two are never sent as they are.
        operation: Operation::Invoke,
        body: Bytes::new(),
        content_type: "application/json".to_owned(),
        accept: if stream {
            "application/vnd.amazon.eventstream".to_owned()
        } else {
            "application/json".to_owned()
        },
        per_target: Some(per_target),
        abort: req
            .app_data::<web::Data<AppState>>()
            .map(|state| state.abort_signal()),
    })
}

/// A whole answer, read within the route's read timeout and the server's body size cap.
pub(crate) async fn read_answer(
    delivered: &mut Delivered,
    route: &RouteRuntime,
    gateway: &Gateway,
    obs: &Obs,
) -> Result<Bytes, ProxyError> {
    read_success_body(
        delivered,
        route.balancer_config.read_timeout,
        gateway.config.server.max_response_body_size.get(),
        obs,
    )
    .await
}

/// Settles limits on a whole answer's usage and tells the request record; returns (every prompt
/// token, output) for the record.
pub(crate) fn settle_usage(delivered: &mut Delivered, obs: &Obs, usage: Usage) -> (u64, u64) {
    delivered
        .lease
        .record_usage_u64(usage.quota_input(), usage.output_tokens);
    obs.cache_tokens(usage.cache_read_tokens, usage.cache_write_tokens);
    (usage.input_tokens, usage.output_tokens)
}

/// A response ready to send (with the usage Bedrock reported), or a stream that records itself.
pub(crate) enum Reply {
    Full(HttpResponse, Option<(u64, u64)>),
    Stream(HttpResponse),
}

/// The stream is over: its upstream time, tokens and the request's record.
pub fn stream_end(upstream: &StreamBody, obs: &Obs, sent_at: std::time::Instant) {
    obs.upstream_time(upstream.lease().target(), sent_at.elapsed());
    let summary = upstream.summary();
    obs.cache_tokens(summary.cache_read_tokens, summary.cache_write_tokens);
    obs.finish(200, Some((summary.input_tokens, summary.output_tokens)));
}
