//! A Claude answer on the wire: InvokeModel's Messages body with its token-count headers, and
//! InvokeModelWithResponseStream's `chunk` events, each carrying one of Anthropic's stream events
//! (base64 JSON), the last with Bedrock's `amazon-bedrock-invocationMetrics`.

use bytes::Bytes;
use serde_json::{Value, json};

use super::claude::{Answer, Block, Usage};
use super::invoke::chunk_frames;
use super::models::{TOOL_INPUT_FRAGMENTS, fragments, word_deltas};

fn message_id(answer: &Answer) -> String {
    format!("msg_bdrk_{}", answer.id)
}

fn usage(usage: &Usage, output_tokens: u64) -> Value {
    json!({
        "input_tokens": usage.input,
        "cache_creation_input_tokens": usage.cache.write,
        "cache_read_input_tokens": usage.cache.read,
        "output_tokens": output_tokens,
    })
}

fn block_json(block: &Block) -> Value {
    match block {
        Block::Thinking {
            thinking,
            signature,
        } => json!({ "type": "thinking", "thinking": thinking, "signature": signature }),
        Block::RedactedThinking { data } => json!({ "type": "redacted_thinking", "data": data }),
        Block::Text(text) => json!({ "type": "text", "text": text }),
        Block::ToolUse { id, name, input } => {
            json!({ "type": "tool_use", "id": id, "name": name, "input": input })
        }
    }
}

/// InvokeModel's body.
pub fn body(answer: &Answer, model_id: &str) -> Value {
    json!({
        "id": message_id(answer),
        "type": "message",
        "role": "assistant",
        "model": model_id,
        "content": answer.blocks.iter().map(block_json).collect::<Vec<_>>(),
        "stop_reason": answer.stop.converse(),
        "stop_sequence": answer.stop_sequence,
        "usage": usage(&answer.usage, answer.usage.output),
    })
}

/// InvokeModel's token-count headers, as Bedrock sets them for Claude.
pub fn headers(answer: &Answer, latency_ms: u64) -> [(&'static str, u64); 5] {
    let usage = &answer.usage;
    [
        ("x-amzn-bedrock-input-token-count", usage.input),
        ("x-amzn-bedrock-output-token-count", usage.output),
        ("x-amzn-bedrock-invocation-latency", latency_ms),
        (
            "x-amzn-bedrock-cache-read-input-token-count",
            usage.cache.read,
        ),
        (
            "x-amzn-bedrock-cache-write-input-token-count",
            usage.cache.write,
        ),
    ]
}

/// Anthropic's stream events for the answer, in order.
pub fn events(answer: &Answer, model_id: &str, latency_ms: u64) -> Vec<Value> {
    let mut events = vec![json!({ "type": "message_start", "message": {
        "id": message_id(answer), "type": "message", "role": "assistant", "model": model_id,
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": usage(&answer.usage, 1),
    } })];
    for (index, block) in answer.blocks.iter().enumerate() {
        let delta =
            |delta: Value| json!({ "type": "content_block_delta", "index": index, "delta": delta });
        let (start, deltas): (Value, Vec<Value>) = match block {
            Block::Thinking {
                thinking,
                signature,
            } => {
                let mut deltas: Vec<Value> = word_deltas(thinking)
                    .into_iter()
                    .map(|d| delta(json!({ "type": "thinking_delta", "thinking": d })))
                    .collect();
                deltas.push(delta(
                    json!({ "type": "signature_delta", "signature": signature }),
                ));
                (
                    json!({ "type": "thinking", "thinking": "", "signature": "" }),
                    deltas,
                )
            }
            Block::RedactedThinking { .. } => (block_json(block), Vec::new()),
            Block::Text(text) => (
                json!({ "type": "text", "text": "" }),
                word_deltas(text)
                    .into_iter()
                    .map(|d| delta(json!({ "type": "text_delta", "text": d })))
                    .collect(),
            ),
            Block::ToolUse { id, name, input } => (
                json!({ "type": "tool_use", "id": id, "name": name, "input": {} }),
                fragments(&input.to_string(), TOOL_INPUT_FRAGMENTS)
                    .into_iter()
                    .map(|f| delta(json!({ "type": "input_json_delta", "partial_json": f })))
                    .collect(),
            ),
        };
        events
            .push(json!({ "type": "content_block_start", "index": index, "content_block": start }));
        events.extend(deltas);
        events.push(json!({ "type": "content_block_stop", "index": index }));
    }
    let usage = &answer.usage;
    events.push(json!({
        "type": "message_delta",
        "delta": { "stop_reason": answer.stop.converse(), "stop_sequence": answer.stop_sequence },
        "usage": { "output_tokens": usage.output },
    }));
    events.push(
        json!({ "type": "message_stop", "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": usage.input,
        "outputTokenCount": usage.output,
        "invocationLatency": latency_ms,
        "firstByteLatency": latency_ms,
        "cacheReadInputTokenCount": usage.cache.read,
        "cacheWriteInputTokenCount": usage.cache.write,
    } }),
    );
    events
}

/// The events as InvokeModelWithResponseStream's `chunk` frames.
pub fn stream_frames(answer: &Answer, model_id: &str, latency_ms: u64) -> Vec<Bytes> {
    chunk_frames(&events(answer, model_id, latency_ms))
}
