//! The OpenAI API (`sim --provider openai`: `/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`, `/v1/models` behind `Authorization: Bearer`) and Azure OpenAI (`sim --provider
//! azure`: `/openai/deployments/{id}/chat/completions`, `/completions` and `/embeddings` behind
//! `api-key`, with `api-version` required). One flow serves both dialects; they differ in where the key and model
//! come from and in how a throttle is announced.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::fault_gate;
use super::faults::Injected;
use super::openai_chat::{self, Invalid};
use super::openai_completions;
use super::openai_embeddings;
use super::state::SimState;
use super::stream::{SSE, paced};

/// Seconds a throttled client is told to wait when the faults name none: both APIs always say.
const DEFAULT_RETRY_AFTER_SECS: u64 = 1;
/// What `GET /v1/models` lists; any model name is answered all the same.
const CATALOGUE: [&str; 5] = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "text-embedding-3-small",
    "text-embedding-3-large",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Azure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Chat,
    /// The legacy text completions.
    Completions,
    Embeddings,
}

/// An error in the OpenAI format, `{"error":{"message","type","param","code"}}`, which Azure
/// OpenAI also uses.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    param: Option<&'static str>,
    code: Option<String>,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            kind: error_type(status.as_u16()),
            param: None,
            code: None,
            message: message.into(),
        }
    }

    fn code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    fn body(&self) -> Value {
        json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        } })
    }

    fn response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(self.body())
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Self {
            param: Some(e.param),
            ..Self::new(StatusCode::BAD_REQUEST, e.message)
        }
    }
}

fn error_type(status: u16) -> &'static str {
    match status {
        400 | 401 | 404 | 413 => "invalid_request_error",
        403 => "permission_error",
        429 => "requests",
        _ => "server_error",
    }
}

/// The dialect's routes: each operation is the one flow with its dialect and operation.
pub fn routes(cfg: &mut web::ServiceConfig, dialect: Dialect) {
    let handler = |op| {
        move |req: HttpRequest, body: web::Bytes, state: web::Data<SimState>| async move {
            serve(&req, &body, &state, dialect, op).await
        }
    };
    let prefix = match dialect {
        Dialect::OpenAi => "/v1",
        Dialect::Azure => "/openai/deployments/{id}",
    };
    for (path, op) in [
        ("chat/completions", Operation::Chat),
        ("completions", Operation::Completions),
        ("embeddings", Operation::Embeddings),
    ] {
        cfg.route(&format!("{prefix}/{path}"), web::post().to(handler(op)));
    }
    if dialect == Dialect::OpenAi {
        cfg.route("/v1/models", web::get().to(models));
    }
    cfg.default_service(web::to(not_found));
}

async fn models(req: HttpRequest, state: web::Data<SimState>) -> HttpResponse {
    let admitted = admit(&req, &state, Dialect::OpenAi);
    if let Err(e) = admitted {
        return e.response();
    }
    state
        .stats
        .model_request("-", "models", request_headers(&req));
    let data: Vec<Value> = CATALOGUE
        .iter()
        .map(|id| json!({ "id": id, "object": "model", "created": 0, "owned_by": "bedrock-sim" }))
        .collect();
    HttpResponse::Ok().json(json!({ "object": "list", "data": data }))
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Invalid URL ({} {})", req.method(), req.path()),
    )
    .response()
}

