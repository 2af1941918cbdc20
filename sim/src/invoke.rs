//! InvokeModel and InvokeModelWithResponseStream: each family's native body in, its native body out.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::errors::SimError;
use super::eventstream::event_frame;
use super::models::{
    Family, Reply, Role, StopReason, count_words, embedding, limit, reply_text, stable_id,
    word_deltas,
};

const TITAN_V1_DIMENSIONS: usize = 1536;
const TITAN_V2_DIMENSIONS: [usize; 3] = [256, 512, 1024];
const TITAN_V2_DEFAULT_DIMENSIONS: usize = 1024;
const COHERE_DIMENSIONS: usize = 1024;
/// Cohere Embed takes at most this many texts per call.
const COHERE_MAX_TEXTS: usize = 96;
const COHERE_INPUT_TYPES: [&str; 4] = [
    "search_document",
    "search_query",
    "classification",
    "clustering",
];

#[derive(Debug, Deserialize)]
struct AnthropicRequest {
    #[serde(rename = "anthropic_version")]
    _anthropic_version: String,
    max_tokens: u64,
    messages: Vec<AnthropicMessage>,
    system: Option<Value>,
    #[serde(default)]
    stop_sequences: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct AnthropicMessage {
    role: Role,
    content: Value,
}

#[derive(Debug, Deserialize)]
struct LlamaRequest {
    prompt: String,
    max_gen_len: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TitanV1Request {
    input_text: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanV2Request {
    input_text: String,
    dimensions: Option<usize>,
    normalize: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct CohereRequest {
    texts: Vec<String>,
    input_type: String,
    embedding_types: Option<Vec<String>>,
}

/// A non-streamed answer and the token counts Bedrock reports in headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoked {
    pub body: Value,
    pub input_tokens: u64,
    pub output_tokens: Option<u64>,
}

/// A chat answer, before it is rendered as a whole body or as chunks.
#[derive(Debug, Clone, PartialEq)]
struct Chat {
    family: Family,
    reply: Reply,
    input_tokens: u64,
    id: String,
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(|e| {
        SimError::validation(format!(
            "Malformed input request: {e}, please reformat your input and try again."
        ))
    })
}

fn unsupported() -> SimError {
    SimError::validation("The provided model identifier is invalid for this operation.")
}

pub fn invoke(
    family: Family,
    body: &[u8],
    region: &str,
    model_id: &str,
) -> Result<Invoked, SimError> {
    match family {
        Family::Anthropic | Family::Llama => {
            Ok(chat_body(&chat(family, body, region, model_id)?, model_id))
        }
        Family::TitanEmbedV1 => {
            let req: TitanV1Request = parse(body)?;
            Ok(titan(&req.input_text, TITAN_V1_DIMENSIONS, false))
        }
        Family::TitanEmbedV2 => {
            let req: TitanV2Request = parse(body)?;
            let dimensions = req.dimensions.unwrap_or(TITAN_V2_DEFAULT_DIMENSIONS);
            if !TITAN_V2_DIMENSIONS.contains(&dimensions) {
                return Err(SimError::validation(
                    "dimensions must be one of 256, 512, 1024",
                ));
            }
            Ok(titan(
                &req.input_text,
                dimensions,
                req.normalize.unwrap_or(true),
            ))
        }
        Family::CohereEmbed => cohere(parse(body)?),
        Family::GenericChat => Err(unsupported()),
    }
}

fn chat(family: Family, body: &[u8], region: &str, model_id: &str) -> Result<Chat, SimError> {
    let (user_text, input_tokens, max_tokens, stop_sequences) = match family {
        Family::Anthropic => {
            let req: AnthropicRequest = parse(body)?;
            let last_user = req
                .messages
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .ok_or_else(|| {
                    SimError::validation("messages: at least one user message is required")
                })?;
            let system = req.system.as_ref().map(content_text).unwrap_or_default();
            let input = count_words(&system)
                + req
                    .messages
                    .iter()
                    .map(|m| count_words(&content_text(&m.content)))
                    .sum::<u64>();
            (
                content_text(&last_user.content),
                input,
                Some(req.max_tokens),
                req.stop_sequences,
            )
        }
        Family::Llama => {
            let req: LlamaRequest = parse(body)?;
            let input = count_words(&req.prompt);
            (req.prompt, input, req.max_gen_len, Vec::new())
        }
        Family::TitanEmbedV1 | Family::TitanEmbedV2 | Family::CohereEmbed | Family::GenericChat => {
            return Err(unsupported());
        }
    };
    let reply = limit(
        &reply_text(region, model_id, &user_text),
        max_tokens,
        &stop_sequences,
    );
    Ok(Chat {
        family,
        id: stable_id(&[model_id, &user_text], 24),
        reply,
        input_tokens,
    })
}

/// Anthropic content is a string or a list of blocks; only text blocks count.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn llama_stop(stop: StopReason) -> &'static str {
    match stop {
        StopReason::MaxTokens => "length",
        StopReason::EndTurn | StopReason::StopSequence | StopReason::ToolUse => "stop",
    }
}

fn chat_body(chat: &Chat, model_id: &str) -> Invoked {
    let output = chat.reply.words();
    let body = match chat.family {
        Family::Llama => json!({
            "generation": chat.reply.text,
            "prompt_token_count": chat.input_tokens,
            "generation_token_count": output,
            "stop_reason": llama_stop(chat.reply.stop),
        }),
        // Anthropic spells its stop reasons the way Converse does.
        _ => json!({
            "id": format!("msg_bdrk_{}", chat.id),
            "type": "message",
            "role": "assistant",
            "model": model_id,
            "content": [{ "type": "text", "text": chat.reply.text }],
            "stop_reason": chat.reply.stop.converse(),
            "stop_sequence": chat.reply.stop_sequence,
            "usage": { "input_tokens": chat.input_tokens, "output_tokens": output },
        }),
    };
    Invoked {
        body,
        input_tokens: chat.input_tokens,
        output_tokens: Some(output),
    }
}

fn titan(text: &str, dimensions: usize, normalize: bool) -> Invoked {
    let tokens = count_words(text);
    Invoked {
        body: json!({ "embedding": embedding(text, dimensions, normalize), "inputTextTokenCount": tokens }),
        input_tokens: tokens,
        output_tokens: None,
    }
}

fn cohere(req: CohereRequest) -> Result<Invoked, SimError> {
    if req.texts.is_empty() || req.texts.len() > COHERE_MAX_TEXTS {
        return Err(SimError::validation(
            "texts must hold between 1 and 96 strings",
        ));
    }
    if !COHERE_INPUT_TYPES.contains(&req.input_type.as_str()) {
        return Err(SimError::validation(format!(
            "invalid input_type {}",
            req.input_type
        )));
    }
    let vectors: Vec<Vec<f64>> = req
        .texts
        .iter()
        .map(|t| embedding(t, COHERE_DIMENSIONS, true))
        .collect();
    let texts: Vec<&str> = req.texts.iter().map(String::as_str).collect();
    let id = stable_id(&texts, 32);
    let body = match req.embedding_types.as_deref() {
        None => {
            json!({ "id": id, "embeddings": vectors, "texts": texts, "response_type": "embeddings_floats" })
        }
        Some(types) if types.iter().all(|t| t == "float") => json!({
            "id": id,
            "embeddings": { "float": vectors },
            "texts": texts,
            "response_type": "embeddings_by_type",
        }),
        Some(_) => {
            return Err(SimError::validation(
                "the simulator only produces float embeddings",
            ));
        }
    };
    Ok(Invoked {
        body,
        input_tokens: texts.iter().map(|t| count_words(t)).sum(),
        output_tokens: None,
    })
}

/// The `chunk` events of InvokeModelWithResponseStream, each wrapping a base64 native event.
pub fn stream_frames(
    family: Family,
    body: &[u8],
    region: &str,
    model_id: &str,
    latency_ms: u64,
) -> Result<Vec<Bytes>, SimError> {
    let chat = chat(family, body, region, model_id)?;
    let output = chat.reply.words();
    let metrics = json!({
        "inputTokenCount": chat.input_tokens,
        "outputTokenCount": output,
        "invocationLatency": latency_ms,
        "firstByteLatency": latency_ms,
    });
    let deltas = word_deltas(&chat.reply.text);
    let events: Vec<Value> = match family {
        Family::Llama => {
            let last = deltas.len().saturating_sub(1);
            deltas
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let mut event = json!({
                        "generation": d,
                        "prompt_token_count": if i == 0 { Some(chat.input_tokens) } else { None },
                        "generation_token_count": i + 1,
                        "stop_reason": if i == last { Some(llama_stop(chat.reply.stop)) } else { None },
                    });
                    if i == last {
                        event["amazon-bedrock-invocationMetrics"] = metrics.clone();
                    }
                    event
                })
                .collect()
        }
        _ => {
            let mut events = vec![
                json!({ "type": "message_start", "message": {
                    "id": format!("msg_bdrk_{}", chat.id), "type": "message", "role": "assistant",
                    "model": model_id, "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": { "input_tokens": chat.input_tokens, "output_tokens": 1 },
                } }),
                json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
            ];
            events.extend(deltas.iter().map(|d| {
                json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": d } })
            }));
            events.push(json!({ "type": "content_block_stop", "index": 0 }));
            events.push(json!({
                "type": "message_delta",
                "delta": { "stop_reason": chat.reply.stop.converse(), "stop_sequence": chat.reply.stop_sequence },
                "usage": { "output_tokens": output },
            }));
            events.push(
                json!({ "type": "message_stop", "amazon-bedrock-invocationMetrics": metrics }),
            );
            events
        }
    };
    Ok(events
        .iter()
        .map(|e| event_frame("chunk", &json!({ "bytes": STANDARD.encode(e.to_string()) })))
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn call(family: Family, body: Value) -> Result<Invoked, SimError> {
        invoke(family, body.to_string().as_bytes(), "us-east-1", "model")
    }

    #[test]
    fn anthropic_messages_round_trip() {
        let out = call(
            Family::Anthropic,
            json!({ "anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
                    "messages": [{ "role": "user", "content": "hello there" }] }),
        )
        .unwrap();
        assert_eq!(out.body["type"], "message");
        assert_eq!(out.body["stop_reason"], "end_turn");
        assert_eq!(out.body["usage"]["input_tokens"], 2);
        assert_eq!(out.output_tokens, Some(8));
        assert!(call(Family::Anthropic, json!({ "messages": [] })).is_err());
    }

    #[test]
    fn llama_reports_length_when_cut() {
        let out = call(Family::Llama, json!({ "prompt": "hi", "max_gen_len": 3 })).unwrap();
        assert_eq!(out.body["stop_reason"], "length");
        assert_eq!(out.body["generation"], "Hello from us-east-1");
    }

    #[test]
    fn titan_v2_checks_dimensions_and_normalizes() {
        let out = call(
            Family::TitanEmbedV2,
            json!({ "inputText": "a b", "dimensions": 256 }),
        )
        .unwrap();
        let v: Vec<f64> = serde_json::from_value(out.body["embedding"].clone()).unwrap();
        assert_eq!(v.len(), 256);
        assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(out.body["inputTextTokenCount"], 2);
        assert!(
            call(
                Family::TitanEmbedV2,
                json!({ "inputText": "a", "dimensions": 300 })
            )
            .is_err()
        );
        let v1 = call(Family::TitanEmbedV1, json!({ "inputText": "a" })).unwrap();
        assert_eq!(v1.body["embedding"].as_array().unwrap().len(), 1536);
    }

    #[test]
    fn cohere_embeds_each_text() {
        let out = call(
            Family::CohereEmbed,
            json!({ "texts": ["a", "b c"], "input_type": "search_query" }),
        )
        .unwrap();
        assert_eq!(out.body["embeddings"].as_array().unwrap().len(), 2);
        assert_eq!(out.body["response_type"], "embeddings_floats");
        assert!(call(Family::CohereEmbed, json!({ "texts": ["a"] })).is_err());
    }

    #[test]
    fn embeddings_cannot_stream() {
        let body = json!({ "inputText": "a" }).to_string();
        assert!(stream_frames(Family::TitanEmbedV2, body.as_bytes(), "r", "m", 0).is_err());
    }
}
