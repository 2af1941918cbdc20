//! Anthropic Messages <-> Claude on Bedrock (InvokeModel): a passthrough.
//!
//! The client's body goes upstream as its own bytes, edited at the top level only: `model` and
//! `stream` are removed (Bedrock refuses both as extraneous keys), `anthropic_version` is set to
//! Bedrock's, and the beta flags the target allows travel as `anthropic_beta`. Every other
//! top-level value is copied as the raw text the client sent, so thinking signatures,
//! `cache_control` and key order reach Bedrock byte for byte. Stream events come back as
//! Bedrock's `chunk` frames, each one Anthropic event in base64; they are re-framed as SSE with
//! Bedrock's invocation metrics taken out.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::anthropic::MessagesUsage;
use super::body::{Body, first_byte};
use super::error::TranslateError;
use super::sse;

/// The only `anthropic_version` Bedrock accepts.
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";
/// Where Bedrock puts its own accounting in the last stream event.
const INVOCATION_METRICS: &str = "amazon-bedrock-invocationMetrics";
/// Bedrock's own top-level keys: the version and the beta flags.
const BEDROCK_KEYS: [&str; 2] = ["anthropic_version", "anthropic_beta"];
/// Top-level keys the gateway owns in the Bedrock body.
const REPLACED_KEYS: [&str; 4] = ["model", "stream", BEDROCK_KEYS[0], BEDROCK_KEYS[1]];
/// A count needs a body InvokeModel would take, and InvokeModel requires `max_tokens`, which
/// Anthropic's count_tokens request does not carry; the count does not depend on it.
const COUNT_MAX_TOKENS: u32 = 1;

/// What the gateway reads of a Messages request to route it; the body itself stays as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesHead {
    /// A route name or a model id, for the gateway to resolve.
    pub model: String,
    pub stream: bool,
    /// Beta flags the client put in the body itself (besides the `anthropic-beta` header).
    pub body_betas: Vec<String>,
    /// The body already names `max_tokens`.
    pub has_max_tokens: bool,
    /// `thinking.budget_tokens`, which must stay below `max_tokens`.
    pub thinking_budget: Option<u32>,
}

/// Reads `model`, `stream` and what the body says about betas and output; checks `messages`
/// is there, so the client hears of a missing conversation in its own terms.
pub fn messages_head(body: &[u8]) -> Result<MessagesHead, TranslateError> {
    #[derive(Deserialize)]
    struct ThinkingBudget {
        budget_tokens: Option<u32>,
    }
    let mut body = Body::parse(body)?;
    let model = body.take_model()?;
    let stream = body.take::<bool>("stream")?.unwrap_or(false);
    let body_betas = body
        .take::<Vec<String>>("anthropic_beta")?
        .unwrap_or_default();
    match body.take_raw("messages") {
        None => return Err(TranslateError::invalid("messages", "is required")),
        Some(raw) if first_byte(raw) != b'[' => {
            return Err(TranslateError::invalid("messages", "must be an array"));
        }
        Some(_) => {}
    }
    let has_max_tokens = body.take_raw("max_tokens").is_some();
    let thinking_budget = body
        .take::<ThinkingBudget>("thinking")?
        .and_then(|t| t.budget_tokens);
    Ok(MessagesHead {
        model,
        stream,
        body_betas,
        has_max_tokens,
        thinking_budget,
    })
}

/// The requested beta flags split by a target's allow-list.
#[derive(Debug, PartialEq, Eq)]
pub struct Betas<'a> {
    pub kept: Vec<&'a str>,
    pub dropped: usize,
}

/// Every beta flag a request asks for, in the `anthropic-beta` header (comma-separated, possibly
/// repeated) or the body's own list, each once.
pub fn requested_betas<'a>(requested: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut flags: Vec<&str> = Vec::new();
    for flag in requested
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        if !flag.is_empty() && !flags.contains(&flag) {
            flags.push(flag);
        }
    }
    flags
}

/// The requested beta flags (as [`requested_betas`] reads them) split by a target's allow-list.
pub fn split_betas<'a>(
    requested: impl IntoIterator<Item = &'a str>,
    allowed: &[String],
) -> Betas<'a> {
    let (kept, dropped): (Vec<&str>, Vec<&str>) = requested_betas(requested)
        .into_iter()
        .partition(|flag| allowed.iter().any(|a| a == flag));
    Betas {
        kept,
        dropped: dropped.len(),
    }
}

