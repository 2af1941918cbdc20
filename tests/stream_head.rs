//! A stream whose first event is an error (Bedrock's exception frame, the Anthropic API's
//! `overloaded_error` event, an OpenAI-compatible error chunk) fails over before anything reached
//! the client; an error after content still reaches the client in the stream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bedrock_balancer::eventstream::Frame;
use bedrock_balancer_sim::{self as sim, Faults, SimOptions, SimProvider};
use common::*;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const KEY: &str = "provider-key-0123456789";
const FAIL_OVER: &str = "      algorithm: priority\n      retries: 1\n      \
    failover_criteria: [error, timeout, http_429, http_500, http_503, non_idempotent]";

/// An error as a stream's first event, or after `after` events.
fn error_event_after(after: usize, exception: &str) -> Faults {
    Faults {
        stream_exception_after: Some(after),
        stream_exception: Some(exception.to_owned()),
        ..Faults::default()
    }
}

/// The `/admin/targets` row of the target labelled `label`.
async fn target(h: &Harness, label: &str) -> serde_json::Value {
    let json = h.admin_targets().await;
    json["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == label)
        .cloned()
        .unwrap_or_else(|| panic!("{label} missing from {json}"))
}

fn served_by(head: &awc::http::header::HeaderMap) -> (String, String) {
    let header = |name: &str| head.get(name).unwrap().to_str().unwrap().to_owned();
    (
        header("x-bedrock-balancer-target"),
        header("x-bedrock-balancer-attempts"),
    )
}

/// Two Bedrock regions, tried in order.
async fn two_regions(balancer: &str) -> Harness {
    let sims = start_sims(&["us-east-1", "us-west-2"]).await;
    let targets: Vec<String> = sims
        .iter()
        .zip(["us-east-1", "us-west-2"])
        .enumerate()
        .map(|(tier, (sim, region))| {
            format!(
                "{}\n        priority: {}",
                target_yaml(MODEL, region, &sim.url(), 100),
                tier + 1
            )
        })
        .collect();
    start_gateway(&config_yaml("claude", balancer, &targets), sims).await
}

async fn converse_stream(h: &Harness) -> (u16, awc::http::header::HeaderMap, Vec<Frame>) {
    let (status, head, body) = post_json(
        &h.url("/model/claude/converse-stream"),
        converse_body("hello"),
        &[],
    )
    .await;
    let frames = if status == 200 {
        decode_frames(&body)
    } else {
        Vec::new()
    };
    (status, head, frames)
}

fn is_event(frame: &Frame, name: &str) -> bool {
    matches!(frame, Frame::Event { event_type, .. } if event_type == name)
}

#[actix_rt::test]
async fn a_bedrock_stream_opening_with_a_throttle_fails_over_and_cools_the_region_down() {
    let h = two_regions(FAIL_OVER).await;
    h.fault(0, error_event_after(0, "throttlingException"));
    let (status, head, frames) = converse_stream(&h).await;
    assert_eq!(status, 200);
    assert_eq!(
        served_by(&head),
        (format!("us-west-2/{MODEL}"), "2".to_owned())
    );
    assert!(
        frames.iter().all(|f| matches!(f, Frame::Event { .. })),
        "a clean stream: {frames:?}"
    );
    assert!(
        frames.iter().any(|f| is_event(f, "messageStop")),
        "{frames:?}"
    );
    assert_eq!(h.counts("converse-stream"), vec![1, 1]);
    let first = h.admin_target("us-east-1").await;
    assert!(
        first["cooldown_remaining_ms"].as_u64().unwrap() > 0,
        "{first}"
    );
    let metrics = h.metrics().await;
    let label = format!("us-east-1/{MODEL}");
    let throttled = [
        ("target", label.as_str()),
        ("provider", "bedrock"),
        ("kind", "throttling"),
    ];
    // The registry is the process's: other tests here count too.
    assert!(
        sample(&metrics, "upstream_errors_total", &throttled).is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn without_the_criterion_a_throttle_first_is_the_clients_429_not_a_stream() {
    let h = two_regions(
        "      algorithm: priority\n      retries: 1\n      failover_criteria: [error, timeout]",
    )
    .await;
    h.fault(0, error_event_after(0, "throttlingException"));
    let (status, head, body) = post_json(
        &h.url("/model/claude/converse-stream"),
        converse_body("hello"),
        &[],
    )
    .await;
    assert_eq!(status, 429, "{body:?}");
    assert_eq!(head.get("x-amzn-errortype").unwrap(), "ThrottlingException");
    assert!(String::from_utf8_lossy(&body).contains("Injected by bedrock-sim"));
    assert_eq!(h.counts("converse-stream"), vec![1, 0]);
}

#[actix_rt::test]
async fn a_bedrock_exception_after_content_still_reaches_the_client_in_the_stream() {
    let h = two_regions(FAIL_OVER).await;
    h.fault(0, error_event_after(2, "throttlingException"));
    let (status, head, frames) = converse_stream(&h).await;
    assert_eq!(status, 200);
    assert_eq!(
        served_by(&head),
        (format!("us-east-1/{MODEL}"), "1".to_owned())
    );
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert!(matches!(frames[0], Frame::Event { .. }), "{frames:?}");
    assert!(
        matches!(&frames[2], Frame::Exception { exception_type, .. } if exception_type == "throttlingException"),
        "{frames:?}"
    );
    assert_eq!(h.counts("converse-stream"), vec![1, 0]);
}

/// Two targets of one provider's simulator each, tried in order, on the OpenAI and Anthropic
/// surfaces' route `claude`.
async fn two_servers(provider: SimProvider) -> Harness {
    let mut sims = Vec::new();
    let mut targets = Vec::new();
    for (tier, name) in ["first", "second"].into_iter().enumerate() {
        let mut opts = SimOptions::new("us-east-1");
        opts.provider = provider;
        opts.api_keys = vec![KEY.to_owned()];
        let sim = sim::start(opts).await.unwrap();
        let (provider, model, auth) = match provider {
            SimProvider::Anthropic => (
                "anthropic",
                "claude-sonnet-4-5",
                "header_name: x-api-key, header_value",
            ),
            _ => (
                "openai",
                "gpt-4o",
                "header_name: Authorization, header_value",
            ),
        };
        let value = match provider {
            "anthropic" => KEY.to_owned(),
            _ => format!("Bearer {KEY}"),
        };
        targets.push(format!(
            r#"
      - name: {name}
        model:
          provider: {provider}
          name: {model}
          options: {{ upstream_url: "{}" }}
        auth: {{ {auth}: "{value}" }}
        priority: {}"#,
            sim.url(),
            tier + 1
        ));
        sims.push(sim);
    }
    start_gateway(&config_yaml("claude", FAIL_OVER, &targets), sims).await
}

async fn stream_messages(h: &Harness) -> (u16, awc::http::header::HeaderMap, String) {
    let body = serde_json::json!({
        "model": "claude", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "hello there"}]
    });
    let headers = [("anthropic-version", "2023-06-01")];
    let (status, head, body) = post_json(&h.url("/v1/messages"), body.to_string(), &headers).await;
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

async fn stream_chat(h: &Harness) -> (u16, awc::http::header::HeaderMap, String) {
    let body = serde_json::json!({
        "model": "claude", "stream": true, "max_tokens": 32,
        "messages": [{"role": "user", "content": "hello"}]
    });
    let (status, head, body) =
        post_json(&h.url("/v1/chat/completions"), body.to_string(), &[]).await;
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

#[actix_rt::test]
async fn an_anthropic_stream_opening_overloaded_fails_over_and_cools_the_target_down() {
    let h = two_servers(SimProvider::Anthropic).await;
    h.fault(0, error_event_after(0, "overloaded"));
    let (status, head, body) = stream_messages(&h).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served_by(&head), ("second".to_owned(), "2".to_owned()));
    assert!(body.starts_with("event: message_start"), "{body}");
    assert!(body.contains("event: message_stop"), "{body}");
    assert!(!body.contains("overloaded_error"), "{body}");
    assert_eq!(h.sims[0].stats().requests_total, 1);
    let first = target(&h, "first").await;
    assert!(
        first["cooldown_remaining_ms"].as_u64().unwrap() > 0,
        "{first}"
    );

    // After content, the error is the client's to see, in the stream.
    h.fault(0, Faults::default());
    h.fault(1, error_event_after(2, "overloaded"));
    let (status, head, body) = stream_messages(&h).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served_by(&head), ("second".to_owned(), "1".to_owned()));
    assert!(body.starts_with("event: message_start"), "{body}");
    assert!(body.contains("overloaded_error"), "{body}");
    assert!(!body.contains("event: message_stop"), "{body}");
}

#[actix_rt::test]
async fn an_openai_stream_opening_with_an_error_chunk_fails_over_to_a_clean_stream() {
    let h = two_servers(SimProvider::OpenAi).await;
    h.fault(0, error_event_after(0, "server_error"));
    let (status, head, body) = stream_chat(&h).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served_by(&head), ("second".to_owned(), "2".to_owned()));
    assert!(!body.contains("\"error\""), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert_eq!(h.sims[0].stats().requests_total, 1);
    assert_eq!(h.sims[1].stats().requests_total, 1);

    // After content, the error is the client's to see, in the stream and without `[DONE]`. (A
    // failure is no throttle: the first target is still ready.)
    h.fault(0, error_event_after(2, "server_error"));
    let (status, head, body) = stream_chat(&h).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served_by(&head), ("first".to_owned(), "1".to_owned()));
    assert!(body.contains("\"error\""), "{body}");
    assert!(!body.contains("[DONE]"), "{body}");
}

