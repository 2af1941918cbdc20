//! The one error type of the translation layer.
//!
//! Every client-caused variant names the OpenAI parameter at fault, so the gateway can fill the
//! `param` field of an OpenAI error body without parsing messages.

use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TranslateError {
    /// The request body is not JSON, or not a JSON object; the message carries serde's line and
    /// column.
    #[error("{message}")]
    Json { message: String },
    /// A parameter is well-formed OpenAI but Bedrock has no equivalent, and dropping it would
    /// change the output.
    #[error("{param}: {message}")]
    Unsupported { param: String, message: String },
    /// A parameter is missing, of the wrong type, or out of range.
    #[error("{param}: {message}")]
    Invalid { param: String, message: String },
    /// Bedrock answered with something that does not match its own model; never the client's fault.
    #[error("unexpected Bedrock response: {message}")]
    Upstream { message: String },
}

impl TranslateError {
    pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Unsupported {
            param: param.into(),
            message: message.into(),
        }
    }

    pub(crate) fn upstream(message: impl Into<String>) -> Self {
        Self::Upstream {
            message: message.into(),
        }
    }

    pub(crate) fn body_json(err: &serde_json::Error) -> Self {
        let message = if err.is_data() {
            "the request body must be a JSON object".to_owned()
        } else {
            format!("the request body is not valid JSON: {err}")
        };
        Self::Json { message }
    }

    /// The OpenAI `param` this error is about, if any.
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::Unsupported { param, .. } | Self::Invalid { param, .. } => Some(param),
            Self::Json { .. } | Self::Upstream { .. } => None,
        }
    }

    /// HTTP status for the OpenAI surface: the client's mistakes are 400, Bedrock's are 502.
    pub fn status(&self) -> u16 {
        match self {
            Self::Json { .. } | Self::Unsupported { .. } | Self::Invalid { .. } => 400,
            Self::Upstream { .. } => 502,
        }
    }

    /// Bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Json { .. } => "json",
            Self::Unsupported { .. } => "unsupported",
            Self::Invalid { .. } => "invalid",
            Self::Upstream { .. } => "upstream",
        }
    }

    /// The complete Anthropic error body for this error (the message names the parameter).
    pub fn to_anthropic_body(&self) -> Vec<u8> {
        let error_type = match self {
            Self::Json { .. } | Self::Invalid { .. } | Self::Unsupported { .. } => {
                "invalid_request_error"
            }
            Self::Upstream { .. } => "api_error",
        };
        super::anthropic::error_body(error_type, &self.to_string())
    }

    /// The complete OpenAI error body for this error.
    pub fn to_openai_body(&self) -> Vec<u8> {
        let (error_type, code) = match self {
            Self::Json { .. } | Self::Invalid { .. } => ("invalid_request_error", None),
            Self::Unsupported { .. } => ("invalid_request_error", Some("unsupported_parameter")),
            Self::Upstream { .. } => ("api_error", Some("bad_upstream_response")),
        };
        super::error_map::openai_error_body(
            self.status(),
            error_type,
            code,
            self.param(),
            &self.to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn invalid_names_param_and_is_400() {
        let e = TranslateError::invalid("messages[2].role", "unknown role \"robot\"");
        assert_eq!(e.to_string(), "messages[2].role: unknown role \"robot\"");
        assert_eq!(e.param(), Some("messages[2].role"));
        assert_eq!(e.status(), 400);
        let v: serde_json::Value = serde_json::from_slice(&e.to_openai_body()).unwrap();
        assert_eq!(v["error"]["param"], "messages[2].role");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn unsupported_has_code() {
        let e = TranslateError::unsupported("n", "only n=1 is supported");
        let v: serde_json::Value = serde_json::from_slice(&e.to_openai_body()).unwrap();
        assert_eq!(v["error"]["code"], "unsupported_parameter");
        assert_eq!(e.kind(), "unsupported");
    }

    #[test]
    fn json_error_carries_position() {
        let err = serde_json::from_slice::<serde_json::Value>(b"{\n  \"a\": }").unwrap_err();
        let e = TranslateError::body_json(&err);
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        assert!(e.to_string().contains("line 2"), "{e}");
        assert_eq!(e.param(), None);
        let err =
            serde_json::from_slice::<std::collections::HashMap<String, u8>>(b"[1]").unwrap_err();
        assert_eq!(
            TranslateError::body_json(&err).to_string(),
            "the request body must be a JSON object"
        );
    }

    #[test]
    fn upstream_is_502() {
        let e = TranslateError::upstream("no output");
        assert_eq!(e.status(), 502);
        let v: serde_json::Value = serde_json::from_slice(&e.to_openai_body()).unwrap();
        assert_eq!(v["error"]["param"], serde_json::Value::Null);
    }
}
