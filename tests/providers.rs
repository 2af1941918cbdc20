//! Targets that authenticate with their own key instead of SigV4 (Bedrock API keys, the Anthropic
//! API, OpenAI-compatible servers, Azure OpenAI), end to end against the
//! simulator on free ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use bedrock_balancer::eventstream::Frame;
use bedrock_balancer_sim::{self as sim, SimOptions};
use common::*;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const API_KEY: &str = "bedrock-api-key-0123456789";
const CLIENT_SECRET: &str = "client-own-secret-42";

/// POSTs as a client that also sends credentials of its own, which must stay here.
async fn post(url: &str, body: String) -> (u16, bytes::Bytes) {
    let (status, _, body) = post_with_head(url, body).await;
    (status, body)
}

/// As [`post`], with the response's headers.
async fn post_with_head(
    url: &str,
    body: String,
) -> (u16, awc::http::header::HeaderMap, bytes::Bytes) {
    let bearer = format!("Bearer {CLIENT_SECRET}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-api-key", CLIENT_SECRET),
    ];
    post_json(url, body, &headers).await
}

/// A region that knows no AWS key at all, only the Bedrock API key: a signed request would fail.
async fn api_key_region() -> Harness {
    let mut opts = SimOptions::new("us-east-1");
    opts.keys.clear();
    opts.api_keys = vec![API_KEY.to_owned()];
    api_key_gateway(sim::start(opts).await.unwrap()).await
}

/// A gateway with one route whose only target reaches `region` with the Bedrock API key.
async fn api_key_gateway(region: sim::SimHandle) -> Harness {
    let target = format!(
        r#"
      - model:
          provider: bedrock
          name: "{MODEL}"
          options:
            bedrock: {{ aws_region: us-east-1 }}
            upstream_url: {}
        auth: {{ aws_bearer_token: "{API_KEY}" }}"#,
        region.url()
    );
    start_gateway(
        &config_yaml("claude", "      algorithm: round-robin", &[target]),
        vec![region],
    )
    .await
}

/// Asserts the last request the region saw carried the API key, no signature, and nothing of
/// the client's own credentials.
fn assert_api_key_only(headers: &BTreeMap<String, String>) {
    assert_eq!(
        headers.get("authorization").map(String::as_str),
        Some(format!("Bearer {API_KEY}").as_str()),
        "{headers:?}"
    );
    for signed in ["x-amz-date", "x-amz-content-sha256", "x-amz-security-token"] {
        assert!(!headers.contains_key(signed), "{signed} in {headers:?}");
    }
    assert!(!headers.contains_key("x-api-key"), "{headers:?}");
    assert!(
        headers.values().all(|v| !v.contains(CLIENT_SECRET)),
        "{headers:?}"
    );
}

#[actix_rt::test]
async fn a_bedrock_api_key_target_sends_the_bearer_key_and_no_signature() {
    let h = api_key_region().await;

    let (status, body) = post(&h.url("/model/claude/converse"), converse_body("hi")).await;
    assert_eq!(status, 200, "{body:?}");
    assert_api_key_only(&h.sims[0].stats().last_request_headers);

    let (status, body) = post(
        &h.url("/model/claude/converse-stream"),
        converse_body("stream"),
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    assert!(
        decode_frames(&body)
            .iter()
            .any(|f| matches!(f, Frame::Event { event_type, .. } if event_type == "messageStop")),
        "{body:?}"
    );
    assert_api_key_only(&h.sims[0].stats().last_request_headers);

    let chat =
        serde_json::json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = post(&h.url("/v1/chat/completions"), chat.to_string()).await;
    assert_eq!(status, 200, "{body:?}");
    assert_api_key_only(&h.sims[0].stats().last_request_headers);

    let stats = h.sims[0].stats();
    assert_eq!(stats.bad_signatures, 0);
    assert_eq!(stats.by_operation.values().sum::<u64>(), 3);
    let target = h.admin_target("us-east-1").await;
    assert_eq!(target["credentials_loaded"], true, "{target}");
}

#[actix_rt::test]
async fn a_wrong_bedrock_api_key_is_refused_upstream_and_never_echoed() {
    let mut opts = SimOptions::new("us-east-1");
    opts.api_keys = vec!["another-key".to_owned()];
    let h = api_key_gateway(sim::start(opts).await.unwrap()).await;
    let (status, body) = post(&h.url("/model/claude/converse"), converse_body("hi")).await;
    // The gateway's key was refused, not the client's: a 502 naming the target and Bedrock's
    // error name.
    assert_eq!(status, 502, "{body:?}");
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains(API_KEY), "{text}");
    assert!(
        text.contains("upstream status 403 UnrecognizedClientException"),
        "{text}"
    );
    assert_eq!(h.sims[0].stats().bad_signatures, 1);
}

/// A route of `targets` (YAML) over `sims`, reached on the native surface.
async fn native_converse(targets: &[String], sims: Vec<sim::SimHandle>) -> (Harness, u16, String) {
    let h = start_gateway(
        &config_yaml("claude", "      algorithm: round-robin", targets),
        sims,
    )
    .await;
    let (status, body) = post(&h.url("/model/claude/converse"), converse_body("hi")).await;
    (h, status, String::from_utf8_lossy(&body).into_owned())
}

fn anthropic_target(url: &str) -> String {
    format!(
        r#"
      - model:
          provider: anthropic
          name: claude-sonnet-4-5
          options: {{ upstream_url: "{url}" }}
        auth: {{ header_name: x-api-key, header_value: "{API_KEY}" }}"#
    )
}

async fn anthropic_api() -> sim::SimHandle {
    let mut opts = SimOptions::new("us-east-1");
    opts.provider = sim::SimProvider::Anthropic;
    opts.api_keys = vec![API_KEY.to_owned()];
    sim::start(opts).await.unwrap()
}

