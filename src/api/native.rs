//! The Bedrock-native surface: `POST /model/{modelId}/{operation}`. The body goes upstream as is
//! (no re-serialisation), re-signed for the chosen target, with that target's model id.

use std::rc::Rc;

use actix_web::http::header::{ACCEPT, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use bytes::Bytes;
use futures_util::stream;
use percent_encoding::percent_decode_str;

use super::body::read_authenticated;
use super::quota::Quota;
use super::reply::{ATTEMPTS_HEADER, Reply, TARGET_HEADER, hash_key, session_key, stream_end};
use super::state::AppState;
use crate::error::{ApiFormat, GatewayError};
use crate::eventstream::exception_frame;
use crate::gateway::Selection;
use crate::observe::{self, Obs};
use crate::shutdown::AbortSignal;
use crate::translate::usage::{BedrockUsage, Usage};
use crate::upstream::client::UpstreamClients;
use crate::upstream::forward::{
    Delivered, ProxyError, ProxyRequest, UpstreamError, forward, read_success_body,
};
use crate::upstream::operation::Operation;
use crate::upstream::stream::{FrameReader, StreamFailure, StreamItem};

const CACHE_READ_HEADER: &str = "x-amzn-bedrock-cache-read-input-token-count";
const CACHE_WRITE_HEADER: &str = "x-amzn-bedrock-cache-write-input-token-count";

/// Response headers from Bedrock worth passing on (request id, token counts, model metadata).
const PASSED_RESPONSE_HEADERS: [&str; 6] = [
    "x-amzn-requestid",
    "x-amzn-bedrock-input-token-count",
    "x-amzn-bedrock-output-token-count",
    CACHE_READ_HEADER,
    CACHE_WRITE_HEADER,
    "x-amzn-bedrock-invocation-latency",
];

/// Splits the raw (still encoded) path into the decoded model id and the operation. Parsed by hand
/// because an ARN's `/` arrives as `%2F` and must not split the path.
pub fn parse_path(path: &str) -> Option<(String, Operation)> {
    let rest = path.strip_prefix("/model/")?;
    let (encoded_id, suffix) = rest.rsplit_once('/')?;
    let operation = Operation::from_path_suffix(suffix)?;
    let model = percent_decode_str(encoded_id).decode_utf8().ok()?;
    (!model.is_empty()).then(|| (model.into_owned(), operation))
}

pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let obs = Obs::start(&req);
    let (mut response, usage) = match proxy(&req, payload, &state, &obs).await {
        Ok(Reply::Full(response, usage)) => (response, usage),
        Ok(Reply::Stream(mut response)) => {
            // The stream finishes the record when it ends; the head leaves now.
            observe::stamp(&mut response, &obs.id, obs.head_sent());
            return response;
        }
        Err(ProxyError::Gateway(error)) => {
            obs.set_error_kind(error.kind());
            (error.respond(ApiFormat::Bedrock), None)
        }
        Err(ProxyError::Upstream(error)) => {
            obs.set_error_kind("upstream");
            (upstream_error_response(&error), None)
        }
    };
    observe::stamp(&mut response, &obs.id, obs.overhead());
    obs.finish(response.status().as_u16(), usage);
    response
}

async fn proxy(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    obs: &Rc<Obs>,
) -> Result<Reply, ProxyError> {
    let gateway = state.gateway();
    let (caller, body) = read_authenticated(req, payload, &gateway).await?;
    obs.set_consumer(caller.consumer());
    let (model, operation) =
        parse_path(req.uri().path()).ok_or_else(|| GatewayError::PathNotFound {
            method: req.method().to_string(),
            path: req.path().to_owned(),
        })?;
    let Selection {
        route,
        pinned_model,
    } = gateway
        .resolve(&model)
        .ok_or_else(|| GatewayError::UnknownModel(model.clone()))?;
    obs.set_route(&route.name);
    let header = |name, default: &str| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or(default)
            .to_owned()
    };
    let quota = Quota::for_request(&gateway, route, caller.consumer());
    let tokens = quota.tokens(&body);
    let consumer_reservation = quota.admit_consumer([tokens]).await?;
    let request = ProxyRequest {
        hash_key: hash_key(req, route),
        pinned_model,
        session: session_key(req, route),
        operation,
        tokens,
        consumer_reservation,
        body,
        content_type: header(CONTENT_TYPE, "application/json"),
        accept: header(ACCEPT, "application/json"),
        per_target: None,
    };
    let clients = req
        .app_data::<UpstreamClients>()
        .ok_or_else(|| GatewayError::Internal("worker has no upstream client".into()))?;
    let client = clients.get(route.balancer_config.connect_timeout);
    let delivered = forward(route, &client, &request, obs).await?;
    let read_timeout = route.balancer_config.read_timeout;
    let max_body = gateway.config.server.max_response_body_size.get();
    if operation.is_stream() {
        Ok(Reply::Stream(stream_response(
            delivered,
            read_timeout,
            Rc::clone(obs),
            state.abort_signal(),
        )))
    } else {
        full_response(delivered, read_timeout, max_body, obs).await
    }
}

