//! OpenAI chat completions: the request fields the answer depends on, the deterministic answer
//! (a text naming the region and model, a `tool_calls` message when the last user turn says "use
//! the tool" or `tool_choice` forces one, a text mentioning the result after `tool` messages), and
//! its JSON or `chat.completion.chunk` rendering.

use serde::Deserialize;
use serde_json::{Value, json};

use super::claude::TOOL_TRIGGER;
use super::models::{
    Reply, StopReason, TOOL_INPUT_FRAGMENTS, count_words, fragments, limit, reply_text,
    sample_input, stable_id, word_deltas,
};

/// A request the API refuses, with the parameter at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub param: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(param: &'static str, message: impl Into<String>) -> Self {
        Self {
            param,
            message: message.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Request {
    messages: Vec<Message>,
    #[serde(default)]
    tools: Vec<Tool>,
    tool_choice: Option<ToolChoice>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    stop: Option<Stop>,
    #[serde(default)]
    pub stream: bool,
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Value>),
}

impl Content {
    fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Parts(parts) => {
                let texts: Vec<&str> = texts(parts).collect();
                texts.join(" ")
            }
        }
    }

    /// What the user typed: the string, or the last text part (clients such as Claude Code put
    /// context parts before it), as the Claude models read it.
    fn typed(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Parts(parts) => texts(parts).last().unwrap_or_default().to_owned(),
        }
    }
}

fn texts(parts: &[Value]) -> impl Iterator<Item = &str> {
    parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
}

#[derive(Debug, Deserialize)]
struct Tool {
    function: Function,
}

#[derive(Debug, Deserialize)]
struct Function {
    name: String,
    #[serde(default)]
    parameters: Value,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(String),
    Named {
        function: Named,
    },
}

#[derive(Debug, Deserialize)]
struct Named {
    name: String,
}

/// `stop`: one sequence or several (legacy completions take the same).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn sequences(stop: Option<&Self>) -> Vec<String> {
        match stop {
            Some(Self::One(stop)) => vec![stop.clone()],
            Some(Self::Many(stops)) => stops.clone(),
            None => Vec::new(),
        }
    }
}

/// `stream_options` (legacy completions take the same).
#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

impl StreamOptions {
    /// Whether the stream ends with a usage chunk.
    pub fn include_usage(options: Option<&Self>) -> bool {
        options.is_some_and(|o| o.include_usage)
    }
}

impl Request {
    pub fn parse(body: Value) -> Result<Self, Invalid> {
        let request: Self = serde_json::from_value(body)
            .map_err(|e| Invalid::new("messages", format!("Invalid request body: {e}")))?;
        if request.messages.is_empty() {
            return Err(Invalid::new("messages", "[] is too short - 'messages'"));
        }
        Ok(request)
    }

    fn prompt_tokens(&self) -> u64 {
        self.messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(|c| count_words(&c.text()))
            .sum()
    }

    /// The tool `tool_choice` forces, or the first one when auto and the user asks for it.
    fn chosen_tool(&self, user_text: &str) -> Result<Option<&Function>, Invalid> {
        let mut tools = self.tools.iter().map(|t| &t.function);
        match &self.tool_choice {
            Some(ToolChoice::Named { function }) => tools
                .find(|f| f.name == function.name)
                .map(Some)
                .ok_or_else(|| {
                    Invalid::new(
                        "tool_choice",
                        format!(
                            "Invalid value for 'tool_choice': function '{}' is not in 'tools'.",
                            function.name
                        ),
                    )
                }),
            Some(ToolChoice::Mode(mode)) if mode == "required" => {
                tools.next().map(Some).ok_or_else(|| {
                    Invalid::new(
                        "tool_choice",
                        "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                    )
                })
            }
            Some(ToolChoice::Mode(mode)) if mode == "none" => Ok(None),
            Some(ToolChoice::Mode(mode)) if mode != "auto" => Err(Invalid::new(
                "tool_choice",
                format!("Invalid value for 'tool_choice': '{mode}'."),
            )),
            Some(ToolChoice::Mode(_)) | None => Ok(tools
                .next()
                .filter(|_| user_text.to_lowercase().contains(TOOL_TRIGGER))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Text(Reply),
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub id: String,
    pub model: String,
    pub created: i64,
    pub answer: Answer,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub include_usage: bool,
}

/// The model's answer to `request`, made in `region` by `model` at `created` (Unix seconds).
pub fn complete(
    request: &Request,
    region: &str,
    model: &str,
    created: i64,
) -> Result<Completion, Invalid> {
    // Tool results are the `tool` messages after the assistant's call, at the end of the list.
    let results: Vec<String> = request
        .messages
        .iter()
        .rev()
        .take_while(|m| m.role == "tool")
        .filter_map(|m| m.content.as_ref().map(Content::text))
        .collect();
    let user_text = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .and_then(|m| m.content.as_ref())
        .map(Content::typed)
        .ok_or_else(|| Invalid::new("messages", "messages: a user message is required"))?;
    let tool = if results.is_empty() {
        request.chosen_tool(&user_text)?
    } else {
        None
    };
    let answer = match tool {
        Some(function) => Answer::ToolCall {
            id: format!(
                "call_{}",
                stable_id(&[model, &function.name, &user_text], 24)
            ),
            name: function.name.clone(),
            arguments: sample_input(&function.parameters).to_string(),
        },
        None => {
            let asked = if results.is_empty() {
                user_text.clone()
            } else {
                let mut results = results;
                results.reverse();
                format!("tool result {}", results.join(" "))
            };
            let stops = Stop::sequences(request.stop.as_ref());
            let max = request.max_completion_tokens.or(request.max_tokens);
            Answer::Text(limit(&reply_text(region, model, &asked), max, &stops))
        }
    };
    let completion_tokens = match &answer {
        Answer::Text(reply) => reply.words(),
        Answer::ToolCall { arguments, .. } => count_words(arguments),
    }
    .max(1);
    Ok(Completion {
        id: format!("chatcmpl-{}", stable_id(&[region, model, &user_text], 24)),
        model: model.to_owned(),
        created,
        answer,
        prompt_tokens: request.prompt_tokens(),
        completion_tokens,
        include_usage: StreamOptions::include_usage(request.stream_options.as_ref()),
    })
}

impl Completion {
    fn finish_reason(&self) -> &'static str {
        match &self.answer {
            Answer::ToolCall { .. } => "tool_calls",
            Answer::Text(reply) => match reply.stop {
                StopReason::MaxTokens => "length",
                StopReason::EndTurn | StopReason::StopSequence | StopReason::ToolUse => "stop",
            },
        }
    }

    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": { "cached_tokens": 0 },
            "completion_tokens_details": { "reasoning_tokens": 0 },
        })
    }

