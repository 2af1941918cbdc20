//! The Bedrock-native routes end to end: gateway and simulated regions on free ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bedrock_balancer::eventstream::Frame;
use bedrock_balancer_sim::Faults;
use common::*;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

async fn three_regions(balancer: &str, weights: [u16; 3]) -> Harness {
    let sims = start_sims(&["us-east-1", "us-west-2", "eu-west-1"]).await;
    let targets: Vec<String> = sims
        .iter()
        .zip(["us-east-1", "us-west-2", "eu-west-1"])
        .zip(weights)
        .map(|((sim, region), weight)| target_yaml(MODEL, region, &sim.url(), weight))
        .collect();
    start_gateway(&config_yaml("claude", balancer, &targets), sims).await
}

const FAILOVER: &str = "      failover_criteria: [error, timeout, http_503, non_idempotent]\n      connect_timeout: 2s\n      read_timeout: 5s";

async fn post(url: &str, body: String) -> (u16, awc::http::header::HeaderMap, bytes::Bytes) {
    post_json(url, body, &[]).await
}

#[actix_rt::test]
async fn round_robin_shares_match_the_weights_exactly() {
    let h = three_regions("      algorithm: round-robin", [2, 1, 1]).await;
    for i in 0..40 {
        let (status, headers, body) = post(
            &h.url("/model/claude/converse"),
            converse_body(&format!("hello {i}")),
        )
        .await;
        assert_eq!(status, 200, "{body:?}");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let text = json["output"]["message"]["content"][0]["text"]
            .as_str()
            .unwrap();
        let served_by = headers
            .get("x-bedrock-balancer-target")
            .unwrap()
            .to_str()
            .unwrap();
        let region = served_by.split('/').next().unwrap();
        assert!(text.contains(region), "{text} served by {served_by}");
    }
    assert_eq!(h.counts("converse"), vec![20, 10, 10]);
    assert_eq!(h.bad_signatures(), 0);
}

#[actix_rt::test]
async fn target_model_ids_with_colons_and_arns_route_and_are_replaced_upstream() {
    let sims = start_sims(&["us-east-1"]).await;
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0";
    let targets = vec![target_yaml(arn, "us-east-1", &sims[0].url(), 100)];
    let h = start_gateway(&config_yaml("haiku", "      retries: 0", &targets), sims).await;
    let encoded = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0";
    for path in [
        "/model/haiku/converse".to_owned(),
        format!("/model/{encoded}/converse"),
    ] {
        let (status, _, body) = post(&h.url(&path), converse_body("hi")).await;
        assert_eq!(status, 200, "{path}: {body:?}");
    }
    let stats = h.sims[0].stats();
    assert_eq!(
        stats.by_model.get(arn).and_then(|ops| ops.get("converse")),
        Some(&2)
    );
    assert_eq!(stats.bad_signatures, 0);
}

#[actix_rt::test]
async fn unknown_paths_get_bedrock_shaped_404s() {
    // An unknown model id, as boto3 sees it, is tested in tests/clients/test_native_boto3.py.
    let h = three_regions("      retries: 0", [1, 1, 1]).await;
    let (status, _, body) = post(&h.url("/nope"), String::new()).await;
    assert_eq!(status, 404);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(json["message"].as_str().unwrap().contains("/nope"));
    assert_eq!(h.counts("converse"), vec![0, 0, 0]);
}

#[actix_rt::test]
async fn a_failing_region_is_routed_around_when_the_criteria_allow() {
    let h = three_regions(FAILOVER, [1, 1, 1]).await;
    h.fault(
        1,
        Faults {
            status: Some(503),
            ..Faults::default()
        },
    );
    for i in 0..12 {
        let (status, headers, body) = post(
            &h.url("/model/claude/converse"),
            converse_body(&format!("q{i}")),
        )
        .await;
        assert_eq!(status, 200, "{body:?}");
        assert_ne!(
            headers.get("x-bedrock-balancer-target").unwrap(),
            "us-west-2/anthropic.claude-3-haiku-20240307-v1:0"
        );
    }
    let counts = h.counts("converse");
    assert_eq!(counts[0] + counts[2], 12);
}

