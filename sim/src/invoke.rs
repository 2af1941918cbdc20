//! InvokeModel and InvokeModelWithResponseStream for Llama and the embedding models: each family's
//! native body in, its native body out. Claude's Messages body is `claude`'s.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::errors::SimError;
use super::eventstream::event_frame;
use super::models::{
    Family, Reply, StopReason, count_words, embedding, limit, reply_text, stable_id, word_deltas,
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

/// A Llama answer, before it is rendered as a whole body or as chunks.
#[derive(Debug, Clone, PartialEq)]
struct Chat {
    reply: Reply,
    input_tokens: u64,
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(SimError::malformed)
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
        Family::Llama => Ok(llama_body(&llama(body, region, model_id)?)),
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
        // Claude has its own module (`claude`); the others only answer Converse.
        Family::Anthropic | Family::GenericChat => Err(unsupported()),
    }
}

fn llama(body: &[u8], region: &str, model_id: &str) -> Result<Chat, SimError> {
    let req: LlamaRequest = parse(body)?;
    let reply = limit(
        &reply_text(region, model_id, &req.prompt),
        req.max_gen_len,
        &[],
    );
    Ok(Chat {
        reply,
        input_tokens: count_words(&req.prompt),
    })
}

fn llama_stop(stop: StopReason) -> &'static str {
    match stop {
        StopReason::MaxTokens => "length",
        StopReason::EndTurn | StopReason::StopSequence | StopReason::ToolUse => "stop",
    }
}

fn llama_body(chat: &Chat) -> Invoked {
    let output = chat.reply.words();
    Invoked {
        body: json!({
            "generation": chat.reply.text,
            "prompt_token_count": chat.input_tokens,
            "generation_token_count": output,
            "stop_reason": llama_stop(chat.reply.stop),
        }),
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

/// Llama's InvokeModelWithResponseStream events: one per word, the last with Bedrock's metrics.
pub fn stream_frames(
    family: Family,
    body: &[u8],
    region: &str,
    model_id: &str,
    latency_ms: u64,
) -> Result<Vec<Bytes>, SimError> {
    if family != Family::Llama {
        return Err(unsupported());
    }
    let chat = llama(body, region, model_id)?;
    let output = chat.reply.words();
    let deltas = word_deltas(&chat.reply.text);
    let last = deltas.len().saturating_sub(1);
    let events: Vec<Value> = deltas
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
                event["amazon-bedrock-invocationMetrics"] = json!({
                    "inputTokenCount": chat.input_tokens,
                    "outputTokenCount": output,
                    "invocationLatency": latency_ms,
                    "firstByteLatency": latency_ms,
                });
            }
            event
        })
        .collect();
    Ok(chunk_frames(&events))
}

/// Native events as InvokeModelWithResponseStream's `chunk` frames, each event base64 JSON.
pub fn chunk_frames(events: &[Value]) -> Vec<Bytes> {
    events
        .iter()
        .map(|e| event_frame("chunk", &json!({ "bytes": STANDARD.encode(e.to_string()) })))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn call(family: Family, body: Value) -> Result<Invoked, SimError> {
        invoke(family, body.to_string().as_bytes(), "us-east-1", "model")
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
