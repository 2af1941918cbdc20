//! Upstream errors in the client's format: Bedrock's to OpenAI's and Anthropic's, and between
//! the Anthropic API and OpenAI-compatible upstreams.
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

/// OpenAI's status, `type` and `code` for an Anthropic API error, by Anthropic's error `type`,
/// falling back to the status. `status` 0 means unknown (a stream `error` event). Anthropic's
/// 529 `overloaded_error` is OpenAI's retryable 503; a 401 from the upstream means the gateway's
/// own key was refused, which is the gateway's failure (502), not the client's.
pub fn openai_kind_for_anthropic(status: u16, error_type: Option<&str>) -> OpenAiErrorKind {
    let kind = |status, error_type, code| OpenAiErrorKind {
        status,
        error_type,
        code,
    };
    let upstream_auth = kind(502, "api_error", "upstream_authentication_failed");
    match error_type.unwrap_or_default() {
        "invalid_request_error" => kind(400, "invalid_request_error", "invalid_request"),
        "authentication_error" => upstream_auth,
        "permission_error" => kind(403, "permission_error", "permission_denied"),
        "not_found_error" => kind(404, "not_found_error", "model_not_found"),
        "request_too_large" => kind(413, "invalid_request_error", "request_too_large"),
        "rate_limit_error" => RATE_LIMIT,
        "timeout_error" => kind(408, "timeout_error", "upstream_timeout"),
        "overloaded_error" => kind(503, "api_error", "service_unavailable"),
        "api_error" => kind(502, "api_error", "upstream_error"),
        _ => openai_kind_for_status(status),
    }
}

/// OpenAI's status, `type` and `code` for an upstream error known only by its status.
fn openai_kind_for_status(status: u16) -> OpenAiErrorKind {
    let kind = |status, error_type, code| OpenAiErrorKind {
        status,
        error_type,
        code,
    };
    match status {
        401 => kind(502, "api_error", "upstream_authentication_failed"),
        403 => kind(403, "permission_error", "permission_denied"),
        404 => kind(404, "not_found_error", "model_not_found"),
        413 => kind(413, "invalid_request_error", "request_too_large"),
        429 => RATE_LIMIT,
        400..=499 => kind(400, "invalid_request_error", "invalid_request"),
        503 | 529 => kind(503, "api_error", "service_unavailable"),
        _ => kind(502, "api_error", "upstream_error"),
    }
}

/// An OpenAI-compatible upstream's error for an OpenAI client: its body as it came when it is in
/// OpenAI's shape (`{"error":{"message"}}`), else one written in that shape from the status and
/// any top-level `message` (vLLM's `{"object":"error","message"}`; a proxy's HTML page has none).
pub fn openai_error_from_openai(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    #[derive(serde::Deserialize)]
    struct Shaped<'a> {
        #[serde(rename = "error", borrow)]
        _error: Message<'a>,
    }
    if serde_json::from_slice::<Shaped<'_>>(body).is_ok() {
        return (status, body.to_vec());
    }
    let kind = openai_kind_for_status(status);
    let message = serde_json::from_slice::<Message<'_>>(body)
        .map(|m| m.message.into_owned())
        .unwrap_or_else(|_| format!("the upstream returned {status} without an OpenAI error body"));
    (
        kind.status,
        openai_error_body(
            kind.status,
            kind.error_type,
            Some(kind.code),
            None,
            &message,
        ),
    )
}

/// The Anthropic API's error for an Anthropic client: its body as it came when it is in
/// Anthropic's shape (`{"type":"error","error":{"type","message"}}`), else one written in that
/// shape from the status (a proxy's HTML page).
pub fn anthropic_error_from_anthropic(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    #[derive(serde::Deserialize)]
    struct Detail<'a> {
        #[serde(rename = "type", borrow)]
        _kind: std::borrow::Cow<'a, str>,
        #[serde(rename = "message", borrow)]
        _message: std::borrow::Cow<'a, str>,
    }
    #[derive(serde::Deserialize)]
    struct Shaped<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
        #[serde(rename = "error", borrow)]
        _error: Detail<'a>,
    }
    let shaped = serde_json::from_slice::<Shaped<'_>>(body).is_ok_and(|e| e.kind == "error");
    if shaped {
        return (status, body.to_vec());
    }
    let (status, error_type) = anthropic_error_for_openai(status);
    let message = format!("the upstream returned {status} without an Anthropic error body");
    (status, super::anthropic::error_body(error_type, &message))
}

