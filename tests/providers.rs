//! Targets that authenticate with their own key instead of SigV4, end to end against the
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
    let bearer = format!("Bearer {CLIENT_SECRET}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-api-key", CLIENT_SECRET),
    ];
    let (status, _, body) = post_json(url, body, &headers).await;
    (status, body)
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
    assert_eq!(status, 403, "{body:?}");
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains(API_KEY), "{text}");
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
    let counted =
        format!("bedrock_balancer_tokens_total{{target=\"{target}\",token_type=\"completion\"}} ");
    let metrics = h.metrics().await;
    let output: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&counted))
        .unwrap_or_else(|| panic!("{counted} missing: {metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(output, plain_output + streamed_output);
}

#[actix_rt::test]
async fn a_throttled_bedrock_region_fails_over_to_the_anthropic_api_and_takes_traffic_again() {
    let region = start_sims(&["us-east-1"]).await.remove(0);
    let anthropic = anthropic_api().await;
    let targets = [
        format!(
            "{}\n        priority: 1",
            target_yaml(MODEL, "us-east-1", &region.url(), 100)
        ),
        format!(
            "{}\n        priority: 2",
            anthropic_target(&anthropic.url())
        ),
    ];
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

/// An OpenAI-compatible server that takes `API_KEY` as its bearer token.
async fn openai_api() -> sim::SimHandle {
    let mut opts = SimOptions::new("us-east-1");
    opts.provider = sim::SimProvider::OpenAi;
    opts.api_keys = vec![API_KEY.to_owned()];
    sim::start(opts).await.unwrap()
}

fn openai_target(url: &str) -> String {
    format!(
        r#"
      - model:
          provider: openai
          name: gpt-4o
          options: {{ upstream_url: "{url}" }}
        auth: {{ header_name: Authorization, header_value: "Bearer {API_KEY}" }}"#
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
    let openai = openai_api().await;
    let targets = [
        anthropic_target(&anthropic.url()),
        openai_target(&openai.url()),
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
        auth: {{ header_name: Authorization, header_value: "Bearer {API_KEY}" }}
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
        opts.api_keys = vec![API_KEY.to_owned()];
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
