//! Turns an upstream status and error name (Bedrock's, or the Anthropic or OpenAI API's error
//! type and code) into
//! what it means for the target and for failover.

use std::time::Duration;

use crate::backend::Outcome;
use crate::config::Provider;
use crate::translate::anthropic::ErrorEvent;
use crate::translate::openai_chat::ChunkError;

/// Bedrock's error name without the `:namespace` suffix AWS appends in `x-amzn-errortype`, and
/// with the lowerCamel first letter of stream exceptions raised (`throttlingException`).
pub fn error_name(raw: &str) -> String {
    let name = raw.split(':').next().unwrap_or(raw).trim();
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// What an HTTP error response means for the target that sent it. The Anthropic API's 529
/// (overloaded) is its capacity running out, as a 429 is a quota's: both cool the target down.
pub fn outcome_for_status(status: u16, error_name: &str, retry_after: Option<Duration>) -> Outcome {
    if matches!(status, 429 | 529) || error_name == "ThrottlingException" {
        return Outcome::Throttled { retry_after };
    }
    match status {
        // 424 is the model failing, 408 the model timing out: both are the target's trouble.
        408 | 424 | 500..=599 => Outcome::Failure,
        _ => Outcome::Neutral,
    }
}

/// The code [`named_error`] gives a 404 that says the target's path is wrong.
const INVALID_URL: &str = "invalid_url";

/// OpenAI-compatible and Azure error `code`s that name the gateway's key, organization or
/// project, the configured model or deployment, or the gateway's own location: the operator's
/// to fix whatever the client sent.
const OPENAI_CONFIG_CODES: &[&str] = &[
    INVALID_URL,
    "invalid_api_key",
    "invalid_organization",
    "mismatched_organization",
    "invalid_project",
    "mismatched_project",
    "model_not_found",
    "DeploymentNotFound",
    "unsupported_country_region_territory",
];

/// Whether an error answer refuses what the gateway sends on its own account rather than anything
/// of the client's (whose credentials never go upstream). A 401 from any target: its credentials
/// are the operator's. A 403 or 404 only when it names them or the config: Bedrock's signature
/// and credential exceptions (`InvalidSignatureException`, `UnrecognizedClientException`, an
/// expired key), the Anthropic API's `authentication_error`, an OpenAI-compatible `code` of
/// [`OPENAI_CONFIG_CODES`]. Every other 403 and 404 stays the client's, because it can be about
/// what the client sent, and a client must not be able to open a target's circuit for everyone:
/// Bedrock's `AccessDeniedException` (an S3 bucket of StartAsyncInvoke's, a guardrail) and 404s
/// (an async job), the Anthropic API's `permission_error` and `not_found_error` (a `file_id`),
/// OpenRouter's 404 for a request with `tools` and 403 for flagged input.
///
/// `error_type` is Bedrock's exception name or the Anthropic or OpenAI-compatible error `type`;
/// `error_code` the OpenAI-compatible error `code` (see [`named_error`]).
pub fn refuses_the_gateway(
    provider: Provider,
    status: u16,
    error_type: &str,
    error_code: &str,
) -> bool {
    match (provider, status) {
        (_, 401) => true,
        (Provider::Bedrock, 403) => error_type != "AccessDeniedException",
        (Provider::Anthropic, 403 | 404) => {
            error_type == "authentication_error" || error_code == INVALID_URL
        }
        (Provider::OpenAi | Provider::Azure, 403 | 404) => {
            OPENAI_CONFIG_CODES.contains(&error_code)
        }
        _ => false,
    }
}

/// The error `type` and `code` an Anthropic or OpenAI-compatible error answer names (empty when
/// it names none). Bedrock names its errors in `x-amzn-errortype` instead, and its body is not
/// read for them.
///
/// A 404 says the path is wrong only in words, or not in the API's words at all: OpenAI's
/// `Invalid URL (POST /v1/v1/chat/completions)` has no code, and a 404 whose body is not the API's
/// error shape comes from something at `upstream_url` that is not the API (a proxy's page, a
/// server's `{"detail":"Not Found"}`, vLLM's unknown model). The paths and model are the
/// config's, so both get the code `invalid_url`.
pub fn named_error(provider: Provider, status: u16, body: &[u8]) -> (String, String) {
    let named = match provider {
        Provider::Bedrock => return Default::default(),
        Provider::Anthropic => serde_json::from_slice::<ErrorEvent<'_>>(body)
            .ok()
            .map(|e| (e.error.kind.unwrap_or_default().into_owned(), String::new())),
        Provider::OpenAi | Provider::Azure => {
            #[derive(serde::Deserialize)]
            struct Body<'a> {
                #[serde(borrow)]
                error: ChunkError<'a>,
            }
            serde_json::from_slice::<Body<'_>>(body)
                .ok()
                .map(|Body { error }| {
                    // A numeric code (vLLM, Azure's "404") is a status, not a name.
                    let code = error.code.as_ref().and_then(serde_json::Value::as_str);
                    let invalid_url = error
                        .message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("Invalid URL"));
                    let code = match code {
                        None if invalid_url && status == 404 => INVALID_URL,
                        code => code.unwrap_or_default(),
                    };
                    (error.kind.unwrap_or_default().into_owned(), code.to_owned())
                })
        }
    };
    named.unwrap_or_else(|| {
        let code = if status == 404 { INVALID_URL } else { "" };
        (String::new(), code.to_owned())
    })
}

