//! The simulator's Anthropic API mode in-process on a free port: `x-api-key` and
//! `anthropic-version` checked, Claude's answers plain and as server-sent events, errors and
//! faults in the API's own format.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bedrock_balancer_sim::{self as sim, Faults, SimHandle, SimOptions, SimProvider};
use serde_json::{Value, json};

const KEY: &str = "sk-ant-sim-key";

async fn start() -> SimHandle {
    let mut opts = SimOptions::new("us-east-1");
    opts.provider = SimProvider::Anthropic;
    opts.api_keys = vec![KEY.to_owned()];
    sim::start(opts).await.unwrap()
}

async fn post(
    sim: &SimHandle,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, awc::http::header::HeaderMap, bytes::Bytes) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut req = client.post(format!("{}/v1/messages", sim.url()));
    for header in headers {
        req = req.insert_header(*header);
    }
    let mut resp = req.send_json(body).await.unwrap();
    let body = resp.body().limit(1 << 22).await.unwrap();
    (resp.status().as_u16(), resp.headers().clone(), body)
}

const AUTHED: [(&str, &str); 2] = [("x-api-key", KEY), ("anthropic-version", "2023-06-01")];

fn messages(stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": "Hello"}]})
}

fn error_of(body: &[u8]) -> (String, String) {
    let json: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(json["type"], "error", "{json}");
    (
        json["error"]["type"].as_str().unwrap().to_owned(),
        json["error"]["message"].as_str().unwrap().to_owned(),
    )
}

#[actix_rt::test]
async fn messages_answer_plain_and_streamed_and_record_the_key_header() {
    let sim = start().await;
    let (status, _, body) = post(&sim, &AUTHED, &messages(false)).await;
    assert_eq!(status, 200, "{body:?}");
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["type"], "message");
    assert_eq!(json["model"], "claude-sonnet-4-5");
    assert_eq!(json["content"][0]["type"], "text");
    assert!(
        json["usage"]["input_tokens"].as_u64().unwrap() > 0,
        "{json}"
    );

    let (status, headers, body) = post(&sim, &AUTHED, &messages(true)).await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(headers.get("content-type").unwrap(), "text/event-stream");
    let text = String::from_utf8(body.to_vec()).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{text}");
    assert_eq!(names.last(), Some(&"message_stop"), "{text}");
    assert!(names.contains(&"content_block_delta"), "{text}");
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        serde_json::from_str::<Value>(data).unwrap();
    }

    let stats = sim.stats();
    assert_eq!(stats.by_operation["messages"], 1);
    assert_eq!(stats.by_operation["messages-stream"], 1);
    assert_eq!(stats.by_model["claude-sonnet-4-5"].values().sum::<u64>(), 2);
    assert_eq!(stats.last_request_headers["x-api-key"], KEY);
    assert!(!stats.last_request_headers.contains_key("authorization"));
}

#[actix_rt::test]
async fn the_key_version_and_model_are_required_in_the_apis_error_format() {
    let sim = start().await;
    let (status, _, body) = post(
        &sim,
        &[("anthropic-version", "2023-06-01")],
        &messages(false),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(error_of(&body).0, "authentication_error");
    let (status, _, body) = post(
        &sim,
        &[("x-api-key", "wrong"), ("anthropic-version", "2023-06-01")],
        &messages(false),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(error_of(&body).0, "authentication_error");
    let (status, _, body) = post(&sim, &[("x-api-key", KEY)], &messages(false)).await;
    assert_eq!(status, 400);
    assert_eq!(
        error_of(&body),
        (
            "invalid_request_error".to_owned(),
            "anthropic-version: header is required".to_owned()
        )
    );
    let mut no_model = messages(false);
    no_model.as_object_mut().unwrap().remove("model");
    let (status, _, body) = post(&sim, &AUTHED, &no_model).await;
    assert_eq!(status, 400);
    assert_eq!(error_of(&body).1, "model: Field required");
    let stats = sim.stats();
    assert_eq!(stats.bad_signatures, 2);
    assert_eq!(stats.requests_total, 4);
}

#[actix_rt::test]
async fn bedrocks_body_version_and_betas_are_extra_inputs_to_the_api() {
    let sim = start().await;
    for (key, value) in [
        ("anthropic_version", json!("bedrock-2023-05-31")),
        (
            "anthropic_beta",
            json!(["token-efficient-tools-2025-02-19"]),
        ),
    ] {
        let mut body = messages(false);
        body[key] = value;
        let (status, _, body) = post(&sim, &AUTHED, &body).await;
        assert_eq!(status, 400, "{body:?}");
        assert_eq!(
            error_of(&body),
            (
                "invalid_request_error".to_owned(),
                format!("{key}: Extra inputs are not permitted")
            )
        );
    }
    assert!(sim.stats().claude_requests.is_empty());
}

#[actix_rt::test]
async fn injected_overload_and_throttling_carry_retry_after() {
    let sim = start().await;
    sim.set_faults(Faults {
        status: Some(529),
        retry_after: Some(3),
        ..Faults::default()
    });
    let (status, headers, body) = post(&sim, &AUTHED, &messages(false)).await;
    assert_eq!(status, 529);
    assert_eq!(headers.get("retry-after").unwrap(), "3");
    assert_eq!(error_of(&body).0, "overloaded_error");
    sim.set_faults(Faults {
        status: Some(429),
        ..Faults::default()
    });
    let (status, _, body) = post(&sim, &AUTHED, &messages(true)).await;
    assert_eq!(status, 429);
    assert_eq!(error_of(&body).0, "rate_limit_error");
    assert_eq!(sim.stats().errors_injected, 2);
}

#[actix_rt::test]
async fn system_messages_between_turns_need_the_mid_conversation_beta() {
    let sim = start().await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [
        {"role": "user", "content": "Hello"},
        {"role": "system", "content": "Context that changes per turn."}]});
    let (status, _, answer) = post(&sim, &AUTHED, &body).await;
    assert_eq!(status, 400, "{answer:?}");
    assert!(error_of(&answer).1.contains("unknown variant `system`"));
    let beta = (
        "anthropic-beta",
        "claude-code-20250219,mid-conversation-system-2026-04-07",
    );
    let (status, _, answer) = post(&sim, &[AUTHED[0], AUTHED[1], beta], &body).await;
    assert_eq!(status, 200, "{answer:?}");
    let json: Value = serde_json::from_slice(&answer).unwrap();
    assert!(
        json["content"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with("You said: Hello"),
        "{json}"
    );
}
