//! What ends an OpenAI or Anthropic request early, and its one rendering in the client's format:
//! the gateway's own errors, translation errors, and Bedrock's errors mapped per format.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, RETRY_AFTER};

use super::openai::json_response;
use super::reply::{Reply, TARGET_HEADER};
use crate::config::Provider;
use crate::error::{ApiFormat, GatewayError};
use crate::observe::{self, Obs};
use crate::translate::{self, TranslateError, anthropic};
use crate::upstream::classify::retry_after_secs;
use crate::upstream::forward::{ProxyError, UpstreamError};

pub(crate) enum Failure {
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

/// A body a target's translation refused: the gateway's 400 naming the parameter, in the words
/// (and OpenAI `code`) the translation would have had on its own.
pub(crate) fn bad_request(e: TranslateError) -> GatewayError {
    let message = e.to_string();
    match e {
        TranslateError::Unsupported { param, .. } => GatewayError::Unsupported { message, param },
        other => GatewayError::BadRequest {
            param: other.param().map(str::to_owned),
            message,
        },
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

    fn respond(self, format: ApiFormat) -> HttpResponse {
        match self {
            Self::Translate(e) => {
                let body = match format {
                    ApiFormat::Anthropic => e.to_anthropic_body(),
                    ApiFormat::OpenAi | ApiFormat::Bedrock => e.to_openai_body(),
                };
                json_response(
                    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                    body,
                )
            }
            Self::Proxy(ProxyError::Gateway(e)) => e.respond(format),
            Self::Proxy(ProxyError::Upstream(e)) => upstream_error(&e, format),
        }
    }
}

/// The upstream's error in the client's format, with its `Retry-After` and the target that sent
/// it: a body already in the client's error shape passes as it came; any other (a proxy's HTML
/// page, an unreadable body) is written in the client's format.
fn upstream_error(e: &UpstreamError, format: ApiFormat) -> HttpResponse {
    let message = translate::bedrock_error_message(&e.body)
        .unwrap_or_else(|| format!("upstream returned {}", e.status));
    let status = e.status.as_u16();
    let (status, body) = match (e.provider, format) {
        (Provider::Anthropic, ApiFormat::Anthropic) => {
            translate::anthropic_error_from_anthropic(status, &e.body)
        }
        (Provider::OpenAi | Provider::Azure, ApiFormat::OpenAi) => {
            translate::openai_error_from_openai(status, &e.body)
        }
        (Provider::OpenAi | Provider::Azure, ApiFormat::Anthropic | ApiFormat::Bedrock) => {
            translate::error_map::anthropic_error_from_openai(status, &e.body)
        }
        (Provider::Anthropic, ApiFormat::OpenAi | ApiFormat::Bedrock) => {
            translate::error_map::openai_error_from_anthropic(status, &e.body)
        }
        (_, ApiFormat::Anthropic) => {
            let (status, kind) =
                translate::anthropic_error_for_bedrock(status, Some(&e.error_type));
            (status, anthropic::error_body(kind, &message))
        }
        (_, ApiFormat::OpenAi | ApiFormat::Bedrock) => {
            translate::openai_error_for_bedrock(status, Some(&e.error_type), &message)
        }
    };
    let mut response = json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        body,
    );
    let headers = response.headers_mut();
    if let Some(after) = e.retry_after
        && let Ok(value) = retry_after_secs(after).to_string().parse()
    {
        headers.insert(RETRY_AFTER, value);
    }
    if let Ok(value) = e.target.parse() {
        headers.insert(HeaderName::from_static(TARGET_HEADER), value);
    }
    response
}

/// Renders the handler's result, stamps the request id and overhead, and records the request
/// (a stream records itself when it ends).
pub(crate) fn reply(obs: &Obs, format: ApiFormat, result: Result<Reply, Failure>) -> HttpResponse {
    let (mut response, usage) = match result {
        Ok(Reply::Full(response, usage)) => (response, usage),
        Ok(Reply::Stream(mut response)) => {
            observe::stamp(&mut response, &obs.id, obs.head_sent());
            return response;
        }
        Err(failure) => {
            obs.set_error_kind(failure.kind());
            (failure.respond(format), None)
        }
    };
    observe::stamp(&mut response, &obs.id, obs.overhead());
    obs.finish(response.status().as_u16(), usage);
    response
}