/// The InvokeModel body for a Claude target.
pub fn bedrock_body(body: &[u8], betas: &[&str]) -> Result<Vec<u8>, TranslateError> {
    build(body, betas, None)
}

/// The CountTokens body, `{"input":{"invokeModel":{"body": <base64 of the InvokeModel body>}}}`.
pub fn count_tokens_body(
    body: &[u8],
    head: &MessagesHead,
    betas: &[&str],
) -> Result<Vec<u8>, TranslateError> {
    let max_tokens = (!head.has_max_tokens).then(|| {
        head.thinking_budget
            .map_or(COUNT_MAX_TOKENS, |budget| budget.saturating_add(1))
    });
    let invoke = build(body, betas, max_tokens)?;
    let mut out = Vec::with_capacity(invoke.len() * 4 / 3 + 48);
    out.extend_from_slice(br#"{"input":{"invokeModel":{"body":""#);
    out.extend_from_slice(STANDARD.encode(invoke).as_bytes());
    out.extend_from_slice(br#""}}}"#);
    Ok(out)
}

/// Bedrock's CountTokens answer, `{"inputTokens": N}`, in Anthropic's words.
pub fn count_tokens_response(upstream: &[u8]) -> Result<Vec<u8>, TranslateError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Counted {
        input_tokens: u64,
    }
    let counted: Counted = serde_json::from_slice(upstream)
        .map_err(|e| TranslateError::upstream(format!("CountTokens response: {e}")))?;
    Ok(format!("{{\"input_tokens\":{}}}", counted.input_tokens).into_bytes())
}

/// The body for the Anthropic API, which knows neither of Bedrock's top-level `anthropic_version`
/// and `anthropic_beta` (its version and betas are headers); every other field as sent.
pub fn anthropic_api_body(body: &[u8]) -> Result<Vec<u8>, TranslateError> {
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(b'{');
    copy_fields(body, &BEDROCK_KEYS, &mut out)?;
    // The comma after the last field copied, if any, closes the object instead.
    if out.len() > 1 {
        out.pop();
    }
    out.push(b'}');
    Ok(out)
}

/// Appends each top-level field of `body` not in `skip`, as sent, each followed by a comma.
fn copy_fields(body: &[u8], skip: &[&str], out: &mut Vec<u8>) -> Result<(), TranslateError> {
    let parsed = Body::parse(body)?;
    for (key, value) in parsed.fields() {
        if skip.contains(&key) {
            continue;
        }
        push_key(out, key)?;
        out.extend_from_slice(value.get().as_bytes());
        out.push(b',');
    }
    Ok(())
}

fn build(body: &[u8], betas: &[&str], max_tokens: Option<u32>) -> Result<Vec<u8>, TranslateError> {
    let mut out = Vec::with_capacity(body.len() + 128);
    out.push(b'{');
    copy_fields(body, &REPLACED_KEYS, &mut out)?;
    if let Some(max_tokens) = max_tokens {
        out.extend_from_slice(format!("\"max_tokens\":{max_tokens},").as_bytes());
    }
    out.extend_from_slice(b"\"anthropic_version\":\"");
    out.extend_from_slice(BEDROCK_ANTHROPIC_VERSION.as_bytes());
    out.push(b'"');
    if !betas.is_empty() {
        out.extend_from_slice(b",\"anthropic_beta\":");
        serde_json::to_writer(&mut out, betas)
            .map_err(|e| TranslateError::invalid("anthropic-beta", e.to_string()))?;
    }
    out.push(b'}');
    Ok(out)
}

fn push_key(out: &mut Vec<u8>, key: &str) -> Result<(), TranslateError> {
    serde_json::to_writer(&mut *out, key)
        .map_err(|e| TranslateError::invalid(key, e.to_string()))?;
    out.push(b':');
    Ok(())
}

/// Usage from a Claude response body (`usage`), for metrics and limits.
pub fn response_usage(body: &[u8]) -> Option<MessagesUsage> {
    #[derive(Deserialize)]
    struct WithUsage {
        usage: MessagesUsage,
    }
    serde_json::from_slice::<WithUsage>(body)
        .ok()
        .map(|w| w.usage)
}

/// Re-frames one `chunk` event payload (`{"bytes": base64}`) as an SSE record, `event: <type>`
/// then the event's JSON, without Bedrock's invocation metrics (the stream reader takes usage
/// from them on its own).
pub fn chunk_to_sse(payload: &[u8], out: &mut Vec<u8>) -> Result<(), TranslateError> {
    #[derive(Deserialize)]
    struct Chunk<'a> {
        #[serde(borrow)]
        bytes: std::borrow::Cow<'a, str>,
    }
    let chunk: Chunk<'_> = serde_json::from_slice(payload)
        .map_err(|e| TranslateError::upstream(format!("chunk event: {e}")))?;
    let event = STANDARD
        .decode(chunk.bytes.as_bytes())
        .map_err(|e| TranslateError::upstream(format!("chunk event bytes: {e}")))?;
    let mut fields = Body::parse(&event)
        .map_err(|e| TranslateError::upstream(format!("chunk event JSON: {e}")))?;
    let name: String = fields
        .take::<String>("type")
        .ok()
        .flatten()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .ok_or_else(|| TranslateError::upstream("chunk event without a valid type"))?;
    if fields.take_raw(INVOCATION_METRICS).is_none() {
        sse::write_event(out, &name, &event);
        return Ok(());
    }
    // Rebuilt from the raw fields, `type` first as Anthropic sends it.
    let mut json = Vec::with_capacity(event.len());
    json.extend_from_slice(b"{\"type\":");
    serde_json::to_writer(&mut json, &name).map_err(|e| TranslateError::upstream(e.to_string()))?;
    for (key, value) in fields.fields() {
        json.push(b',');
        push_key(&mut json, key)?;
        json.extend_from_slice(value.get().as_bytes());
    }
    json.push(b'}');
    sse::write_event(out, &name, &json);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::{Value, json};

    const SIGNED: &str = r#"{"model":"claude","max_tokens":2048,"stream":true,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"Let me think.\n","signature":"EqQBCkYIARgCKkA+/w=="},{"type":"text","text":"Hello","cache_control":{"type":"ephemeral"}}]},{"role":"user","content":"again"}],"metadata":{"user_id":"u1"},"top_k":5}"#;

    #[test]
    fn only_top_level_keys_change_and_nested_bytes_stay() {
        let out = bedrock_body(SIGNED.as_bytes(), &["interleaved-thinking-2025-05-14"]).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        let messages_start = SIGNED.find("[{\"role\"").unwrap();
        let messages_end = SIGNED.find(",\"metadata\"").unwrap();
        assert!(
            text.contains(&SIGNED[messages_start..messages_end]),
            "{text}"
        );
        assert!(text.contains(r#""thinking":{"type":"enabled","budget_tokens":1024}"#));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(v.get("model").is_none() && v.get("stream").is_none());
        assert_eq!(v["anthropic_version"], BEDROCK_ANTHROPIC_VERSION);
        assert_eq!(
            v["anthropic_beta"],
            json!(["interleaved-thinking-2025-05-14"])
        );
        assert_eq!(v["top_k"], 5);
        assert_eq!(
            text,
            r#"{"max_tokens":2048,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"Let me think.\n","signature":"EqQBCkYIARgCKkA+/w=="},{"type":"text","text":"Hello","cache_control":{"type":"ephemeral"}}]},{"role":"user","content":"again"}],"metadata":{"user_id":"u1"},"top_k":5,"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["interleaved-thinking-2025-05-14"]}"#
        );
    }

    #[test]
    fn client_version_and_body_betas_are_replaced() {
        let body = br#"{"model":"m","anthropic_version":"2023-06-01","anthropic_beta":["x"],"max_tokens":5,"messages":[]}"#;
        let out = bedrock_body(body, &[]).unwrap();
        assert_eq!(
            out,
            br#"{"max_tokens":5,"messages":[],"anthropic_version":"bedrock-2023-05-31"}"#
        );
    }

    #[test]
    fn head_reads_routing_fields_and_refuses_a_missing_conversation() {
        let head = messages_head(SIGNED.as_bytes()).unwrap();
        assert_eq!(
            head,
            MessagesHead {
                model: "claude".into(),
                stream: true,
                body_betas: vec![],
                has_max_tokens: true,
                thinking_budget: Some(1024),
            }
        );
        let e = messages_head(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!(e.param(), Some("messages"));
        let e = messages_head(br#"{"messages":[]}"#).unwrap_err();
        assert_eq!(e.param(), Some("model"));
        let e = messages_head(br#"{"model":"m","messages":[],"stream":"yes"}"#).unwrap_err();
        assert_eq!(e.param(), Some("stream"));
    }

    #[test]
    fn the_anthropic_api_gets_the_body_without_bedrocks_version_and_betas() {
        let body = r#"{"model":"claude","anthropic_version":"bedrock-2023-05-31","max_tokens":9,"anthropic_beta":["b1"],"messages":[{"role":"user","content":"hi"}],"stream":true}"#;
        let out = anthropic_api_body(body.as_bytes()).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"claude","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"stream":true}"#
        );
        let only = anthropic_api_body(br#"{"anthropic_beta":[]}"#).unwrap();
        assert_eq!(only, b"{}");
    }

    #[test]
    fn requested_betas_come_once_from_header_and_body() {
        assert_eq!(requested_betas(["a, b", "b,,c", "a"]), vec!["a", "b", "c"]);
    }

    #[test]
    fn betas_outside_the_allow_list_are_dropped() {
        let allowed = vec![
            "interleaved-thinking-2025-05-14".to_owned(),
            "context-1m-2025-08-07".to_owned(),
        ];
        let betas = split_betas(
            [
                "claude-code-20250219, interleaved-thinking-2025-05-14",
                "context-1m-2025-08-07,interleaved-thinking-2025-05-14,",
            ],
            &allowed,
        );
        assert_eq!(
            betas,
            Betas {
                kept: vec!["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"],
                dropped: 1
            }
        );
    }

    #[test]
    fn count_tokens_wraps_an_invoke_body_with_max_tokens() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let head = messages_head(body).unwrap();
        let out = count_tokens_body(body, &head, &[]).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let inner = STANDARD
            .decode(v["input"]["invokeModel"]["body"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            inner,
            br#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"anthropic_version":"bedrock-2023-05-31"}"#
        );
        let thinking =
            br#"{"model":"m","messages":[],"thinking":{"type":"enabled","budget_tokens":2000}}"#;
        let head = messages_head(thinking).unwrap();
        let out = count_tokens_body(thinking, &head, &[]).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let inner: Value = serde_json::from_slice(
            &STANDARD
                .decode(v["input"]["invokeModel"]["body"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(inner["max_tokens"], 2001);
        assert_eq!(
            count_tokens_response(br#"{"inputTokens":42}"#).unwrap(),
            br#"{"input_tokens":42}"#
        );
        assert!(count_tokens_response(b"{}").is_err());
    }

    fn chunk(event: &Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"bytes": STANDARD.encode(event.to_string())})).unwrap()
    }

    #[test]
    fn chunks_become_named_events_and_metrics_stay_home() {
        let mut out = Vec::new();
        let delta = json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi\n\ndata: x"}});
        chunk_to_sse(&chunk(&delta), &mut out).unwrap();
        let stop = json!({"type":"message_stop","amazon-bedrock-invocationMetrics":{
            "inputTokenCount":7,"outputTokenCount":3,"invocationLatency":10,"firstByteLatency":5,
            "cacheReadInputTokenCount":100,"cacheWriteInputTokenCount":0}});
        chunk_to_sse(&chunk(&stop), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let records: Vec<&str> = text.split("\n\n").filter(|r| !r.is_empty()).collect();
        assert_eq!(records.len(), 2);
        assert!(records[0].starts_with("event: content_block_delta\ndata: "));
        let data: Value =
            serde_json::from_str(&records[0][records[0].find("data: ").unwrap() + 6..]).unwrap();
        assert_eq!(data, delta);
        assert_eq!(
            records[1],
            "event: message_stop\ndata: {\"type\":\"message_stop\"}"
        );
    }

    #[test]
    fn a_chunk_that_is_not_an_event_is_an_upstream_error() {
        let mut out = Vec::new();
        assert!(chunk_to_sse(b"{}", &mut out).is_err());
        assert!(chunk_to_sse(&chunk(&json!({"type":"bad\nname"})), &mut out).is_err());
        assert!(out.is_empty());
    }
}
