//! The Anthropic Messages surface: `POST /v1/messages` (whole and streamed),
//! `POST /v1/messages/count_tokens`, and the model list in Anthropic's shape.
//!
//! The target picked decides the upstream call: a Claude target gets InvokeModel (or
//! InvokeModelWithResponseStream, or CountTokens) with the client's body kept as sent, any other
//! model Converse. Translation is in [`crate::translate`]; this file routes, forwards, streams and
//! renders errors in Anthropic's shape.

use std::cell::OnceCell;
use std::rc::Rc;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::stream;
use serde_json::json;

use super::body::read_authenticated;
use super::native::{Reply, TARGET_HEADER, hash_key, stream_end};
use super::openai::{client_for, json_response, response_id, route_for, success_head};
use super::quota::Quota;
use super::state::AppState;
use crate::config::{RouteType, Target};
use crate::error::{ApiFormat, GatewayError};
use crate::eventstream::Frame;
use crate::gateway::Gateway;
use crate::limits::estimate::BodyTokens;
use crate::metrics::{self, Obs};
use crate::shutdown::AbortSignal;
use crate::translate::anthropic::{MessagesUsage, error_body};
use crate::translate::messages_bedrock::{
    self, MessagesHead, count_tokens_body, messages_head, split_betas, write_stream_error,
};
use crate::translate::messages_converse::{converse_request, messages_response};
use crate::translate::messages_stream::{self, MessagesStreamTranslator};
use crate::translate::{self, TranslateError};
use crate::upstream::forward::{
    Delivered, PerTarget, ProxyError, ProxyRequest, forward, read_success_body,
};
use crate::upstream::operation::Operation;
use crate::upstream::stream::{FrameReader, StreamFailure, StreamItem};

/// The header Anthropic clients send their beta flags in.
const BETA_HEADER: &str = "anthropic-beta";
/// The header every Anthropic client sends; its presence asks `GET /v1/models` for Anthropic's
/// list shape.
pub const VERSION_HEADER: &str = "anthropic-version";

/// Everything that can end a Messages request early, rendered in Anthropic's error shape.
enum Failure {
    Translate(TranslateError),
    Proxy(ProxyError),
}

impl From<TranslateError> for Failure {
    fn from(e: TranslateError) -> Self {
        Self::Translate(e)
    }
}

impl From<ProxyError> for Failure {
    fn from(e: ProxyError) -> Self {
        Self::Proxy(e)
    }
}

impl From<GatewayError> for Failure {
    fn from(e: GatewayError) -> Self {
        Self::Proxy(ProxyError::Gateway(e))
    }
}

impl Failure {
    fn kind(&self) -> &'static str {
        match self {
            Self::Translate(_) => "bad_request",
            Self::Proxy(ProxyError::Gateway(e)) => e.kind(),
            Self::Proxy(ProxyError::Upstream(_)) => "upstream",
        }
    }

    fn respond(self) -> HttpResponse {
        match self {
            Self::Translate(e) => json_response(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                e.to_anthropic_body(),
            ),
            Self::Proxy(ProxyError::Gateway(e)) => e.respond(ApiFormat::Anthropic),
            Self::Proxy(ProxyError::Upstream(e)) => {
                let message = translate::bedrock_error_message(&e.body)
                    .unwrap_or_else(|| format!("upstream returned {}", e.status));
                let (status, error_type) =
                    translate::anthropic_error_for_bedrock(e.status.as_u16(), Some(&e.error_type));
                let mut response = json_response(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                    error_body(error_type, &message),
                );
                let headers = response.headers_mut();
                if let Some(after) = e.retry_after
                    && let Ok(value) = after.as_secs().to_string().parse()
                {
                    headers.insert(RETRY_AFTER, value);
                }
                if let Ok(value) = e.target.parse() {
                    headers.insert(
                        actix_web::http::header::HeaderName::from_static(TARGET_HEADER),
                        value,
                    );
                }
                response
            }
        }
    }
}

fn reply(obs: &Obs, result: Result<Reply, Failure>) -> HttpResponse {
    let (mut response, usage) = match result {
        Ok(Reply::Full(response, usage)) => (response, usage),
        Ok(Reply::Stream(mut response)) => {
            metrics::stamp(&mut response, &obs.id, obs.head_sent());
            return response;
        }
        Err(failure) => {
            obs.set_error_kind(failure.kind());
            (failure.respond(), None)
        }
    };
    metrics::stamp(&mut response, &obs.id, obs.overhead());
    obs.finish(response.status().as_u16(), usage);
    response
}

/// What a Messages request becomes for each kind of target.
struct MessagesShape {
    body: Bytes,
    head: MessagesHead,
    /// The `anthropic-beta` header values, as sent.
    header_betas: Vec<String>,
    count_tokens: bool,
    /// Built once, by the first non-Claude target picked.
    converse: OnceCell<Result<Bytes, TranslateError>>,
}

