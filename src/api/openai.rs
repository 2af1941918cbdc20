//! The OpenAI-compatible surface: chat and legacy completions over Converse / ConverseStream,
//! embeddings over InvokeModel, and the model list. Chat and legacy completions go to `openai` and
//! `azure` targets as sent but `model` (answers and streams passed through), chat to `anthropic`
//! targets as Messages.
//! Translation itself is in [`crate::translate`]; this file routes, forwards and streams.

use std::cell::OnceCell;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use serde_json::json;
use serde_json::value::RawValue;

use super::body::read_authenticated;
use super::failure::{Failure, bad_request, reply};
use super::quota::Quota;
use super::reply::{
    ATTEMPTS_HEADER, Reply, TARGET_HEADER, hash_key, read_answer, session_key, settle_usage,
    shaped_request,
};
use super::sse::{ChatRelay, stream_reply};
use super::state::AppState;
use crate::auth::Caller;
use crate::config::{Provider, RouteType, Target};
use crate::error::{ApiFormat, GatewayError};
use crate::gateway::{Gateway, RouteRuntime, Selection};
use crate::limits::estimate::DEFAULT_MAX_TOKENS;
use crate::observe::Obs;
use crate::translate::chat_messages;
use crate::translate::chat_messages_stream::MessagesChatStream;
use crate::translate::{
    self, ChatStreamTranslator, EmbeddingFamily, TranslateError, UpstreamEmbedding,
};
use crate::upstream::client::UpstreamClients;
use crate::upstream::forward::{
    Delivered, PerTarget, ProxyError, ProxyRequest, forward, read_success_body,
};
use crate::upstream::operation::Operation;
use crate::upstream::request::Params;

/// Upstream embedding calls a single request may have in flight at once (Titan takes one text per
/// call, so a batch of inputs fans out).
const EMBEDDING_FAN_OUT: usize = 8;

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(body)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn response_id(prefix: &str) -> String {
    format!(
        "{prefix}-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

pub(crate) fn route_for<'g>(
    gateway: &'g Gateway,
    model: &str,
    expected: RouteType,
) -> Result<Selection<'g>, GatewayError> {
    let selection = gateway
        .resolve(model)
        .ok_or_else(|| GatewayError::UnknownModel(model.to_owned()))?;
    let route = selection.route;
    if route.route_type != expected {
        return Err(GatewayError::BadRequest {
            message: format!(
                "model '{model}' is a {} route; this endpoint needs a {} route",
                route.route_type.as_str(),
                expected.as_str()
            ),
            param: Some("model".to_owned()),
        });
    }
    Ok(selection)
}

pub(crate) fn client_for(
    req: &HttpRequest,
    route: &RouteRuntime,
) -> Result<awc::Client, GatewayError> {
    req.app_data::<UpstreamClients>()
        .map(|c| c.get(route.balancer_config.connect_timeout))
        .ok_or_else(|| GatewayError::Internal("worker has no upstream client".into()))
}

/// What the gateway reads of a chat or legacy completion request before a target is picked: what
/// the route, the stream and the answer's translation need, whichever target serves it.
struct ChatHead {
    model: String,
    stream: bool,
    include_usage: bool,
    /// The tool `response_format` is forced through, whose input is the answer.
    json_schema_tool: Option<String>,
}

fn chat_head(body: &[u8]) -> Result<ChatHead, TranslateError> {
    #[derive(serde::Deserialize)]
    struct Options {
        #[serde(default)]
        include_usage: bool,
    }
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        model: Option<String>,
        #[serde(default)]
        stream: Option<bool>,
        stream_options: Option<Options>,
        #[serde(borrow)]
        response_format: Option<&'a RawValue>,
    }
    let head: Head<'_> = serde_json::from_slice(body).map_err(|e| TranslateError::body_json(&e))?;
    Ok(ChatHead {
        model: head
            .model
            .ok_or_else(|| TranslateError::invalid("model", "is required"))?,
        stream: head.stream.unwrap_or(false),
        include_usage: head.stream_options.is_some_and(|o| o.include_usage),
        json_schema_tool: head
            .response_format
            .and_then(translate::chat_request::json_schema_tool),
    })
}