async fn serve(
    req: &HttpRequest,
    body: &[u8],
    state: &SimState,
    dialect: Dialect,
    op: Operation,
) -> HttpResponse {
    if let Err(e) = admit(req, state, dialect) {
        return e.response();
    }
    let (model, body) = match envelope(req, body, dialect) {
        Ok(parts) => parts,
        Err(e) => return e.response(),
    };
    let call = match check_stream_options(req, &body, state, dialect)
        .and_then(|()| Call::parse(op, body).map_err(ApiError::from))
    {
        Ok(call) => call,
        Err(e) => return e.response(),
    };
    let stream = call.stream();
    state
        .stats
        .model_request(&model, call.name(), request_headers(req));
    let content_type = if stream { SSE } else { "application/json" };
    let faults = match fault_gate::pass(state, content_type, |i| injected(i, dialect)).await {
        Ok(faults) => faults,
        Err(res) => return res,
    };
    let created = OffsetDateTime::now_utc().unix_timestamp();
    let answered = match call {
        Call::Chat(chat) => openai_chat::complete(&chat, &state.region, &model, created)
            .map(|done| Answer::new(stream, || done.body(), || done.chunks())),
        Call::Text(text) => openai_completions::complete(text, &state.region, &model, created)
            .map(|done| Answer::new(stream, || done.body(), || done.chunks())),
        Call::Embeddings(body) => openai_embeddings::embed(body, &model).map(Answer::Whole),
    };
    let answered = answered.map(|answer| {
        if state.omit_usage {
            answer.without_usage()
        } else {
            answer
        }
    });
    match answered {
        Ok(Answer::Whole(body)) => HttpResponse::Ok().json(body),
        Ok(Answer::Streamed(chunks)) => {
            let mut events: Vec<Bytes> = chunks.iter().map(sse_data).collect();
            events.push(Bytes::from_static(b"data: [DONE]\n\n"));
            // The API reports a failure mid-stream as a data line holding an `error`.
            paced(events, &faults, SSE, |name| {
                sse_data(
                    &ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("{name}: Injected by bedrock-sim."),
                    )
                    .body(),
                )
            })
        }
        Err(e) => ApiError::from(e).response(),
    }
}

/// A request of one operation, parsed as far as the faults need (whether it streams).
enum Call {
    Chat(openai_chat::Request),
    Text(openai_completions::Request),
    Embeddings(Value),
}

impl Call {
    fn parse(op: Operation, body: Value) -> Result<Self, Invalid> {
        Ok(match op {
            Operation::Chat => Self::Chat(openai_chat::Request::parse(body)?),
            Operation::Completions => Self::Text(openai_completions::Request::parse(body)?),
            Operation::Embeddings => Self::Embeddings(body),
        })
    }

    fn stream(&self) -> bool {
        match self {
            Self::Chat(chat) => chat.stream,
            Self::Text(text) => text.stream,
            Self::Embeddings(_) => false,
        }
    }

    /// The operation's name in the stats.
    fn name(&self) -> &'static str {
        match (self, self.stream()) {
            (Self::Chat(_), false) => "chat-completions",
            (Self::Chat(_), true) => "chat-completions-stream",
            (Self::Text(_), false) => "completions",
            (Self::Text(_), true) => "completions-stream",
            (Self::Embeddings(_), _) => "embeddings",
        }
    }
}

/// An answer as one JSON body or as the chunks of a stream.
enum Answer {
    Whole(Value),
    Streamed(Vec<Value>),
}

impl Answer {
    fn new(
        stream: bool,
        body: impl FnOnce() -> Value,
        chunks: impl FnOnce() -> Vec<Value>,
    ) -> Self {
        if stream {
            Self::Streamed(chunks())
        } else {
            Self::Whole(body())
        }
    }

    /// The answer of a server that reports no usage.
    fn without_usage(mut self) -> Self {
        let bodies = match &mut self {
            Self::Whole(body) => std::slice::from_mut(body),
            Self::Streamed(chunks) => chunks.as_mut_slice(),
        };
        for body in bodies.iter_mut().filter_map(Value::as_object_mut) {
            body.remove("usage");
        }
        self
    }
}

/// Counts the request and checks its key (and Azure's `api-version`).
fn admit(req: &HttpRequest, state: &SimState, dialect: Dialect) -> Result<(), ApiError> {
    state.stats.request();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    match dialect {
        // A server started without keys takes every request, as vLLM does without `--api-key`.
        Dialect::OpenAi if !state.has_api_keys() => {}
        Dialect::OpenAi => {
            let key = header("authorization").and_then(|v| v.strip_prefix("Bearer "));
            if !state.admits_api_key(key) {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    if key.is_none() {
                        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                    } else {
                        "Incorrect API key provided."
                    },
                )
                .code("invalid_api_key"));
            }
        }
        Dialect::Azure => {
            if !state.admits_api_key(header("api-key")) {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
                )
                .code("401"));
            }
            if api_version(req).is_none_or(|v| v.is_empty()) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "Missing API version: the api-version query parameter is required.",
                )
                .code("MissingApiVersionParameter"));
            }
        }
    }
    Ok(())
}