#[actix_rt::test]
async fn bedrock_operations_pass_over_other_providers_targets() {
    let anthropic = anthropic_api().await;
    let region = start_sims(&["us-east-1"]).await.remove(0);
    let targets = [
        anthropic_target(&anthropic.url()),
        target_yaml(MODEL, "us-east-1", &region.url(), 100),
    ];
    let (h, _, _) = native_converse(&targets, vec![anthropic, region]).await;
    for i in 0..4 {
        let (status, body) = post(
            &h.url("/model/claude/converse"),
            converse_body(&format!("hi {i}")),
        )
        .await;
        assert_eq!(status, 200, "{body:?}");
    }
    assert_eq!(h.sims[0].stats().requests_total, 0);
    assert_eq!(h.sims[1].stats().by_operation["converse"], 5);
}

#[actix_rt::test]
async fn a_route_of_only_other_providers_refuses_bedrock_operations_naming_the_target() {
    let anthropic = anthropic_api().await;
    let targets = [anthropic_target(&anthropic.url())];
    let (h, status, body) = native_converse(&targets, vec![anthropic]).await;
    assert_eq!(status, 400, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let message = json["message"].as_str().unwrap();
    assert!(
        message.starts_with("target 127.0.0.1:")
            && message.ends_with(
                "/claude-sonnet-4-5 has provider \"anthropic\"; this request goes only to bedrock targets"
            ),
        "{message}"
    );
    assert!(!body.contains(API_KEY), "{body}");
    assert_eq!(h.sims[0].stats().requests_total, 0);
}

/// Asserts the Anthropic API saw the target's key and version, the client's betas, and nothing
/// of the client's own credentials.
fn assert_anthropic_key_only(headers: &BTreeMap<String, String>) {
    assert_eq!(
        headers.get("x-api-key").map(String::as_str),
        Some(API_KEY),
        "{headers:?}"
    );
    assert_eq!(
        headers.get("anthropic-version").map(String::as_str),
        Some("2023-06-01"),
        "{headers:?}"
    );
    assert!(!headers.contains_key("authorization"), "{headers:?}");
    assert!(!headers.contains_key("x-amz-date"), "{headers:?}");
    assert!(
        headers.values().all(|v| !v.contains(CLIENT_SECRET)),
        "{headers:?}"
    );
}

fn messages_body(stream: bool) -> String {
    serde_json::json!({
        "model": "claude", "max_tokens": 64, "stream": stream,
        "messages": [{"role": "user", "content": "hello there"}]
    })
    .to_string()
}

/// POSTs to the Messages surface as an Anthropic client with its own key and a beta flag.
async fn post_messages(h: &Harness, body: String) -> (u16, awc::http::header::HeaderMap, String) {
    let headers = [
        ("x-api-key", CLIENT_SECRET),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
    ];
    let (status, head, body) = post_json(&h.url("/v1/messages"), body, &headers).await;
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// A gateway with one route whose only target is the Anthropic API `anthropic`.
async fn anthropic_gateway(anthropic: sim::SimHandle) -> Harness {
    let route = config_yaml(
        "claude",
        "      algorithm: round-robin",
        &[anthropic_target(&anthropic.url())],
    );
    start_gateway(&route, vec![anthropic]).await
}

#[actix_rt::test]
async fn anthropic_messages_pass_through_to_an_anthropic_target_plain_and_streamed() {
    let anthropic = anthropic_api().await;
    let h = anthropic_gateway(anthropic).await;
    let (status, head, body) = post_messages(&h, messages_body(false)).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["type"], "message", "{answer}");
    assert_eq!(answer["model"], "claude-sonnet-4-5", "{answer}");
    assert!(answer["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let target = head
        .get("x-bedrock-balancer-target")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(target.ends_with("/claude-sonnet-4-5"), "{target}");
    let stats = h.sims[0].stats();
    assert_anthropic_key_only(&stats.last_request_headers);
    assert_eq!(
        stats
            .last_request_headers
            .get("anthropic-beta")
            .map(String::as_str),
        Some("prompt-caching-2024-07-31")
    );
    // Only `model` changed on the way.
    let sent = &stats.claude_requests.last().unwrap().body;
    assert_eq!(sent["messages"][0]["content"], "hello there", "{sent}");
    assert_eq!(sent["max_tokens"], 64, "{sent}");

    let (status, head, body) = post_messages(&h, messages_body(true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        head.get("content-type").unwrap().to_str().unwrap(),
        "text/event-stream"
    );
    for event in [
        "event: message_start",
        "event: content_block_delta",
        "event: message_stop",
    ] {
        assert!(body.contains(event), "{event} missing: {body}");
    }
    let stats = h.sims[0].stats();
    assert_anthropic_key_only(&stats.last_request_headers);
    assert_eq!(stats.by_model["claude-sonnet-4-5"]["messages"], 1);
    assert_eq!(stats.by_model["claude-sonnet-4-5"]["messages-stream"], 1);
    // Both answers' usage reached the target's token count.
    let streamed_output = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter(|e| e["type"] == "message_delta")
        .find_map(|e| e["usage"]["output_tokens"].as_u64())
        .unwrap();
    let plain_output = answer["usage"]["output_tokens"].as_u64().unwrap();
    wait_for_completion_tokens(&h, target, "anthropic", plain_output + streamed_output).await;
}

#[actix_rt::test]
async fn anthropic_api_targets_get_bedrocks_body_version_and_betas_as_headers() {
    let anthropic = anthropic_api().await;
    let h = anthropic_gateway(anthropic).await;
    // Valid on the Bedrock surface: the gateway rewrites both for Bedrock targets.
    let body = serde_json::json!({
        "model": "claude", "max_tokens": 64,
        "anthropic_version": "bedrock-2023-05-31",
        "anthropic_beta": ["token-efficient-tools-2025-02-19", "prompt-caching-2024-07-31"],
        "messages": [{"role": "user", "content": "hello there"}]
    });
    let (status, _, answer) = post_messages(&h, body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    let stats = h.sims[0].stats();
    let sent = stats.claude_requests.last().unwrap();
    assert!(
        sent.anthropic_version.is_none() && sent.anthropic_beta.is_none(),
        "{sent:?}"
    );
    // The header's flag and the body's, each once.
    assert_eq!(
        stats
            .last_request_headers
            .get("anthropic-beta")
            .map(String::as_str),
        Some("prompt-caching-2024-07-31,token-efficient-tools-2025-02-19")
    );
}

/// A chat request an Anthropic API target carries and Converse cannot: an image by URL and
/// `parallel_tool_calls: false`.
fn image_url_chat() -> String {
    serde_json::json!({
        "model": "claude",
        "parallel_tool_calls": false,
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ]}]
    })
    .to_string()
}

/// A conversation with a tool call in its history and `tool_choice: "none"`, which Converse
/// cannot express.
fn tool_choice_none_chat() -> String {
    serde_json::json!({
        "model": "claude",
        "tool_choice": "none",
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "messages": [
            {"role": "user", "content": "look it up"},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "lookup", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            {"role": "user", "content": "now answer"}
        ]
    })
    .to_string()
}

#[actix_rt::test]
async fn an_anthropic_route_takes_chat_that_converse_cannot_carry() {
    let anthropic = anthropic_api().await;
    let h = anthropic_gateway(anthropic).await;
    let (status, body) = post(&h.url("/v1/chat/completions"), image_url_chat()).await;
    assert_eq!(status, 200, "{body:?}");
    let stats = h.sims[0].stats();
    let sent = &stats.claude_requests.last().unwrap().body;
    assert_eq!(
        sent["messages"][0]["content"][1]["source"],
        serde_json::json!({"type": "url", "url": "https://example.com/cat.png"}),
        "{sent}"
    );
    assert_eq!(
        sent["tool_choice"],
        serde_json::json!({"type": "auto", "disable_parallel_tool_use": true}),
        "{sent}"
    );

    let (status, body) = post(&h.url("/v1/chat/completions"), tool_choice_none_chat()).await;
    assert_eq!(status, 200, "{body:?}");
    let stats = h.sims[0].stats();
    let sent = &stats.claude_requests.last().unwrap().body;
    assert_eq!(
        sent["tool_choice"],
        serde_json::json!({"type": "none"}),
        "{sent}"
    );
    assert_eq!(
        sent["messages"][1]["content"][0]["type"], "tool_use",
        "{sent}"
    );
    assert_eq!(stats.requests_total, 2);
}

#[actix_rt::test]
async fn a_mixed_route_passes_over_bedrock_for_chat_that_converse_cannot_carry() {
    let region = start_sims(&["us-east-1"]).await.remove(0);
    let anthropic = anthropic_api().await;
    // The region is preferred: only the refusal of its Converse translation sends it on.
    let targets = region_then(&region, anthropic_target(&anthropic.url()));
    let h = start_gateway(
        &config_yaml("claude", "      algorithm: priority", &targets),
        vec![region, anthropic],
    )
    .await;
    for (i, chat) in [image_url_chat(), tool_choice_none_chat()]
        .into_iter()
        .enumerate()
    {
        let (status, head, body) = post_with_head(&h.url("/v1/chat/completions"), chat).await;
        assert_eq!(status, 200, "{body:?}");
        let target = head.get("x-bedrock-balancer-target").unwrap();
        assert!(
            target.to_str().unwrap().ends_with("/claude-sonnet-4-5"),
            "{target:?}"
        );
        // Passed over without an attempt.
        assert_eq!(head.get("x-bedrock-balancer-attempts").unwrap(), "1");
        assert_eq!(h.sims[1].stats().requests_total, i as u64 + 1);
    }
    assert_eq!(h.sims[0].stats().requests_total, 0);
    // What Converse carries still goes to the preferred region.
    let plain =
        serde_json::json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]});
    let (status, head, body) =
        post_with_head(&h.url("/v1/chat/completions"), plain.to_string()).await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(
        head.get("x-bedrock-balancer-target").unwrap(),
        format!("us-east-1/{MODEL}").as_str()
    );
}

