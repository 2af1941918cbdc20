//! The gateway's own errors and their one mapping to HTTP responses, in the client's API format.
//!
//! Upstream errors are not here: Bedrock's own error responses are passed through (native API) or
//! translated (OpenAI API) where they arrive. These are the failures the gateway itself decides on.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::json;

/// Why a request was refused: the `reason` label of `auth_failures_total`, and the client's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthReason {
    #[error(
        "authentication required: send Authorization: Bearer <key>, x-api-key: <key>, or a SigV4 signature"
    )]
    Missing,
    #[error("the API key is not valid")]
    InvalidKey,
    #[error("the access key id is not recognised")]
    UnknownAccessKey,
    #[error("the request signature does not match")]
    BadSignature,
    #[error("the request's x-amz-date is more than 5 minutes from the gateway's clock")]
    Expired,
    #[error("the credentials are malformed")]
    Malformed,
}

impl AuthReason {
    pub const ALL: [Self; 6] = [
        Self::Missing,
        Self::InvalidKey,
        Self::UnknownAccessKey,
        Self::BadSignature,
        Self::Expired,
        Self::Malformed,
    ];

    pub const fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::InvalidKey => "invalid_key",
            Self::UnknownAccessKey => "unknown_access_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::Malformed => "malformed",
        }
    }
}

/// Which API the client speaks, so an error reaches it in a shape its SDK understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFormat {
    /// Bedrock Runtime: `{"message"}` plus `x-amzn-errortype`.
    Bedrock,
    /// OpenAI: `{"error":{"message","type","param","code"}}`.
    OpenAi,
    /// Anthropic: `{"type":"error","error":{"type","message"}}`.
    Anthropic,
}

/// Which limit refused a request, named in a 429's body so a client knows whose quota it hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// The caller's own `consumers[].limits`.
    Consumer,
    /// Every target of the route is at its `limits` (Bedrock's quota in each region).
    Targets,
}