#[actix_rt::test]
async fn an_error_after_content_less_opening_events_still_fails_over() {
    // Anthropic: `message_start`, then the error.
    let h = two_servers(SimProvider::Anthropic).await;
    h.fault(0, error_event_after(1, "overloaded"));
    let (status, head, body) = stream_messages(&h).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served_by(&head), ("second".to_owned(), "2".to_owned()));
    assert!(!body.contains("overloaded_error"), "{body}");
    assert!(body.contains("event: message_stop"), "{body}");

    // OpenAI-compatible: a role-only delta, then the error chunk.
    let h = two_servers(SimProvider::OpenAi).await;
    h.fault(0, error_event_after(1, "server_error"));
    let (status, head, body) = stream_chat(&h).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served_by(&head), ("second".to_owned(), "2".to_owned()));
    assert!(!body.contains("\"error\""), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");

    // Bedrock: `messageStart`, then the exception frame.
    let h = two_regions(FAIL_OVER).await;
    h.fault(0, error_event_after(1, "throttlingException"));
    let (status, head, frames) = converse_stream(&h).await;
    assert_eq!(status, 200);
    assert_eq!(served_by(&head).1, "2");
    assert!(
        frames.iter().any(|f| is_event(f, "messageStop")),
        "{frames:?}"
    );
    assert!(
        !frames.iter().any(|f| matches!(f, Frame::Exception { .. })),
        "{frames:?}"
    );
}

