//! The Bedrock-native surface: every Bedrock Runtime and Agent Runtime path (see
//! [`super::operations`]). The body goes upstream as is (no re-serialisation, unless an id in it
//! must change for the target), re-signed for the chosen target. Model operations, StartAsyncInvoke
//! and ApplyGuardrail go to a route's targets, balanced and failed over; the agent-runtime
//! operations to the `bedrock/agent` route's; GetAsyncInvoke and ListAsyncInvokes to regions
//! ([`super::async_invoke`]). Operations the gateway does not serve get a 501 naming them.

use std::rc::Rc;

use super::body::read_authenticated;
use super::operations::{self, Handling};
use super::quota::Quota;
use super::reply::{
    ATTEMPTS_HEADER, Reply, TARGET_HEADER, hash_key, session_key, settle_usage, stream_end,
};
use super::state::AppState;
use super::{async_invoke, fallback};
use crate::config::{INVOKE_HEADERS, RouteType};
use crate::error::{ApiFormat, GatewayError};
use crate::eventstream::exception_frame;
use crate::gateway::{Gateway, RouteRuntime, Selection};
use crate::limits::estimate::BodyTokens;
use crate::observe::{self, Obs};
use crate::shutdown::AbortSignal;
use crate::translate::bedrock_error_message;
use crate::translate::usage::{BedrockUsage, Usage};
use crate::upstream::classify::retry_after_secs;
use crate::upstream::client::UpstreamClients;
use crate::upstream::forward::{
    Delivered, ProxyError, ProxyRequest, UpstreamError, forward, read_success_body,
};
use crate::upstream::operation::Operation;
use crate::upstream::request::Params;
use crate::upstream::stream::{FrameReader, StreamFailure, StreamItem};
use actix_web::http::header::{ACCEPT, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use bytes::Bytes;
use futures_util::stream;

const CACHE_READ_HEADER: &str = "x-amzn-bedrock-cache-read-input-token-count";
const CACHE_WRITE_HEADER: &str = "x-amzn-bedrock-cache-write-input-token-count";

/// Response headers from Bedrock worth passing on (request id, token counts, model metadata, the
/// output members the services' models put in headers).
const PASSED_RESPONSE_HEADERS: [&str; 10] = [
    "x-amzn-requestid",
    "x-amzn-bedrock-input-token-count",
    "x-amzn-bedrock-output-token-count",
    CACHE_READ_HEADER,
    CACHE_WRITE_HEADER,
    "x-amzn-bedrock-invocation-latency",
    "x-amzn-bedrock-performanceconfig-latency",
    "x-amzn-bedrock-service-tier",
    "x-amzn-bedrock-content-type",
    "x-amzn-bedrock-knowledge-base-session-id",
];

pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(matched) = operations::find(req.method(), req.uri().path()) else {
        return fallback::not_found(req).await;
    };
    let obs = Obs::start(&req);
    let served = match matched.spec.handling {
        Handling::Served(operation) => {
            let call = Call {
                operation,
                name: matched.spec.name,
                labels: matched.labels,
            };
            proxy(&req, payload, &state, &obs, call).await
        }
        Handling::Refused(why) => Err(ProxyError::Gateway(GatewayError::NotServed {
            operation: matched.spec.name,
            why,
        })),
    };
    let (mut response, usage) = match served {
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

/// A served operation as the client called it.
struct Call {
    operation: Operation,
    /// The AWS operation name, for errors.
    name: &'static str,
    /// The path labels, decoded, in the order of the operation's URI.
    labels: Vec<String>,
}

async fn proxy(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    obs: &Rc<Obs>,
    call: Call,
) -> Result<Reply, ProxyError> {
    let Call {
        operation,
        name,
        labels,
    } = call;
    let gateway = state.gateway();
    let (caller, body) = read_authenticated(req, payload, &gateway).await?;
    obs.set_consumer(caller.consumer());
    let clients = req
        .app_data::<UpstreamClients>()
        .ok_or_else(|| GatewayError::Internal("worker has no upstream client".into()))?;
    let header = |name, default: &str| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or(default)
            .to_owned()
    };
    let content_type = header(CONTENT_TYPE, "application/json");
    let accept = header(ACCEPT, "application/json");
    let max_body = gateway.config.server.max_response_body_size.get();
    let mut labels = labels.into_iter();
    let mut params = Params::default();
    let Selection {
        route,
        pinned_model,
    } = match operation {
        Operation::GetAsyncInvoke | Operation::ListAsyncInvokes => {
            Quota::consumer_only(&gateway, caller.consumer())
                .admit_consumer([BodyTokens::NONE])
                .await?;
            let request = async_invoke::Request {
                arn: labels.next(),
                query: req.uri().query().unwrap_or_default(),
                accept,
                max_body,
            };
            return async_invoke::serve(&gateway, clients, request, obs).await;
        }
        Operation::Converse
        | Operation::ConverseStream
        | Operation::Invoke
        | Operation::InvokeWithResponseStream
        | Operation::CountTokens => {
            params.invoke_headers = invoke_headers(req);
            model_route(&gateway, labels.next().unwrap_or_default())?
        }
        Operation::StartAsyncInvoke => model_route(&gateway, async_model(&body)?)?,
        Operation::ApplyGuardrail => {
            params.guardrail = labels.next().zip(labels.next());
            typed_route(&gateway, RouteType::Guardrail, name)?.into()
        }
        Operation::Retrieve => {
            params.knowledge_base = labels.next();
            typed_route(&gateway, RouteType::Agent, name)?.into()
        }
        Operation::Rerank => typed_route(&gateway, RouteType::Agent, name)?.into(),
        Operation::RetrieveAndGenerate | Operation::RetrieveAndGenerateStream => {
            // The knowledge base may be mapped in the body, which must then be readable.
            json_object(&body)?;
            typed_route(&gateway, RouteType::Agent, name)?.into()
        }
        // Other providers' calls, which no Bedrock path names.
        Operation::Messages
        | Operation::MessagesStream
        | Operation::ChatCompletions
        | Operation::ChatCompletionsStream
        | Operation::Completions
        | Operation::CompletionsStream
        | Operation::Embeddings => {
            return Err(GatewayError::Internal(format!(
                "{operation:?} is not a Bedrock operation"
            ))
            .into());
        }
    };
    obs.set_route(&route.name);
    let quota = Quota::for_request(&gateway, route, caller.consumer());
    // Only generation counts against token limits; the rest costs a request.
    let tokens = if operation.generates() {
        quota.tokens(&body)
    } else {
        BodyTokens::NONE
    };
    let consumer_reservation = quota.admit_consumer([tokens]).await?;
    let request = ProxyRequest {
        hash_key: hash_key(req, route),
        pinned_model,
        session: session_key(req, route),
        operation,
        params,
        tokens,
        consumer_reservation,
        body,
        content_type,
        accept,
        per_target: None,
        abort: Some(state.abort_signal()),
    };
    let client = clients.get(route.balancer_config.connect_timeout);
    let delivered = forward(route, &client, &request, obs).await?;
    let read_timeout = route.balancer_config.read_timeout;
    if operation.is_stream() {
        Ok(Reply::Stream(stream_response(
            delivered,
            operation,
            read_timeout,
            Rc::clone(obs),
            state.abort_signal(),
        )))
    } else {
        full_response(delivered, read_timeout, max_body, obs).await
    }
}

fn model_route(gateway: &Gateway, model: String) -> Result<Selection<'_>, GatewayError> {
    gateway
        .resolve(&model)
        .ok_or(GatewayError::UnknownModel(model))
}