#[actix_rt::test]
async fn a_bedrock_route_refuses_chat_that_converse_cannot_carry_naming_the_field() {
    let region = start_sims(&["us-east-1"]).await.remove(0);
    let h = start_gateway(
        &config_yaml(
            "claude",
            "      algorithm: round-robin",
            &[target_yaml(MODEL, "us-east-1", &region.url(), 100)],
        ),
        vec![region],
    )
    .await;
    let (status, body) = post(&h.url("/v1/chat/completions"), image_url_chat()).await;
    assert_eq!(status, 400, "{body:?}");
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    assert_eq!(error["error"]["code"], "unsupported_parameter", "{error}");
    assert_eq!(error["error"]["param"], "parallel_tool_calls", "{error}");
    let (status, body) = post(&h.url("/v1/chat/completions"), tool_choice_none_chat()).await;
    assert_eq!(status, 400, "{body:?}");
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["param"], "tool_choice", "{error}");
    assert_eq!(h.sims[0].stats().requests_total, 0);
}

#[actix_rt::test]
async fn a_failed_attempt_spends_no_retry_when_no_target_left_can_take_the_request() {
    // The Anthropic API first, failing; then a region, whose Converse cannot carry the body.
    let anthropic = anthropic_api().await;
    anthropic.set_faults(sim::Faults {
        status: Some(500),
        ..sim::Faults::default()
    });
    let region = start_sims(&["us-east-1"]).await.remove(0);
    let targets = [
        format!(
            "{}\n        priority: 1",
            anthropic_target(&anthropic.url())
        ),
        format!(
            "{}\n        priority: 2",
            target_yaml(MODEL, "us-east-1", &region.url(), 100)
        ),
    ];
    let route = "no-retry-to-spend";
    let h = start_gateway(
        &config_yaml(
            route,
            "      algorithm: priority\n      retries: 1\n      failover_criteria: [error, http_500, non_idempotent]",
            &targets,
        ),
        vec![anthropic, region],
    )
    .await;
    // Far more failed first attempts at once than the budget's floor and savings could fund.
    let chat = h.url("/v1/chat/completions");
    let statuses = futures_util::future::join_all(
        (0..60).map(|_| post(&chat, image_url_chat().replace("claude", route))),
    )
    .await;
    for (status, body) in statuses {
        assert_eq!(status, 502, "{body:?}");
    }
    assert_eq!(h.sims[1].stats().requests_total, 0);
    let exhausted = format!("retry_budget_exhausted_total{{route=\"{route}\"}}");
    let metrics = h.metrics().await;
    assert!(!metrics.contains(&exhausted), "{metrics}");
}

