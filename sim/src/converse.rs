//! Converse and ConverseStream: the request shape from the Smithy model, a deterministic answer
//! (text, or a tool call when tools are offered), and its JSON or event-stream rendering.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::errors::SimError;
use super::eventstream::event_frame;
use super::models::{
    Reply, Role, StopReason, TOOL_INPUT_FRAGMENTS, count_words, fragments, limit, reply_text,
    sample_input, stable_id, word_deltas,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    messages: Vec<Message>,
    #[serde(default)]
    system: Vec<Value>,
    #[serde(default)]
    inference_config: InferenceConfig,
    tool_config: Option<ToolConfig>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: Role,
    content: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig {
    max_tokens: Option<u64>,
    #[serde(default)]
    stop_sequences: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig {
    tools: Vec<Tool>,
    tool_choice: Option<ToolChoice>,
}

/// A tool entry is a `toolSpec` or a `cachePoint`; only specs can be called.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tool {
    tool_spec: Option<ToolSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolSpec {
    name: String,
    input_schema: InputSchema,
}

#[derive(Debug, Deserialize)]
struct InputSchema {
    json: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
enum ToolChoice {
    Auto {},
    Any {},
    Tool { name: String },
}

/// What the model answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Text(Reply),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub answer: Answer,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Outcome {
    fn stop(&self) -> StopReason {
        match &self.answer {
            Answer::Text(reply) => reply.stop,
            Answer::ToolUse { .. } => StopReason::ToolUse,
        }
    }

    fn usage(&self) -> Value {
        json!({
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.output_tokens,
        })
    }
}

pub fn plan(body: &[u8], region: &str, model_id: &str) -> Result<Outcome, SimError> {
    let req: Request = serde_json::from_slice(body)
        .map_err(|e| SimError::validation(format!("Malformed input request: {e}")))?;
    if req.inference_config.max_tokens == Some(0) {
        return Err(SimError::validation(
            "The value at inferenceConfig.maxTokens must be greater than or equal to 1.",
        ));
    }
    let last_user = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .ok_or_else(|| SimError::validation("A conversation must start with a user message."))?;
    let input_tokens = input_tokens(&req);

    let tool_result: Vec<String> = last_user
        .content
        .iter()
        .filter_map(|b| b.get("toolResult"))
        .map(tool_result_text)
        .collect();
    if tool_result.is_empty()
        && let Some(tools) = &req.tool_config
        && let Some(spec) = chosen_tool(tools)?
    {
        let user_text = user_text(last_user);
        let input = sample_input(&spec.input_schema.json);
        let output_tokens = count_words(&input.to_string()).max(1);
        return Ok(Outcome {
            answer: Answer::ToolUse {
                id: format!(
                    "tooluse_{}",
                    stable_id(&[model_id, &spec.name, &user_text], 22)
                ),
                name: spec.name.clone(),
                input,
            },
            input_tokens,
            output_tokens,
        });
    }
    let text = if tool_result.is_empty() {
        reply_text(region, model_id, &user_text(last_user))
    } else {
        reply_text(
            region,
            model_id,
            &format!("tool result {}", tool_result.join(" ")),
        )
    };
    let config = &req.inference_config;
    let reply = limit(&text, config.max_tokens, &config.stop_sequences);
    Ok(Outcome {
        output_tokens: reply.words(),
        answer: Answer::Text(reply),
        input_tokens,
    })
}

fn input_tokens(req: &Request) -> u64 {
    req.system
        .iter()
        .chain(req.messages.iter().flat_map(|m| &m.content))
        .map(|b| count_words(&block_text(b)))
        .sum()
}

/// CountTokens for a Converse input: what `plan` would report as input tokens.
pub fn count_tokens(input: Value) -> Result<u64, SimError> {
    let req: Request = serde_json::from_value(input)
        .map_err(|e| SimError::validation(format!("Malformed input request: {e}")))?;
    Ok(input_tokens(&req))
}

fn chosen_tool(config: &ToolConfig) -> Result<Option<&ToolSpec>, SimError> {
    let mut specs = config.tools.iter().filter_map(|t| t.tool_spec.as_ref());
    match &config.tool_choice {
        Some(ToolChoice::Tool { name }) => {
            specs.find(|s| &s.name == name).map(Some).ok_or_else(|| {
                SimError::validation(format!(
                    "The tool {name} was not found in toolConfig.tools."
                ))
            })
        }
        Some(ToolChoice::Auto {} | ToolChoice::Any {}) | None => Ok(specs.next()),
    }
}

fn block_text(block: &Value) -> String {
    if let Some(text) = block.get("text").and_then(Value::as_str) {
        text.to_owned()
    } else if let Some(result) = block.get("toolResult") {
        tool_result_text(result)
    } else {
        String::new()
    }
}

fn user_text(message: &Message) -> String {
    let texts: Vec<&str> = message
        .content
        .iter()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    texts.join(" ")
}

fn tool_result_text(result: &Value) -> String {
    let parts: Vec<String> = result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| match (c.get("text"), c.get("json")) {
            (Some(Value::String(text)), _) => text.clone(),
            (_, Some(json)) => json.to_string(),
            _ => String::new(),
        })
        .collect();
    parts.join(" ")
}

pub fn response(outcome: &Outcome, latency_ms: u64) -> Value {
    let content = match &outcome.answer {
        Answer::Text(reply) => json!([{ "text": reply.text }]),
        Answer::ToolUse { id, name, input } => {
            json!([{ "toolUse": { "toolUseId": id, "name": name, "input": input } }])
        }
    };
    json!({
        "output": { "message": { "role": "assistant", "content": content } },
        "stopReason": outcome.stop().converse(),
        "usage": outcome.usage(),
        "metrics": { "latencyMs": latency_ms },
    })
}

pub fn stream_frames(outcome: &Outcome, latency_ms: u64) -> Vec<Bytes> {
    let mut frames = vec![event_frame("messageStart", &json!({ "role": "assistant" }))];
    let delta = |delta: Value| {
        event_frame(
            "contentBlockDelta",
            &json!({ "contentBlockIndex": 0, "delta": delta }),
        )
    };
    match &outcome.answer {
        Answer::Text(reply) => {
            frames.extend(
                word_deltas(&reply.text)
                    .into_iter()
                    .map(|d| delta(json!({ "text": d }))),
            );
        }
        Answer::ToolUse { id, name, input } => {
            frames.push(event_frame(
                "contentBlockStart",
                &json!({ "contentBlockIndex": 0, "start": { "toolUse": { "toolUseId": id, "name": name } } }),
            ));
            frames.extend(
                fragments(&input.to_string(), TOOL_INPUT_FRAGMENTS)
                    .into_iter()
                    .map(|f| delta(json!({ "toolUse": { "input": f } }))),
            );
        }
    }
    frames.push(event_frame(
        "contentBlockStop",
        &json!({ "contentBlockIndex": 0 }),
    ));
    frames.push(event_frame(
        "messageStop",
        &json!({ "stopReason": outcome.stop().converse() }),
    ));
    frames.push(event_frame(
        "metadata",
        &json!({ "usage": outcome.usage(), "metrics": { "latencyMs": latency_ms } }),
    ));
    frames
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn plan_json(body: Value) -> Result<Outcome, SimError> {
        plan(body.to_string().as_bytes(), "us-west-2", "anthropic.m")
    }

    #[test]
    fn text_reply_counts_words() {
        let outcome = plan_json(json!({
            "system": [{ "text": "be brief" }],
            "messages": [{ "role": "user", "content": [{ "text": "hi there" }] }],
        }))
        .unwrap();
        let Answer::Text(reply) = &outcome.answer else {
            panic!("expected text")
        };
        assert_eq!(
            reply.text,
            "Hello from us-west-2 (anthropic.m). You said: hi there"
        );
        assert_eq!(outcome.input_tokens, 4);
        assert_eq!(outcome.output_tokens, 8);
        let body = response(&outcome, 5);
        assert_eq!(body["stopReason"], "end_turn");
        assert_eq!(body["usage"]["totalTokens"], 12);
    }

    #[test]
    fn max_tokens_truncates() {
        let outcome = plan_json(json!({
            "messages": [{ "role": "user", "content": [{ "text": "hi" }] }],
            "inferenceConfig": { "maxTokens": 2 },
        }))
        .unwrap();
        assert_eq!(response(&outcome, 0)["stopReason"], "max_tokens");
        assert_eq!(outcome.output_tokens, 2);
    }

    #[test]
    fn tools_produce_a_tool_call_with_sample_input() {
        let body = json!({
            "messages": [{ "role": "user", "content": [{ "text": "weather?" }] }],
            "toolConfig": {
                "tools": [
                    { "toolSpec": { "name": "other", "inputSchema": { "json": {} } } },
                    { "toolSpec": { "name": "weather", "inputSchema": { "json": {
                        "type": "object",
                        "properties": { "city": { "type": "string" }, "days": { "type": "integer" } },
                        "required": ["city", "unit"],
                    } } } },
                ],
                "toolChoice": { "tool": { "name": "weather" } },
            },
        });
        let outcome = plan_json(body.clone()).unwrap();
        let Answer::ToolUse { id, name, input } = &outcome.answer else {
            panic!("expected tool use")
        };
        assert_eq!(name, "weather");
        assert!(id.starts_with("tooluse_"));
        assert_eq!(
            input,
            &json!({ "city": "sample", "days": 1, "unit": "sample" })
        );
        assert_eq!(plan_json(body).unwrap(), outcome, "deterministic");
        assert_eq!(response(&outcome, 0)["stopReason"], "tool_use");
    }

    #[test]
    fn tool_result_turn_answers_in_text() {
        let outcome = plan_json(json!({
            "messages": [
                { "role": "user", "content": [{ "text": "weather?" }] },
                { "role": "assistant", "content": [{ "toolUse": { "toolUseId": "t", "name": "w", "input": {} } }] },
                { "role": "user", "content": [{ "toolResult": { "toolUseId": "t", "content": [{ "text": "sunny" }] } }] },
            ],
            "toolConfig": { "tools": [{ "toolSpec": { "name": "w", "inputSchema": { "json": {} } } }] },
        }))
        .unwrap();
        let Answer::Text(reply) = &outcome.answer else {
            panic!("expected text")
        };
        assert!(reply.text.ends_with("tool result sunny"), "{}", reply.text);
    }

    #[test]
    fn missing_messages_is_a_validation_error() {
        let error = plan_json(json!({ "system": [] })).unwrap_err();
        assert_eq!(error.name, "ValidationException");
    }

    #[test]
    fn tool_use_streams_a_block_start_and_input_fragments() {
        let outcome = plan_json(json!({
            "messages": [{ "role": "user", "content": [{ "text": "go" }] }],
            "toolConfig": { "tools": [{ "toolSpec": { "name": "w", "inputSchema": { "json": {
                "properties": { "city": { "type": "string" } },
            } } } }] },
        }))
        .unwrap();
        let frames = stream_frames(&outcome, 0);
        let text: Vec<String> = frames
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        let count = |needle: &str| text.iter().filter(|t| t.contains(needle)).count();
        assert_eq!(count("contentBlockStart"), 1);
        assert_eq!(count("contentBlockDelta"), TOOL_INPUT_FRAGMENTS);
        assert_eq!(count("\"stopReason\":\"tool_use\""), 1);
        assert_eq!(frames.len(), 1 + 1 + TOOL_INPUT_FRAGMENTS + 3);
    }
}
