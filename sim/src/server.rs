//! The actix-web surface: the Bedrock Runtime and Agent Runtime operations behind SigV4 (see
//! [`Call`]), STS `AssumeRole` at `/` (for targets that assume a role), and `/_sim/*` control
//! endpoints for faults and stats.

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use time::OffsetDateTime;

use super::calls::Call;
use super::errors::{ErrorKind, SimError};
use super::faults::Faults;
use super::models::Family;
use super::state::SimState;
use super::stream::{EVENT_STREAM, event_stream};
use super::{
    SimProvider, agent, anthropic_api, claude, claude_stream, converse, count_tokens, fault_gate,
    guardrail, invoke, openai_api, sts,
};
use sigv4_verify::{self as sigv4, AuthError, RegionPolicy};

/// Request bodies up to this size are accepted; Bedrock allows large multimodal prompts.
pub const BODY_LIMIT: usize = 20 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Converse,
    ConverseStream,
    Invoke,
    InvokeStream,
    CountTokens,
}

impl Operation {
    fn parse(op: &str) -> Option<Self> {
        match op {
            "converse" => Some(Self::Converse),
            "converse-stream" => Some(Self::ConverseStream),
            "invoke" => Some(Self::Invoke),
            "invoke-with-response-stream" => Some(Self::InvokeStream),
            "count-tokens" => Some(Self::CountTokens),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Converse => "converse",
            Self::ConverseStream => "converse-stream",
            Self::Invoke => "invoke",
            Self::InvokeStream => "invoke-with-response-stream",
            Self::CountTokens => "count-tokens",
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig, provider: SimProvider, prefix: &str) {
    cfg.service(
        web::scope("/_sim")
            .route("/faults", web::get().to(get_faults))
            .route("/faults", web::post().to(post_faults))
            .route("/faults", web::delete().to(delete_faults))
            .route("/stats", web::get().to(get_stats))
            .route("/stats", web::delete().to(delete_stats))
            .default_service(web::to(|| async {
                not_found("No such simulator control endpoint.")
            })),
    );
    if prefix.is_empty() {
        api_routes(cfg, provider);
    } else {
        cfg.service(web::scope(prefix).configure(|cfg| api_routes(cfg, provider)));
    }
}

/// The provider's own API.
fn api_routes(cfg: &mut web::ServiceConfig, provider: SimProvider) {
    match provider {
        SimProvider::Bedrock => {
            cfg.route("/", web::post().to(sts::assume_role))
                .default_service(web::to(bedrock));
        }
        SimProvider::Anthropic => {
            cfg.route("/v1/messages", web::post().to(anthropic_api::messages))
                .default_service(web::to(anthropic_api::not_found));
        }
        SimProvider::OpenAi => openai_api::routes(cfg, openai_api::Dialect::OpenAi),
        SimProvider::Azure => openai_api::routes(cfg, openai_api::Dialect::Azure),
    }
}

/// Every Bedrock response carries a request id; clients log it and tests can correlate on it.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let name = HeaderName::from_static("x-amzn-requestid");
    if !res.headers().contains_key(&name)
        && let Ok(value) = HeaderValue::from_str(&new_request_id())
    {
        res.headers_mut().insert(name, value);
    }
    Ok(res)
}

fn new_request_id() -> String {
    let hex = format!("{:032x}", fastrand::u128(..));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn not_found(message: &str) -> HttpResponse {
    SimError::new(ErrorKind::UnknownOperation, message).response()
}

async fn bedrock(req: HttpRequest, body: web::Bytes, state: web::Data<SimState>) -> HttpResponse {
    let started = Instant::now();
    state.stats.request();
    let headers = sigv4::header_list(req.headers());
    let signed = sigv4::Request::of(&req, &headers);
    let verified = match bearer_token(&req) {
        // A Bedrock API key: the bearer token alone authenticates, nothing is signed.
        Some(key) if state.accepts_api_key(key) => Ok(()),
        Some(_) => Err(AuthError::UnknownKey),
        None => sigv4::verify(
            &signed,
            &body,
            |id| state.key(id),
            RegionPolicy::Only(&state.region),
            OffsetDateTime::now_utc(),
        )
        .map(drop),
    };
    if let (Err(e), false) = (verified, state.accept_unsigned) {
        state.stats.bad_signature();
        return auth_error(&e).response();
    }
    let Some(call) = Call::parse(req.method(), req.uri().path()) else {
        return not_found("Unknown operation.");
    };
    let model_op = match &call {
        Call::Model { model_id, op } => match Operation::parse(op) {
            Some(op) => Some((model_id.as_str(), op)),
            None => return not_found("Unknown operation."),
        },
        _ => None,
    };
    state.stats.model_request(
        &call.resource(),
        call.operation(),
        headers.into_iter().collect::<BTreeMap<_, _>>(),
    );

    let content_type = if call.is_stream() {
        EVENT_STREAM
    } else {
        "application/json"
    };
    let faults =
        match fault_gate::pass(&state, content_type, |injected| injected.error.response()).await {
            Ok(faults) => faults,
            Err(res) => return res,
        };
    let answered = match model_op {
        Some((model_id, op)) => operate(op, model_id, &body, &state, &faults, started),
        None => answer(
            &call,
            &body,
            &state,
            &faults,
            req.uri().query().unwrap_or_default(),
        ),
    };
    answered.unwrap_or_else(|e| e.response())
}

/// The operations that are not model calls.
fn answer(
    call: &Call,
    body: &[u8],
    state: &SimState,
    faults: &Faults,
    query: &str,
) -> Result<HttpResponse, SimError> {
    let region = state.region.as_str();
    let json = |value| Ok(HttpResponse::Ok().json(value));
    match call {
        Call::ApplyGuardrail {
            identifier,
            version,
        } => json(guardrail::apply(body, identifier, version, region)?),
        Call::StartAsyncInvoke => json(state.jobs.start(body, region)?),
        Call::GetAsyncInvoke { arn } => json(state.jobs.get(arn)?),
        Call::ListAsyncInvokes => json(state.jobs.list(query)?),
        Call::Rerank => json(agent::rerank(body)?),
        Call::Retrieve { knowledge_base_id } => {
            json(agent::retrieve(body, knowledge_base_id, region)?)
        }
        Call::RetrieveAndGenerate => {
            json(agent::generated_response(&agent::generate(body, region)?))
        }
        Call::RetrieveAndGenerateStream => {
            let generated = agent::generate(body, region)?;
            let mut res = event_stream(agent::generated_frames(&generated), faults);
            if let Ok(value) = HeaderValue::from_str(&generated.session_id) {
                res.headers_mut().insert(
                    HeaderName::from_static("x-amzn-bedrock-knowledge-base-session-id"),
                    value,
                );
            }
            Ok(res)
        }
        Call::Model { .. } => Err(SimError::new(
            ErrorKind::UnknownOperation,
            "Unknown operation.",
        )),
    }
}

fn operate(
    op: Operation,
    model_id: &str,
    body: &[u8],
    state: &SimState,
    faults: &Faults,
    started: Instant,
) -> Result<HttpResponse, SimError> {
    let family = Family::of(model_id)?;
    let region = state.region.as_str();
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match (op, family) {
        (Operation::Converse | Operation::ConverseStream, _) => {
            if !family.is_chat() {
                return Err(SimError::validation(
                    "This action doesn't support the model that you provided. Try again with a supported text or chat model.",
                ));
            }
            let outcome = converse::plan(body, region, model_id)?;
            Ok(if op == Operation::Converse {
                HttpResponse::Ok().json(converse::response(&outcome, latency_ms))
            } else {
                event_stream(converse::stream_frames(&outcome, latency_ms), faults)
            })
        }
        (
            Operation::Invoke | Operation::InvokeStream | Operation::CountTokens,
            Family::Anthropic,
        ) => claude_operation(op, model_id, body, state, faults, latency_ms),
        (Operation::CountTokens, _) => Err(count_tokens::unsupported_model()),
        (Operation::Invoke, _) => {
            let invoked = invoke::invoke(family, body, region, model_id)?;
            let mut res = HttpResponse::Ok();
            res.insert_header(("x-amzn-bedrock-input-token-count", invoked.input_tokens))
                .insert_header(("x-amzn-bedrock-invocation-latency", latency_ms));
            if let Some(output) = invoked.output_tokens {
                res.insert_header(("x-amzn-bedrock-output-token-count", output));
            }
            Ok(res.json(invoked.body))
        }
        (Operation::InvokeStream, _) => {
            let frames = invoke::stream_frames(family, body, region, model_id, latency_ms)?;
            Ok(event_stream(frames, faults))
        }
    }
}

/// Claude's InvokeModel, InvokeModelWithResponseStream and CountTokens: the body is recorded as it
/// arrived, then held to Bedrock's rules, then answered.
fn claude_operation(
    op: Operation,
    model_id: &str,
    body: &[u8],
    state: &SimState,
    faults: &Faults,
    latency_ms: u64,
) -> Result<HttpResponse, SimError> {
    let decoded;
    let body = if op == Operation::CountTokens {
        match count_tokens::parse(body)? {
            count_tokens::Input::Converse(input) => {
                return Ok(counted(converse::count_tokens(input)?));
            }
            count_tokens::Input::InvokeModel(invoke) => {
                decoded = invoke.decoded()?;
                decoded.as_slice()
            }
        }
    } else {
        body
    };
    let object = claude::parse_object(body)?;
    state.stats.claude_request(model_id, op.name(), &object);
    let request = claude::Request::check(object)?;
    if op == Operation::CountTokens {
        return Ok(counted(request.prompt().tokens));
    }
    let verified = request.verify_replayed_thinking();
    state
        .stats
        .thinking_checked(*verified.as_ref().unwrap_or(&0), verified.is_err());
    verified?;
    let answer = claude::answer(
        &request,
        &state.region,
        model_id,
        &state.prompt_cache,
        Instant::now(),
    )?;
    Ok(if op == Operation::InvokeStream {
        event_stream(
            claude_stream::stream_frames(&answer, model_id, latency_ms),
            faults,
        )
    } else {
        let mut res = HttpResponse::Ok();
        for header in claude_stream::headers(&answer, latency_ms) {
            res.insert_header(header);
        }
        res.json(claude_stream::body(&answer, model_id))
    })
}

fn counted(input_tokens: u64) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "inputTokens": input_tokens }))
}

