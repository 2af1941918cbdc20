//! Parameters that chat and legacy completions share: streaming, sampling, stop sequences,
//! Bedrock pass-through fields, and OpenAI knobs that are harmless or must be refused.
//!
//! Ignored on purpose, because they never change what the model writes: `user` (an abuse
//! monitoring id), `seed` (best effort even at OpenAI, which promises no determinism), a penalty
//! of exactly 0, an empty `logit_bias`, `n: 1`. Any other value of those knobs is refused.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::body::{Body, first_byte, parse_raw};
use super::converse::{InferenceConfig, Passthrough};
use super::error::TranslateError;

pub(crate) struct Common<'a> {
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    pub(crate) inference: InferenceConfig<'a>,
    pub(crate) passthrough: Passthrough<'a>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

pub(crate) fn take_common<'a>(body: &mut Body<'a>) -> Result<Common<'a>, TranslateError> {
    let stream = body.take::<bool>("stream")?.unwrap_or(false);
    let include_usage = body
        .take::<StreamOptions>("stream_options")?
        .is_some_and(|o| o.include_usage);
    let inference = InferenceConfig {
        max_tokens: take_max_tokens(body, "max_tokens")?,
        temperature: take_finite(body, "temperature")?,
        top_p: take_finite(body, "top_p")?,
        stop_sequences: take_stop(body)?,
    };
    let passthrough = Passthrough {
        additional_model_request_fields: take_object(body, "additionalModelRequestFields")?,
        guardrail_config: take_object(body, "guardrailConfig")?,
        performance_config: take_object(body, "performanceConfig")?,
    };
    match body.take::<u32>("n")? {
        None | Some(1) => {}
        Some(n) => {
            return Err(TranslateError::unsupported(
                "n",
                format!("n={n} is not supported; Bedrock returns one choice per request"),
            ));
        }
    }
    let _user: Option<Cow<'a, str>> = body.take("user")?;
    let _seed: Option<i64> = body.take("seed")?;
    for penalty in ["frequency_penalty", "presence_penalty"] {
        if take_finite(body, penalty)?.is_some_and(|p| p != 0.0) {
            return Err(TranslateError::unsupported(
                penalty,
                format!("{penalty} is not supported by Bedrock Converse"),
            ));
        }
    }
    if body
        .take::<HashMap<String, IgnoredAny>>("logit_bias")?
        .is_some_and(|m| !m.is_empty())
    {
        return Err(TranslateError::unsupported(
            "logit_bias",
            "logit_bias is not supported by Bedrock Converse",
        ));
    }
    Ok(Common {
        stream,
        include_usage,
        inference,
        passthrough,
    })
}

pub(crate) fn take_max_tokens(
    body: &mut Body<'_>,
    name: &str,
) -> Result<Option<u32>, TranslateError> {
    match body.take::<u32>(name)? {
        Some(0) => Err(TranslateError::invalid(name, "must be at least 1")),
        other => Ok(other),
    }
}

pub(crate) fn take_finite(body: &mut Body<'_>, name: &str) -> Result<Option<f32>, TranslateError> {
    match body.take::<f32>(name)? {
        Some(v) if !v.is_finite() => Err(TranslateError::invalid(name, "must be a finite number")),
        other => Ok(other),
    }
}

fn take_object<'a>(
    body: &mut Body<'a>,
    name: &str,
) -> Result<Option<&'a serde_json::value::RawValue>, TranslateError> {
    match body.take_raw(name) {
        Some(raw) if first_byte(raw) != b'{' => {
            Err(TranslateError::invalid(name, "must be an object"))
        }
        other => Ok(other),
    }
}

fn take_stop<'a>(body: &mut Body<'a>) -> Result<Vec<Cow<'a, str>>, TranslateError> {
    let Some(raw) = body.take_raw("stop") else {
        return Ok(Vec::new());
    };
    let stops: Vec<Cow<'a, str>> = match first_byte(raw) {
        b'"' => vec![parse_raw::<Cow<'a, str>>(raw, "stop")?],
        b'[' => parse_raw::<Vec<StrCow<'a>>>(raw, "stop")?
            .into_iter()
            .map(|s| s.0)
            .collect(),
        _ => {
            return Err(TranslateError::invalid(
                "stop",
                "must be a string or an array of strings",
            ));
        }
    };
    // Bedrock rejects blank stop sequences with a less precise message.
    if let Some(i) = stops.iter().position(|s| s.is_empty()) {
        return Err(TranslateError::invalid(
            format!("stop[{i}]"),
            "must not be empty",
        ));
    }
    Ok(stops)
}

/// A `Cow<str>` that borrows when it can: serde only borrows a bare `Cow` field marked
/// `#[serde(borrow)]`, not the elements of a `Vec<Cow<str>>`.
#[derive(Deserialize)]
pub(crate) struct StrCow<'a>(#[serde(borrow)] pub(crate) Cow<'a, str>);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn common(json: &str) -> Result<(Common<'_>, Body<'_>), TranslateError> {
        let mut body = Body::parse(json.as_bytes())?;
        let c = take_common(&mut body)?;
        Ok((c, body))
    }

    #[test]
    fn sampling_and_stream() {
        let (c, body) = common(
            r#"{"stream":true,"stream_options":{"include_usage":true},"max_tokens":5,
                "temperature":0.5,"top_p":0.9,"stop":["a","b"],"n":1,"user":"u","seed":7,
                "frequency_penalty":0,"presence_penalty":0.0,"logit_bias":{}}"#,
        )
        .unwrap();
        body.reject_rest().unwrap();
        assert!(c.stream && c.include_usage);
        // Compared as text: f32 0.9 must reach Bedrock as `0.9`, not as its f64 widening.
        assert_eq!(
            serde_json::to_string(&c.inference).unwrap(),
            r#"{"maxTokens":5,"temperature":0.5,"topP":0.9,"stopSequences":["a","b"]}"#
        );
    }

    #[test]
    fn stop_string_and_errors() {
        let (c, _) = common(r#"{"stop":"END"}"#).unwrap();
        assert_eq!(c.inference.stop_sequences, vec![Cow::Borrowed("END")]);
        assert_eq!(
            common(r#"{"stop":["a",""]}"#).err().unwrap().param(),
            Some("stop[1]")
        );
        assert_eq!(common(r#"{"stop":5}"#).err().unwrap().param(), Some("stop"));
    }

    #[test]
    fn refused_knobs() {
        for (json, param) in [
            (r#"{"n":2}"#, "n"),
            (r#"{"frequency_penalty":0.5}"#, "frequency_penalty"),
            (r#"{"presence_penalty":-1}"#, "presence_penalty"),
            (r#"{"logit_bias":{"50256":-100}}"#, "logit_bias"),
        ] {
            let err = common(json).err().unwrap();
            assert!(matches!(err, TranslateError::Unsupported { .. }), "{json}");
            assert_eq!(err.param(), Some(param));
        }
    }

    #[test]
    fn invalid_types() {
        for (json, param) in [
            (r#"{"stream":"yes"}"#, "stream"),
            (r#"{"max_tokens":0}"#, "max_tokens"),
            (r#"{"max_tokens":-3}"#, "max_tokens"),
            (r#"{"temperature":"hot"}"#, "temperature"),
            (r#"{"guardrailConfig":"g"}"#, "guardrailConfig"),
            (r#"{"user":5}"#, "user"),
        ] {
            let err = common(json).err().unwrap();
            assert!(matches!(err, TranslateError::Invalid { .. }), "{json}");
            assert_eq!(err.param(), Some(param), "{json}");
        }
    }
}