/// The Bedrock `region` first (priority 1), then `overflow` (a target's YAML).
fn region_then(region: &sim::SimHandle, overflow: String) -> [String; 2] {
    [
        format!(
            "{}\n        priority: 1",
            target_yaml(MODEL, "us-east-1", &region.url(), 100)
        ),
        format!("{overflow}\n        priority: 2"),
    ]
}

#[actix_rt::test]
async fn a_throttled_bedrock_region_fails_over_to_the_anthropic_api_and_takes_traffic_again() {
    let region = start_sims(&["us-east-1"]).await.remove(0);
    let anthropic = anthropic_api().await;
    let targets = region_then(&region, anthropic_target(&anthropic.url()));
    let h = start_gateway(
        &config_yaml(
            "claude",
            "      algorithm: priority\n      retries: 1\n      failover_criteria: [error, timeout, http_429, non_idempotent]",
            &targets,
        ),
        vec![region, anthropic],
    )
    .await;
    let served_by = |head: &awc::http::header::HeaderMap| {
        head.get("x-bedrock-balancer-target")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (status, head, body) = post_messages(&h, messages_body(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served_by(&head), format!("us-east-1/{MODEL}"));

    h.fault(
        0,
        sim::Faults {
            status: Some(429),
            retry_after: Some(1),
            ..sim::Faults::default()
        },
    );
    for stream in [false, true] {
        let (status, head, body) = post_messages(&h, messages_body(stream)).await;
        assert_eq!(status, 200, "{body}");
        assert!(served_by(&head).ends_with("/claude-sonnet-4-5"), "{head:?}");
        if stream {
            assert!(body.contains("event: message_stop"), "{body}");
        }
    }
    // The first throttle cooled the region down: the second request went straight on.
    assert_eq!(h.sims[0].stats().errors_injected, 1);
    let bedrock_target = format!("us-east-1/{MODEL}");
    let throttled = [
        ("target", bedrock_target.as_str()),
        ("provider", "bedrock"),
        ("kind", "throttling"),
    ];
    let metrics = h.metrics().await;
    assert!(
        sample(&metrics, "upstream_errors_total", &throttled).is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert_eq!(h.sims[1].stats().requests_total, 2);
    assert_anthropic_key_only(&h.sims[1].stats().last_request_headers);

    // Its Retry-After over, the region takes the traffic back.
    h.fault(0, sim::Faults::default());
    poll_until(
        "us-east-1 to be ready",
        std::time::Duration::from_secs(10),
        || async { h.admin_target("us-east-1").await["ready"] == true },
    )
    .await;
    let (status, head, body) = post_messages(&h, messages_body(true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served_by(&head), format!("us-east-1/{MODEL}"));
    assert_eq!(h.sims[1].stats().requests_total, 2);
}

#[actix_rt::test]
async fn the_anthropic_apis_own_errors_reach_anthropic_clients_as_sent() {
    let anthropic = anthropic_api().await;
    anthropic.set_faults(sim::Faults {
        status: Some(529),
        retry_after: Some(7),
        ..sim::Faults::default()
    });
    let h = anthropic_gateway(anthropic).await;
    let (status, head, body) = post_messages(&h, messages_body(false)).await;
    assert_eq!(status, 529, "{body}");
    assert_eq!(head.get("retry-after").unwrap(), "7");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["error"]["type"], "overloaded_error", "{error}");
    assert!(!body.contains(API_KEY), "{body}");
    // An overload cools the target down as a throttle does.
    let targets = h.admin_targets().await;
    let target = &targets["targets"][0];
    assert!(
        target["cooldown_remaining_ms"].as_u64().unwrap() > 0,
        "{target}"
    );
}

/// The `/admin/targets` rows by their `provider` field.
async fn targets_by_provider(h: &Harness) -> BTreeMap<String, serde_json::Value> {
    let json = h.admin_targets().await;
    json["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let provider = t["provider"].as_str().unwrap_or_else(|| panic!("{t}"));
            (provider.to_owned(), t.clone())
        })
        .collect()
}

#[actix_rt::test]
async fn metrics_and_admin_name_each_targets_provider() {
    // Metrics are process-wide: a region no other test here uses keeps the series this test's own.
    let region = start_sims(&["eu-central-1"]).await.remove(0);
    let anthropic = anthropic_api().await;
    let targets = [
        target_yaml(MODEL, "eu-central-1", &region.url(), 100),
        anthropic_target(&anthropic.url()),
    ];
    let h = start_gateway(
        &config_yaml("claude", "      algorithm: round-robin", &targets),
        vec![region, anthropic],
    )
    .await;
    let rows = targets_by_provider(&h).await;
    assert_eq!(
        rows.keys().map(String::as_str).collect::<Vec<_>>(),
        ["anthropic", "bedrock"],
        "{rows:?}"
    );
    assert_eq!(rows["bedrock"]["target"], format!("eu-central-1/{MODEL}"));
    let field = |provider: &str, name: &str| rows[provider][name].as_str().unwrap().to_owned();

    // Round-robin over both; bounded, in case the order starts on either.
    let mut sent = 0;
    while h.sims.iter().any(|s| s.stats().requests_total == 0) {
        assert!(
            sent < 8,
            "a target never served: {:?}",
            h.admin_targets().await
        );
        let (status, _, body) = post_messages(&h, messages_body(sent % 2 == 1)).await;
        assert_eq!(status, 200, "{body}");
        sent += 1;
    }
    let (status, _, _) = post_json(
        &h.url("/model/not-configured/converse"),
        converse_body("hi"),
        &[],
    )
    .await;
    assert_eq!(status, 404);

    let providers = ["bedrock", "anthropic"];
    let served = |metrics: &str, provider: &str| {
        let target = field(provider, "target");
        let labels = [
            ("route", "claude"),
            ("target", target.as_str()),
            ("provider", provider),
            ("code", "200"),
        ];
        sample(metrics, "requests_total", &labels)
    };
    // A stream is counted when it ends, which may be just after its last bytes reached us.
    poll_until(
        "every answer counted by provider",
        std::time::Duration::from_secs(10),
        || async {
            let metrics = h.metrics().await;
            h.sims.iter().zip(providers).all(|(sim, provider)| {
                served(&metrics, provider) == Some(sim.stats().requests_total as f64)
            })
        },
    )
    .await;
    let metrics = h.metrics().await;
    for provider in providers {
        let (target, region, model) = (
            field(provider, "target"),
            field(provider, "region"),
            field(provider, "model"),
        );
        let target = target.as_str();
        let completion = [
            ("target", target),
            ("provider", provider),
            ("token_type", "completion"),
        ];
        assert!(
            sample(&metrics, "tokens_total", &completion).is_some_and(|n| n > 0.0),
            "{provider}: {metrics}"
        );
        // No prices are configured: the spend is 0, but counted under the provider.
        let cost = [("target", target), ("provider", provider)];
        assert_eq!(
            sample(&metrics, "cost_total", &cost),
            Some(0.0),
            "{provider}: {metrics}"
        );
        let state = [
            ("route", "claude"),
            ("target", target),
            ("provider", provider),
            ("region", region.as_str()),
            ("model", model.as_str()),
        ];
        assert_eq!(
            sample(&metrics, "target_state", &state),
            Some(0.0),
            "{provider}: {metrics}"
        );
    }
    let unserved = [
        ("route", "other"),
        ("target", "none"),
        ("provider", "none"),
        ("code", "404"),
    ];
    assert!(
        sample(&metrics, "requests_total", &unserved).is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
}

const OPENAI_KEY: &str = "sk-openai-upstream-0123456789";
const INSTRUCT: &str = "gpt-35-instruct";

async fn openai_api(provider: sim::SimProvider) -> sim::SimHandle {
    let mut opts = SimOptions::new("us-east-1");
    opts.provider = provider;
    opts.api_keys = vec![OPENAI_KEY.to_owned()];
    sim::start(opts).await.unwrap()
}

/// An `openai` target named `INSTRUCT`, or an `azure` one whose deployment is `instruct-prod`.
fn openai_target(provider: sim::SimProvider, url: &str) -> String {
    match provider {
        sim::SimProvider::Azure => format!(
            r#"
      - model:
          provider: azure
          name: {INSTRUCT}
          options:
            upstream_url: "{url}"
            azure_deployment_id: instruct-prod
            azure_api_version: "2024-10-21"
        auth: {{ header_name: api-key, header_value: "{OPENAI_KEY}" }}"#
        ),
        _ => format!(
            r#"
      - model:
          provider: openai
          name: {INSTRUCT}
          options: {{ upstream_url: "{url}" }}
        auth: {{ header_name: Authorization, header_value: "Bearer {OPENAI_KEY}" }}"#
        ),
    }
}

/// A gateway with one `llm/v1/completions` route named `text` over `targets`.
async fn completions_gateway(
    balancer: &str,
    targets: &[String],
    sims: Vec<sim::SimHandle>,
) -> Harness {
    let yaml = format!(
        r#"
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
routes:
  - name: text
    route_type: llm/v1/completions
    balancer: {{ {balancer} }}
    targets:{}
"#,
        targets.concat()
    );
    start_gateway(&yaml, sims).await
}

/// The `data:` records of an OpenAI stream, parsed, and whether `[DONE]` ended it.
fn openai_chunks(body: &str) -> (Vec<serde_json::Value>, bool) {
    let data: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    let chunks = data
        .iter()
        .filter(|d| **d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (chunks, data.last() == Some(&"[DONE]"))
}

/// Waits (bounded) until `/metrics` counts `expected` completion tokens for `target`: a stream is
/// counted when it ends, which may be just after its last byte reached the client.
async fn wait_for_completion_tokens(h: &Harness, target: &str, provider: &str, expected: u64) {
    let labels = [
        ("target", target),
        ("provider", provider),
        ("token_type", "completion"),
    ];
    poll_until(
        "the completion tokens counted",
        std::time::Duration::from_secs(10),
        || async { sample(&h.metrics().await, "tokens_total", &labels) == Some(expected as f64) },
    )
    .await;
}

#[actix_rt::test]
async fn legacy_completions_pass_through_to_openai_and_azure_plain_and_streamed() {
    for provider in [sim::SimProvider::OpenAi, sim::SimProvider::Azure] {
        let api = openai_api(provider).await;
        let target = openai_target(provider, &api.url());
        let h = completions_gateway("algorithm: round-robin", &[target], vec![api]).await;
        let upstream_model = match provider {
            sim::SimProvider::Azure => "instruct-prod",
            _ => INSTRUCT,
        };
        // A batch of prompts and `echo`, which Converse could not take, are the upstream's to judge.
        let plain = serde_json::json!({
            "model": "text", "prompt": ["hello there", "bye"], "max_tokens": 30, "echo": true,
        });
        let (status, head, body) =
            post_with_head(&h.url("/v1/completions"), plain.to_string()).await;
        assert_eq!(status, 200, "{body:?}");
        let target = head
            .get("x-bedrock-balancer-target")
            .unwrap()
            .to_str()
            .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["object"], "text_completion", "{answer}");
        assert_eq!(
            answer["choices"][1]["text"],
            format!("bye Hello from us-east-1 ({upstream_model}). You said: bye")
        );
        let plain_tokens = answer["usage"]["completion_tokens"].as_u64().unwrap();

        let streamed = serde_json::json!({
            "model": "text", "prompt": "hello there", "max_tokens": 30, "stream": true,
        });
        let (status, body) = post(&h.url("/v1/completions"), streamed.to_string()).await;
        assert_eq!(status, 200, "{body:?}");
        let (chunks, done) = openai_chunks(&String::from_utf8_lossy(&body));
        assert!(done, "{body:?}");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["text"].as_str())
            .collect();
        assert_eq!(
            text,
            format!("Hello from us-east-1 ({upstream_model}). You said: hello there")
        );
        // The gateway asked for the usage chunk on its own account: the client did not see it.
        assert!(chunks.iter().all(|c| c["usage"].is_null()), "{chunks:?}");
        let streamed_tokens = text.split_whitespace().count() as u64;

        let stats = h.sims[0].stats();
        assert_eq!(stats.by_model[upstream_model]["completions"], 1);
        assert_eq!(stats.by_model[upstream_model]["completions-stream"], 1);
        let headers = &stats.last_request_headers;
        let (name, value) = match provider {
            sim::SimProvider::Azure => ("api-key", OPENAI_KEY.to_owned()),
            _ => ("authorization", format!("Bearer {OPENAI_KEY}")),
        };
        assert_eq!(headers.get(name), Some(&value), "{headers:?}");
        assert!(
            headers.values().all(|v| !v.contains(CLIENT_SECRET)),
            "{headers:?}"
        );
        assert!(!headers.contains_key("x-api-key"), "{headers:?}");
        let provider = match provider {
            sim::SimProvider::Azure => "azure",
            _ => "openai",
        };
        wait_for_completion_tokens(&h, target, provider, plain_tokens + streamed_tokens).await;
    }
}

#[actix_rt::test]
async fn a_throttled_bedrock_region_fails_over_to_openai_for_legacy_completions() {
    let region = start_sims(&["us-east-1"]).await.remove(0);
    let api = openai_api(sim::SimProvider::OpenAi).await;
    let targets = region_then(&region, openai_target(sim::SimProvider::OpenAi, &api.url()));
    let h = completions_gateway(
        "algorithm: priority, retries: 1, failover_criteria: [error, timeout, http_429, non_idempotent]",
        &targets,
        vec![region, api],
    )
    .await;
    let body = |stream: bool| {
        serde_json::json!({
            "model": "text", "prompt": "hello there", "max_tokens": 30, "stream": stream,
            "stream_options": { "include_usage": stream },
        })
        .to_string()
    };
    let (status, first) = post(&h.url("/v1/completions"), body(false)).await;
    assert_eq!(status, 200, "{first:?}");
    let first: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(first["object"], "text_completion");
    assert_eq!(h.sims[0].stats().by_operation["converse"], 1);

    h.fault(
        0,
        sim::Faults {
            status: Some(429),
            retry_after: Some(30),
            ..sim::Faults::default()
        },
    );
    let (status, plain) = post(&h.url("/v1/completions"), body(false)).await;
    assert_eq!(status, 200, "{plain:?}");
    let plain: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(plain["object"], "text_completion");
    assert_eq!(
        plain["choices"][0]["text"],
        format!("Hello from us-east-1 ({INSTRUCT}). You said: hello there")
    );
    // The stream keeps its shape: the OpenAI server's chunks, its usage chunk as the client asked.
    let (status, streamed) = post(&h.url("/v1/completions"), body(true)).await;
    assert_eq!(status, 200, "{streamed:?}");
    let (chunks, done) = openai_chunks(&String::from_utf8_lossy(&streamed));
    assert!(done);
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], serde_json::json!([]));
    assert_eq!(last["usage"], plain["usage"]);
    // The throttle cooled the region down: only the first failover spent a request on it.
    assert_eq!(h.sims[0].stats().errors_injected, 1);
    assert_eq!(h.sims[1].stats().by_operation["completions"], 1);
    assert_eq!(h.sims[1].stats().by_operation["completions-stream"], 1);
}

