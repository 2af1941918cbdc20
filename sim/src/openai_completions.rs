//! OpenAI's legacy text completions (`POST /v1/completions`): `n` choices per prompt, each the
//! deterministic answer to its prompt (a text naming the region and model), cut by `stop` and by
//! `max_tokens` (16 when absent, as the API does), with the prompt before it under `echo`; rendered
//! as a `text_completion` body or its stream chunks.

use serde::Deserialize;
use serde_json::{Value, json};

use super::models::{Reply, StopReason, count_words, limit, reply_text, stable_id, word_deltas};
use super::openai_chat::{Invalid, Stop, StreamOptions};
use super::openai_embeddings::Input;

/// The API's `max_tokens` when the request names none.
const DEFAULT_MAX_TOKENS: u64 = 16;
/// The API's most choices per prompt.
const MAX_N: u64 = 128;

#[derive(Debug, Deserialize)]
pub struct Request {
    prompt: Input,
    max_tokens: Option<u64>,
    stop: Option<Stop>,
    #[serde(default)]
    echo: bool,
    n: Option<u64>,
    #[serde(default)]
    pub stream: bool,
    stream_options: Option<StreamOptions>,
}

impl Request {
    pub fn parse(body: Value) -> Result<Self, Invalid> {
        serde_json::from_value(body).map_err(|e| {
            Invalid::new(
                "prompt",
                format!("Invalid request body: {e}; 'prompt' must be a string or an array of strings or token arrays"),
            )
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Choice {
    reply: Reply,
    /// The prompt, when echoed before the reply.
    echoed: Option<String>,
}

impl Choice {
    fn text(&self) -> String {
        match &self.echoed {
            Some(prompt) if self.reply.text.is_empty() => prompt.clone(),
            Some(prompt) => format!("{prompt} {}", self.reply.text),
            None => self.reply.text.clone(),
        }
    }

    fn finish_reason(&self) -> &'static str {
        match self.reply.stop {
            StopReason::MaxTokens => "length",
            StopReason::EndTurn | StopReason::StopSequence | StopReason::ToolUse => "stop",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    id: String,
    model: String,
    created: i64,
    choices: Vec<Choice>,
    prompt_tokens: u64,
    completion_tokens: u64,
    include_usage: bool,
}

/// The model's answer to `request`, made in `region` by `model` at `created` (Unix seconds).
pub fn complete(
    request: Request,
    region: &str,
    model: &str,
    created: i64,
) -> Result<Completion, Invalid> {
    let n = request.n.unwrap_or(1);
    if !(1..=MAX_N).contains(&n) {
        return Err(Invalid::new(
            "n",
            format!("Invalid value for 'n': must be between 1 and {MAX_N}."),
        ));
    }
    let prompts = request.prompt.texts();
    if prompts.is_empty() {
        return Err(Invalid::new(
            "prompt",
            "'$.prompt' is invalid: the list of prompts must not be empty.",
        ));
    }
    let max_tokens = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let stops = Stop::sequences(request.stop.as_ref());
    let choices: Vec<Choice> = prompts
        .iter()
        .flat_map(|prompt| {
            let choice = Choice {
                reply: limit(&reply_text(region, model, prompt), Some(max_tokens), &stops),
                echoed: request.echo.then(|| prompt.clone()),
            };
            std::iter::repeat_n(choice, n as usize)
        })
        .collect();
    Ok(Completion {
        id: format!(
            "cmpl-{}",
            stable_id(&[region, model, &prompts.join("\n")], 24)
        ),
        model: model.to_owned(),
        created,
        prompt_tokens: prompts.iter().map(|p| count_words(p)).sum(),
        completion_tokens: choices.iter().map(|c| c.reply.words()).sum(),
        choices,
        include_usage: StreamOptions::include_usage(request.stream_options.as_ref()),
    })
}

impl Completion {
    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }

    fn object(&self, choices: Vec<Value>) -> Value {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    /// The `text_completion` body.
    pub fn body(&self) -> Value {
        let choices = self
            .choices
            .iter()
            .enumerate()
            .map(|(index, c)| choice(index, &c.text(), Some(c.finish_reason())))
            .collect();
        let mut body = self.object(choices);
        body["usage"] = self.usage();
        body
    }

    fn chunk(&self, index: usize, text: &str, finish_reason: Option<&str>) -> Value {
        let mut chunk = self.object(vec![choice(index, text, finish_reason)]);
        // With `include_usage`, every chunk has a `usage` field, null but in the last one.
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    /// The stream's chunks in order, before the closing `[DONE]`: each choice's words, then its
    /// finish reason on an empty text.
    pub fn chunks(&self) -> Vec<Value> {
        let mut chunks = Vec::new();
        for (index, c) in self.choices.iter().enumerate() {
            chunks.extend(
                word_deltas(&c.text())
                    .iter()
                    .map(|d| self.chunk(index, d, None)),
            );
            chunks.push(self.chunk(index, "", Some(c.finish_reason())));
        }
        if self.include_usage {
            let mut last = self.object(Vec::new());
            last["usage"] = self.usage();
            chunks.push(last);
        }
        chunks
    }
}

fn choice(index: usize, text: &str, finish_reason: Option<&str>) -> Value {
    json!({ "text": text, "index": index, "logprobs": null, "finish_reason": finish_reason })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn completion(body: Value) -> Result<Completion, Invalid> {
        complete(Request::parse(body)?, "eastus", "gpt-35-instruct", 7)
    }

    #[test]
    fn one_prompt_answers_by_region_and_model_with_usage() {
        let body = completion(json!({ "prompt": "say hi", "max_tokens": 50 }))
            .unwrap()
            .body();
        assert_eq!(body["object"], "text_completion");
        assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
        assert_eq!(body["model"], "gpt-35-instruct");
        assert_eq!(
            body["choices"][0]["text"],
            "Hello from eastus (gpt-35-instruct). You said: say hi"
        );
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert!(body["choices"][0]["logprobs"].is_null());
        assert_eq!(
            body["usage"],
            json!({ "prompt_tokens": 2, "completion_tokens": 8, "total_tokens": 10 })
        );
    }

    #[test]
    fn max_tokens_defaults_to_sixteen_and_stop_cuts() {
        let long = "a b c d e f g h i j k l";
        let done = completion(json!({ "prompt": long })).unwrap();
        assert_eq!(done.completion_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(done.body()["choices"][0]["finish_reason"], "length");
        let cut = completion(json!({ "prompt": "x", "stop": ["(gpt"] })).unwrap();
        assert_eq!(cut.body()["choices"][0]["text"], "Hello from eastus");
    }

    #[test]
    fn prompts_times_n_choices_in_order_and_echo_puts_the_prompt_first() {
        let body = completion(json!({ "prompt": ["one", "two"], "n": 2, "echo": true }))
            .unwrap()
            .body();
        let choices = body["choices"].as_array().unwrap();
        let indices: Vec<u64> = choices
            .iter()
            .map(|c| c["index"].as_u64().unwrap())
            .collect();
        assert_eq!(indices, [0, 1, 2, 3]);
        assert_eq!(choices[0]["text"], choices[1]["text"]);
        assert!(
            choices[2]["text"]
                .as_str()
                .unwrap()
                .starts_with("two Hello from"),
            "{}",
            choices[2]["text"]
        );
        assert_eq!(body["usage"]["prompt_tokens"], 2);
        assert_eq!(body["usage"]["completion_tokens"], 4 * 7);
    }

    #[test]
    fn stream_chunks_join_to_each_text_and_end_with_usage_when_asked() {
        let done = completion(json!({
            "prompt": ["hi", "yo"], "stream": true, "stream_options": { "include_usage": true },
        }))
        .unwrap();
        let chunks = done.chunks();
        let text = |index: u64| -> String {
            chunks
                .iter()
                .filter(|c| c["choices"][0]["index"] == index)
                .filter_map(|c| c["choices"][0]["text"].as_str())
                .collect()
        };
        assert_eq!(text(0), "Hello from eastus (gpt-35-instruct). You said: hi");
        assert_eq!(text(1), "Hello from eastus (gpt-35-instruct). You said: yo");
        assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["completion_tokens"], 14);
        assert_eq!(
            chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
        assert!(chunks[0].get("usage").is_some_and(Value::is_null));
        let plain = completion(json!({ "prompt": "hi", "stream": true })).unwrap();
        assert!(plain.chunks().iter().all(|c| c.get("usage").is_none()));
    }

    #[test]
    fn refusals_name_the_parameter() {
        let refused = |body| completion(body).unwrap_err().param;
        assert_eq!(refused(json!({ "model": "m" })), "prompt");
        assert_eq!(refused(json!({ "prompt": [] })), "prompt");
        assert_eq!(refused(json!({ "prompt": {} })), "prompt");
        assert_eq!(refused(json!({ "prompt": "x", "n": 0 })), "n");
    }
}