/// What a chat or legacy completion request becomes for each provider's target, each shape
/// built when a target of its kind is first picked: a body one provider cannot carry refuses
/// only that provider's targets.
struct OpenAiShape {
    surface: Surface,
    /// As the client sent it: for OpenAI-compatible targets (but for a stream's
    /// `stream_options`) and for the Converse and Anthropic API translations.
    client: Bytes,
    stream: bool,
    /// For Bedrock targets.
    converse: OnceCell<Result<Bytes, TranslateError>>,
    /// A stream for OpenAI-compatible targets: `[0]` asks for the usage chunk the gateway
    /// counts tokens by, `[1]` carries no `stream_options` (`stream_include_usage: false`, for
    /// servers that refuse the field).
    openai_streams: [OnceCell<Result<Bytes, TranslateError>>; 2],
}

impl OpenAiShape {
    const fn new(surface: Surface, client: Bytes, stream: bool) -> Self {
        Self {
            surface,
            client,
            stream,
            converse: OnceCell::new(),
            openai_streams: [OnceCell::new(), OnceCell::new()],
        }
    }

    fn converse_body(&self) -> Result<Bytes, TranslateError> {
        self.converse
            .get_or_init(|| self.surface.converse_body(&self.client))
            .clone()
    }

    fn openai_body(&self, target: &Target) -> Result<Bytes, TranslateError> {
        if !self.stream {
            return Ok(self.client.clone());
        }
        let ask_usage = target.provider.asks_stream_usage();
        self.openai_streams[usize::from(!ask_usage)]
            .get_or_init(|| openai_stream_body(&self.client, ask_usage))
            .clone()
    }
}

/// The client's streamed chat or completion body for an OpenAI-compatible target: asking for the usage chunk,
/// or with no `stream_options` at all (the client's own too, which such a server would refuse).
fn openai_stream_body(client: &[u8], ask_usage: bool) -> Result<Bytes, TranslateError> {
    let mut doc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(client).map_err(|e| TranslateError::body_json(&e))?;
    if ask_usage {
        let options = doc.entry("stream_options").or_insert_with(|| json!({}));
        if let Some(options) = options.as_object_mut() {
            options.insert("include_usage".to_owned(), json!(true));
        }
    } else {
        doc.remove("stream_options");
    }
    Ok(Bytes::from(
        serde_json::to_vec(&doc).map_err(|e| TranslateError::body_json(&e))?,
    ))
}

impl PerTarget for OpenAiShape {
    fn prepare(&self, target: &Target) -> Result<(Operation, Bytes), GatewayError> {
        let (whole, streamed, body) = match (target.provider.provider(), self.surface) {
            (Provider::Bedrock, _) => (
                Operation::Converse,
                Operation::ConverseStream,
                self.converse_body().map_err(bad_request)?,
            ),
            (Provider::OpenAi | Provider::Azure, Surface::Chat) => (
                Operation::ChatCompletions,
                Operation::ChatCompletionsStream,
                self.openai_body(target).map_err(bad_request)?,
            ),
            (Provider::OpenAi | Provider::Azure, Surface::Completions) => (
                Operation::Completions,
                Operation::CompletionsStream,
                self.openai_body(target).map_err(bad_request)?,
            ),
            (Provider::Anthropic, Surface::Chat) => {
                let model = target.model_id.as_deref().unwrap_or_default();
                let max_tokens = target
                    .max_tokens
                    .map_or(DEFAULT_MAX_TOKENS, NonZeroU32::get);
                let request = chat_messages::messages_request(&self.client, model, max_tokens)
                    .map_err(bad_request)?;
                (
                    Operation::Messages,
                    Operation::MessagesStream,
                    Bytes::from(request.body),
                )
            }
            // check-config keeps such targets out of completions routes.
            (Provider::Anthropic, Surface::Completions) => {
                return Err(GatewayError::bad_request(format!(
                    "target {} has provider \"anthropic\", which has no legacy completions; they go to bedrock, openai and azure targets",
                    target.label()
                )));
            }
        };
        Ok((if self.stream { streamed } else { whole }, body))
    }
}

/// A whole JSON answer from the target that delivered it.
pub(crate) fn json_success(delivered: &Delivered, body: impl Into<Bytes>) -> HttpResponse {
    success_head(delivered)
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(body.into())
}