#[actix_rt::test]
async fn an_openai_servers_completion_errors_reach_the_client_as_sent() {
    let api = openai_api(sim::SimProvider::OpenAi).await;
    api.set_faults(sim::Faults {
        status: Some(429),
        retry_after: Some(3),
        ..sim::Faults::default()
    });
    let target = openai_target(sim::SimProvider::OpenAi, &api.url());
    let h = completions_gateway("algorithm: round-robin", &[target], vec![api]).await;
    let body = serde_json::json!({"model": "text", "prompt": "hi"}).to_string();
    let (status, head, out) = post_json(&h.url("/v1/completions"), body, &[]).await;
    assert_eq!(status, 429, "{out:?}");
    assert_eq!(head.get("retry-after").unwrap(), "3");
    let error: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}");
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains(OPENAI_KEY), "{text}");
}

const ORG_B_KEY: &str = "anthropic-key-org-b";

/// An Anthropic target on `url` labelled `name`, with `key`.
fn named_anthropic_target(name: &str, url: &str, key: &str) -> String {
    format!(
        r#"
      - name: {name}
        model:
          provider: anthropic
          name: claude-sonnet-4-5
          options: {{ upstream_url: "{url}" }}
        auth: {{ header_name: x-api-key, header_value: "{key}" }}"#
    )
}

