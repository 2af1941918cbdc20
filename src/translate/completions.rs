//! Legacy OpenAI `POST /v1/completions` over Converse.
//!
//! The prompt becomes one user message, so a chat model answers it rather than continuing raw
//! text; that is the only way to reach Bedrock's chat models, and what clients of this old API
//! get from OpenAI's own instruct models too. OpenAI's default of 16 `max_tokens` is not
//! imitated: without `max_tokens` the model's Bedrock default applies.
//!
//! Refused: a prompt batch or token ids, `suffix`, `echo: true`, `best_of` > 1, `logprobs`.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;

use super::body::{Body, encode_request, first_byte, parse_raw};
use super::chat_response::{self, TranslatedResponse};
use super::chat_stream::{ChatStreamTranslator, Flavor};
use super::converse::{ContentBlock, ConverseBody, Role};
use super::error::TranslateError;
use super::finish_reason::FinishReason;
use super::inference::take_common;
use super::usage::OpenAiUsage;

#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: Option<u32>,
    pub converse_body: Vec<u8>,
}

pub fn completion_request(body: &[u8]) -> Result<CompletionRequest, TranslateError> {
    let capacity = body.len() + 128;
    let mut body = Body::parse(body)?;
    let model = body.take_model()?;
    let prompt = take_prompt(&mut body)?;
    let common = take_common(&mut body)?;
    if body
        .take::<Cow<'_, str>>("suffix")?
        .is_some_and(|s| !s.is_empty())
    {
        return Err(TranslateError::unsupported(
            "suffix",
            "suffix (fill-in-the-middle) is not supported",
        ));
    }
    if body.take::<bool>("echo")? == Some(true) {
        return Err(TranslateError::unsupported("echo", "echo is not supported"));
    }
    if body.take::<u32>("best_of")?.is_some_and(|b| b > 1) {
        return Err(TranslateError::unsupported(
            "best_of",
            "best_of > 1 is not supported",
        ));
    }
    if body.take_raw("logprobs").is_some() {
        return Err(TranslateError::unsupported(
            "logprobs",
            "logprobs are not available from Bedrock Converse",
        ));
    }
    body.reject_rest()?;

    let mut converse = ConverseBody {
        inference_config: common.inference,
        passthrough: common.passthrough,
        ..ConverseBody::default()
    };
    converse.push(Role::User, [ContentBlock::Text(prompt)]);
    let max_tokens = converse.inference_config.max_tokens;
    let converse_body = encode_request(&converse, capacity, "prompt")?;
    Ok(CompletionRequest {
        model,
        stream: common.stream,
        include_usage: common.include_usage,
        max_tokens,
        converse_body,
    })
}

fn take_prompt<'a>(body: &mut Body<'a>) -> Result<Cow<'a, str>, TranslateError> {
    let raw = body
        .take_raw("prompt")
        .ok_or_else(|| TranslateError::invalid("prompt", "is required"))?;
    let prompt: Cow<'a, str> = match first_byte(raw) {
        b'"' => parse_raw(raw, "prompt")?,
        b'[' => {
            let items: Vec<&'a RawValue> = parse_raw(raw, "prompt")?;
            match items.as_slice() {
                [one] if first_byte(one) == b'"' => parse_raw(one, "prompt[0]")?,
                [one, ..] if first_byte(one) != b'"' => {
                    return Err(TranslateError::unsupported(
                        "prompt",
                        "token id prompts are not supported; send text",
                    ));
                }
                _ => {
                    return Err(TranslateError::invalid(
                        "prompt",
                        "must be a string or a list of exactly one string; send one request per prompt",
                    ));
                }
            }
        }
        _ => {
            return Err(TranslateError::invalid(
                "prompt",
                "must be a string or a list of exactly one string",
            ));
        }
    };
    if prompt.is_empty() {
        return Err(TranslateError::invalid("prompt", "must not be empty"));
    }
    Ok(prompt)
}

pub fn completion_response(
    converse_body: &[u8],
    model: &str,
    id: &str,
    created: u64,
) -> Result<TranslatedResponse, TranslateError> {
    let parsed = chat_response::parse(converse_body, None)?;
    let completion = TextCompletion {
        id,
        object: "text_completion",
        created,
        model,
        choices: [TextChoice {
            text: parsed.text.unwrap_or_default(),
            index: 0,
            logprobs: None,
            finish_reason: parsed.finish_reason,
        }],
        usage: OpenAiUsage::from(parsed.usage),
    };
    chat_response::encode(&completion, parsed.usage, parsed.finish_reason)
}

#[derive(Serialize)]
struct TextCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [TextChoice<'a>; 1],
    usage: OpenAiUsage,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    text: Cow<'a, str>,
    index: u32,
    logprobs: Option<()>,
    finish_reason: FinishReason,
}