impl MessagesShape {
    fn claude_body(&self, target: &Target) -> Result<Bytes, TranslateError> {
        let requested = self
            .header_betas
            .iter()
            .chain(&self.head.body_betas)
            .map(String::as_str);
        let betas = split_betas(requested, &target.anthropic_betas);
        if betas.dropped > 0 {
            metrics::betas_dropped(&target.label(), betas.dropped as u64);
            tracing::debug!(target_id = %target.label(), dropped = betas.dropped, "beta flags outside the target's anthropic_betas dropped");
        }
        let body = if self.count_tokens {
            count_tokens_body(&self.body, &self.head, &betas.kept)?
        } else {
            messages_bedrock::bedrock_body(&self.body, &betas.kept)?
        };
        Ok(Bytes::from(body))
    }
}

fn bad_request(e: TranslateError) -> GatewayError {
    GatewayError::BadRequest {
        param: e.param().map(str::to_owned),
        message: e.to_string(),
    }
}

impl PerTarget for MessagesShape {
    fn prepare(&self, target: &Target) -> Result<(Operation, Bytes), GatewayError> {
        if target.speaks_anthropic() {
            let operation = match (self.count_tokens, self.head.stream) {
                (true, _) => Operation::CountTokens,
                (false, true) => Operation::InvokeWithResponseStream,
                (false, false) => Operation::Invoke,
            };
            return Ok((operation, self.claude_body(target).map_err(bad_request)?));
        }
        if self.count_tokens {
            return Err(GatewayError::BadRequest {
                message: format!(
                    "model '{}' cannot count tokens: Bedrock counts tokens for Claude models only",
                    self.head.model
                ),
                param: Some("model".to_owned()),
            });
        }
        let body = self
            .converse
            .get_or_init(|| converse_request(&self.body).map(Bytes::from))
            .clone()
            .map_err(bad_request)?;
        let operation = if self.head.stream {
            Operation::ConverseStream
        } else {
            Operation::Converse
        };
        Ok((operation, body))
    }
}

