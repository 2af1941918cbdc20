//! Bedrock errors to OpenAI errors.
//!
//! Statuses are chosen for what OpenAI SDKs do with them: the official Python SDK raises
//! `RateLimitError` on 429 and retries 408, 429 and 5xx, so throttling-like exceptions become 429
//! even where Bedrock itself says 400 (`ServiceQuotaExceededException`).

use serde::Serialize;

/// Status and OpenAI `type` / `code` for one Bedrock error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenAiErrorKind {
    pub status: u16,
    pub error_type: &'static str,
    pub code: &'static str,
}

const RATE_LIMIT: OpenAiErrorKind = OpenAiErrorKind {
    status: 429,
    error_type: "requests",
    code: "rate_limit_exceeded",
};

/// Classifies a Bedrock error by exception name, falling back to the HTTP status.
///
/// `error_type` may be `x-amzn-errortype` (`ThrottlingException:http://internal.amazon.com/...`),
/// a Smithy id (`com.amazonaws.bedrockruntime#ThrottlingException`) or an event-stream exception
/// (`throttlingException`); all name the same thing. `status` 0 means "unknown" (stream
/// exceptions arrive after the 200).
pub fn classify(status: u16, error_type: Option<&str>) -> OpenAiErrorKind {
    if let Some(kind) = error_type.and_then(|t| by_name(normalize(t))) {
        return kind;
    }
    match status {
        429 => RATE_LIMIT,
        400..=499 => OpenAiErrorKind {
            status,
            error_type: "invalid_request_error",
            code: "bedrock_client_error",
        },
        503 => OpenAiErrorKind {
            status: 503,
            error_type: "api_error",
            code: "service_unavailable",
        },
        // An unknown failure upstream is a bad gateway from the client's point of view.
        _ => OpenAiErrorKind {
            status: 502,
            error_type: "api_error",
            code: "bedrock_error",
        },
    }
}

fn normalize(error_type: &str) -> &str {
    let name = error_type.split(':').next().unwrap_or(error_type);
    let name = name.rsplit('#').next().unwrap_or(name);
    name.trim()
}

fn by_name(name: &str) -> Option<OpenAiErrorKind> {
    let eq = |expected: &str| name.eq_ignore_ascii_case(expected);
    let kind = |status, error_type, code| {
        Some(OpenAiErrorKind {
            status,
            error_type,
            code,
        })
    };
    if eq("ValidationException") || eq("ConflictException") {
        kind(400, "invalid_request_error", "invalid_request")
    } else if eq("AccessDeniedException") {
        kind(403, "permission_error", "permission_denied")
    } else if eq("ResourceNotFoundException") {
        kind(404, "not_found_error", "model_not_found")
    } else if eq("ThrottlingException")
        || eq("ServiceQuotaExceededException")
        || eq("ModelNotReadyException")
    {
        Some(RATE_LIMIT)
    } else if eq("ModelTimeoutException") {
        kind(408, "timeout_error", "model_timeout")
    } else if eq("ModelErrorException") || eq("ModelStreamErrorException") {
        kind(424, "api_error", "model_error")
    } else if eq("InternalServerException") {
        kind(502, "api_error", "bedrock_internal_error")
    } else if eq("ServiceUnavailableException") {
        kind(503, "api_error", "service_unavailable")
    } else {
        None
    }
}

/// Anthropic's status and error `type` for a Bedrock error, as Anthropic's SDKs expect them:
/// 529 `overloaded_error` when Bedrock has no capacity (their retry and backoff key on it), 429
/// `rate_limit_error` for throttling. `status` 0 means unknown (a stream exception).
pub fn anthropic_error_for_bedrock(status: u16, error_type: Option<&str>) -> (u16, &'static str) {
    let name = error_type.map(normalize).unwrap_or_default();
    let eq = |expected: &str| name.eq_ignore_ascii_case(expected);
    if eq("ValidationException") || eq("ConflictException") {
        (400, "invalid_request_error")
    } else if eq("AccessDeniedException") {
        (403, "permission_error")
    } else if eq("ResourceNotFoundException") {
        (404, "not_found_error")
    } else if eq("ThrottlingException") || eq("ServiceQuotaExceededException") {
        (429, "rate_limit_error")
    } else if eq("ServiceUnavailableException") || eq("ModelNotReadyException") {
        (529, "overloaded_error")
    } else if eq("ModelTimeoutException")
        || eq("ModelErrorException")
        || eq("ModelStreamErrorException")
        || eq("InternalServerException")
    {
        (500, "api_error")
    } else {
        match status {
            401 => (401, "authentication_error"),
            403 => (403, "permission_error"),
            404 => (404, "not_found_error"),
            413 => (413, "request_too_large"),
            429 => (429, "rate_limit_error"),
            400..=499 => (400, "invalid_request_error"),
            503 => (529, "overloaded_error"),
            _ => (500, "api_error"),
        }
    }
}

/// The OpenAI status and body for a Bedrock error.
pub fn openai_error_for_bedrock(
    status: u16,
    error_type: Option<&str>,
    message: &str,
) -> (u16, Vec<u8>) {
    let kind = classify(status, error_type);
    (
        kind.status,
        openai_error_body(kind.status, kind.error_type, Some(kind.code), None, message),
    )
}

