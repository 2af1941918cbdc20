//! CountTokens (`POST /model/{id}/count-tokens`): the input of an InvokeModel body (base64, as the
//! API models it) or of a Converse request, counted as that operation would count it. Bedrock counts
//! only for the models that support it; here, Claude.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;

use super::errors::SimError;

#[derive(Debug, Deserialize)]
struct CountTokensRequest {
    input: Input,
}

/// A union in the API model: exactly one member is set.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Input {
    InvokeModel(InvokeModelTokens),
    Converse(Value),
}

#[derive(Debug, PartialEq, Deserialize)]
pub struct InvokeModelTokens {
    body: String,
}

impl InvokeModelTokens {
    /// The InvokeModel body to count, decoded from base64.
    pub fn decoded(&self) -> Result<Vec<u8>, SimError> {
        STANDARD.decode(&self.body).map_err(|e| {
            SimError::validation(format!("input.invokeModel.body is not valid base64: {e}"))
        })
    }
}

pub fn parse(body: &[u8]) -> Result<Input, SimError> {
    let request: CountTokensRequest = serde_json::from_slice(body).map_err(SimError::malformed)?;
    Ok(request.input)
}

pub fn unsupported_model() -> SimError {
    SimError::validation("The provided model doesn't support counting tokens.")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn invoke_model_input_carries_a_base64_body() {
        let body = json!({ "input": { "invokeModel": { "body": STANDARD.encode(b"{\"a\":1}") } } });
        let Input::InvokeModel(tokens) = parse(body.to_string().as_bytes()).unwrap() else {
            panic!("expected invokeModel")
        };
        assert_eq!(tokens.decoded().unwrap(), b"{\"a\":1}");
        let bad = InvokeModelTokens {
            body: "!!".to_owned(),
        };
        assert_eq!(bad.decoded().unwrap_err().name, "ValidationException");
    }

    #[test]
    fn converse_input_and_bad_shapes() {
        let body = json!({ "input": { "converse": { "messages": [] } } });
        assert_eq!(
            parse(body.to_string().as_bytes()).unwrap(),
            Input::Converse(json!({ "messages": [] }))
        );
        for bad in [json!({}), json!({ "input": { "other": {} } }), json!([])] {
            assert_eq!(
                parse(bad.to_string().as_bytes()).unwrap_err().name,
                "ValidationException",
                "{bad}"
            );
        }
    }
}
