//! Claude on Bedrock: the Anthropic Messages body InvokeModel takes, checked by the rules Bedrock
//! applies (its schema's permitted keys, `anthropic_version`, beta flags, thinking budgets, tool and
//! thinking replay), and the deterministic answer: thinking, text or a tool call, with prompt-cache
//! usage.
//!
//! What the answer says is triggered by the request: thinking when `thinking` is enabled (redacted
//! for Anthropic's documented trigger string), a `tool_use` when tools are offered and `tool_choice`
//! forces one or the last user turn says "use the tool", and a text mentioning the result after a
//! `tool_result`.

use std::time::Instant;

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::errors::SimError;
use super::models::{
    Reply, Role, StopReason, count_words, echo, limit, reply_text, sample_input, stable_id,
};
use super::prompt_cache::{Breakpoint, CacheUsage, DEFAULT_TTL, LONG_TTL, PromptCache};
use super::thinking;

/// The only `anthropic_version` Bedrock takes in a body.
pub const BEDROCK_VERSION: &str = "bedrock-2023-05-31";

/// Top-level keys Bedrock's schema for Claude permits; any other is "extraneous".
const PERMITTED_KEYS: [&str; 15] = [
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "output_config",
    "context_management",
];
const REQUIRED_KEYS: [&str; 3] = ["anthropic_version", "max_tokens", "messages"];

/// Beta flags Bedrock takes in `anthropic_beta`; any other is refused as an invalid beta flag.
/// (Anthropic-API-only flags such as `claude-code-20250219` or `extended-cache-ttl-2025-04-11` are not.)
pub const BEDROCK_BETAS: [&str; 13] = [
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "computer-use-2025-11-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
    "fine-grained-tool-streaming-2025-05-14",
];
/// With this beta a thinking budget may exceed `max_tokens` (it spans the tool calls of a turn).
const INTERLEAVED_THINKING: &str = "interleaved-thinking-2025-05-14";
const MIN_THINKING_BUDGET: u64 = 1024;

/// A user turn containing this (any case) makes the model call a tool when tools are offered.
pub const TOOL_TRIGGER: &str = "use the tool";
/// Anthropic's documented string that makes Claude answer a `redacted_thinking` block.
pub const REDACTED_THINKING_TRIGGER: &str =
    "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253";

/// Keys whose values are markup or opaque data rather than prompt text, so they count no tokens.
const UNCOUNTED_KEYS: [&str; 9] = [
    "type",
    "role",
    "id",
    "tool_use_id",
    "signature",
    "data",
    "media_type",
    "cache_control",
    "ttl",
];

#[derive(Debug, Deserialize)]
struct Body {
    #[serde(default)]
    anthropic_beta: Vec<String>,
    max_tokens: u64,
    messages: Vec<Message>,
    #[serde(default)]
    tools: Vec<Tool>,
    tool_choice: Option<ToolChoice>,
    thinking: Option<Thinking>,
    #[serde(default)]
    stop_sequences: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: Role,
    content: Content,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Blocks(Vec<Value>),
}

impl Content {
    fn blocks(&self) -> &[Value] {
        match self {
            Self::Text(_) => &[],
            Self::Blocks(blocks) => blocks,
        }
    }

    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.blocks()
            .iter()
            .filter(move |b| b.get("type").and_then(Value::as_str) == Some(kind))
    }

    /// The text the user typed: the string, or the last text block (clients such as Claude Code
    /// put context blocks before it).
    fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Blocks(_) => self
                .of_type("text")
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .last()
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