/// An OpenAI error body, `{"error":{"message","type","param","code"}}`; also for the gateway's
/// own errors. `status` is accepted so callers keep status and body side by side; the OpenAI
/// body does not carry it.
pub fn openai_error_body(
    _status: u16,
    error_type: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: &str,
) -> Vec<u8> {
    let body = ErrorBody {
        error: ErrorInner {
            message,
            error_type,
            param,
            code,
        },
    };
    // Serializing plain strings and options cannot fail; the fallback keeps this infallible.
    serde_json::to_vec(&body).unwrap_or_else(|_| {
        br#"{"error":{"message":"internal error","type":"api_error","param":null,"code":null}}"#
            .to_vec()
    })
}

/// Pulls `message` (or `Message`) out of a Bedrock error body; `None` if there is none.
pub fn bedrock_error_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(alias = "Message")]
        message: Option<String>,
    }
    serde_json::from_slice::<Body>(body).ok()?.message
}

#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub(crate) error: ErrorInner<'a>,
}

#[derive(Serialize)]
pub(crate) struct ErrorInner<'a> {
    pub(crate) message: &'a str,
    #[serde(rename = "type")]
    pub(crate) error_type: &'a str,
    pub(crate) param: Option<&'a str>,
    pub(crate) code: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::{Value, json};

    fn map(status: u16, t: Option<&str>) -> (u16, Value) {
        let (s, body) = openai_error_for_bedrock(status, t, "boom");
        (s, serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn whole_table() {
        let cases: &[(u16, &str, u16, &str)] = &[
            (400, "ValidationException", 400, "invalid_request_error"),
            (400, "ConflictException", 400, "invalid_request_error"),
            (403, "AccessDeniedException", 403, "permission_error"),
            (404, "ResourceNotFoundException", 404, "not_found_error"),
            (429, "ThrottlingException", 429, "requests"),
            (400, "ServiceQuotaExceededException", 429, "requests"),
            (429, "ModelNotReadyException", 429, "requests"),
            (408, "ModelTimeoutException", 408, "timeout_error"),
            (424, "ModelErrorException", 424, "api_error"),
            (424, "ModelStreamErrorException", 424, "api_error"),
            (500, "InternalServerException", 502, "api_error"),
            (503, "ServiceUnavailableException", 503, "api_error"),
        ];
        for &(status, name, want_status, want_type) in cases {
            let (s, v) = map(status, Some(name));
            assert_eq!(s, want_status, "{name}");
            assert_eq!(v["error"]["type"], want_type, "{name}");
            assert_eq!(v["error"]["message"], "boom");
            assert_eq!(v["error"]["param"], Value::Null);
            assert!(v["error"]["code"].is_string());
        }
        assert_eq!(
            map(429, Some("ThrottlingException")).1["error"]["code"],
            "rate_limit_exceeded"
        );
    }

    #[test]
    fn names_in_every_spelling() {
        for t in [
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "com.amazonaws.bedrockruntime#ThrottlingException",
            "throttlingException",
            " ThrottlingException ",
        ] {
            assert_eq!(map(0, Some(t)).0, 429, "{t}");
        }
        assert_eq!(map(0, Some("modelStreamErrorException")).0, 424);
        assert_eq!(map(0, Some("internalServerException")).0, 502);
        assert_eq!(map(0, Some("validationException")).0, 400);
        assert_eq!(map(0, Some("serviceUnavailableException")).0, 503);
    }

    #[test]
    fn falls_back_to_status() {
        assert_eq!(map(429, None).0, 429);
        assert_eq!(map(418, Some("TeapotException")), (418, map(418, None).1));
        assert_eq!(map(413, None).1["error"]["type"], "invalid_request_error");
        assert_eq!(map(500, None).0, 502);
        assert_eq!(map(504, None).0, 502);
        assert_eq!(map(503, None).0, 503);
        assert_eq!(map(0, None).0, 502);
        assert_eq!(map(0, Some("")).0, 502);
    }

    #[test]
    fn anthropic_table() {
        for (status, name, want) in [
            (400, "ValidationException", (400, "invalid_request_error")),
            (403, "AccessDeniedException", (403, "permission_error")),
            (404, "ResourceNotFoundException", (404, "not_found_error")),
            (429, "ThrottlingException", (429, "rate_limit_error")),
            (
                400,
                "ServiceQuotaExceededException",
                (429, "rate_limit_error"),
            ),
            (
                503,
                "ServiceUnavailableException",
                (529, "overloaded_error"),
            ),
            (429, "ModelNotReadyException", (529, "overloaded_error")),
            (0, "modelStreamErrorException", (500, "api_error")),
            (500, "InternalServerException", (500, "api_error")),
            (413, "", (413, "request_too_large")),
            (418, "TeapotException", (400, "invalid_request_error")),
            (0, "", (500, "api_error")),
        ] {
            assert_eq!(
                anthropic_error_for_bedrock(status, Some(name)),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn own_error_body_shape() {
        let body = openai_error_body(
            401,
            "invalid_request_error",
            Some("invalid_api_key"),
            None,
            "no key",
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"error":{"message":"no key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})
        );
        let v: Value =
            serde_json::from_slice(&openai_error_body(400, "t", None, Some("model"), "m")).unwrap();
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["code"], Value::Null);
    }

    #[test]
    fn bedrock_message_extraction() {
        assert_eq!(
            bedrock_error_message(br#"{"message":"bad"}"#).as_deref(),
            Some("bad")
        );
        assert_eq!(
            bedrock_error_message(br#"{"Message":"bad"}"#).as_deref(),
            Some("bad")
        );
        assert_eq!(bedrock_error_message(b"<html>"), None);
    }
}
