//! Turns an upstream status and error name (Bedrock's, or the Anthropic API's error type) into
//! what it means for the target and for failover.

use std::time::Duration;

use crate::backend::Outcome;
use crate::config::Provider;

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

/// Whether an error answer refuses what the gateway sends on its own account rather than anything
/// of the client's (whose credentials never go upstream): a 401 or 403 from any target, whose
/// credentials are the operator's to fix (Bedrock's `UnrecognizedClientException`,
/// `InvalidSignatureException`, `ExpiredTokenException`, an expired Bedrock API key); and from
/// another provider's target a 404, since its path, `model` and deployment all come from the
/// config. Two Bedrock answers stay the client's, because they can be about what the client
/// named, and a client must not be able to open a region's circuit for everyone: a 404 (an async
/// job, a guardrail) and an `AccessDeniedException` (an S3 bucket of StartAsyncInvoke's, a
/// guardrail in the invoke headers).
pub fn refuses_the_gateway(provider: Provider, status: u16, error_type: &str) -> bool {
    let bedrock = provider == Provider::Bedrock;
    match status {
        401 => true,
        403 => !(bedrock && error_type == "AccessDeniedException"),
        404 => !bedrock,
        _ => false,
    }
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
    fn refusals_of_the_gateways_credentials_and_config_are_told_apart() {
        for provider in Provider::ALL {
            let other = provider != Provider::Bedrock;
            assert!(refuses_the_gateway(provider, 401, ""), "{provider:?}");
            assert!(
                refuses_the_gateway(provider, 403, "InvalidSignatureException"),
                "{provider:?}"
            );
            assert!(refuses_the_gateway(provider, 403, ""), "{provider:?}");
            assert_eq!(
                refuses_the_gateway(provider, 403, "AccessDeniedException"),
                other,
                "{provider:?}"
            );
            assert_eq!(
                refuses_the_gateway(provider, 404, ""),
                other,
                "{provider:?}"
            );
            for client_fault in [400, 413, 422, 429, 500] {
                assert!(
                    !refuses_the_gateway(provider, client_fault, ""),
                    "{provider:?}"
                );
            }
        }
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