/// A tool: a custom one has an input schema; Anthropic's server tools (typed) have none.
#[derive(Debug, Deserialize)]
struct Tool {
    name: String,
    input_schema: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ToolChoice {
    Auto {},
    Any {},
    Tool { name: String },
    None {},
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Thinking {
    Enabled { budget_tokens: u64 },
    Adaptive {},
    Disabled {},
}

/// A request that passed Bedrock's checks.
#[derive(Debug)]
pub struct Request {
    raw: Value,
    body: Body,
}

/// The JSON object of a body, as Bedrock parses it before any rule.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, SimError> {
    serde_json::from_slice(body).map_err(SimError::malformed)
}

impl Request {
    /// Applies Bedrock's rules, in the order Bedrock reports them.
    pub fn check(raw: Map<String, Value>) -> Result<Self, SimError> {
        let mut schema_errors: Vec<String> = REQUIRED_KEYS
            .iter()
            .filter(|k| !raw.contains_key(**k))
            .map(|k| format!("#: required key [{k}] not found"))
            .collect();
        schema_errors.extend(
            raw.keys()
                .filter(|k| !PERMITTED_KEYS.contains(&k.as_str()))
                .map(|k| format!("#: extraneous key [{k}] is not permitted")),
        );
        if !schema_errors.is_empty() {
            return Err(SimError::malformed(schema_errors.concat()));
        }
        let version = raw.get("anthropic_version").and_then(Value::as_str);
        if version != Some(BEDROCK_VERSION) {
            let shown = version.map_or_else(
                || raw.get("anthropic_version").map(Value::to_string),
                |v| Some(v.to_owned()),
            );
            return Err(SimError::validation(format!(
                "Invalid API version: {}",
                shown.unwrap_or_default()
            )));
        }
        let raw = Value::Object(raw);
        let body = Body::deserialize(&raw).map_err(|e| SimError::malformed(format!("#: {e}")))?;
        if body
            .anthropic_beta
            .iter()
            .any(|b| !BEDROCK_BETAS.contains(&b.as_str()))
        {
            return Err(SimError::validation("invalid beta flag"));
        }
        let request = Self { raw, body };
        request.check_limits()?;
        request.check_turns()?;
        Ok(request)
    }

    fn interleaved(&self) -> bool {
        self.body
            .anthropic_beta
            .iter()
            .any(|b| b == INTERLEAVED_THINKING)
    }

    fn thinking_enabled(&self) -> bool {
        matches!(
            self.body.thinking,
            Some(Thinking::Enabled { .. } | Thinking::Adaptive {})
        )
    }

    fn check_limits(&self) -> Result<(), SimError> {
        if self.body.max_tokens == 0 {
            return Err(SimError::model_refused(
                "max_tokens: Input should be greater than or equal to 1",
            ));
        }
        if let Some(Thinking::Enabled { budget_tokens }) = self.body.thinking {
            if budget_tokens < MIN_THINKING_BUDGET {
                return Err(SimError::model_refused(format!(
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}"
                )));
            }
            if budget_tokens >= self.body.max_tokens && !self.interleaved() {
                return Err(SimError::model_refused(
                    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
                ));
            }
        }
        Ok(())
    }