impl LimitScope {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::Targets => "targets",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no route for {method} {path}")]
    PathNotFound { method: String, path: String },
    #[error("model '{0}' is not served by this gateway")]
    UnknownModel(String),
    #[error("{operation} needs a route of route_type {route_type}, and the gateway has none")]
    NoRouteOfType {
        operation: &'static str,
        route_type: &'static str,
    },
    #[error("{operation} is not served by this gateway: {why}")]
    NotServed {
        operation: &'static str,
        why: &'static str,
    },
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
    },
    /// A well-formed parameter the picked targets cannot honour (OpenAI's `unsupported_parameter`).
    #[error("{message}")]
    Unsupported { message: String, param: String },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive within {secs} s")]
    BodyTimeout { secs: f64 },
    #[error("{0}")]
    Unauthorized(AuthReason),
    #[error(
        "the admin API needs the admin token (server.admin_token) as Authorization: Bearer <token>"
    )]
    AdminUnauthorized,
    #[error("no target of route '{route}' is available")]
    NoTarget { route: String },
    #[error("every target of route '{route}' failed; last error: {last}")]
    AllTargetsFailed { route: String, last: String },
    #[error("target {target} sent an unusable response: {message}")]
    BadUpstreamResponse { target: String, message: String },
    /// A target refused what the gateway sends on its own account (its credentials, its
    /// model or deployment); its body may echo the target's key, so only its status is named.
    #[error(
        "target {target} refused the gateway's own credentials or configuration for it (upstream status {upstream}); the gateway's operator must fix the target's auth or model"
    )]
    TargetRefused { target: String, upstream: String },
    #[error("upstream did not answer in time ({0})")]
    UpstreamTimeout(String),
    #[error("rate limit reached ({}); retry in {retry_after_secs} s", scope.as_str())]
    RateLimited {
        scope: LimitScope,
        retry_after_secs: u64,
    },
    #[error(
        "this request may use up to {requested} tokens (input estimate plus max_tokens), more than the {} limit of {cap} tokens per minute allows; lower max_tokens or shorten the input",
        scope.as_str()
    )]
    ExceedsTokenLimit {
        scope: LimitScope,
        requested: u32,
        cap: u32,
    },
    #[error(
        "this request makes {requested} upstream calls (one per embedding input for Titan), more than the {} limit of {cap} requests per minute allows; send fewer inputs per request",
        scope.as_str()
    )]
    ExceedsRequestLimit {
        scope: LimitScope,
        requested: u32,
        cap: u32,
    },
    #[error("the gateway is at its concurrency limit; retry shortly")]
    Overloaded { retry_after_secs: u64 },
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            param: None,
        }
    }

    pub const fn status(&self) -> StatusCode {
        match self {
            Self::PathNotFound { .. } | Self::UnknownModel(_) | Self::NoRouteOfType { .. } => {
                StatusCode::NOT_FOUND
            }
            Self::NotServed { .. } => StatusCode::NOT_IMPLEMENTED,
            Self::BadRequest { .. }
            | Self::Unsupported { .. }
            | Self::ExceedsTokenLimit { .. }
            | Self::ExceedsRequestLimit { .. } => StatusCode::BAD_REQUEST,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthorized(_) | Self::AdminUnauthorized => StatusCode::UNAUTHORIZED,
            Self::NoTarget { .. } | Self::Overloaded { .. } | Self::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::AllTargetsFailed { .. }
            | Self::BadUpstreamResponse { .. }
            | Self::TargetRefused { .. } => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, bounded label for metrics and logs.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::PathNotFound { .. } => "path_not_found",
            Self::UnknownModel(_) => "unknown_model",
            Self::NoRouteOfType { .. } => "no_route",
            Self::NotServed { .. } => "not_served",
            Self::BadRequest { .. } | Self::Unsupported { .. } => "bad_request",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::Unauthorized(_) => "unauthorized",
            Self::AdminUnauthorized => "admin_unauthorized",
            Self::RateLimited { .. } => "rate_limited",
            Self::ExceedsTokenLimit { .. } => "exceeds_token_limit",
            Self::ExceedsRequestLimit { .. } => "exceeds_request_limit",
            Self::NoTarget { .. } => "no_target",
            Self::AllTargetsFailed { .. } => "all_targets_failed",
            Self::BadUpstreamResponse { .. } => "bad_upstream_response",
            Self::TargetRefused { .. } => "target_refused",
            Self::UpstreamTimeout(_) => "timeout",
            Self::Overloaded { .. } => "overloaded",
            Self::ShuttingDown => "shutting_down",
            Self::Internal(_) => "internal",
        }
    }

    /// The Bedrock exception name an AWS SDK maps to its own error type.
    const fn bedrock_type(&self) -> &'static str {
        match self {
            Self::PathNotFound { .. } => "UnknownOperationException",
            Self::UnknownModel(_) | Self::NoRouteOfType { .. } => "ResourceNotFoundException",
            Self::NotServed { .. } => "NotImplementedException",
            Self::BadRequest { .. }
            | Self::Unsupported { .. }
            | Self::PayloadTooLarge { .. }
            | Self::BodyTimeout { .. }
            | Self::ExceedsTokenLimit { .. }
            | Self::ExceedsRequestLimit { .. } => "ValidationException",
            Self::RateLimited { .. } => "ThrottlingException",
            Self::Unauthorized(AuthReason::Missing) => "MissingAuthenticationTokenException",
            Self::Unauthorized(AuthReason::InvalidKey | AuthReason::UnknownAccessKey)
            | Self::AdminUnauthorized => "UnrecognizedClientException",
            Self::Unauthorized(
                AuthReason::BadSignature | AuthReason::Expired | AuthReason::Malformed,
            ) => "InvalidSignatureException",
            Self::NoTarget { .. } | Self::Overloaded { .. } | Self::ShuttingDown => {
                "ServiceUnavailableException"
            }
            Self::AllTargetsFailed { .. }
            | Self::BadUpstreamResponse { .. }
            | Self::TargetRefused { .. } => "InternalServerException",
            Self::UpstreamTimeout(_) => "ModelTimeoutException",
            Self::Internal(_) => "InternalServerException",
        }
    }

    /// OpenAI's (`type`, `code`) pair for this error.
    const fn openai_type(&self) -> (&'static str, &'static str) {
        match self {
            Self::PathNotFound { .. } => ("invalid_request_error", "unknown_url"),
            Self::UnknownModel(_) => ("invalid_request_error", "model_not_found"),
            Self::NoRouteOfType { .. } => ("invalid_request_error", "no_route"),
            Self::NotServed { .. } => ("invalid_request_error", "not_implemented"),
            Self::BadRequest { .. } => ("invalid_request_error", "invalid_request"),
            Self::Unsupported { .. } => ("invalid_request_error", "unsupported_parameter"),
            Self::PayloadTooLarge { .. } => ("invalid_request_error", "request_too_large"),
            Self::BodyTimeout { .. } => ("invalid_request_error", "request_timeout"),
            Self::Unauthorized(_) | Self::AdminUnauthorized => {
                ("authentication_error", "invalid_api_key")
            }
            Self::RateLimited { .. } => ("rate_limit_error", "rate_limit_exceeded"),
            Self::ExceedsTokenLimit { .. } => ("invalid_request_error", "exceeds_token_limit"),
            Self::ExceedsRequestLimit { .. } => ("invalid_request_error", "exceeds_request_limit"),
            Self::NoTarget { .. } | Self::Overloaded { .. } | Self::ShuttingDown => {
                ("service_unavailable", "service_unavailable")
            }
            Self::AllTargetsFailed { .. } | Self::BadUpstreamResponse { .. } => {
                ("api_error", "upstream_error")
            }
            Self::TargetRefused { .. } => ("api_error", "target_refused"),
            Self::UpstreamTimeout(_) => ("timeout", "upstream_timeout"),
            Self::Internal(_) => ("api_error", "internal_error"),
        }
    }

    /// Anthropic's error `type` for this error (its SDKs pick the exception class by status).
    const fn anthropic_type(&self) -> &'static str {
        match self {
            Self::PathNotFound { .. } | Self::UnknownModel(_) | Self::NoRouteOfType { .. } => {
                "not_found_error"
            }
            Self::NotServed { .. } => "api_error",
            Self::BadRequest { .. }
            | Self::Unsupported { .. }
            | Self::BodyTimeout { .. }
            | Self::ExceedsTokenLimit { .. }
            | Self::ExceedsRequestLimit { .. } => "invalid_request_error",
            Self::PayloadTooLarge { .. } => "request_too_large",
            Self::Unauthorized(_) | Self::AdminUnauthorized => "authentication_error",
            Self::RateLimited { .. } => "rate_limit_error",
            Self::NoTarget { .. } | Self::Overloaded { .. } | Self::ShuttingDown => {
                "overloaded_error"
            }
            Self::AllTargetsFailed { .. }
            | Self::BadUpstreamResponse { .. }
            | Self::TargetRefused { .. }
            | Self::UpstreamTimeout(_)
            | Self::Internal(_) => "api_error",
        }
    }

    const fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Overloaded { retry_after_secs }
            | Self::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::NoTarget { .. } | Self::ShuttingDown => Some(1),
            _ => None,
        }
    }

    pub fn respond(&self, format: ApiFormat) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status());
        builder.insert_header((CONTENT_TYPE, "application/json"));
        if let Some(secs) = self.retry_after_secs() {
            builder.insert_header((RETRY_AFTER, secs.to_string()));
        }
        if let Self::Unauthorized(_) | Self::AdminUnauthorized = self {
            // RFC 9110 asks every 401 to name a scheme the client can use.
            builder.insert_header((WWW_AUTHENTICATE, "Bearer"));
        }
        let message = self.to_string();
        let scope = match self {
            Self::RateLimited { scope, .. }
            | Self::ExceedsTokenLimit { scope, .. }
            | Self::ExceedsRequestLimit { scope, .. } => Some(scope.as_str()),
            _ => None,
        };
        match format {
            ApiFormat::Bedrock => {
                builder.insert_header(("x-amzn-errortype", self.bedrock_type()));
                let mut body = json!({ "message": message });
                if let Some(scope) = scope {
                    body["scope"] = json!(scope);
                }
                builder.body(body.to_string())
            }
            ApiFormat::OpenAi => {
                let (kind, code) = self.openai_type();
                let param = match self {
                    Self::BadRequest { param, .. } => param.clone(),
                    Self::Unsupported { param, .. } => Some(param.clone()),
                    _ => None,
                };
                let mut body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
                if let Some(scope) = scope {
                    body["error"]["scope"] = json!(scope);
                }
                builder.body(body.to_string())
            }
            ApiFormat::Anthropic => {
                let mut body = json!({"type": "error", "error": {"type": self.anthropic_type(), "message": message}});
                if let Some(scope) = scope {
                    body["error"]["scope"] = json!(scope);
                }
                builder.body(body.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use actix_web::body::MessageBody;

    fn body_json(resp: HttpResponse) -> serde_json::Value {
        let bytes = resp.into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn bedrock_shape_carries_the_exception_name() {
        let err = GatewayError::UnknownModel("nope".into());
        let resp = err.respond(ApiFormat::Bedrock);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            resp.headers().get("x-amzn-errortype").unwrap(),
            "ResourceNotFoundException"
        );
        assert_eq!(
            body_json(resp),
            json!({"message": "model 'nope' is not served by this gateway"})
        );
    }

    #[test]
    fn an_unserved_operation_is_a_501_naming_it() {
        let resp = GatewayError::NotServed {
            operation: "InvokeAgent",
            why: "agents live in one region",
        }
        .respond(ApiFormat::Bedrock);
        assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(
            resp.headers().get("x-amzn-errortype").unwrap(),
            "NotImplementedException"
        );
        assert_eq!(
            body_json(resp),
            json!({"message": "InvokeAgent is not served by this gateway: agents live in one region"})
        );
    }

    #[test]
    fn openai_shape_names_the_param() {
        let err = GatewayError::BadRequest {
            message: "n > 1 is not supported".into(),
            param: Some("n".into()),
        };
        let resp = err.respond(ApiFormat::OpenAi);
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body_json(resp),
            json!({"error": {"message": "n > 1 is not supported", "type": "invalid_request_error", "param": "n", "code": "invalid_request"}})
        );
    }

    #[test]
    fn an_unsupported_parameter_keeps_openais_code() {
        let err = GatewayError::Unsupported {
            message: "parallel_tool_calls: not here".into(),
            param: "parallel_tool_calls".into(),
        };
        let resp = err.respond(ApiFormat::OpenAi);
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body_json(resp),
            json!({"error": {"message": "parallel_tool_calls: not here", "type": "invalid_request_error", "param": "parallel_tool_calls", "code": "unsupported_parameter"}})
        );
    }

    #[test]
    fn unauthorized_speaks_each_api() {
        let resp = GatewayError::Unauthorized(AuthReason::InvalidKey).respond(ApiFormat::OpenAi);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers().get(WWW_AUTHENTICATE).unwrap(), "Bearer");
        assert_eq!(
            body_json(resp),
            json!({"error": {"message": "the API key is not valid", "type": "authentication_error", "param": null, "code": "invalid_api_key"}})
        );
        let resp = GatewayError::Unauthorized(AuthReason::BadSignature).respond(ApiFormat::Bedrock);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            resp.headers().get("x-amzn-errortype").unwrap(),
            "InvalidSignatureException"
        );
        assert_eq!(
            body_json(resp),
            json!({"message": "the request signature does not match"})
        );
    }

    #[test]
    fn rate_limits_name_their_scope_in_both_formats() {
        let err = GatewayError::RateLimited {
            scope: LimitScope::Consumer,
            retry_after_secs: 3,
        };
        let resp = err.respond(ApiFormat::OpenAi);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers().get(RETRY_AFTER).unwrap(), "3");
        let body = body_json(resp);
        assert_eq!(body["error"]["scope"], "consumer");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        let resp = GatewayError::RateLimited {
            scope: LimitScope::Targets,
            retry_after_secs: 1,
        }
        .respond(ApiFormat::Bedrock);
        assert_eq!(
            resp.headers().get("x-amzn-errortype").unwrap(),
            "ThrottlingException"
        );
        assert_eq!(body_json(resp)["scope"], "targets");
    }

    #[test]
    fn anthropic_shape_types_each_error() {
        let resp = GatewayError::Unauthorized(AuthReason::InvalidKey).respond(ApiFormat::Anthropic);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            body_json(resp),
            json!({"type": "error", "error": {"type": "authentication_error", "message": "the API key is not valid"}})
        );
        for (err, status, kind) in [
            (
                GatewayError::UnknownModel("x".into()),
                404,
                "not_found_error",
            ),
            (
                GatewayError::bad_request("no"),
                400,
                "invalid_request_error",
            ),
            (
                GatewayError::PayloadTooLarge { limit: 1 },
                413,
                "request_too_large",
            ),
            (
                GatewayError::RateLimited {
                    scope: LimitScope::Consumer,
                    retry_after_secs: 2,
                },
                429,
                "rate_limit_error",
            ),
            (
                GatewayError::NoTarget { route: "r".into() },
                503,
                "overloaded_error",
            ),
            (GatewayError::Internal("bug".into()), 500, "api_error"),
        ] {
            let resp = err.respond(ApiFormat::Anthropic);
            assert_eq!(resp.status().as_u16(), status);
            let retry = resp.headers().get(RETRY_AFTER).cloned();
            let body = body_json(resp);
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["type"], kind);
            if kind == "rate_limit_error" {
                assert_eq!(retry.unwrap(), "2");
            }
        }
    }

    #[test]
    fn overload_tells_when_to_retry() {
        let resp = GatewayError::Overloaded {
            retry_after_secs: 2,
        }
        .respond(ApiFormat::OpenAi);
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers().get(RETRY_AFTER).unwrap(), "2");
    }
}
