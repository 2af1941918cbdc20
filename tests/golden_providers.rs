//! Golden files for the translation between OpenAI chat and Anthropic Messages used with
//! `anthropic`, `openai` and `azure` targets (`tests/golden/chat_messages/`,
//! `tests/golden/messages_chat/`): a client request, an upstream answer or an upstream stream
//! in, the exact bytes sent on out. `BLESS=1 cargo test --test golden_providers` rewrites the
//! expected files after a deliberate change; review their diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod golden_files;

use bedrock_balancer::config::MaxTokensField;
use bedrock_balancer::translate::chat_messages::{chat_response, messages_request};
use bedrock_balancer::translate::chat_messages_stream::MessagesChatStream;
use bedrock_balancer::translate::messages_chat::{chat_request, messages_response};
use bedrock_balancer::translate::messages_chat_stream::ChatMessagesStream;
use golden_files::Golden;

const CHAT_MESSAGES: Golden = Golden::new("chat_messages");
const MESSAGES_CHAT: Golden = Golden::new("messages_chat");

/// Feeds a stream in uneven pieces (7 bytes, then 13, ...), as a socket might deliver it.
fn pieces(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    let mut n = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        n += 1;
        let (piece, tail) = rest.split_at(rest.len().min(if n % 2 == 1 { 7 } else { 13 }));
        rest = tail;
        Some(piece)
    })
}

#[test]
fn openai_request_becomes_anthropic_messages() {
    let req = messages_request(
        &CHAT_MESSAGES.read("tool_conversation.request.json"),
        "claude-sonnet-4-5-20250929",
        4096,
    )
    .unwrap();
    CHAT_MESSAGES.check("tool_conversation.anthropic.json", &req.body);
}

#[test]
fn anthropic_answer_becomes_chat_completion() {
    let r = chat_response(
        &CHAT_MESSAGES.read("tool_answer.anthropic.json"),
        "claude-route",
        "chatcmpl-golden",
        1700000000,
        None,
    )
    .unwrap();
    CHAT_MESSAGES.check("tool_answer.openai.json", &r.body);
}

#[test]
fn anthropic_stream_becomes_chat_chunks() {
    let mut t = MessagesChatStream::new(
        "claude-route".into(),
        "chatcmpl-golden".into(),
        1700000000,
        true,
        None,
    );
    let mut out = Vec::new();
    for piece in pieces(&CHAT_MESSAGES.read("tool_stream.anthropic.sse")) {
        t.feed(piece, &mut out).unwrap();
    }
    t.finish(&mut out);
    CHAT_MESSAGES.check("tool_stream.openai.sse", &out);
}

#[test]
fn anthropic_request_becomes_openai_chat() {
    let req = chat_request(
        &MESSAGES_CHAT.read("tool_conversation.request.json"),
        "gpt-4o-2024-08-06",
        true,
        MaxTokensField::MaxTokens,
    )
    .unwrap();
    MESSAGES_CHAT.check("tool_conversation.openai.json", &req.body);
}

/// Claude Code's own request (trimmed: two of its tools, shortened texts), continued by a tool
/// call answered with thinking: what it steers Claude with is dropped, the conversation kept.
#[test]
fn claude_codes_request_becomes_openai_chat() {
    let req = chat_request(
        &MESSAGES_CHAT.read("claude_code.request.json"),
        "gpt-4o-2024-08-06",
        true,
        MaxTokensField::MaxTokens,
    )
    .unwrap();
    MESSAGES_CHAT.check("claude_code.openai.json", &req.body);
}

#[test]
fn chat_completion_becomes_anthropic_message() {
    let (body, _) = messages_response(
        &MESSAGES_CHAT.read("tool_answer.openai.json"),
        "claude-route",
        "msg_golden",
    )
    .unwrap();
    MESSAGES_CHAT.check("tool_answer.anthropic.json", &body);
}

#[test]
fn chat_chunks_become_anthropic_stream() {
    let mut t = ChatMessagesStream::new("claude-route".into(), "msg_golden".into());
    let mut out = Vec::new();
    for piece in pieces(&MESSAGES_CHAT.read("tool_stream.openai.sse")) {
        t.feed(piece, &mut out).unwrap();
    }
    t.finish(&mut out).unwrap();
    MESSAGES_CHAT.check("tool_stream.anthropic.sse", &out);
}