    /// Each `tool_use` is answered by a `tool_result` in the next message and each result answers
    /// one; with thinking on, the assistant turn of an unfinished tool loop starts with its thinking.
    fn check_turns(&self) -> Result<(), SimError> {
        let messages = &self.body.messages;
        if messages.is_empty() {
            return Err(SimError::model_refused(
                "messages: at least one message is required",
            ));
        }
        for (i, pair) in messages.windows(2).enumerate() {
            let uses: Vec<&str> = ids(pair[0].content.of_type("tool_use"), "id");
            let results: Vec<&str> = ids(pair[1].content.of_type("tool_result"), "tool_use_id");
            let missing: Vec<&str> = uses
                .iter()
                .filter(|id| !results.contains(id))
                .copied()
                .collect();
            if pair[0].role == Role::Assistant && !missing.is_empty() {
                return Err(SimError::model_refused(format!(
                    "messages.{}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                    i + 1,
                    missing.join(", ")
                )));
            }
            if let Some(stray) = results.iter().find(|id| !uses.contains(id)) {
                return Err(SimError::model_refused(format!(
                    "messages.{}.content: unexpected `tool_use_id` found in `tool_result` blocks: {stray}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                    i + 1
                )));
            }
        }
        if let Some(stray) = ids(messages[0].content.of_type("tool_result"), "tool_use_id").first()
        {
            return Err(SimError::model_refused(format!(
                "messages.0.content: unexpected `tool_use_id` found in `tool_result` blocks: {stray}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            )));
        }
        self.check_thinking_leads_tool_loop()
    }

    fn check_thinking_leads_tool_loop(&self) -> Result<(), SimError> {
        let messages = &self.body.messages;
        let in_tool_loop = messages
            .last()
            .is_some_and(|m| m.role == Role::User && m.content.of_type("tool_result").count() > 0);
        if !self.thinking_enabled() || !in_tool_loop || messages.len() < 2 {
            return Ok(());
        }
        let at = messages.len() - 2;
        let first = messages[at]
            .content
            .blocks()
            .first()
            .and_then(|b| b.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("text");
        if matches!(first, "thinking" | "redacted_thinking") {
            return Ok(());
        }
        Err(SimError::model_refused(format!(
            "messages.{at}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        )))
    }

    /// Checks every replayed thinking block against the signature (or data) handed out with it;
    /// returns how many were checked.
    pub fn verify_replayed_thinking(&self) -> Result<u64, SimError> {
        let mut verified = 0;
        for (i, message) in self.body.messages.iter().enumerate() {
            if message.role != Role::Assistant {
                continue;
            }
            for (j, block) in message.content.blocks().iter().enumerate() {
                let str_of = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or("");
                let (valid, what) = match block.get("type").and_then(Value::as_str) {
                    Some("thinking") => (
                        thinking::verify(str_of("thinking"), str_of("signature")),
                        "Invalid `signature` in `thinking` block",
                    ),
                    Some("redacted_thinking") => (
                        thinking::verify_redacted(str_of("data")),
                        "Invalid `data` in `redacted_thinking` block",
                    ),
                    _ => continue,
                };
                if !valid {
                    return Err(SimError::model_refused(format!(
                        "messages.{i}.content.{j}: {what}"
                    )));
                }
                verified += 1;
            }
        }
        Ok(verified)
    }

    /// Input tokens and cache breakpoints, over tools, then system, then messages, as Anthropic
    /// orders a prompt for caching.
    pub fn prompt(&self) -> Prompt {
        let mut prompt = Prompt::default();
        for tool in self
            .raw
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            prompt.add(b"tool", tool);
        }
        match self.raw.get("system") {
            Some(Value::Array(blocks)) => blocks.iter().for_each(|b| prompt.add(b"system", b)),
            Some(system) => prompt.add(b"system", system),
            None => {}
        }
        let messages = self.raw.get("messages").and_then(Value::as_array);
        for message in messages.into_iter().flatten() {
            let role = match message.get("role").and_then(Value::as_str) {
                Some("assistant") => b"\x1eassistant".as_slice(),
                _ => b"\x1euser".as_slice(),
            };
            match message.get("content") {
                Some(Value::Array(blocks)) => blocks.iter().for_each(|b| prompt.add(role, b)),
                Some(content) => prompt.add(role, content),
                None => {}
            }
        }
        prompt
    }
}

fn ids<'a>(blocks: impl Iterator<Item = &'a Value>, key: &str) -> Vec<&'a str> {
    blocks
        .filter_map(|b| b.get(key).and_then(Value::as_str))
        .collect()
}

/// A prompt's size and its `cache_control` breakpoints.
#[derive(Debug, Default)]
pub struct Prompt {
    hasher: Sha256,
    pub tokens: u64,
    pub breakpoints: Vec<Breakpoint>,
}

impl Prompt {
    fn add(&mut self, tag: &[u8], segment: &Value) {
        self.tokens += value_tokens(segment);
        self.hasher.update(tag);
        // Where the breakpoint sits is not part of what is cached.
        let cache_control = segment.get("cache_control");
        let bytes = match (segment, cache_control) {
            (Value::Object(map), Some(_)) => {
                let mut unmarked = map.clone();
                unmarked.remove("cache_control");
                Value::Object(unmarked).to_string()
            }
            _ => segment.to_string(),
        };
        self.hasher.update(bytes.as_bytes());
        if let Some(control) = cache_control {
            let ttl = match control.get("ttl").and_then(Value::as_str) {
                Some("1h") => LONG_TTL,
                _ => DEFAULT_TTL,
            };
            self.breakpoints.push(Breakpoint {
                hash: self.hasher.clone().finalize().into(),
                tokens: self.tokens,
                ttl,
            });
        }
    }
}

/// Words of the prompt text in a JSON value, the simulator's token.
fn value_tokens(value: &Value) -> u64 {
    match value {
        Value::String(text) => count_words(text),
        Value::Array(items) => items.iter().map(value_tokens).sum(),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| !UNCOUNTED_KEYS.contains(&k.as_str()))
            .map(|(_, v)| value_tokens(v))
            .sum(),
        _ => 0,
    }
}

/// A content block of the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Thinking {
        thinking: String,
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens neither read from nor written to the cache.
    pub input: u64,
    pub output: u64,
    pub cache: CacheUsage,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub id: String,
    pub blocks: Vec<Block>,
    pub stop: StopReason,
    pub stop_sequence: Option<String>,
    pub usage: Usage,
}

/// The model's answer; the prompt cache is read and written as Bedrock would at `now`.
pub fn answer(
    request: &Request,
    region: &str,
    model_id: &str,
    cache: &PromptCache,
    now: Instant,
) -> Result<Answer, SimError> {
    let body = &request.body;
    let last_user = body
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .ok_or_else(|| {
            SimError::model_refused("messages: at least one user message is required")
        })?;
    let user_text = last_user.content.text();
    let tool_results: Vec<String> = last_user
        .content
        .of_type("tool_result")
        .map(|r| match r.get("content") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => {
                let texts: Vec<&str> = parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect();
                texts.join(" ")
            }
            _ => String::new(),
        })
        .collect();

    let mut blocks = Vec::new();
    let thinks = request.thinking_enabled() && (tool_results.is_empty() || request.interleaved());
    if thinks {
        let thought = format!("The user wrote: {}. One line answers it.", echo(&user_text));
        blocks.push(if user_text.contains(REDACTED_THINKING_TRIGGER) {
            Block::RedactedThinking {
                data: thinking::redact(&thought),
            }
        } else {
            Block::Thinking {
                signature: thinking::sign(&thought),
                thinking: thought,
            }
        });
    }
    let tool = if tool_results.is_empty() {
        chosen_tool(body, &user_text)?
    } else {
        None
    };
    let (stop, stop_sequence) = match tool {
        Some(tool) => {
            blocks.push(Block::ToolUse {
                id: format!(
                    "toolu_bdrk_{}",
                    stable_id(&[model_id, &tool.name, &user_text], 24)
                ),
                name: tool.name.clone(),
                input: tool
                    .input_schema
                    .as_ref()
                    .map(sample_input)
                    .unwrap_or_default(),
            });
            (StopReason::ToolUse, None)
        }
        None => {
            let text = if tool_results.is_empty() {
                reply_text(region, model_id, &user_text)
            } else {
                reply_text(
                    region,
                    model_id,
                    &format!("tool result {}", tool_results.join(" ")),
                )
            };
            let Reply {
                text,
                stop,
                stop_sequence,
            } = limit(&text, Some(body.max_tokens), &body.stop_sequences);
            blocks.push(Block::Text(text));
            (stop, stop_sequence)
        }
    };
    let prompt = request.prompt();
    let cache = cache.use_prefixes(&prompt.breakpoints, now);
    let output = blocks.iter().map(block_tokens).sum::<u64>().max(1);
    Ok(Answer {
        id: stable_id(&[model_id, &user_text], 24),
        blocks,
        stop,
        stop_sequence,
        usage: Usage {
            input: prompt.tokens.saturating_sub(cache.read + cache.write),
            output,
            cache,
        },
    })
}

fn chosen_tool<'a>(body: &'a Body, user_text: &str) -> Result<Option<&'a Tool>, SimError> {
    let mut callable = body.tools.iter().filter(|t| t.input_schema.is_some());
    match &body.tool_choice {
        Some(ToolChoice::Tool { name }) => {
            callable.find(|t| &t.name == name).map(Some).ok_or_else(|| {
                SimError::model_refused(format!(
                    "tool_choice: tool `{name}` was not found in `tools`"
                ))
            })
        }
        Some(ToolChoice::Any {}) => Ok(callable.next()),
        Some(ToolChoice::None {}) => Ok(None),
        Some(ToolChoice::Auto {}) | None => Ok(callable
            .next()
            .filter(|_| user_text.to_lowercase().contains(TOOL_TRIGGER))),
    }
}

fn block_tokens(block: &Block) -> u64 {
    match block {
        Block::Thinking { thinking, .. } => count_words(thinking),
        Block::RedactedThinking { .. } => 1,
        Block::Text(text) => count_words(text),
        Block::ToolUse { input, .. } => count_words(&input.to_string()),
    }
}

#[cfg(test)]
mod tests;