#[actix_rt::test]
async fn two_named_keys_for_one_anthropic_model_share_the_route() {
    let mut opts = SimOptions::new("us-east-1");
    opts.provider = sim::SimProvider::Anthropic;
    opts.api_keys = vec![API_KEY.to_owned(), ORG_B_KEY.to_owned()];
    let anthropic = sim::start(opts).await.unwrap();
    let targets = [
        named_anthropic_target("org-a", &anthropic.url(), API_KEY),
        named_anthropic_target("org-b", &anthropic.url(), ORG_B_KEY),
    ];
    let h = start_gateway(
        &config_yaml("claude", "      algorithm: round-robin", &targets),
        vec![anthropic],
    )
    .await;
    let mut served = BTreeMap::<String, u32>::new();
    for stream in [false, true, false, true] {
        let (status, head, body) = post_messages(&h, messages_body(stream)).await;
        assert_eq!(status, 200, "{body}");
        let label = head
            .get("x-bedrock-balancer-target")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        // Each label's own key went upstream.
        let key = if label == "org-a" { API_KEY } else { ORG_B_KEY };
        assert_eq!(
            h.sims[0].stats().last_request_headers["x-api-key"],
            key,
            "{label}"
        );
        *served.entry(label).or_default() += 1;
    }
    assert_eq!(
        served,
        BTreeMap::from([("org-a".to_owned(), 2), ("org-b".to_owned(), 2)])
    );
    assert_eq!(h.sims[0].stats().requests_total, 4);

    let admin = h.admin_targets().await;
    let rows: Vec<(&str, u64)> = admin["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap(),
                t["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("org-a", 2), ("org-b", 2)], "{admin}");
    let metrics = h.metrics().await;
    for name in ["org-a", "org-b"] {
        assert!(
            metrics.contains(&format!("target=\"{name}\"")),
            "{name} missing: {metrics}"
        );
    }
    assert!(!metrics.contains(ORG_B_KEY) && !metrics.contains(API_KEY));
}

/// An OpenAI-compatible chat model on `url`.
fn gpt4o_target(url: &str) -> String {
    format!(
        r#"
      - model:
          provider: openai
          name: gpt-4o
          options: {{ upstream_url: "{url}" }}
        auth: {{ header_name: Authorization, header_value: "Bearer {OPENAI_KEY}" }}"#
    )
}

async fn readyz(h: &Harness) -> (u16, serde_json::Value) {
    let mut resp = awc::Client::default()
        .get(h.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[actix_rt::test]
async fn a_gateway_of_key_targets_is_ready_with_them_and_not_while_they_all_cool_down() {
    let anthropic = anthropic_api().await;
    let openai = openai_api(sim::SimProvider::OpenAi).await;
    let targets = [
        anthropic_target(&anthropic.url()),
        gpt4o_target(&openai.url()),
    ];
    // No AWS credentials anywhere in this config: the keys are what make the targets ready.
    let h = start_gateway(
        &config_yaml(
            "claude",
            "      algorithm: round-robin\n      retries: 1\n      failover_criteria: [error, timeout, http_429, non_idempotent]",
            &targets,
        ),
        vec![anthropic, openai],
    )
    .await;
    assert_eq!(readyz(&h).await.0, 200);
    let admin = h.admin_targets().await;
    for target in admin["targets"].as_array().unwrap() {
        assert_eq!(target["credentials_loaded"], true, "{target}");
        assert_eq!(target["ready"], true, "{target}");
    }

    // Both throttled with a long Retry-After: one request tries both and cools both down.
    for sim in &h.sims {
        sim.set_faults(sim::Faults {
            status: Some(429),
            retry_after: Some(600),
            ..sim::Faults::default()
        });
    }
    let (status, _, body) = post_messages(&h, messages_body(false)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        h.sims
            .iter()
            .map(|s| s.stats().errors_injected)
            .sum::<u64>(),
        2
    );
    let (status, body) = readyz(&h).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("no target ready"))
    );
    let admin = h.admin_targets().await;
    for target in admin["targets"].as_array().unwrap() {
        assert_eq!(target["credentials_loaded"], true, "{target}");
        assert_eq!(target["ready"], false, "{target}");
    }
}

/// An OpenAI-compatible target on `url` with extra `options` lines and a `tpm` limit.
fn limited_openai_target(url: &str, options: &str) -> String {
    format!(
        r#"
      - model:
          provider: openai
          name: llama3
          options: {{ upstream_url: "{url}"{options} }}
        auth: {{ header_name: Authorization, header_value: "Bearer {OPENAI_KEY}" }}
        limits: {{ tpm: 100000 }}"#
    )
}

/// Streams a chat request whose client asks for the usage chunk; the status and body.
async fn stream_chat(h: &Harness) -> (u16, String) {
    let body = serde_json::json!({
        "model": "claude", "stream": true, "stream_options": {"include_usage": true},
        "max_tokens": 32, "messages": [{"role": "user", "content": "hello"}]
    });
    let (status, body) = post(&h.url("/v1/chat/completions"), body.to_string()).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[actix_rt::test]
async fn a_target_without_stream_usage_reaches_a_server_that_refuses_stream_options() {
    // A gateway whose one target, with extra `options`, is a server refusing `stream_options`.
    let gateway = |options: &'static str| async move {
        let mut opts = SimOptions::new("us-east-1");
        opts.provider = sim::SimProvider::OpenAi;
        opts.api_keys = vec![OPENAI_KEY.to_owned()];
        opts.refuse_stream_options = true;
        let sim = sim::start(opts).await.unwrap();
        let target = limited_openai_target(&sim.url(), options);
        start_gateway(
            &config_yaml("claude", "      algorithm: round-robin", &[target]),
            vec![sim],
        )
        .await
    };
    // By default the gateway asks for the usage chunk, which such a server refuses.
    let (status, body) = stream_chat(&gateway("").await).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("stream_options"), "{body}");

    let h = gateway(", stream_include_usage: false").await;
    let (status, body) = stream_chat(&h).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"content\":\"Hello"), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert!(!body.contains("\"usage\""), "no usage to relay: {body}");
    let (status, _, body) = post_messages(&h, messages_body(true)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("event: message_stop"), "{body}");
    assert_eq!(h.sims[0].stats().by_operation["chat-completions-stream"], 2);

    // Without usage, each stream's token estimate stays taken from the target's tpm, rather than
    // being settled at zero.
    let target = h.admin_targets().await["targets"][0].clone();
    let remaining = target["limits"]["remaining_tpm"].as_u64().unwrap();
    assert!(remaining < 100_000 - 2 * 32, "{target}");
    assert_eq!(target["avg_completion_tokens"], 0.0, "{target}");
}