fn api_version(req: &HttpRequest) -> Option<String> {
    web::Query::<BTreeMap<String, String>>::from_query(req.query_string())
        .ok()?
        .into_inner()
        .remove("api-version")
}

/// The first Azure OpenAI API version that takes `stream_options` (2024-09-01-preview).
const AZURE_STREAM_OPTIONS_SINCE: &str = "2024-09-01";

/// Refuses `stream_options` where the server does not know it: a server configured to (an older
/// vLLM, TGI or Ollama), or Azure on an API version that predates it, as the real one does.
fn check_stream_options(
    req: &HttpRequest,
    body: &Value,
    state: &SimState,
    dialect: Dialect,
) -> Result<(), ApiError> {
    let predates = || {
        dialect == Dialect::Azure
            && api_version(req)
                .is_some_and(|v| v.get(..10).unwrap_or(&v) < AZURE_STREAM_OPTIONS_SINCE)
    };
    if body.get("stream_options").is_some() && (state.refuse_stream_options || predates()) {
        return Err(Invalid::new(
            "stream_options",
            "Unrecognized request argument supplied: stream_options",
        )
        .into());
    }
    Ok(())
}

/// The model (the body's for OpenAI, the path's deployment for Azure) and the JSON body.
fn envelope(req: &HttpRequest, body: &[u8], dialect: Dialect) -> Result<(String, Value), ApiError> {
    let body: Value = serde_json::from_slice(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "We could not parse the JSON body of your request. The body must be a JSON object.",
            )
        })?;
    let model = match dialect {
        Dialect::OpenAi => body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        Dialect::Azure => req.match_info().get("id").unwrap_or_default(),
    };
    if model.is_empty() {
        return Err(Invalid::new("model", "you must provide a model parameter").into());
    }
    Ok((model.to_owned(), body))
}

fn request_headers(req: &HttpRequest) -> BTreeMap<String, String> {
    sigv4_verify::header_list(req.headers())
        .into_iter()
        .collect()
}

/// An injected error as the dialect sends it; a throttle carries its rate-limit headers.
fn injected(injected: &Injected, dialect: Dialect) -> HttpResponse {
    let status = injected.error.status;
    if status != StatusCode::TOO_MANY_REQUESTS {
        let error = ApiError::new(status, injected.error.message.clone());
        return match &injected.named {
            Some(code) => error.code(code.as_str()),
            None => error,
        }
        .response();
    }
    let seconds = injected.retry_after.unwrap_or(DEFAULT_RETRY_AFTER_SECS);
    let error = match dialect {
        Dialect::OpenAi => ApiError::new(
            status,
            format!("Rate limit reached for requests. Please try again in {seconds}s. (Injected by bedrock-sim.)"),
        )
        .code("rate_limit_exceeded"),
        Dialect::Azure => ApiError::new(
            status,
            format!("Requests to the deployment have exceeded the rate limit of your current pricing tier. Please retry after {seconds} seconds. (Injected by bedrock-sim.)"),
        )
        .code("429"),
    };
    let mut res = HttpResponse::build(status);
    res.insert_header(("retry-after", seconds))
        .insert_header(("x-ratelimit-remaining-requests", 0))
        .insert_header(("x-ratelimit-reset-requests", format!("{seconds}s")));
    if dialect == Dialect::Azure {
        res.insert_header(("retry-after-ms", seconds * 1000));
    }
    res.json(error.body())
}

/// One server-sent event holding `value`, as the OpenAI API frames them (no event names).
fn sse_data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}