fn header_values(req: &HttpRequest, name: &str) -> Vec<String> {
    req.headers()
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

/// `POST /v1/messages`.
pub async fn messages(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let obs = Obs::start(&req);
    let result = messages_inner(&req, payload, &state, &obs, false).await;
    reply(&obs, result)
}

/// `POST /v1/messages/count_tokens`: Bedrock's CountTokens, never counted against token limits.
pub async fn count_tokens(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let obs = Obs::start(&req);
    let result = messages_inner(&req, payload, &state, &obs, true).await;
    reply(&obs, result)
}

async fn messages_inner(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    obs: &Rc<Obs>,
    count: bool,
) -> Result<Reply, Failure> {
    let gateway = state.gateway();
    let (caller, body) = read_authenticated(req, payload, &gateway).await?;
    obs.set_consumer(caller.consumer());
    let mut head = messages_head(&body)?;
    if count {
        // A count answers at once: there is nothing to stream.
        head.stream = false;
    }
    let route = route_for(&gateway, &head.model, RouteType::Chat)?;
    obs.set_route(&route.name);
    let client = client_for(req, route)?;
    let quota = Quota::for_request(&gateway, route, caller.consumer());
    let tokens = if count {
        BodyTokens {
            input: 0,
            max_output: Some(0),
        }
    } else {
        quota.tokens(&body)
    };
    let consumer_reservation = quota.admit_consumer([tokens]).await?;
    let stream = head.stream;
    let model = head.model.clone();
    let request = ProxyRequest {
        hash_key: hash_key(req, route),
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
        per_target: Some(Box::new(MessagesShape {
            body,
            head,
            header_betas: header_values(req, BETA_HEADER),
            count_tokens: count,
            converse: OnceCell::new(),
        })),
    };
    let mut delivered = forward(route, &client, &request, obs).await?;
    let claude = delivered.lease.target().config.speaks_anthropic();
    if stream {
        let events = if claude {
            Events::Claude
        } else {
            Events::Converse(MessagesStreamTranslator::new(model, response_id("msg")))
        };
        return Ok(Reply::Stream(sse_response(
            delivered,
            route.balancer_config.read_timeout,
            events,
            Rc::clone(obs),
            state.abort_signal(),
        )));
    }
    let upstream = read_success_body(
        &mut delivered,
        route.balancer_config.read_timeout,
        gateway.config.server.max_response_body_size.get(),
        obs,
    )
    .await?;
    if count {
        let body = messages_bedrock::count_tokens_response(&upstream)?;
        let response = success_head(&delivered)
            .insert_header((CONTENT_TYPE, "application/json"))
            .body(body);
        return Ok(Reply::Full(response, None));
    }
    let (body, usage) = if claude {
        let usage = messages_bedrock::response_usage(&upstream).unwrap_or_default();
        (upstream, usage)
    } else {
        let (body, usage) = messages_response(&upstream, &model, &response_id("msg"))?;
        (Bytes::from(body), usage)
    };
    let recorded = record_usage(&mut delivered, obs, usage);
    let response = success_head(&delivered)
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(body);
    Ok(Reply::Full(response, Some(recorded)))
}

/// Settles limits and tells the request record; returns (prompt tokens with cache, output).
fn record_usage(delivered: &mut Delivered, obs: &Obs, usage: MessagesUsage) -> (u64, u64) {
    let read = usage.cache_read_input_tokens;
    let write = usage.cache_creation_input_tokens;
    // Bedrock's quota settles without cache reads.
    delivered
        .lease
        .record_usage_u64(usage.input_tokens + write, usage.output_tokens);
    obs.cache_tokens(read, write);
    (usage.input_tokens + read + write, usage.output_tokens)
}

/// How upstream events become Anthropic stream events.
enum Events {
    /// Claude's own events, unwrapped from Bedrock's `chunk` frames.
    Claude,
    Converse(MessagesStreamTranslator),
}

impl Events {
    fn on_event(
        &mut self,
        event_type: &str,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        match self {
            Self::Claude if event_type == "chunk" => messages_bedrock::chunk_to_sse(payload, out),
            // InvokeModel streams carry nothing else a client needs.
            Self::Claude => Ok(()),
            Self::Converse(t) => t.on_event(event_type, payload, out),
        }
    }
}

/// Streams Anthropic SSE as each upstream frame arrives. An upstream exception, break or timeout
/// ends the stream with Anthropic's `event: error`, never a torn connection.
fn sse_response(
    delivered: Delivered,
    read_timeout: std::time::Duration,
    events: Events,
    obs: Rc<Obs>,
    abort: AbortSignal,
) -> HttpResponse {
    let mut builder = success_head(&delivered);
    builder
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"));
    let sent_at = delivered.sent_at;
    obs.streaming_from(sent_at);
    let reader = FrameReader::new(delivered.response, delivered.lease, read_timeout, abort);
    let state = Some((reader, events, obs));
    let body = stream::unfold(state, move |mut state| async move {
        // Borrowed in place, not moved out: see `openai::sse_response`.
        let (reader, events, obs) = state.as_mut()?;
        let mut out = Vec::new();
        loop {
            let item = reader.next().await;
            let ended = |reader: &FrameReader, obs: &Obs, error: bool| {
                if error {
                    obs.set_error_kind("stream_error");
                }
                stream_end(reader, obs, sent_at);
            };
            match item {
                Some(StreamItem::Frame(raw)) => {
                    obs.first_token(sent_at.elapsed());
                    match raw.frame {
                        Frame::Event {
                            event_type,
                            payload,
                        } => {
                            if let Err(e) = events.on_event(&event_type, &payload, &mut out) {
                                ended(reader, obs, true);
                                write_stream_error(&mut out, "api_error", &e.to_string());
                                return Some((
                                    Ok::<Bytes, actix_web::Error>(Bytes::from(out)),
                                    None,
                                ));
                            }
                        }
                        Frame::Exception {
                            exception_type,
                            payload,
                        } => {
                            let message = translate::bedrock_error_message(&payload)
                                .unwrap_or_else(|| exception_type.clone());
                            messages_stream::on_exception(&exception_type, &message, &mut out);
                            ended(reader, obs, true);
                            return Some((Ok(Bytes::from(out)), None));
                        }
                        Frame::Error { code, message } => {
                            messages_stream::on_exception(&code, &message, &mut out);
                            ended(reader, obs, true);
                            return Some((Ok(Bytes::from(out)), None));
                        }
                    }
                }
                Some(StreamItem::Failed(StreamFailure::Broken(m) | StreamFailure::Corrupt(m))) => {
                    ended(reader, obs, true);
                    write_stream_error(&mut out, "api_error", &m);
                    return Some((Ok(Bytes::from(out)), None));
                }
                None => {
                    ended(reader, obs, false);
                    return None;
                }
            }
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), state));
            }
        }
    });
    builder.streaming(body)
}

/// `GET /v1/models` for a client that sent `anthropic-version`: the routes in Anthropic's list
/// shape. Routes are configuration, not releases, so `created_at` is the epoch.
pub fn models_page(gateway: &Gateway) -> HttpResponse {
    let data: Vec<_> = gateway
        .routes()
        .iter()
        .map(|r| {
            json!({"type": "model", "id": r.name, "display_name": r.name,
                   "created_at": "1970-01-01T00:00:00Z"})
        })
        .collect();
    let first = gateway.routes().first().map(|r| r.name.as_str());
    let last = gateway.routes().last().map(|r| r.name.as_str());
    HttpResponse::Ok()
        .json(json!({"data": data, "has_more": false, "first_id": first, "last_id": last}))
}