/// The key of an `Authorization: Bearer <key>` header.
fn bearer_token(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn auth_error(error: &AuthError) -> SimError {
    let kind = match error {
        AuthError::Missing => ErrorKind::MissingAuthenticationToken,
        AuthError::UnknownKey | AuthError::BadSessionToken => ErrorKind::UnrecognizedClient,
        AuthError::Malformed(_)
        | AuthError::WrongRegion(_)
        | AuthError::WrongService(_)
        | AuthError::Expired(_)
        | AuthError::ContentHashMismatch
        | AuthError::SignatureMismatch => ErrorKind::InvalidSignature,
    };
    SimError::new(kind, error.to_string())
}

async fn get_faults(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(state.faults())
}

async fn post_faults(state: web::Data<SimState>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            state.set_faults(faults.clone());
            HttpResponse::Ok().json(faults)
        }
        Err(e) => SimError::validation(format!("bad faults: {e}")).response(),
    }
}

async fn delete_faults(state: web::Data<SimState>) -> HttpResponse {
    state.set_faults(Faults::default());
    HttpResponse::Ok().json(Faults::default())
}

async fn get_stats(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats.snapshot())
}

async fn delete_stats(state: web::Data<SimState>) -> HttpResponse {
    state.stats.reset();
    HttpResponse::Ok().json(state.stats.snapshot())
}
