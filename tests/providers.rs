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
