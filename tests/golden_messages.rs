//! Golden files for the Anthropic Messages translation (`tests/golden/messages/`): a request or an
//! upstream stream in, the exact bytes the gateway sends on out. `BLESS=1 cargo test --test
//! golden_messages` rewrites the expected files after a deliberate change; review their diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bedrock_balancer::translate::messages_bedrock::{bedrock_body, chunk_to_sse};
use bedrock_balancer::translate::messages_converse::converse_request;
use bedrock_balancer::translate::messages_stream::MessagesStreamTranslator;

mod golden_files;

const GOLDEN: golden_files::Golden = golden_files::Golden::new("messages");

fn read(name: &str) -> Vec<u8> {
    GOLDEN.read(name)
}

fn check(name: &str, actual: &[u8]) {
    GOLDEN.check(name, actual);
}

/// `{"event": <type>, "payload": <json>}` per line.
fn events(name: &str) -> Vec<(String, Vec<u8>)> {
    String::from_utf8(read(name))
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                v["event"].as_str().unwrap().to_owned(),
                serde_json::to_vec(&v["payload"]).unwrap(),
            )
        })
        .collect()
}

#[test]
fn claude_body_keeps_every_nested_byte() {
    let out = bedrock_body(
        &read("thinking_replay.request.json"),
        &["interleaved-thinking-2025-05-14"],
    )
    .unwrap();
    check("thinking_replay.bedrock.json", &out);
}

#[test]
fn non_claude_request_becomes_converse() {
    let out = converse_request(&read("tool_conversation.request.json")).unwrap();
    check("tool_conversation.converse.json", &out);
}

#[test]
fn converse_stream_becomes_anthropic_events() {
    let mut t = MessagesStreamTranslator::new("nova".into(), "msg_golden".into());
    let mut out = Vec::new();
    for (event, payload) in events("converse_stream.events.jsonl") {
        t.on_event(&event, &payload, &mut out).unwrap();
    }
    check("converse_stream.sse", &out);
}

#[test]
fn claude_chunks_become_anthropic_events() {
    let mut out = Vec::new();
    for (event, payload) in events("invoke_stream.events.jsonl") {
        assert_eq!(event, "chunk");
        chunk_to_sse(&payload, &mut out).unwrap();
    }
    check("invoke_stream.sse", &out);
}