/// A JSON object's string `message`.
#[derive(serde::Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
}

/// Anthropic's status and error `type` for an error from an OpenAI-compatible or Azure OpenAI
/// upstream, or any error without a readable body. Their bodies differ (OpenAI's `type` is
/// `requests`, `insufficient_quota`, `server_error`...; Azure puts the status in `code`; vLLM
/// writes its own), so the status decides. 503 is Anthropic's 529 `overloaded_error`, which Anthropic's SDKs back off on.
pub fn anthropic_error_for_openai(status: u16) -> (u16, &'static str) {
    match status {
        // The upstream refused the gateway's key, not the client's.
        401 => (502, "api_error"),
        403 => (403, "permission_error"),
        404 => (404, "not_found_error"),
        408 => (504, "timeout_error"),
        413 => (413, "request_too_large"),
        429 => (429, "rate_limit_error"),
        400..=499 => (400, "invalid_request_error"),
        503 => (529, "overloaded_error"),
        _ => (500, "api_error"),
    }
}

/// The OpenAI status and body for an Anthropic API error response.
pub fn openai_error_from_anthropic(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let detail = serde_json::from_slice::<super::anthropic::ErrorEvent<'_>>(body).ok();
    let error_type = detail.as_ref().and_then(|d| d.error.kind.as_deref());
    let kind = openai_kind_for_anthropic(status, error_type);
    let message = detail
        .as_ref()
        .and_then(|d| d.error.message.as_deref())
        .unwrap_or("the Anthropic API returned an error");
    (
        kind.status,
        openai_error_body(kind.status, kind.error_type, Some(kind.code), None, message),
    )
}

