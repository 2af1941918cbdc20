//! `/v1/embeddings` pays for what it sends upstream: Titan makes one call per input, and each call
//! takes a cell of the target's and the consumer's `rpm`; `server.max_embedding_inputs` caps the
//! fan-out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const TITAN: &str = "amazon.titan-embed-text-v2:0";
const KEY: &str = "sk-embedding-team";
/// The consumer's rpm: one 200-input request leaves 10 cells, refilled one per 286 ms.
const CONSUMER_RPM: u32 = 210;
const TARGET_RPM: u64 = 1000;

async fn titan_route() -> Harness {
    let sims = start_sims(&["us-east-1"]).await;
    let target = target_yaml(TITAN, "us-east-1", &sims[0].url(), 1);
    let yaml = format!(
        r#"
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
consumers:
  - {{ name: embedder, api_key: "{KEY}", limits: {{ rpm: {CONSUMER_RPM} }} }}
routes:
  - name: titan
    route_type: llm/v1/embeddings
    balancer: {{ retries: 0 }}
    targets:{target}
        limits: {{ rpm: {TARGET_RPM} }}
"#
    );
    start_gateway(&yaml, sims).await
}

/// `POST /v1/embeddings` with `n` inputs: status, `Retry-After`, JSON body.
async fn embed(h: &Harness, n: usize) -> (u16, Option<u64>, Value) {
    let inputs: Vec<String> = (0..n).map(|i| format!("text number {i}")).collect();
    let mut resp = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
        .post(h.url("/v1/embeddings"))
        .insert_header(("authorization", format!("Bearer {KEY}")))
        .send_json(&json!({"model": "titan", "input": inputs}))
        .await
        .unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body = resp.body().limit(64 << 20).await.unwrap();
    (
        resp.status().as_u16(),
        retry_after,
        serde_json::from_slice(&body).unwrap(),
    )
}

/// An error body as is; a list of embeddings only by its size (it runs to megabytes).
fn brief(body: &Value) -> String {
    match body["data"].as_array() {
        Some(data) => format!("{} embeddings", data.len()),
        None => body.to_string(),
    }
}

fn invokes(h: &Harness) -> u64 {
    h.counts("invoke").iter().sum()
}

#[actix_rt::test]
async fn more_inputs_than_max_embedding_inputs_is_a_400_and_nothing_goes_upstream() {
    let h = titan_route().await;
    let (status, _, body) = embed(&h, 300).await;
    assert_eq!(status, 400, "{}", brief(&body));
    assert_eq!(
        body["error"]["type"],
        "invalid_request_error",
        "{}",
        brief(&body)
    );
    assert_eq!(body["error"]["param"], "input", "{}", brief(&body));
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("300 inputs")
            && message.contains("256")
            && message.contains("server.max_embedding_inputs"),
        "{message}"
    );
    assert_eq!(invokes(&h), 0);
}

#[actix_rt::test]
async fn each_upstream_call_takes_a_target_and_a_consumer_rpm_cell() {
    let h = titan_route().await;
    let start = Instant::now();
    let (status, _, body) = embed(&h, 200).await;
    assert_eq!(status, 200, "{}", brief(&body));
    assert_eq!(body["data"].as_array().unwrap().len(), 200);
    assert_eq!(invokes(&h), 200);

    // The target's rpm lost a cell per call (it refills one per 60 ms meanwhile).
    let targets = h.admin_targets().await;
    let refilled = u64::try_from(start.elapsed().as_millis()).unwrap() * TARGET_RPM / 60_000 + 1;
    let remaining = targets["targets"][0]["limits"]["remaining_rpm"]
        .as_u64()
        .unwrap();
    assert!(
        (TARGET_RPM - 200..=TARGET_RPM - 200 + refilled).contains(&remaining),
        "remaining {remaining}, refilled at most {refilled}"
    );

    // So did the consumer's: 100 more calls need 90 cells it will not have for about 26 s.
    let (status, retry_after, body) = embed(&h, 100).await;
    assert_eq!(status, 429, "{}", brief(&body));
    assert_eq!(body["error"]["scope"], "consumer", "{}", brief(&body));
    let elapsed = start.elapsed().as_secs();
    assert!(
        retry_after.unwrap() + elapsed >= 20,
        "retry after {retry_after:?} s, {elapsed} s after the first request"
    );
    assert_eq!(invokes(&h), 200, "a refused request sent nothing upstream");

    // More calls than the consumer's whole rpm can never fit: a 400 that says why.
    let (status, _, body) = embed(&h, CONSUMER_RPM as usize + 1).await;
    assert_eq!(status, 400, "{}", brief(&body));
    assert_eq!(
        body["error"]["code"],
        "exceeds_request_limit",
        "{}",
        brief(&body)
    );
    assert_eq!(body["error"]["scope"], "consumer", "{}", brief(&body));
    assert_eq!(invokes(&h), 200);
}