/// ConverseStream events to `text_completion` chunks: the chat stream machine with a different
/// chunk shape, so framing and usage handling stay in one place.
pub fn completion_stream_translator(
    model: String,
    id: String,
    created: u64,
    include_usage: bool,
) -> ChatStreamTranslator {
    ChatStreamTranslator::with_flavor(Flavor::Completion, model, id, created, include_usage, None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::translate::StreamStep;
    use serde_json::{Value, json};

    fn request(body: Value) -> Result<(CompletionRequest, Value), TranslateError> {
        let r = completion_request(body.to_string().as_bytes())?;
        let c = serde_json::from_slice(&r.converse_body).unwrap();
        Ok((r, c))
    }

    #[test]
    fn prompt_forms() {
        let want = json!({"messages": [{"role": "user", "content": [{"text": "Say hi"}]}], "inferenceConfig": {"maxTokens": 5}});
        let (r, c) = request(json!({"model": "m", "prompt": "Say hi", "max_tokens": 5})).unwrap();
        assert_eq!(c, want);
        assert_eq!(r.max_tokens, Some(5));
        let (_, c) = request(json!({"model": "m", "prompt": ["Say hi"], "max_tokens": 5})).unwrap();
        assert_eq!(c, want);
        let (r, c) = request(json!({"model": "m", "prompt": "x", "stream": true, "stream_options": {"include_usage": true},
            "stop": ["\n"], "temperature": 0, "echo": false, "best_of": 1, "suffix": "", "user": "u"}))
        .unwrap();
        assert!(r.stream && r.include_usage);
        assert_eq!(
            c["inferenceConfig"],
            json!({"temperature": 0.0, "stopSequences": ["\n"]})
        );
    }

    #[test]
    fn prompt_errors() {
        for (body, param, invalid) in [
            (json!({"model": "m"}), "prompt", true),
            (json!({"model": "m", "prompt": ""}), "prompt", true),
            (json!({"model": "m", "prompt": ["a", "b"]}), "prompt", true),
            (json!({"model": "m", "prompt": []}), "prompt", true),
            (json!({"model": "m", "prompt": 5}), "prompt", true),
            (json!({"model": "m", "prompt": [1, 2, 3]}), "prompt", false),
            (json!({"model": "m", "prompt": [[1, 2]]}), "prompt", false),
            (
                json!({"model": "m", "prompt": "x", "suffix": "end"}),
                "suffix",
                false,
            ),
            (
                json!({"model": "m", "prompt": "x", "echo": true}),
                "echo",
                false,
            ),
            (
                json!({"model": "m", "prompt": "x", "best_of": 3}),
                "best_of",
                false,
            ),
            (
                json!({"model": "m", "prompt": "x", "logprobs": 2}),
                "logprobs",
                false,
            ),
            (json!({"model": "m", "prompt": "x", "n": 2}), "n", false),
            (
                json!({"model": "m", "prompt": "x", "max_completion_tokens": 2}),
                "max_completion_tokens",
                false,
            ),
        ] {
            let e = request(body.clone()).err().unwrap();
            assert_eq!(e.param(), Some(param), "{body}");
            assert_eq!(
                matches!(e, TranslateError::Invalid { .. }),
                invalid,
                "{body}: {e:?}"
            );
        }
    }

    #[test]
    fn response() {
        let converse = json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "Hi there"}]}},
            "stopReason": "max_tokens",
            "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
            "metrics": {"latencyMs": 1}
        });
        let r = completion_response(converse.to_string().as_bytes(), "m", "cmpl-1", 42).unwrap();
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            json!({"id": "cmpl-1", "object": "text_completion", "created": 42, "model": "m",
                "choices": [{"text": "Hi there", "index": 0, "logprobs": null, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
        );
        assert_eq!(r.finish_reason, FinishReason::Length);
        assert_eq!(r.usage.output_tokens, 2);
    }

    #[test]
    fn stream() {
        let mut t = completion_stream_translator("m".into(), "cmpl-1".into(), 42, true);
        let mut out = Vec::new();
        let events = [
            ("messageStart", json!({"role": "assistant"})),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Hi\n"}}),
            ),
            ("contentBlockStop", json!({"contentBlockIndex": 0})),
            ("messageStop", json!({"stopReason": "end_turn"})),
            (
                "metadata",
                json!({"usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}}),
            ),
        ];
        let mut steps = Vec::new();
        for (event, payload) in events {
            steps.push(
                t.on_event(event, payload.to_string().as_bytes(), &mut out)
                    .unwrap(),
            );
        }
        t.finish(&mut out);
        assert_eq!(
            steps,
            [
                StreamStep::Continue,
                StreamStep::FirstContent,
                StreamStep::Continue,
                StreamStep::Continue,
                StreamStep::Complete
            ]
        );
        let text = String::from_utf8(out).unwrap();
        let records: Vec<&str> = text.split_terminator("\n\n").collect();
        assert_eq!(records.len(), 4);
        let parse =
            |r: &str| -> Value { serde_json::from_str(r.strip_prefix("data: ").unwrap()).unwrap() };
        assert_eq!(
            parse(records[0]),
            json!({"id": "cmpl-1", "object": "text_completion", "created": 42, "model": "m",
                "choices": [{"text": "Hi\n", "index": 0, "logprobs": null, "finish_reason": null}]})
        );
        assert_eq!(
            parse(records[1])["choices"][0],
            json!({"text": "", "index": 0, "logprobs": null, "finish_reason": "stop"})
        );
        assert_eq!(parse(records[2])["choices"], json!([]));
        assert_eq!(parse(records[2])["usage"]["total_tokens"], 4);
        assert_eq!(records[3], "data: [DONE]");
        assert_eq!(t.usage().unwrap().input_tokens, 3);
        assert_eq!(t.finish_reason(), Some(FinishReason::Stop));
        assert!(!t.failed());
    }
}