/// The Anthropic status and body for an error response from an OpenAI-compatible or Azure
/// upstream; the message is taken from `error.message` or, as vLLM writes it, `message`.
pub fn anthropic_error_from_openai(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    #[derive(serde::Deserialize)]
    struct Inner<'a> {
        #[serde(borrow, default)]
        message: Option<std::borrow::Cow<'a, str>>,
    }
    #[derive(serde::Deserialize)]
    struct Outer<'a> {
        #[serde(borrow, default)]
        error: Option<Inner<'a>>,
        #[serde(borrow, default)]
        message: Option<std::borrow::Cow<'a, str>>,
    }
    let (status, error_type) = anthropic_error_for_openai(status);
    let parsed = serde_json::from_slice::<Outer<'_>>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|o| {
            o.error
                .as_ref()
                .and_then(|e| e.message.as_deref())
                .or(o.message.as_deref())
        })
        .unwrap_or("the OpenAI-compatible upstream returned an error");
    (status, super::anthropic::error_body(error_type, message))
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
    fn anthropic_errors_for_openai_clients() {
        for (status, body, want_status, want_type, want_code) in [
            (
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"m"}}"#,
                400,
                "invalid_request_error",
                "invalid_request",
            ),
            (
                401,
                r#"{"type":"error","error":{"type":"authentication_error","message":"m"}}"#,
                502,
                "api_error",
                "upstream_authentication_failed",
            ),
            (
                403,
                r#"{"type":"error","error":{"type":"permission_error","message":"m"}}"#,
                403,
                "permission_error",
                "permission_denied",
            ),
            (
                404,
                r#"{"type":"error","error":{"type":"not_found_error","message":"m"}}"#,
                404,
                "not_found_error",
                "model_not_found",
            ),
            (
                413,
                r#"{"type":"error","error":{"type":"request_too_large","message":"m"}}"#,
                413,
                "invalid_request_error",
                "request_too_large",
            ),
            (
                429,
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"m"}}"#,
                429,
                "requests",
                "rate_limit_exceeded",
            ),
            (
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"m"}}"#,
                503,
                "api_error",
                "service_unavailable",
            ),
            (
                500,
                r#"{"type":"error","error":{"type":"api_error","message":"m"}}"#,
                502,
                "api_error",
                "upstream_error",
            ),
            (
                529,
                "<html>busy</html>",
                503,
                "api_error",
                "service_unavailable",
            ),
            (429, "", 429, "requests", "rate_limit_exceeded"),
            (418, "{}", 400, "invalid_request_error", "invalid_request"),
            (504, "{}", 502, "api_error", "upstream_error"),
        ] {
            let (s, b) = openai_error_from_anthropic(status, body.as_bytes());
            let v: Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(
                (s, v["error"]["type"].as_str(), v["error"]["code"].as_str()),
                (want_status, Some(want_type), Some(want_code)),
                "{status} {body}"
            );
            if body.starts_with("{\"type\"") {
                assert_eq!(v["error"]["message"], "m");
            }
        }
        assert_eq!(
            openai_kind_for_anthropic(0, Some("overloaded_error")).status,
            503
        );
    }

    #[test]
    fn openai_errors_for_anthropic_clients() {
        for (status, body, want_status, want_type, want_message) in [
            (
                429,
                r#"{"error":{"message":"slow","type":"requests","code":"rate_limit_exceeded"}}"#,
                429,
                "rate_limit_error",
                "slow",
            ),
            (
                429,
                r#"{"error":{"code":"429","message":"Azure says wait"}}"#,
                429,
                "rate_limit_error",
                "Azure says wait",
            ),
            (
                400,
                r#"{"object":"error","message":"vllm bad","type":"BadRequestError","code":400}"#,
                400,
                "invalid_request_error",
                "vllm bad",
            ),
            (
                401,
                r#"{"error":{"message":"bad key"}}"#,
                502,
                "api_error",
                "bad key",
            ),
            (
                404,
                "{}",
                404,
                "not_found_error",
                "the OpenAI-compatible upstream returned an error",
            ),
            (
                408,
                "{}",
                504,
                "timeout_error",
                "the OpenAI-compatible upstream returned an error",
            ),
            (
                503,
                "oops",
                529,
                "overloaded_error",
                "the OpenAI-compatible upstream returned an error",
            ),
            (
                500,
                "{}",
                500,
                "api_error",
                "the OpenAI-compatible upstream returned an error",
            ),
            (
                422,
                "{}",
                400,
                "invalid_request_error",
                "the OpenAI-compatible upstream returned an error",
            ),
        ] {
            let (s, b) = anthropic_error_from_openai(status, body.as_bytes());
            let v: Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(s, want_status, "{body}");
            assert_eq!(
                v,
                json!({"type": "error", "error": {"type": want_type, "message": want_message}}),
                "{body}"
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

    #[test]
    fn same_format_errors_pass_only_in_their_own_shape() {
        let openai = br#"{"error":{"message":"bad","type":"invalid_request_error","code":null}}"#;
        assert_eq!(
            openai_error_from_openai(400, openai),
            (400, openai.to_vec())
        );
        // vLLM's own shape keeps its message in OpenAI's.
        let vllm =
            br#"{"object":"error","message":"too long","type":"BadRequestError","code":400}"#;
        let (status, body) = openai_error_from_openai(400, vllm);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, &v["error"]["message"]), (400, &json!("too long")));
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let (status, body) = openai_error_from_openai(502, b"<html>Bad Gateway</html>");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, &v["error"]["type"]), (502, &json!("api_error")));

        let anthropic =
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#;
        assert_eq!(
            anthropic_error_from_anthropic(400, anthropic),
            (400, anthropic.to_vec())
        );
        for foreign in [&b""[..], b"<html/>", br#"{"message":"bedrock's"}"#, openai] {
            let (status, body) = anthropic_error_from_anthropic(503, foreign);
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(status, 529);
            assert_eq!(
                (&v["type"], &v["error"]["type"]),
                (&json!("error"), &json!("overloaded_error"))
            );
        }
    }
}
