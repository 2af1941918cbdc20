//! The Anthropic Messages surface: `POST /v1/messages` (whole and streamed),
//! `POST /v1/messages/count_tokens`, and the model list in Anthropic's shape.
//!
//! The target picked decides the upstream call: a Bedrock Claude target gets InvokeModel (or
//! InvokeModelWithResponseStream, or CountTokens) with the client's body kept as sent, any other
//! Bedrock model Converse, an `anthropic` target the Anthropic API's Messages call with the body
//! as sent but `model` (its answer and stream passed through), an `openai` or `azure` target
//! chat completions (translated both ways). Translation is in
//! [`crate::translate`]; this file routes, forwards, streams and renders errors in Anthropic's
//! shape.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde_json::json;

use super::body::read_authenticated;
use super::failure::{Failure, bad_request, reply};
use super::openai::{client_for, json_success, response_id, route_for};
use super::quota::Quota;
use super::reply::{Reply, read_answer, settle_usage, shaped_request};
use super::sse::{AnthropicRelay, EventTranslator, stream_reply};
use super::state::AppState;
use crate::config::{Provider, RouteType, Target};
use crate::error::{ApiFormat, GatewayError};
use crate::gateway::Gateway;
use crate::limits::estimate::BodyTokens;
use crate::metrics;
use crate::observe::Obs;
use crate::translate::TranslateError;
use crate::translate::messages_bedrock::{
    self, MessagesHead, count_tokens_body, messages_head, requested_betas, split_betas,
};
use crate::translate::messages_chat::{self, chat_request};
use crate::translate::messages_chat_stream::ChatMessagesStream;
use crate::translate::messages_converse::{converse_request, messages_response};
use crate::translate::messages_stream::{self, MessagesStreamTranslator};
use crate::upstream::forward::{PerTarget, forward};
use crate::upstream::operation::Operation;
use crate::upstream::request::Params;

/// The header Anthropic clients send their beta flags in.
const BETA_HEADER: &str = "anthropic-beta";
/// The header every Anthropic client sends; its presence asks `GET /v1/models` for Anthropic's
/// list shape.
pub const VERSION_HEADER: &str = "anthropic-version";

/// What a Messages request becomes for each kind of target.
struct MessagesShape {
    body: Bytes,
    head: MessagesHead,
    /// The `anthropic-beta` header values, as sent.
    header_betas: Vec<String>,
    count_tokens: bool,
    /// Built once, by the first non-Claude Bedrock target picked.
    converse: OnceCell<Result<Bytes, TranslateError>>,
    /// Built once, by the first Anthropic API target picked.
    anthropic_api: OnceCell<Result<Bytes, TranslateError>>,
    /// Claude-on-Bedrock bodies built so far, by the `anthropic_betas` allow-list they were built
    /// for (all a body depends on): a route's Claude targets usually share one, and the request
    /// is shaped for a target both when it is checked for a taker and when it is picked.
    claude: RefCell<Vec<(Vec<String>, Shaped)>>,
}

/// A body built for a kind of target, or why it cannot be.
type Shaped = Result<Bytes, TranslateError>;

impl MessagesShape {
    fn claude_body(&self, target: &Target) -> Result<Bytes, TranslateError> {
        let built = self
            .claude
            .borrow()
            .iter()
            .find(|(allowed, _)| *allowed == target.anthropic_betas)
            .map(|(_, body)| body.clone());
        built.unwrap_or_else(|| {
            let body = self.build_claude_body(target);
            self.claude
                .borrow_mut()
                .push((target.anthropic_betas.clone(), body.clone()));
            body
        })
    }