/// What an exception frame inside an event stream means for the target.
pub fn outcome_for_stream_exception(error_name: &str) -> Outcome {
    match error_name {
        "ThrottlingException" | "ServiceQuotaExceededException" => {
            Outcome::Throttled { retry_after: None }
        }
        "ValidationException" | "AccessDeniedException" | "ResourceNotFoundException" => {
            Outcome::Neutral
        }
        _ => Outcome::Failure,
    }
}

/// What an `error` event inside an Anthropic API stream means for the target, by its type.
pub fn outcome_for_anthropic_error(error_type: &str) -> Outcome {
    match error_type {
        "rate_limit_error" | "overloaded_error" => Outcome::Throttled { retry_after: None },
        "invalid_request_error"
        | "authentication_error"
        | "permission_error"
        | "not_found_error"
        | "request_too_large" => Outcome::Neutral,
        _ => Outcome::Failure,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by AWS).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A wait as `Retry-After` seconds, rounded up: Azure's `retry-after-ms: 500` told as 0 would
/// send the client back before the upstream is ready.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Azure OpenAI's `retry-after-ms`.
pub fn parse_retry_after_ms(value: Option<&str>) -> Option<Duration> {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// OpenAI's `x-ratelimit-reset-*` durations, e.g. `1s`, `6m0s`, `20ms`, `1.5s`.
pub fn parse_ratelimit_reset(value: &str) -> Option<Duration> {
    let mut total = 0.0_f64;
    let mut rest = value.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (seconds, unit_len) = match rest.as_bytes() {
            [b'm', b's', ..] => (0.001, 2),
            [b's', ..] => (1.0, 1),
            [b'm', ..] => (60.0, 1),
            [b'h', ..] => (3600.0, 1),
            _ => return None,
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_namespace_and_gain_a_capital() {
        assert_eq!(
            error_name("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            "ThrottlingException"
        );
        assert_eq!(
            error_name("modelStreamErrorException"),
            "ModelStreamErrorException"
        );
    }

    #[test]
    fn statuses_map_to_outcomes() {
        let secs = Some(Duration::from_secs(3));
        assert_eq!(
            outcome_for_status(429, "ThrottlingException", secs),
            Outcome::Throttled { retry_after: secs }
        );
        assert_eq!(
            outcome_for_status(503, "ServiceUnavailableException", None),
            Outcome::Failure
        );
        assert_eq!(
            outcome_for_status(403, "AccessDeniedException", None),
            Outcome::Neutral
        );
        assert_eq!(
            outcome_for_status(404, "ResourceNotFoundException", None),
            Outcome::Neutral
        );
        assert_eq!(
            outcome_for_status(424, "ModelErrorException", None),
            Outcome::Failure
        );
        assert_eq!(
            outcome_for_status(400, "ValidationException", None),
            Outcome::Neutral
        );
        // The Anthropic API: no error name in a header, its overload is a throttle.
        assert_eq!(
            outcome_for_status(529, "", secs),
            Outcome::Throttled { retry_after: secs }
        );
        assert_eq!(
            outcome_for_status(429, "", None),
            Outcome::Throttled { retry_after: None }
        );
        assert_eq!(outcome_for_status(401, "", None), Outcome::Neutral);
    }

    #[test]
    fn a_401_refuses_the_gateway_and_other_client_faults_do_not() {
        for provider in Provider::ALL {
            assert!(refuses_the_gateway(provider, 401, "", ""), "{provider:?}");
            for client_fault in [400, 404, 413, 422, 429, 500] {
                assert!(
                    !refuses_the_gateway(provider, client_fault, "", ""),
                    "{provider:?} {client_fault}"
                );
            }
        }
    }

    #[test]
    fn bedrock_403s_refuse_the_gateway_unless_access_is_denied() {
        let bedrock = |status, name| refuses_the_gateway(Provider::Bedrock, status, name, "");
        assert!(bedrock(403, "InvalidSignatureException"));
        assert!(bedrock(403, "UnrecognizedClientException"));
        assert!(bedrock(403, ""));
        assert!(!bedrock(403, "AccessDeniedException"));
        assert!(!bedrock(404, "ResourceNotFoundException"));
    }

    /// Parses `body` as `provider` answered it with `status`, as `read_error` does.
    fn refuses(provider: Provider, status: u16, body: &str) -> bool {
        let (kind, code) = named_error(provider, status, body.as_bytes());
        refuses_the_gateway(provider, status, &kind, &code)
    }

    #[test]
    fn anthropic_403s_and_404s_refuse_the_gateway_only_for_its_key() {
        let anthropic = |status, kind: &str| {
            let body = format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"m"}}}}"#);
            refuses(Provider::Anthropic, status, &body)
        };
        assert!(anthropic(403, "authentication_error"));
        // A `file_id` the client named, a file of another workspace's.
        assert!(!anthropic(404, "not_found_error"));
        assert!(!anthropic(403, "permission_error"));
        // Not the API's answer: `upstream_url` leads elsewhere. A 403 page may be a WAF's about
        // the client's input.
        assert!(refuses(Provider::Anthropic, 404, "<html>Not Found</html>"));
        assert!(!refuses(Provider::Anthropic, 403, "<html>Forbidden</html>"));
    }

    #[test]
    fn openai_403s_and_404s_refuse_the_gateway_only_for_its_key_model_or_path() {
        let openai = |status, body: &str| {
            refuses(Provider::OpenAi, status, body) && refuses(Provider::Azure, status, body)
        };
        let coded = |code: &str| {
            format!(
                r#"{{"error":{{"message":"m","type":"invalid_request_error","param":null,"code":"{code}"}}}}"#
            )
        };
        for code in [
            "model_not_found",
            "DeploymentNotFound",
            "invalid_api_key",
            "invalid_organization",
        ] {
            assert!(openai(404, &coded(code)), "{code}");
        }
        assert!(openai(403, &coded("unsupported_country_region_territory")));
        assert!(openai(
            404,
            r#"{"error":{"message":"Invalid URL (POST /v1/v1/chat/completions)","type":"invalid_request_error","param":null,"code":null}}"#
        ));
        // OpenRouter: no provider of the model takes `tools`; moderation flagged the input.
        assert!(!openai(
            404,
            r#"{"error":{"message":"No endpoints found that support tool use.","code":404}}"#
        ));
        assert!(!openai(
            403,
            r#"{"error":{"message":"Input was flagged","code":403,"metadata":{"reasons":["x"]}}}"#
        ));
        // A client-named resource, and a body not in the API's shape.
        assert!(!openai(404, &coded("file_not_found")));
        assert!(openai(404, r#"{"detail":"Not Found"}"#));
        assert!(openai(
            404,
            r#"{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","param":null,"code":404}"#
        ));
        assert!(!openai(403, "<html>Forbidden</html>"));
    }

    #[test]
    fn anthropic_stream_errors_map_by_type() {
        let throttled = Outcome::Throttled { retry_after: None };
        assert_eq!(outcome_for_anthropic_error("overloaded_error"), throttled);
        assert_eq!(outcome_for_anthropic_error("rate_limit_error"), throttled);
        assert_eq!(
            outcome_for_anthropic_error("invalid_request_error"),
            Outcome::Neutral
        );
        assert_eq!(outcome_for_anthropic_error("api_error"), Outcome::Failure);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn an_openai_stream_error_counts_as_its_status_would() {
        let outcome = |chunk: &str| {
            let chunk: crate::translate::openai_chat::Chunk<'_> =
                serde_json::from_str(chunk).unwrap();
            outcome_for_status(chunk.error.unwrap().status(), "", None)
        };
        // vLLM's refusal of the request is no fault of the target.
        assert_eq!(
            outcome(r#"{"error":{"message":"m","type":"BadRequestError","code":400}}"#),
            Outcome::Neutral
        );
        assert_eq!(
            outcome(r#"{"error":{"message":"m","type":"requests","code":"rate_limit_exceeded"}}"#),
            Outcome::Throttled { retry_after: None }
        );
        assert_eq!(
            outcome(r#"{"error":{"message":"m","type":"server_error"}}"#),
            Outcome::Failure
        );
    }

    #[test]
    fn retry_after_is_seconds() {
        assert_eq!(parse_retry_after(Some("7")), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(Some("soon")), None);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(500)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 0);
    }

    #[test]
    fn azure_waits_in_milliseconds_and_openai_in_go_durations() {
        assert_eq!(
            parse_retry_after_ms(Some("1500")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after_ms(Some("1.5")), None);
        let reset = |v| parse_ratelimit_reset(v);
        assert_eq!(reset("1s"), Some(Duration::from_secs(1)));
        assert_eq!(reset("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(reset("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(reset("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(reset("1h2m"), Some(Duration::from_secs(3720)));
        assert_eq!(reset(""), None);
        assert_eq!(reset("soon"), None);
        assert_eq!(reset("5"), None);
    }
}