pub(crate) fn success_head(delivered: &Delivered) -> HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder.insert_header((TARGET_HEADER, delivered.lease.target().label.as_str()));
    builder.insert_header((ATTEMPTS_HEADER, delivered.attempts.to_string()));
    builder
}

/// `POST /v1/chat/completions`.
pub async fn chat(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let obs = Obs::start(&req);
    let result = converse_surface(&req, payload, &state, &obs, Surface::Chat).await;
    reply(&obs, ApiFormat::OpenAi, result)
}

/// `POST /v1/completions` (legacy).
pub async fn completions(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let obs = Obs::start(&req);
    let result = converse_surface(&req, payload, &state, &obs, Surface::Completions).await;
    reply(&obs, ApiFormat::OpenAi, result)
}

/// The two OpenAI surfaces served by Converse: they differ only in their translation.
#[derive(Clone, Copy)]
enum Surface {
    Chat,
    Completions,
}

impl Surface {
    /// The Converse body for a Bedrock target.
    fn converse_body(self, body: &[u8]) -> Result<Bytes, TranslateError> {
        let converse = match self {
            Self::Chat => translate::chat_request(body)?.converse_body,
            Self::Completions => translate::completion_request(body)?.converse_body,
        };
        Ok(Bytes::from(converse))
    }

    const fn route_type(self) -> RouteType {
        match self {
            Self::Chat => RouteType::Chat,
            Self::Completions => RouteType::Completions,
        }
    }

    const fn id_prefix(self) -> &'static str {
        match self {
            Self::Chat => "chatcmpl",
            Self::Completions => "cmpl",
        }
    }

    fn translator(self, p: ChatHead, id: String, created: u64) -> ChatStreamTranslator {
        match self {
            Self::Chat => {
                ChatStreamTranslator::new(p.model, id, created, p.include_usage, p.json_schema_tool)
            }
            Self::Completions => {
                translate::completion_stream_translator(p.model, id, created, p.include_usage)
            }
        }
    }

    fn respond(
        self,
        upstream: &[u8],
        p: &ChatHead,
        id: &str,
        created: u64,
    ) -> Result<translate::TranslatedResponse, TranslateError> {
        match self {
            Self::Chat => translate::chat_response(
                upstream,
                &p.model,
                id,
                created,
                p.json_schema_tool.as_deref(),
            ),
            Self::Completions => translate::completion_response(upstream, &p.model, id, created),
        }
    }
}

async fn converse_surface(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    obs: &Rc<Obs>,
    surface: Surface,
) -> Result<Reply, Failure> {
    let gateway = state.gateway();
    let (caller, body) = read_authenticated(req, payload, &gateway).await?;
    obs.set_consumer(caller.consumer());
    let head = match chat_head(&body) {
        Ok(head) => head,
        Err(e) => {
            // The full parse says what is wrong in its usual words.
            surface.converse_body(&body)?;
            return Err(e.into());
        }
    };
    let selection = route_for(&gateway, &head.model, surface.route_type())?;
    let route = selection.route;
    obs.set_route(&route.name);
    let client = client_for(req, route)?;
    let quota = Quota::for_request(&gateway, route, caller.consumer());
    // The client's own body: the translations are built only for the targets picked.
    let tokens = quota.tokens(&body);
    let per_target = Box::new(OpenAiShape::new(surface, body, head.stream));
    let request = shaped_request(
        req,
        &selection,
        &quota,
        tokens,
        head.stream,
        Params::default(),
        per_target,
    )
    .await?;
    let mut delivered = forward(route, &client, &request, obs).await?;
    let id = response_id(surface.id_prefix());
    let created = unix_now();
    let provider = delivered.lease.target().config.provider.provider();
    if head.stream {
        let read_timeout = route.balancer_config.read_timeout;
        let abort = state.abort_signal();
        return Ok(match provider {
            Provider::Anthropic => {
                let events = MessagesChatStream::new(
                    head.model,
                    id,
                    created,
                    head.include_usage,
                    head.json_schema_tool,
                );
                stream_reply(delivered, read_timeout, events, obs, abort)
            }
            Provider::OpenAi | Provider::Azure => {
                let relay = ChatRelay {
                    include_usage: head.include_usage,
                    errors: surface.translator(head, id, created),
                };
                stream_reply(delivered, read_timeout, relay, obs, abort)
            }
            Provider::Bedrock => {
                let events = surface.translator(head, id, created);
                stream_reply(delivered, read_timeout, events, obs, abort)
            }
        });
    }
    let upstream = read_answer(&mut delivered, route, &gateway, obs).await?;
    let (body, tokens) = match provider {
        Provider::Bedrock => {
            let translated = surface.respond(&upstream, &head, &id, created)?;
            (Bytes::from(translated.body), Some(translated.usage))
        }
        Provider::Anthropic => {
            let translated = chat_messages::chat_response(
                &upstream,
                &head.model,
                &id,
                created,
                head.json_schema_tool.as_deref(),
            )?;
            (Bytes::from(translated.body), Some(translated.usage))
        }
        // The answer is already the client's; only its usage is read, if it has one.
        Provider::OpenAi | Provider::Azure => {
            let usage = translate::usage::openai_usage(&upstream);
            (upstream, usage)
        }
    };
    // Without usage the request's token estimate stays taken, as for a stream without one.
    let usage = tokens.map(|tokens| settle_usage(&mut delivered, obs, tokens));
    Ok(Reply::Full(json_success(&delivered, body), usage))
}