#[actix_rt::test]
async fn an_azure_target_streams_with_usage_on_the_default_api_version() {
    let mut opts = SimOptions::new("eastus");
    opts.provider = sim::SimProvider::Azure;
    opts.api_keys = vec![API_KEY.to_owned()];
    let azure = sim::start(opts).await.unwrap();
    let target = |version: &str| {
        format!(
            r#"
      - model:
          provider: azure
          name: gpt-4o
          options: {{ upstream_url: "{}", azure_deployment_id: gpt4o{version} }}
        auth: {{ header_name: api-key, header_value: "{API_KEY}" }}
        limits: {{ tpm: 100000 }}"#,
            azure.url()
        )
    };
    let targets = [target("")];
    let route = config_yaml("claude", "      algorithm: round-robin", &targets);
    let old_route = config_yaml(
        "claude",
        "      algorithm: round-robin",
        &[target(", azure_api_version: 2023-05-15")],
    );
    let h = start_gateway(&route, vec![azure]).await;
    let (status, body) = stream_chat(&h).await;
    assert_eq!(status, 200, "{body}");
    // The usage chunk came (the client asked for it), and the gateway counted it.
    assert!(body.contains("\"completion_tokens\""), "{body}");
    let target = h.admin_targets().await["targets"][0].clone();
    assert!(
        target["avg_completion_tokens"].as_f64().unwrap() > 0.0,
        "{target}"
    );

    // Kong's default of old predates stream_options: Azure refuses the stream.
    let old = start_gateway(&old_route, Vec::new()).await;
    let (status, body) = stream_chat(&old).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("stream_options"), "{body}");
}

