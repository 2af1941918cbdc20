//! The Anthropic API (`sim --provider anthropic`): `POST /v1/messages`, plain and streamed as
//! server-sent events, behind `x-api-key` and `anthropic-version`. The answers are those of the
//! Claude models in Bedrock mode; only the envelope differs (model and stream in the body, the
//! version in a header, errors as `{"type":"error","error":{...}}`).

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::claude::{self, BEDROCK_VERSION};
use super::claude_stream;
use super::errors::SimError;
use super::fault_gate;
use super::faults::Faults;
use super::state::SimState;
use super::stream::{SSE, paced};

/// An Anthropic API error: its HTTP status, `error.type` and message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            kind: error_type(status.as_u16()),
            message: message.into(),
        }
    }

    pub fn response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(self.body())
    }

    fn body(&self) -> Value {
        json!({"type": "error", "error": {"type": self.kind, "message": self.message}})
    }
}

/// A Bedrock-mode refusal of the same body keeps its status and message.
impl From<SimError> for ApiError {
    fn from(e: SimError) -> Self {
        Self::new(e.status, e.message)
    }
}

/// Anthropic's `error.type` for a status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

pub async fn messages(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<SimState>,
) -> HttpResponse {
    let started = Instant::now();
    state.stats.request();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if !state.admits_api_key(header("x-api-key")) {
        return ApiError::new(StatusCode::UNAUTHORIZED, "invalid x-api-key").response();
    }
    if header("anthropic-version").is_none() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "anthropic-version: header is required",
        )
        .response();
    }
    let headers: BTreeMap<String, String> = sigv4_verify::header_list(req.headers())
        .into_iter()
        .collect();
    let (model, stream, mut object) = match envelope(&body) {
        Ok(parts) => parts,
        Err(e) => return e.response(),
    };
    let op = if stream {
        "messages-stream"
    } else {
        "messages"
    };
    state.stats.model_request(&model, op, headers);
    state.stats.claude_request(&model, op, &object);
    let content_type = if stream { SSE } else { "application/json" };
    let faults = match fault_gate::pass(&state, content_type, |injected| {
        ApiError::new(injected.error.status, injected.error.message.clone()).response()
    })
    .await
    {
        Ok(faults) => faults,
        Err(res) => return res,
    };
    admit_mid_conversation_system(&mut object, header("anthropic-beta"));
    answer(object, &model, stream, &faults, &state, started).unwrap_or_else(|e| e.response())
}

/// The beta under which the API takes `system` messages between the turns (Claude Code sends
/// its changing context that way, so the cached prefix before it stays the same).
const MID_CONVERSATION_SYSTEM: &str = "mid-conversation-system-2026-04-07";

/// With that beta, takes the `system` messages out before Bedrock's rules, which know only user
/// and assistant turns: the answer is to the last user turn either way. Without it they stay, and
/// are refused as an unknown role.
fn admit_mid_conversation_system(object: &mut Map<String, Value>, betas: Option<&str>) {
    let admitted = betas.is_some_and(|b| b.split(',').any(|f| f.trim() == MID_CONVERSATION_SYSTEM));
    if let (true, Some(Value::Array(messages))) = (admitted, object.get_mut("messages")) {
        messages.retain(|m| m.get("role").and_then(Value::as_str) != Some("system"));
    }
}

/// Bedrock's own top-level keys, which the API does not know: its version is a header, its
/// betas the `anthropic-beta` header.
const BEDROCK_ONLY_KEYS: [&str; 2] = ["anthropic_version", "anthropic_beta"];

/// The body's `model` and `stream`, which the API takes and Bedrock's schema does not, and the rest.
fn envelope(body: &[u8]) -> Result<(String, bool, Map<String, Value>), ApiError> {
    let mut object = claude::parse_object(body)?;
    if let Some(key) = BEDROCK_ONLY_KEYS.iter().find(|k| object.contains_key(**k)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{key}: Extra inputs are not permitted"),
        ));
    }
    let model = match object.remove("model") {
        Some(Value::String(model)) if !model.is_empty() => model,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "model: Field required",
            ));
        }
    };
    let stream = match object.remove("stream") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "stream: Input should be a valid boolean",
            ));
        }
    };
    Ok((model, stream, object))
}

fn answer(
    mut object: Map<String, Value>,
    model: &str,
    stream: bool,
    faults: &Faults,
    state: &SimState,
    started: Instant,
) -> Result<HttpResponse, ApiError> {
    // Bedrock's rules are the API's, but for the version the body carries there.
    object.insert(
        "anthropic_version".to_owned(),
        Value::String(BEDROCK_VERSION.to_owned()),
    );
    let request = claude::Request::check(object)?;
    let answer = claude::answer(
        &request,
        &state.region,
        model,
        &state.prompt_cache,
        Instant::now(),
    )?;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(if stream {
        let events = claude_stream::events(&answer, model, latency_ms)
            .iter()
            .map(sse_event)
            .collect();
        // The API reports a failure mid-stream as an `error` event; `overloaded_error` is the
        // one it sends in practice.
        paced(events, faults, SSE, |name| {
            sse_event(
                &ApiError {
                    status: StatusCode::OK,
                    kind: "overloaded_error",
                    message: format!("{name}: Injected by bedrock-sim."),
                }
                .body(),
            )
        })
    } else {
        HttpResponse::Ok().json(claude_stream::body(&answer, model))
    })
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {} {}", req.method(), req.path()),
    )
    .response()
}

/// One server-sent event named by its `type`, as the Anthropic API frames them.
fn sse_event(event: &Value) -> Bytes {
    let name = event["type"].as_str().unwrap_or("message");
    Bytes::from(format!("event: {name}\ndata: {event}\n\n"))
}