/// `POST /v1/embeddings`: one or more InvokeModel calls, each balanced on its own.
pub async fn embeddings(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let obs = Obs::start(&req);
    let result = embeddings_inner(&req, payload, &state, &obs).await;
    reply(&obs, ApiFormat::OpenAi, result)
}

async fn embeddings_inner(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    obs: &Obs,
) -> Result<Reply, Failure> {
    let gateway = state.gateway();
    let (caller, body) = read_authenticated(req, payload, &gateway).await?;
    obs.set_consumer(caller.consumer());
    let model = translate::embeddings_model(&body)?;
    let selection = route_for(&gateway, &model, RouteType::Embeddings)?;
    let route = selection.route;
    obs.set_route(&route.name);
    let first_provider = route
        .balancer
        .roster()
        .targets
        .first()
        .map(|t| t.config.provider.provider());
    if matches!(first_provider, Some(Provider::OpenAi | Provider::Azure)) {
        return openai_embeddings(req, &gateway, &caller, &selection, body, obs).await;
    }
    let pinned_model = selection.pinned_model;
    let family = route
        .balancer
        .roster()
        .targets
        .first()
        .and_then(|t| t.config.model_id.as_deref())
        .and_then(EmbeddingFamily::from_model_id)
        .ok_or_else(|| GatewayError::BadRequest {
            message: format!("route '{model}' has no Titan or Cohere embedding model"),
            param: Some("model".to_owned()),
        })?;
    let max_inputs = gateway.config.server.max_embedding_inputs.get();
    let request = translate::embeddings_request(&body, family, max_inputs)?;
    let quota = Quota::for_request(&gateway, route, caller.consumer());
    let tokens: Vec<_> = request
        .upstream_bodies
        .iter()
        .map(|b| quota.tokens(b))
        .collect();
    let consumer_reservation = quota.admit_consumer(tokens.iter().copied()).await?;
    let client = client_for(req, route)?;
    let read_timeout = route.balancer_config.read_timeout;
    let max_body = gateway.config.server.max_response_body_size.get();
    let key = hash_key(req, route);
    let session = session_key(req, route);
    let calls = request
        .upstream_bodies
        .into_iter()
        .zip(tokens)
        .map(|(body, tokens)| {
            let client = client.clone();
            let hash_key = key.clone();
            let pinned_model = pinned_model.clone();
            let session = session.clone();
            let consumer_reservation = consumer_reservation.clone();
            async move {
                let request = ProxyRequest {
                    hash_key,
                    pinned_model,
                    session,
                    tokens,
                    consumer_reservation,
                    operation: Operation::Invoke,
                    params: Params::default(),
                    body: Bytes::from(body),
                    content_type: "application/json".to_owned(),
                    accept: "application/json".to_owned(),
                    per_target: None,
                    abort: None,
                };
                let mut delivered = forward(route, &client, &request, obs).await?;
                let input_tokens = delivered
                    .response
                    .headers()
                    .get("x-amzn-bedrock-input-token-count")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                let body = read_success_body(&mut delivered, read_timeout, max_body, obs).await?;
                if let Some(tokens) = input_tokens {
                    delivered.lease.record_usage_u64(tokens, 0);
                }
                Ok::<_, ProxyError>((body, input_tokens, delivered.lease.target().label.clone()))
            }
        });
    let results: Vec<Result<_, ProxyError>> = stream::iter(calls)
        .buffered(EMBEDDING_FAN_OUT)
        .collect()
        .await;
    let mut bodies = Vec::with_capacity(results.len());
    for result in results {
        bodies.push(result?);
    }
    let upstream: Vec<UpstreamEmbedding<'_>> = bodies
        .iter()
        .map(|(body, input_tokens, _)| UpstreamEmbedding {
            body,
            input_tokens: *input_tokens,
        })
        .collect();
    let response =
        translate::embeddings_response(&request.model, family, &upstream, request.encoding_format)?;
    let mut builder = HttpResponse::Ok();
    if let Some((_, _, target)) = bodies.first() {
        builder.insert_header((TARGET_HEADER, target.as_str()));
    }
    let input_tokens = bodies.iter().filter_map(|(_, tokens, _)| *tokens).sum();
    let response = builder
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(response.body);
    Ok(Reply::Full(response, Some((input_tokens, 0))))
}