fn response_head(delivered: &Delivered) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(delivered.response.status());
    for name in PASSED_RESPONSE_HEADERS {
        if let Some(value) = delivered.response.headers().get(name) {
            builder.insert_header((name, value.clone()));
        }
    }
    if let Some(value) = delivered.response.headers().get(CONTENT_TYPE) {
        builder.insert_header((CONTENT_TYPE, value.clone()));
    }
    builder.insert_header((TARGET_HEADER, delivered.lease.target().label.as_str()));
    builder.insert_header((ATTEMPTS_HEADER, delivered.attempts.to_string()));
    builder
}

async fn full_response(
    mut delivered: Delivered,
    read_timeout: std::time::Duration,
    max_body: usize,
    obs: &Obs,
) -> Result<Reply, ProxyError> {
    let mut builder = response_head(&delivered);
    let body = read_success_body(&mut delivered, read_timeout, max_body, obs).await?;
    let usage = usage_of(&delivered, &body).map(|u| {
        delivered
            .lease
            .record_usage_u64(u.quota_input(), u.output_tokens);
        obs.cache_tokens(u.cache_read_tokens, u.cache_write_tokens);
        (u.input_tokens, u.output_tokens)
    });
    Ok(Reply::Full(builder.body(body), usage))
}

/// Tokens from Bedrock's answer: Converse's `usage`, else InvokeModel's token-count headers
/// (cache reads and writes included in the input, as on the other surfaces).
fn usage_of(delivered: &Delivered, body: &[u8]) -> Option<Usage> {
    /// Every field of Bedrock's usage has a default, so a Claude InvokeModel body (whose `usage`
    /// is spelt in snake case) would parse as zeros; Converse's own `stopReason` tells them apart.
    #[derive(serde::Deserialize)]
    struct WithUsage {
        usage: BedrockUsage,
        #[serde(rename = "stopReason")]
        _stop_reason: serde::de::IgnoredAny,
    }
    if let Ok(WithUsage { usage, .. }) = serde_json::from_slice::<WithUsage>(body) {
        return Some(Usage::from(&usage));
    }
    let count = |name: &str| {
        delivered
            .response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let input = count("x-amzn-bedrock-input-token-count")?;
    let cache_read_tokens = count(CACHE_READ_HEADER).unwrap_or(0);
    let cache_write_tokens = count(CACHE_WRITE_HEADER).unwrap_or(0);
    Some(Usage {
        input_tokens: input + cache_read_tokens + cache_write_tokens,
        output_tokens: count("x-amzn-bedrock-output-token-count").unwrap_or(0),
        cache_read_tokens,
        cache_write_tokens,
    })
}

/// Passes each verified frame on as it arrives. A broken or corrupt upstream ends with an
/// exception frame the AWS SDKs raise, never a torn or hanging connection.
fn stream_response(
    delivered: Delivered,
    idle_timeout: std::time::Duration,
    obs: Rc<Obs>,
    abort: AbortSignal,
) -> HttpResponse {
    let mut builder = response_head(&delivered);
    let sent_at = delivered.sent_at;
    obs.streaming_from(sent_at);
    let reader = FrameReader::new(delivered.response, delivered.lease, idle_timeout, abort);
    let body = stream::unfold(Some((reader, obs)), move |mut state| async move {
        // Borrowed in place, not moved out: a moved-out copy would be a second slot for the whole
        // state in this future, which every open stream holds.
        let (reader, obs) = state.as_mut()?;
        match reader.next().await {
            Some(StreamItem::Frame(raw)) => {
                obs.first_token(sent_at.elapsed());
                Some((Ok::<Bytes, actix_web::Error>(raw.bytes), state))
            }
            Some(StreamItem::Failed(failure)) => {
                obs.set_error_kind("stream_error");
                stream_end(reader, obs, sent_at);
                let (StreamFailure::Broken(message) | StreamFailure::Corrupt(message)) = &failure;
                Some((
                    Ok(exception_frame("internalServerException", message)),
                    None,
                ))
            }
            None => {
                stream_end(reader, obs, sent_at);
                None
            }
        }
    });
    builder.streaming(body)
}

fn upstream_error_response(error: &UpstreamError) -> HttpResponse {
    let mut builder = HttpResponse::build(error.status);
    builder.insert_header((CONTENT_TYPE, "application/json"));
    if !error.error_type.is_empty() {
        builder.insert_header(("x-amzn-errortype", error.error_type.as_str()));
    }
    if let Some(retry_after) = error.retry_after {
        builder.insert_header((RETRY_AFTER, retry_after.as_secs().to_string()));
    }
    builder.insert_header((TARGET_HEADER, error.target.as_str()));
    builder.insert_header((ATTEMPTS_HEADER, error.attempts.to_string()));
    builder.body(error.body.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_colons_and_arn_slashes_in_the_model_id() {
        assert_eq!(
            parse_path("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"),
            Some((
                "anthropic.claude-3-haiku-20240307-v1:0".into(),
                Operation::Converse
            ))
        );
        assert_eq!(
            parse_path(
                "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.x/invoke-with-response-stream"
            ),
            Some((
                "arn:aws:bedrock:us-east-1:123:inference-profile/us.x".into(),
                Operation::InvokeWithResponseStream
            ))
        );
        assert_eq!(parse_path("/model/x/explode"), None);
        assert_eq!(parse_path("/model//converse"), None);
    }
}