#[actix_rt::test]
async fn without_the_criterion_the_upstream_error_is_passed_on() {
    let h = three_regions(
        "      retries: 5\n      failover_criteria: [error, timeout]",
        [1, 1, 1],
    )
    .await;
    for sim in 0..3 {
        h.fault(
            sim,
            Faults {
                status: Some(503),
                retry_after: Some(7),
                ..Faults::default()
            },
        );
    }
    let (status, headers, body) = post(&h.url("/model/claude/converse"), converse_body("q")).await;
    assert_eq!(status, 503);
    assert_eq!(
        headers.get("x-amzn-errortype").unwrap(),
        "ServiceUnavailableException"
    );
    assert_eq!(headers.get("retry-after").unwrap(), "7");
    assert!(String::from_utf8_lossy(&body).contains("message"));
    assert_eq!(
        h.counts("converse").iter().sum::<u64>(),
        1,
        "POST is not retried without non_idempotent"
    );
}

#[actix_rt::test]
async fn a_refused_connection_fails_over() {
    let sims = start_sims(&["us-east-1"]).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let targets = vec![
        target_yaml(MODEL, "us-west-2", &dead_url, 100),
        target_yaml(MODEL, "us-east-1", &sims[0].url(), 100),
    ];
    let h = start_gateway(&config_yaml("claude", FAILOVER, &targets), sims).await;
    for _ in 0..4 {
        let (status, _, body) = post(&h.url("/model/claude/converse"), converse_body("q")).await;
        assert_eq!(status, 200, "{body:?}");
    }
    assert_eq!(h.counts("converse"), vec![4]);
}

#[actix_rt::test]
async fn streams_pass_through_and_a_broken_stream_ends_in_an_exception_not_a_hang() {
    let h = three_regions(FAILOVER, [1, 1, 1]).await;
    let (status, headers, body) = post(
        &h.url("/model/claude/converse-stream"),
        converse_body("tell me more"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/vnd.amazon.eventstream"
    );
    let events = decode_frames(&body);
    assert!(
        events
            .iter()
            .any(|f| matches!(f, Frame::Event { event_type, .. } if event_type == "metadata"))
    );

    for sim in 0..3 {
        h.fault(
            sim,
            Faults {
                drop_after_events: Some(3),
                ..Faults::default()
            },
        );
    }
    let before: u64 = h.counts("converse-stream").iter().sum();
    let started = std::time::Instant::now();
    let (status, _, body) = post(
        &h.url("/model/claude/converse-stream"),
        converse_body("break please"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(10));
    let events = decode_frames(&body);
    assert!(
        matches!(events.last(), Some(Frame::Exception { .. })),
        "{events:?}"
    );
    let after: u64 = h.counts("converse-stream").iter().sum();
    assert_eq!(
        after - before,
        1,
        "a stream is never retried once bytes reached the client"
    );
}

#[actix_rt::test]
async fn client_credentials_never_reach_the_upstream() {
    let h = three_regions("      retries: 0", [1, 1, 1]).await;
    let client = awc::Client::default();
    let mut resp = client
        .post(h.url("/model/claude/converse"))
        .insert_header(("authorization", "AWS4-HMAC-SHA256 Credential=CLIENTKEY/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00"))
        .insert_header(("x-amz-security-token", "client-session-token"))
        .insert_header(("x-amzn-trace-id", "client-trace"))
        .insert_header(("content-type", "application/json"))
        .send_body(converse_body("hi"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.body().await);
    let seen = h
        .sims
        .iter()
        .map(|s| s.stats().last_request_headers)
        .find(|headers| !headers.is_empty())
        .unwrap();
    assert!(
        seen["authorization"].contains("Credential=AKIDEXAMPLE/"),
        "{seen:?}"
    );
    assert!(!seen.values().any(|v| v.contains("CLIENTKEY")
        || v.contains("client-session-token")
        || v.contains("client-trace")));
}