/// An OpenAI-compatible server (a LiteLLM proxy) whose every stream opens with its refusal of the
/// gateway's key, quoting part of it.
fn refusing_upstream() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            // The request head and its small body; what they say does not matter.
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                let Some((head, body)) = text.split_once("\r\n\r\n") else {
                    continue;
                };
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
            let event = "data: {\"error\":{\"code\":401,\"message\":\"Incorrect API key provided: sk-...ABCD\"}}\n\n";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{event}",
                event.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    url
}

#[actix_rt::test]
async fn a_stream_opening_with_a_refusal_of_the_gateways_key_fails_over_without_the_key() {
    let mut opts = SimOptions::new("us-east-1");
    opts.provider = SimProvider::OpenAi;
    opts.api_keys = vec![KEY.to_owned()];
    let sim = sim::start(opts).await.unwrap();
    let targets: Vec<String> = [("first", refusing_upstream()), ("second", sim.url())]
        .into_iter()
        .enumerate()
        .map(|(tier, (name, url))| {
            format!(
                r#"
      - name: {name}
        model:
          provider: openai
          name: gpt-4o
          options: {{ upstream_url: "{url}" }}
        auth: {{ header_name: Authorization, header_value: "Bearer {KEY}" }}
        priority: {}"#,
                tier + 1
            )
        })
        .collect();
    // No criterion covers a 401: a refusal of the gateway's credentials fails over regardless.
    let balancer = "      algorithm: priority\n      retries: 1\n      failover_criteria: [error]";
    let h = start_gateway(&config_yaml("claude", balancer, &targets), vec![sim]).await;
    let (status, head, body) = stream_chat(&h).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served_by(&head), ("second".to_owned(), "2".to_owned()));
    assert!(!body.contains("ABCD"), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let first = target(&h, "first").await;
    assert_eq!(first["failures"], 1, "{first}");
}