fn typed_route<'g>(
    gateway: &'g Gateway,
    route_type: RouteType,
    operation: &'static str,
) -> Result<&'g RouteRuntime, GatewayError> {
    gateway
        .route_of_type(route_type)
        .ok_or(GatewayError::NoRouteOfType {
            operation,
            route_type: route_type.as_str(),
        })
}

/// The client's values of the headers Bedrock reads on InvokeModel, the only client `x-amz*`
/// headers that go upstream.
fn invoke_headers(req: &HttpRequest) -> Vec<(&'static str, String)> {
    INVOKE_HEADERS
        .iter()
        .filter_map(|name| {
            let value = req.headers().get(*name)?.to_str().ok()?;
            Some((*name, value.to_owned()))
        })
        .collect()
}

fn json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, GatewayError> {
    serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_request(format!("the body must be a JSON object: {e}")))
}

/// StartAsyncInvoke names its model in the body.
fn async_model(body: &[u8]) -> Result<String, GatewayError> {
    match json_object(body)?.remove("modelId") {
        Some(serde_json::Value::String(model)) if !model.is_empty() => Ok(model),
        _ => Err(GatewayError::bad_request(
            "StartAsyncInvoke needs a modelId string in the body",
        )),
    }
}

pub(crate) fn response_head(delivered: &Delivered) -> HttpResponseBuilder {
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

pub(crate) async fn full_response(
    mut delivered: Delivered,
    read_timeout: std::time::Duration,
    max_body: usize,
    obs: &Obs,
) -> Result<Reply, ProxyError> {
    let mut builder = response_head(&delivered);
    let body = read_success_body(&mut delivered, read_timeout, max_body, obs).await?;
    let usage = usage_of(&delivered, &body).map(|u| settle_usage(&mut delivered, obs, u));
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
    operation: Operation,
    idle_timeout: std::time::Duration,
    obs: Rc<Obs>,
    abort: AbortSignal,
) -> HttpResponse {
    let mut builder = response_head(&delivered);
    let sent_at = delivered.sent_at;
    obs.streaming_from(sent_at);
    let reader = FrameReader::new(delivered.response, delivered.lease, idle_timeout, abort);
    let reader = if operation == Operation::RetrieveAndGenerateStream {
        reader.without_final_event()
    } else {
        reader
    };
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
                stream_end(reader.upstream(), obs, sent_at);
                let (StreamFailure::Broken(message) | StreamFailure::Corrupt(message)) = &failure;
                Some((
                    Ok(exception_frame("internalServerException", message)),
                    None,
                ))
            }
            None => {
                stream_end(reader.upstream(), obs, sent_at);
                None
            }
        }
    });
    builder.streaming(body)
}

/// Bedrock's error as it came when its body is Bedrock's `{"message"}`; any other body (a proxy's
/// HTML page, an unreadable one) is replaced by one naming the status.
pub(crate) fn upstream_error_response(error: &UpstreamError) -> HttpResponse {
    let mut builder = HttpResponse::build(error.status);
    builder.insert_header((CONTENT_TYPE, "application/json"));
    if !error.error_type.is_empty() {
        builder.insert_header(("x-amzn-errortype", error.error_type.as_str()));
    }
    if let Some(retry_after) = error.retry_after {
        builder.insert_header((RETRY_AFTER, retry_after_secs(retry_after).to_string()));
    }
    builder.insert_header((TARGET_HEADER, error.target.as_str()));
    builder.insert_header((ATTEMPTS_HEADER, error.attempts.to_string()));
    if bedrock_error_message(&error.body).is_some() {
        builder.body(error.body.clone())
    } else {
        let message = format!(
            "the upstream returned {} without a Bedrock error body",
            error.status
        );
        builder.body(serde_json::json!({ "message": message }).to_string())
    }
}