    /// Dropped flags are counted here, once per request and allow-list.
    fn build_claude_body(&self, target: &Target) -> Result<Bytes, TranslateError> {
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

impl PerTarget for MessagesShape {
    fn prepare(&self, target: &Target) -> Result<(Operation, Bytes), GatewayError> {
        match target.provider.provider() {
            Provider::Bedrock => {}
            Provider::Anthropic if self.count_tokens => {
                return Err(GatewayError::bad_request(format!(
                    "target {} is the Anthropic API, which the gateway does not count tokens on; count_tokens goes to bedrock Claude targets",
                    target.label()
                )));
            }
            // The body goes as sent but Bedrock's own keys (its betas travel in the header);
            // `model` and the headers are the target's (upstream::request).
            Provider::Anthropic => {
                let operation = if self.head.stream {
                    Operation::MessagesStream
                } else {
                    Operation::Messages
                };
                let body = self
                    .anthropic_api
                    .get_or_init(|| {
                        messages_bedrock::anthropic_api_body(&self.body).map(Bytes::from)
                    })
                    .clone()
                    .map_err(bad_request)?;
                return Ok((operation, body));
            }
            Provider::OpenAi | Provider::Azure if self.count_tokens => {
                return Err(GatewayError::bad_request(format!(
                    "target {} is an OpenAI-compatible API, which cannot count Anthropic tokens; count_tokens goes to bedrock Claude targets",
                    target.label()
                )));
            }
            Provider::OpenAi | Provider::Azure => {
                let model = target.model_id.as_deref().unwrap_or_default();
                let request = chat_request(
                    &self.body,
                    model,
                    target.provider.asks_stream_usage(),
                    target.max_tokens_field,
                )
                .map_err(bad_request)?;
                let operation = if request.stream {
                    Operation::ChatCompletionsStream
                } else {
                    Operation::ChatCompletions
                };
                return Ok((operation, Bytes::from(request.body)));
            }
        }
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
    reply(&obs, ApiFormat::Anthropic, result)
}

/// `POST /v1/messages/count_tokens`: Bedrock's CountTokens, never counted against token limits.
pub async fn count_tokens(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let obs = Obs::start(&req);
    let result = messages_inner(&req, payload, &state, &obs, true).await;
    reply(&obs, ApiFormat::Anthropic, result)
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
    let selection = route_for(&gateway, &head.model, RouteType::Chat)?;
    let route = selection.route;
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
    let stream = head.stream;
    let model = head.model.clone();
    let header_betas = header_values(req, BETA_HEADER);
    // For Anthropic API targets: the header's flags and the body's own, which their body cannot carry.
    let params = Params {
        anthropic_betas: requested_betas(
            header_betas
                .iter()
                .chain(&head.body_betas)
                .map(String::as_str),
        )
        .into_iter()
        .map(str::to_owned)
        .collect(),
        ..Params::default()
    };
    let shape = Box::new(MessagesShape {
        body,
        head,
        header_betas,
        count_tokens: count,
        converse: OnceCell::new(),
        anthropic_api: OnceCell::new(),
        claude: RefCell::default(),
    });
    let request = shaped_request(req, &selection, &quota, tokens, stream, params, shape).await?;
    let mut delivered = forward(route, &client, &request, obs).await?;
    let claude = delivered.lease.target().config.speaks_anthropic();
    let provider = delivered.lease.target().config.provider.provider();
    let anthropic_api = provider == Provider::Anthropic;
    let openai_api = matches!(provider, Provider::OpenAi | Provider::Azure);
    if stream {
        let read_timeout = route.balancer_config.read_timeout;
        let abort = state.abort_signal();
        return Ok(if anthropic_api {
            stream_reply(delivered, read_timeout, AnthropicRelay, obs, abort)
        } else if openai_api {
            let events = ChatMessagesStream::new(model, response_id("msg"));
            stream_reply(delivered, read_timeout, events, obs, abort)
        } else {
            let events = if claude {
                Events::Claude
            } else {
                Events::Converse(MessagesStreamTranslator::new(model, response_id("msg")))
            };
            stream_reply(delivered, read_timeout, events, obs, abort)
        });
    }
    let upstream = read_answer(&mut delivered, route, &gateway, obs).await?;
    if count {
        let body = messages_bedrock::count_tokens_response(&upstream)?;
        return Ok(Reply::Full(json_success(&delivered, body), None));
    }
    // The Anthropic API answers as Bedrock's Claude does: the Messages shape, usage included.
    // An answer without usage keeps the request's token estimate, as a stream without one does.
    let (body, usage) = if claude || anthropic_api {
        let usage = messages_bedrock::response_usage(&upstream);
        (upstream, usage)
    } else if openai_api {
        let (body, usage) =
            messages_chat::messages_response(&upstream, &model, &response_id("msg"))?;
        (Bytes::from(body), usage)
    } else {
        let (body, usage) = messages_response(&upstream, &model, &response_id("msg"))?;
        (Bytes::from(body), Some(usage))
    };
    // Without usage the request's token estimate stays taken, as for a stream without one.
    let recorded = usage.map(|usage| settle_usage(&mut delivered, obs, usage.into()));
    Ok(Reply::Full(json_success(&delivered, body), recorded))
}

/// How upstream events become Anthropic stream events.
enum Events {
    /// Claude's own events, unwrapped from Bedrock's `chunk` frames.
    Claude,
    Converse(MessagesStreamTranslator),
}

/// An OpenAI-compatible server's chunks to an Anthropic client, as Messages events.
impl EventTranslator for ChatMessagesStream {
    fn on_event(
        &mut self,
        _: &str,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        self.on_data(&String::from_utf8_lossy(payload), out)
    }

    fn on_exception(&mut self, exception_type: &str, message: &str, out: &mut Vec<u8>) {
        messages_stream::on_exception(exception_type, message, out);
    }

    /// Ends the message if the upstream's `[DONE]` has not.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if let Err(e) = Self::finish(self, out) {
            messages_stream::on_exception("internalServerException", &e.to_string(), out);
        }
    }
}

impl EventTranslator for Events {
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

    fn on_exception(&mut self, exception_type: &str, message: &str, out: &mut Vec<u8>) {
        messages_stream::on_exception(exception_type, message, out);
    }

    /// Both kinds of stream end with their own `message_stop`.
    fn finish(&mut self, _: &mut Vec<u8>) {}
}

/// `GET /v1/models` for a client that sent `anthropic-version`: the chat routes (the ones
/// `/v1/messages` serves) in Anthropic's list shape. Routes are configuration, not releases, so
/// `created_at` is the epoch.
pub fn models_page(gateway: &Gateway) -> HttpResponse {
    let chat: Vec<&str> = gateway
        .routes()
        .iter()
        .filter(|r| r.route_type == RouteType::Chat)
        .map(|r| r.name.as_str())
        .collect();
    let data: Vec<_> = chat
        .iter()
        .map(|name| {
            json!({"type": "model", "id": name, "display_name": name,
                   "created_at": "1970-01-01T00:00:00Z"})
        })
        .collect();
    let first = chat.first();
    let last = chat.last();
    HttpResponse::Ok()
        .json(json!({"data": data, "has_more": false, "first_id": first, "last_id": last}))
}
