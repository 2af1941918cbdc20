#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::claude_stream;

const MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

fn base() -> Value {
    json!({
        "anthropic_version": BEDROCK_VERSION,
        "max_tokens": 2048,
        "messages": [{ "role": "user", "content": "hello there" }],
    })
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

fn check(body: &Value) -> Result<Request, SimError> {
    Request::check(parse_object(body.to_string().as_bytes())?)
}

fn message(body: &Value) -> String {
    check(body).unwrap_err().message
}

fn answer_of(body: &Value) -> Answer {
    let request = check(body).unwrap();
    request.verify_replayed_thinking().unwrap();
    answer(
        &request,
        "us-east-1",
        MODEL,
        &PromptCache::default(),
        Instant::now(),
    )
    .unwrap()
}

#[test]
fn a_minimal_body_answers_text_with_usage() {
    let answer = answer_of(&base());
    assert_eq!(
        answer.blocks,
        vec![Block::Text(format!(
            "Hello from us-east-1 ({MODEL}). You said: hello there"
        ))]
    );
    assert_eq!(answer.stop, StopReason::EndTurn);
    assert_eq!(answer.usage.input, 2);
    assert_eq!(answer.usage.output, 8);
    assert_eq!(answer.usage.cache, CacheUsage::default());
}

#[test]
fn the_reply_echoes_the_last_text_block_of_the_last_user_turn() {
    let body = with(
        base(),
        "messages",
        json!([{ "role": "user", "content": [
            { "type": "text", "text": "<system-reminder>context</system-reminder>" },
            { "type": "text", "text": "say hi", "cache_control": { "type": "ephemeral" } },
        ] }]),
    );
    assert_eq!(
        answer_of(&body).blocks,
        vec![Block::Text(format!(
            "Hello from us-east-1 ({MODEL}). You said: say hi"
        ))]
    );
}

#[test]
fn model_and_stream_are_extraneous_keys() {
    let body = with(
        with(base(), "model", json!("claude")),
        "stream",
        json!(true),
    );
    assert_eq!(
        message(&body),
        "Malformed input request: #: extraneous key [model] is not permitted#: extraneous key [stream] is not permitted, please reformat your input and try again."
    );
    assert_eq!(check(&body).unwrap_err().name, "ValidationException");
    assert_eq!(check(&body).unwrap_err().status.as_u16(), 400);
}

#[test]
fn anthropic_version_is_required_and_must_be_bedrocks() {
    let mut missing = base();
    missing.as_object_mut().unwrap().remove("anthropic_version");
    assert_eq!(
        message(&missing),
        "Malformed input request: #: required key [anthropic_version] not found, please reformat your input and try again."
    );
    let wrong = with(base(), "anthropic_version", json!("2023-06-01"));
    assert_eq!(message(&wrong), "Invalid API version: 2023-06-01");
}

#[test]
fn max_tokens_is_required_and_positive() {
    let mut missing = base();
    missing.as_object_mut().unwrap().remove("max_tokens");
    assert!(message(&missing).contains("required key [max_tokens] not found"));
    assert!(message(&with(base(), "max_tokens", json!(0))).contains("max_tokens"));
}

#[test]
fn betas_outside_bedrocks_list_are_invalid() {
    let ok = with(
        base(),
        "anthropic_beta",
        json!(["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]),
    );
    assert!(check(&ok).is_ok());
    for flag in ["claude-code-20250219", "extended-cache-ttl-2025-04-11"] {
        let bad = with(
            base(),
            "anthropic_beta",
            json!(["interleaved-thinking-2025-05-14", flag]),
        );
        assert_eq!(message(&bad), "invalid beta flag", "{flag}");
    }
}

#[test]
fn thinking_budget_rules() {
    let thinking = |budget: u64| json!({ "type": "enabled", "budget_tokens": budget });
    assert!(
        message(&with(base(), "thinking", thinking(1023))).contains(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        )
    );
    let equal = with(base(), "thinking", thinking(2048));
    assert!(message(&equal).contains("`max_tokens` must be greater than `thinking.budget_tokens`"));
    assert!(check(&with(base(), "thinking", thinking(2047))).is_ok());
    let interleaved = with(
        equal,
        "anthropic_beta",
        json!(["interleaved-thinking-2025-05-14"]),
    );
    assert!(
        check(&interleaved).is_ok(),
        "interleaved thinking may exceed max_tokens"
    );
    assert!(
        message(&with(base(), "thinking", json!({ "type": "sometimes" })))
            .starts_with("Malformed input request")
    );
}

#[test]
fn an_empty_conversation_is_refused() {
    assert!(message(&with(base(), "messages", json!([]))).contains("at least one message"));
}

fn thinking_body() -> Value {
    with(
        base(),
        "thinking",
        json!({ "type": "enabled", "budget_tokens": 1024 }),
    )
}

#[test]
fn thinking_is_signed_and_replays_only_unaltered() {
    let first = answer_of(&thinking_body());
    let Block::Thinking {
        thinking,
        signature,
    } = &first.blocks[0]
    else {
        panic!("expected thinking first: {:?}", first.blocks)
    };
    assert!(matches!(first.blocks[1], Block::Text(_)));
    let replay = |thinking: &str, signature: &str| {
        with(
            thinking_body(),
            "messages",
            json!([
                { "role": "user", "content": "hello there" },
                { "role": "assistant", "content": [
                    { "type": "thinking", "thinking": thinking, "signature": signature },
                    { "type": "text", "text": "hi" },
                ] },
                { "role": "user", "content": "again" },
            ]),
        )
    };
    let good = check(&replay(thinking, signature)).unwrap();
    assert_eq!(good.verify_replayed_thinking().unwrap(), 1);
    let mut altered = signature.clone();
    altered.replace_range(..1, if altered.starts_with('A') { "B" } else { "A" });
    for bad in [
        replay(thinking, &altered),
        replay(&format!("{thinking} "), signature),
    ] {
        let error = check(&bad).unwrap().verify_replayed_thinking().unwrap_err();
        assert_eq!(error.name, "ValidationException");
        assert!(
            error
                .message
                .ends_with("messages.1.content.0: Invalid `signature` in `thinking` block"),
            "{}",
            error.message
        );
    }
}

#[test]
fn the_magic_string_answers_redacted_thinking_that_replays() {
    let body = with(
        thinking_body(),
        "messages",
        json!([{ "role": "user", "content": REDACTED_THINKING_TRIGGER }]),
    );
    let answer = answer_of(&body);
    let Block::RedactedThinking { data } = &answer.blocks[0] else {
        panic!("expected redacted thinking: {:?}", answer.blocks)
    };
    let replay = |data: &str| {
        with(
            thinking_body(),
            "messages",
            json!([
                { "role": "user", "content": "q" },
                { "role": "assistant", "content": [{ "type": "redacted_thinking", "data": data }, { "type": "text", "text": "a" }] },
                { "role": "user", "content": "again" },
            ]),
        )
    };
    assert_eq!(
        check(&replay(data))
            .unwrap()
            .verify_replayed_thinking()
            .unwrap(),
        1
    );
    let error = check(&replay(&data[1..]))
        .unwrap()
        .verify_replayed_thinking()
        .unwrap_err();
    assert!(
        error
            .message
            .contains("Invalid `data` in `redacted_thinking` block")
    );
}

fn weather_tools() -> Value {
    json!([
        { "type": "web_search_20250305", "name": "web_search" },
        { "name": "get_weather", "description": "Weather of a city", "input_schema": {
            "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"],
        } },
    ])
}

fn asking(text: &str) -> Value {
    with(
        with(base(), "tools", weather_tools()),
        "messages",
        json!([{ "role": "user", "content": text }]),
    )
}

#[test]
fn tools_are_called_only_when_asked_or_forced() {
    assert!(matches!(
        answer_of(&asking("what is the weather?")).blocks[..],
        [Block::Text(_)]
    ));
    let called = answer_of(&asking("Please USE THE TOOL for Paris"));
    assert_eq!(called.stop, StopReason::ToolUse);
    let Block::ToolUse { id, name, input } = &called.blocks[0] else {
        panic!("expected a tool call: {:?}", called.blocks)
    };
    assert!(id.starts_with("toolu_bdrk_"));
    assert_eq!(name, "get_weather");
    assert_eq!(input, &json!({ "city": "sample" }));
    let forced = with(
        asking("weather?"),
        "tool_choice",
        json!({ "type": "tool", "name": "get_weather" }),
    );
    assert_eq!(answer_of(&forced).stop, StopReason::ToolUse);
    let any = with(asking("weather?"), "tool_choice", json!({ "type": "any" }));
    assert_eq!(answer_of(&any).stop, StopReason::ToolUse);
    let none = with(
        asking("use the tool"),
        "tool_choice",
        json!({ "type": "none" }),
    );
    assert_eq!(answer_of(&none).stop, StopReason::EndTurn);
    let unknown = with(
        asking("x"),
        "tool_choice",
        json!({ "type": "tool", "name": "nope" }),
    );
    let request = check(&unknown).unwrap();
    let error = answer(
        &request,
        "r",
        MODEL,
        &PromptCache::default(),
        Instant::now(),
    )
    .unwrap_err();
    assert!(error.message.contains("`nope`"));
}

fn tool_round(use_id: &str, result_id: &str) -> Value {
    with(
        with(base(), "tools", weather_tools()),
        "messages",
        json!([
            { "role": "user", "content": "use the tool" },
            { "role": "assistant", "content": [{ "type": "tool_use", "id": use_id, "name": "get_weather", "input": { "city": "Paris" } }] },
            { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": result_id, "content": [{ "type": "text", "text": "sunny and warm" }] }] },
        ]),
    )
}

#[test]
fn a_tool_result_gets_a_text_answer_mentioning_it() {
    let answer = answer_of(&tool_round("toolu_1", "toolu_1"));
    assert_eq!(answer.stop, StopReason::EndTurn);
    let Block::Text(text) = &answer.blocks[0] else {
        panic!("expected text")
    };
    assert!(
        text.ends_with("You said: tool result sunny and warm"),
        "{text}"
    );
}

#[test]
fn tool_results_must_answer_the_previous_tool_uses() {
    let missing = message(&tool_round("toolu_1", "toolu_2"));
    assert!(
        missing.contains(
            "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1"
        ),
        "{missing}"
    );
    let stray = message(&with(
        base(),
        "messages",
        json!([{ "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "t", "content": "x" }] }]),
    ));
    assert!(stray.contains("unexpected `tool_use_id`"), "{stray}");
}

#[test]
fn with_thinking_a_tool_loop_must_replay_its_thinking() {
    let body = with(
        tool_round("toolu_1", "toolu_1"),
        "thinking",
        json!({ "type": "enabled", "budget_tokens": 1024 }),
    );
    let error = message(&body);
    assert!(
        error.contains("messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`"),
        "{error}"
    );
}

#[test]
fn cache_control_writes_then_reads_the_prefix() {
    let body = with(
        base(),
        "system",
        json!([
            { "type": "text", "text": "one two three four", "cache_control": { "type": "ephemeral" } },
            { "type": "text", "text": "five six" },
        ]),
    );
    let request = check(&body).unwrap();
    let prompt = request.prompt();
    assert_eq!(prompt.tokens, 8);
    assert_eq!(prompt.breakpoints.len(), 1);
    assert_eq!(prompt.breakpoints[0].tokens, 4);
    let cache = PromptCache::default();
    let now = Instant::now();
    let run = |at: Instant| answer(&request, "r", MODEL, &cache, at).unwrap().usage;
    let first = run(now);
    assert_eq!(
        (first.input, first.cache.write, first.cache.read),
        (4, 4, 0)
    );
    let second = run(now + Duration::from_secs(1));
    assert_eq!(
        (second.input, second.cache.write, second.cache.read),
        (4, 0, 4)
    );
    let expired = run(now + Duration::from_secs(1) + DEFAULT_TTL);
    assert_eq!(expired.cache.write, 4, "expired entries are written again");
}

#[test]
fn the_cache_key_ignores_where_the_marker_sits_but_not_the_text() {
    let system = |text: &str, ttl: Value| {
        let control = if ttl.is_null() {
            json!({ "type": "ephemeral" })
        } else {
            json!({ "type": "ephemeral", "ttl": ttl })
        };
        let body = with(
            base(),
            "system",
            json!([{ "type": "text", "text": text, "cache_control": control }]),
        );
        check(&body).unwrap().prompt().breakpoints[0].clone()
    };
    let a = system("alpha", Value::Null);
    let long = system("alpha", json!("1h"));
    assert_eq!(a.hash, long.hash);
    assert_eq!((a.ttl, long.ttl), (DEFAULT_TTL, LONG_TTL));
    assert_ne!(a.hash, system("beta", Value::Null).hash);
}

#[test]
fn stream_events_follow_anthropics_order_with_bedrock_metrics_last() {
    let body = with(
        with(thinking_body(), "tools", weather_tools()),
        "messages",
        json!([{ "role": "user", "content": "use the tool" }]),
    );
    let answer = answer_of(&body);
    let events = claude_stream::events(&answer, MODEL, 7);
    let kinds: Vec<String> = events
        .iter()
        .map(|e| {
            let kind = e["type"].as_str().unwrap();
            match e["delta"]["type"].as_str() {
                Some(delta) => format!("{kind}:{delta}"),
                None => kind.to_owned(),
            }
        })
        .collect();
    let thinking_words = match &answer.blocks[0] {
        Block::Thinking { thinking, .. } => thinking.split(' ').count(),
        other => panic!("{other:?}"),
    };
    let mut expected = vec!["message_start".to_owned(), "content_block_start".to_owned()];
    expected.extend(vec![
        "content_block_delta:thinking_delta".to_owned();
        thinking_words
    ]);
    expected.extend(
        [
            "content_block_delta:signature_delta",
            "content_block_stop",
            "content_block_start",
        ]
        .map(str::to_owned),
    );
    expected.extend(vec![
        "content_block_delta:input_json_delta".to_owned();
        crate::models::TOOL_INPUT_FRAGMENTS
    ]);
    expected.extend(["content_block_stop", "message_delta", "message_stop"].map(str::to_owned));
    assert_eq!(kinds, expected);
    assert_eq!(events[0]["message"]["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(events[events.len() - 2]["delta"]["stop_reason"], "tool_use");
    let metrics = &events[events.len() - 1]["amazon-bedrock-invocationMetrics"];
    assert_eq!(metrics["outputTokenCount"], answer.usage.output);
    assert_eq!(metrics["inputTokenCount"], answer.usage.input);
    assert_eq!(metrics["cacheWriteInputTokenCount"], 0);
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| e.get("amazon-bedrock-invocationMetrics").is_none())
    );
    let body = claude_stream::body(&answer, MODEL);
    assert_eq!(body["content"][0]["type"], "thinking");
    assert_eq!(body["content"][1]["type"], "tool_use");
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(body["usage"]["cache_creation_input_tokens"], 0);
}