/// A simulated API of `provider` accepting `key`, served under `prefix` as Groq serves OpenAI's
/// under `/openai`.
async fn api_under(provider: sim::SimProvider, key: &str, prefix: &str) -> sim::SimHandle {
    let mut opts = SimOptions::new("us-east-1");
    opts.provider = provider;
    opts.api_keys = vec![key.to_owned()];
    opts.path_prefix = prefix.to_owned();
    sim::start(opts).await.unwrap()
}

#[actix_rt::test]
async fn openai_and_anthropic_upstream_urls_with_a_path_are_sdk_base_urls() {
    let openai = api_under(sim::SimProvider::OpenAi, OPENAI_KEY, "/openai").await;
    let base = format!("{}/openai/v1/", openai.url());
    let origin_only = limited_openai_target(&openai.url(), "");
    let route = |target: String| config_yaml("claude", "      algorithm: round-robin", &[target]);
    // Like Groq's `https://api.groq.com/openai/v1`: the calls go under it.
    let h = start_gateway(&route(limited_openai_target(&base, "")), vec![openai]).await;
    let (status, body) = stream_chat(&h).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"content\":\"Hello"), "{body}");
    let (status, _, body) = post_messages(&h, messages_body(false)).await;
    assert_eq!(status, 200, "{body}");
    let calls = h.sims[0].stats().by_operation;
    assert_eq!(
        (calls["chat-completions-stream"], calls["chat-completions"]),
        (1, 1)
    );
    // A host alone means `/v1` under it, which this server does not serve: the target's config
    // is wrong, which is the gateway's error, not the client's.
    let bare = start_gateway(&route(origin_only), Vec::new()).await;
    let (status, body) = stream_chat(&bare).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("target_refused") && body.contains("upstream status 404"),
        "{body}"
    );

    let anthropic = api_under(sim::SimProvider::Anthropic, API_KEY, "/anthropic").await;
    let target = anthropic_target(&format!("{}/anthropic", anthropic.url()));
    let h = start_gateway(&route(target), vec![anthropic]).await;
    let (status, _, body) = post_messages(&h, messages_body(false)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello from"), "{body}");
}

#[actix_rt::test]
async fn whole_answers_without_usage_keep_their_token_estimate() {
    let mut opts = SimOptions::new("us-east-1");
    opts.provider = sim::SimProvider::OpenAi;
    opts.api_keys = vec![OPENAI_KEY.to_owned()];
    opts.omit_usage = true;
    let server = sim::start(opts).await.unwrap();
    let target = limited_openai_target(&server.url(), "");
    let h = start_gateway(
        &config_yaml("claude", "      algorithm: round-robin", &[target]),
        vec![server],
    )
    .await;
    let chat = serde_json::json!({
        "model": "claude", "max_completion_tokens": 32,
        "messages": [{"role": "user", "content": "hello"}]
    });
    let (status, body) = post(&h.url("/v1/chat/completions"), chat.to_string()).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("\"usage\""), "{body}");
    // An Anthropic client's answer, translated from the chat completion, says zero tokens.
    let (status, _, body) = post_messages(&h, messages_body(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h.sims[0].stats().by_operation["chat-completions"], 2);

    // Both estimates (each at least its output cap, 32 and 64) stay taken from the target's
    // tpm instead of being settled at zero, and nothing is sampled into its usage averages.
    let target = h.admin_targets().await["targets"][0].clone();
    let remaining = target["limits"]["remaining_tpm"].as_u64().unwrap();
    assert!(remaining <= 100_000 - (32 + 64), "{target}");
    assert_eq!(target["avg_prompt_tokens"], 0.0, "{target}");
}
