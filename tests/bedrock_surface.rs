//! The Bedrock surface beyond the model calls, in-process: guardrail calls never count against
//! token limits, a missing route type and an unserved operation answer in Bedrock's shape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use bedrock_balancer_sim::Faults;
use common::*;
use serde_json::{Value, json};

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

async fn post(h: &Harness, path: &str, body: &Value) -> (u16, Option<String>, Value) {
    let mut resp = client()
        .post(h.url(path))
        .insert_header(("content-type", "application/json"))
        .send_body(body.to_string())
        .await
        .unwrap();
    let error_type = resp
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.body().limit(1 << 20).await.unwrap();
    (
        resp.status().as_u16(),
        error_type,
        serde_json::from_slice(&bytes).unwrap(),
    )
}

fn guardrail_body() -> Value {
    json!({"source": "INPUT", "content": [{"text": {"text": "a harmless question"}}]})
}

/// A model route and a guardrail route in one region, each target allowed 10 tokens a minute.
async fn tiny_token_limits() -> Harness {
    let sims = start_sims(&["us-east-1"]).await;
    let url = sims[0].url();
    let yaml = format!(
        r#"
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 1 }}
routes:
  - name: claude
    balancer: {{ retries: 0 }}
    targets:{model}
        limits: {{ tpm: 10 }}
  - name: guardrails
    route_type: bedrock/guardrail
    targets:
      - model:
          provider: bedrock
          options: {{ bedrock: {{ aws_region: us-east-1 }}, upstream_url: {url} }}
        auth: {{ aws_access_key_id: {KEY_ID}, aws_secret_access_key: "{SECRET}" }}
        limits: {{ tpm: 10 }}
"#,
        model = target_yaml(MODEL, "us-east-1", &url, 100),
    );
    start_gateway(&yaml, sims).await
}

#[actix_rt::test]
async fn guardrail_and_count_tokens_calls_never_count_against_token_limits() {
    let h = tiny_token_limits().await;
    // The limit is live: a model call reserving its default output allowance cannot fit.
    let (status, error_type, _) = post(
        &h,
        "/model/claude/converse",
        &json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
    )
    .await;
    assert_eq!(
        (status, error_type.as_deref()),
        (400, Some("ValidationException"))
    );
    for _ in 0..5 {
        let (status, _, body) =
            post(&h, "/guardrail/gr-1/version/1/apply", &guardrail_body()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["actionReason"],
            "guardrail gr-1 version 1 in us-east-1"
        );
    }
    assert_eq!(h.counts("apply-guardrail"), [5]);
    // CountTokens generates nothing: it passes the same 10-token limit the model call could not.
    let claude_body = json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "count these five words"}],
    });
    let encoded = base64::engine::general_purpose::STANDARD.encode(claude_body.to_string());
    for _ in 0..5 {
        let (status, _, body) = post(
            &h,
            "/model/claude/count-tokens",
            &json!({"input": {"invokeModel": {"body": encoded}}}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body["inputTokens"].as_u64().unwrap() > 0, "{body}");
    }
    assert_eq!(h.counts("count-tokens"), [5]);
    assert_eq!(h.bad_signatures(), 0);
}

#[actix_rt::test]
async fn missing_route_types_and_unserved_operations_answer_in_bedrocks_shape() {
    let sims = start_sims(&["us-east-1"]).await;
    let targets = [target_yaml(MODEL, "us-east-1", &sims[0].url(), 100)];
    let h = start_gateway(&config_yaml("claude", "      retries: 0", &targets), sims).await;
    let (status, error_type, body) =
        post(&h, "/guardrail/gr-1/version/1/apply", &guardrail_body()).await;
    assert_eq!(
        (status, error_type.as_deref()),
        (404, Some("ResourceNotFoundException"))
    );
    assert_eq!(
        body["message"],
        "ApplyGuardrail needs a route of route_type bedrock/guardrail, and the gateway has none"
    );
    let (status, error_type, body) = post(&h, "/rerank", &json!({})).await;
    assert_eq!(
        (status, error_type.as_deref()),
        (404, Some("ResourceNotFoundException"))
    );
    assert!(body["message"].as_str().unwrap().contains("bedrock/agent"));
    let (status, error_type, body) = post(
        &h,
        "/agents/A1/agentAliases/AL1/sessions/s1/text",
        &json!({"inputText": "hi"}),
    )
    .await;
    assert_eq!(
        (status, error_type.as_deref()),
        (501, Some("NotImplementedException"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("InvokeAgent is not served")
    );
    // StartAsyncInvoke names its model in the body: without one it is the client's mistake.
    let (status, error_type, _) = post(&h, "/async-invoke", &json!({"modelInput": {}})).await;
    assert_eq!(
        (status, error_type.as_deref()),
        (400, Some("ValidationException"))
    );
    // A path neither service has is still a 404 for an unknown operation.
    let (status, error_type, _) = post(&h, "/no/such/path", &json!({})).await;
    assert_eq!(
        (status, error_type.as_deref()),
        (404, Some("UnknownOperationException"))
    );
    assert_eq!(h.sims[0].stats().requests_total, 0);
}

/// GetAsyncInvoke goes to the region in its ARN, trying that region's targets in turn: at most
/// `retries + 1` of them, however many the region has, so a failing region is not hammered by one
/// read.
#[actix_rt::test]
async fn async_invoke_reads_try_at_most_retries_plus_one_of_the_regions_targets() {
    const MODELS: [&str; 3] = [
        MODEL,
        "anthropic.claude-3-sonnet-20240229-v1:0",
        "amazon.nova-lite-v1:0",
    ];
    let sims = start_sims(&["us-east-1", "us-east-1", "us-east-1"]).await;
    let targets: Vec<String> = MODELS
        .iter()
        .zip(&sims)
        .map(|(model, sim)| target_yaml(model, "us-east-1", &sim.url(), 100))
        .collect();
    let h = start_gateway(&config_yaml("claude", "      retries: 1", &targets), sims).await;
    for i in 0..MODELS.len() {
        h.fault(
            i,
            Faults {
                status: Some(503),
                ..Faults::default()
            },
        );
    }
    let arn = "arn:aws:bedrock:us-east-1:123456789012:async-invoke/abc123";
    let path = format!(
        "/async-invoke/{}",
        percent_encoding::utf8_percent_encode(arn, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut resp = client().get(h.url(&path)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let _ = resp.body().await.unwrap();
    let tried: u64 = h.counts("get-async-invoke").iter().sum();
    assert_eq!(tried, 2, "retries: 1 allows two of the three targets");

    // A region that answers is read once, from one target.
    for i in 0..MODELS.len() {
        h.fault(i, Faults::default());
    }
    let mut resp = client().get(h.url(&path)).send().await.unwrap();
    let _ = resp.body().await.unwrap();
    let tried: u64 = h.counts("get-async-invoke").iter().sum();
    assert_eq!(tried, 3, "{}", resp.status());
}