/// Embeddings for an OpenAI-compatible or Azure route: one call, passed through but `model`.
async fn openai_embeddings(
    req: &HttpRequest,
    gateway: &Gateway,
    caller: &Caller,
    selection: &Selection<'_>,
    body: Bytes,
    obs: &Obs,
) -> Result<Reply, Failure> {
    let route = selection.route;
    let quota = Quota::for_request(gateway, route, caller.consumer());
    let tokens = quota.tokens(&body);
    // Only the shape is sent, and only to the route's OpenAI-compatible and Azure targets.
    let shape = Box::new(OpenAiEmbeddings(body));
    let request = shaped_request(
        req,
        selection,
        &quota,
        tokens,
        false,
        Params::default(),
        shape,
    )
    .await?;
    let client = client_for(req, route)?;
    let mut delivered = forward(route, &client, &request, obs).await?;
    let upstream = read_answer(&mut delivered, route, gateway, obs).await?;
    let usage = translate::usage::openai_usage(&upstream).map(|usage| {
        delivered.lease.record_usage_u64(usage.input_tokens, 0);
        (usage.input_tokens, 0)
    });
    Ok(Reply::Full(json_success(&delivered, upstream), usage))
}

/// An embeddings request as sent, for the OpenAI-compatible and Azure targets of a route.
struct OpenAiEmbeddings(Bytes);

impl PerTarget for OpenAiEmbeddings {
    fn prepare(&self, target: &Target) -> Result<(Operation, Bytes), GatewayError> {
        match target.provider.provider() {
            Provider::OpenAi | Provider::Azure => Ok((Operation::Embeddings, self.0.clone())),
            other => Err(GatewayError::bad_request(format!(
                "target {} has provider {:?}; this route's embeddings go to its openai and azure targets",
                target.label(),
                other.as_str()
            ))),
        }
    }
}

/// `GET /v1/models`: the routes, in OpenAI's list shape, or Anthropic's for a client that sends
/// `anthropic-version` (Claude Code reads it).
pub async fn models(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let gateway = state.gateway();
    let anthropic = req.headers().contains_key(super::anthropic::VERSION_HEADER);
    let format = if anthropic {
        ApiFormat::Anthropic
    } else {
        ApiFormat::OpenAi
    };
    // A GET has no body; a signature, if any, covers the empty one.
    if let Err(e) = gateway.auth.check_head(&req).and_then(|p| p.verify(&[])) {
        return e.respond(format);
    }
    if anthropic {
        return super::anthropic::models_page(&gateway);
    }
    let data: Vec<_> = gateway
        .routes()
        .iter()
        .filter(|r| r.route_type.serves_models())
        .map(|r| json!({"id": r.name, "object": "model", "created": 0, "owned_by": "bedrock-balancer"}))
        .collect();
    HttpResponse::Ok().json(json!({"object": "list", "data": data}))
}