    /// The `chat.completion` body.
    pub fn body(&self) -> Value {
        let message = match &self.answer {
            Answer::Text(reply) => {
                json!({ "role": "assistant", "content": reply.text, "refusal": null })
            }
            Answer::ToolCall {
                id,
                name,
                arguments,
            } => json!({
                "role": "assistant",
                "content": null,
                "refusal": null,
                "tool_calls": [{
                    "id": id,
                    "type": "function",
                    "function": { "name": name, "arguments": arguments },
                }],
            }),
        };
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": self.finish_reason(),
            }],
            "usage": self.usage(),
        })
    }

    fn chunk(&self, choices: Value) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        // With `include_usage`, every chunk has a `usage` field, null but in the last one.
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn delta(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        self.chunk(json!([{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        }]))
    }

    /// The stream's chunks in order, before the closing `[DONE]`.
    pub fn chunks(&self) -> Vec<Value> {
        let mut chunks = vec![self.delta(
            json!({ "role": "assistant", "content": "", "refusal": null }),
            None,
        )];
        match &self.answer {
            Answer::Text(reply) => chunks.extend(
                word_deltas(&reply.text)
                    .into_iter()
                    .map(|d| self.delta(json!({ "content": d }), None)),
            ),
            Answer::ToolCall {
                id,
                name,
                arguments,
            } => {
                chunks.push(self.delta(
                    json!({ "tool_calls": [{
                        "index": 0, "id": id, "type": "function",
                        "function": { "name": name, "arguments": "" },
                    }] }),
                    None,
                ));
                chunks.extend(
                    fragments(arguments, TOOL_INPUT_FRAGMENTS)
                        .into_iter()
                        .map(|f| {
                            self.delta(
                                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": f } }] }),
                                None,
                            )
                        }),
                );
            }
        }
        chunks.push(self.delta(json!({}), Some(self.finish_reason())));
        if self.include_usage {
            let mut last = self.chunk(json!([]));
            last["usage"] = self.usage();
            chunks.push(last);
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const WEATHER: &str = "get_weather";

    fn completion(body: Value) -> Result<Completion, Invalid> {
        complete(&Request::parse(body)?, "eastus", "gpt-4o", 7)
    }

    fn tools() -> Value {
        json!([{ "type": "function", "function": { "name": WEATHER, "parameters": {
            "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"],
        } } }])
    }

    #[test]
    fn text_names_region_and_model_and_counts_usage() {
        let done = completion(json!({
            "model": "gpt-4o",
            "messages": [
                { "role": "system", "content": "be brief" },
                { "role": "user", "content": [{ "type": "text", "text": "hi there" }] },
            ],
        }))
        .unwrap();
        let body = done.body();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "Hello from eastus (gpt-4o). You said: hi there"
        );
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["prompt_tokens"], 4);
        assert_eq!(body["usage"]["completion_tokens"], 8);
        assert_eq!(body["usage"]["total_tokens"], 12);
        assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    }

    #[test]
    fn max_completion_tokens_and_stop_cut_the_text() {
        let done = completion(json!({
            "messages": [{ "role": "user", "content": "hi" }], "max_completion_tokens": 2,
        }))
        .unwrap();
        assert_eq!(done.body()["choices"][0]["finish_reason"], "length");
        assert_eq!(done.completion_tokens, 2);
        let done = completion(json!({
            "messages": [{ "role": "user", "content": "hi" }], "stop": "(gpt",
        }))
        .unwrap();
        assert_eq!(
            done.body()["choices"][0]["message"]["content"],
            "Hello from eastus"
        );
    }

    #[test]
    fn tools_are_called_only_when_asked_or_forced() {
        let asked = |text: &str, choice: Value| {
            let mut body =
                json!({ "messages": [{ "role": "user", "content": text }], "tools": tools() });
            if !choice.is_null() {
                body["tool_choice"] = choice;
            }
            completion(body).unwrap()
        };
        assert!(matches!(
            asked("hello", Value::Null).answer,
            Answer::Text(_)
        ));
        let called = asked("Please USE THE TOOL", Value::Null);
        let body = called.body();
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        let call = &body["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], WEATHER);
        assert_eq!(call["function"]["arguments"], r#"{"city":"sample"}"#);
        assert!(call["id"].as_str().unwrap().starts_with("call_"));
        assert!(matches!(
            asked("hello", json!("required")).answer,
            Answer::ToolCall { .. }
        ));
        assert!(matches!(
            asked(
                "hello",
                json!({ "type": "function", "function": { "name": WEATHER } })
            )
            .answer,
            Answer::ToolCall { .. }
        ));
        assert!(matches!(
            asked("use the tool", json!("none")).answer,
            Answer::Text(_)
        ));
        let missing = completion(json!({
            "messages": [{ "role": "user", "content": "x" }], "tools": tools(),
            "tool_choice": { "type": "function", "function": { "name": "nope" } },
        }))
        .unwrap_err();
        assert_eq!(missing.param, "tool_choice");
    }

    #[test]
    fn the_answer_echoes_the_last_text_part_and_counts_them_all() {
        let done = completion(json!({"messages": [{ "role": "user", "content": [
            { "type": "text", "text": "<system-reminder>context</system-reminder>" },
            { "type": "text", "text": "say hi" }]}]}))
        .unwrap();
        let Answer::Text(reply) = &done.answer else {
            panic!("expected text")
        };
        assert!(reply.text.ends_with("You said: say hi"), "{}", reply.text);
        assert_eq!(done.prompt_tokens, 3);
    }

    #[test]
    fn a_tool_result_gets_a_text_mentioning_it() {
        let done = completion(json!({
            "messages": [
                { "role": "user", "content": "use the tool" },
                { "role": "assistant", "content": null, "tool_calls": [{ "id": "call_1", "type": "function",
                  "function": { "name": WEATHER, "arguments": "{}" } }] },
                { "role": "tool", "tool_call_id": "call_1", "content": "sunny and 21C" },
            ],
            "tools": tools(),
        }))
        .unwrap();
        let Answer::Text(reply) = &done.answer else {
            panic!("expected text")
        };
        assert!(
            reply.text.ends_with("tool result sunny and 21C"),
            "{}",
            reply.text
        );
    }

    #[test]
    fn stream_chunks_join_to_the_answer_and_end_with_usage_when_asked() {
        let done = completion(json!({
            "messages": [{ "role": "user", "content": "hi" }],
            "stream": true, "stream_options": { "include_usage": true },
        }))
        .unwrap();
        let chunks = done.chunks();
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello from eastus (gpt-4o). You said: hi");
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["completion_tokens"], 7);
        assert_eq!(
            chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
        assert!(chunks[0]["usage"].is_null() && chunks[0].get("usage").is_some());
    }

    #[test]
    fn a_streamed_tool_call_has_its_id_then_argument_fragments() {
        let done = completion(json!({
            "messages": [{ "role": "user", "content": "use the tool" }], "tools": tools(),
        }))
        .unwrap();
        let chunks = done.chunks();
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        let calls: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        assert_eq!(calls.len(), 1 + TOOL_INPUT_FRAGMENTS);
        assert_eq!(calls[0]["function"]["name"], WEATHER);
        let arguments: String = calls
            .iter()
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect();
        assert_eq!(arguments, r#"{"city":"sample"}"#);
    }

    #[test]
    fn refusals_name_the_parameter() {
        assert_eq!(
            completion(json!({ "messages": [] })).unwrap_err().param,
            "messages"
        );
        assert_eq!(
            completion(json!({ "model": "m" })).unwrap_err().param,
            "messages"
        );
        let no_user = completion(json!({ "messages": [{ "role": "system", "content": "x" }] }));
        assert_eq!(no_user.unwrap_err().param, "messages");
    }
}
