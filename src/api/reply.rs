//! What every surface's handler shares once a request has been forwarded: the response headers
//! that say which target served it, the consistent-hashing and session keys, and how a reply is
//! finished.

use actix_web::{HttpRequest, HttpResponse};

use crate::gateway::RouteRuntime;
use crate::observe::Obs;
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
