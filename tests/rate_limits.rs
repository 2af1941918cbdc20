//! Target rate limits end to end: simulated regions behind the gateway, counted at the
//! simulators and read back from `/admin/targets`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bedrock_balancer_sim::Faults;
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const CONVERSE: &str = "converse";

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

/// Two regions; `limits` (YAML flow map or empty) and weight per target.
async fn two_regions(first: (&str, u16), second: (&str, u16)) -> Harness {
    let regions = ["us-east-1", "us-west-2"];
    let sims = start_sims(&regions).await;
    let targets: Vec<String> = sims
        .iter()
        .zip(regions)
        .zip([first, second])
        .map(|((sim, region), (limits, weight))| {
            let mut t = target_yaml(MODEL, region, &sim.url(), weight);
            if !limits.is_empty() {
                t.push_str(&format!("\n        limits: {limits}"));
            }
            t
        })
        .collect();
    let balancer = "      algorithm: round-robin\n      retries: 0";
    start_gateway(&config_yaml("claude", balancer, &targets), sims).await
}

async fn converse(h: &Harness, body: &Value) -> (u16, Option<String>, Value) {
    let mut resp = client()
        .post(h.url("/model/claude/converse"))
        .insert_header(("content-type", "application/json"))
        .send_body(body.to_string())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.body().limit(1 << 20).await.unwrap();
    (status, retry_after, serde_json::from_slice(&bytes).unwrap())
}

fn hello(max_tokens: Option<u32>) -> Value {
    let mut body = json!({"messages": [{"role": "user", "content": [{"text": "hello there"}]}]});
    if let Some(max) = max_tokens {
        body["inferenceConfig"] = json!({ "maxTokens": max });
    }
    body
}

/// The first route's targets as `/admin/targets` shows them.
async fn admin_targets(h: &Harness) -> Vec<Value> {
    h.admin_targets().await["targets"]
        .as_array()
        .unwrap()
        .clone()
}

#[actix_rt::test]
async fn a_target_at_its_rpm_sends_the_rest_to_the_other_region() {
    // The limited region has nearly all the weight, so round-robin would send it almost every
    // request; its 60 rpm must cap what reaches it.
    let h = two_regions(("{ rpm: 60 }", 1000), ("", 1)).await;
    let body = hello(Some(16));
    let started = Instant::now();
    let results: Vec<(u16, Option<String>, Value)> = futures_util::stream::iter(0..100)
        .map(|_| converse(&h, &body))
        .buffer_unordered(10)
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert!(results.iter().all(|(status, _, _)| *status == 200));
    let counts = h.counts(CONVERSE);
    assert_eq!(counts.iter().sum::<u64>(), 100);
    // 60 at once; GCRA then frees one request per second, so a slow run may see one more per
    // whole second it took.
    let extra = elapsed.as_secs();
    assert!(
        (60..=60 + extra).contains(&counts[0]),
        "limited region got {} in {elapsed:?}",
        counts[0]
    );
    let targets = admin_targets(&h).await;
    // Read later than `elapsed`: count the seconds until this reading.
    let refilled = started.elapsed().as_secs();
    assert_eq!(targets[0]["limits"]["rpm"], 60);
    assert!(targets[0]["limits"]["remaining_rpm"].as_u64().unwrap() <= refilled + 1);
    assert!(targets[1]["limits"].is_null());
}

#[actix_rt::test]
async fn when_every_target_is_at_its_limit_the_client_gets_429_with_retry_after() {
    let h = two_regions(("{ rpm: 2 }", 1), ("{ rpm: 2 }", 1)).await;
    let started = Instant::now();
    for _ in 0..4 {
        assert_eq!(converse(&h, &hello(None)).await.0, 200);
    }
    // 2 rpm: a cell every 30 s.
    let (status, retry_after, body) = converse(&h, &hello(None)).await;
    assert_eq!(status, 429);
    let secs: u64 = retry_after.unwrap().parse().unwrap();
    // Less whatever time the five requests took.
    let least = 29u64.saturating_sub(started.elapsed().as_secs());
    assert!((least..=30).contains(&secs), "Retry-After {secs}");
    assert_eq!(body["scope"], "targets");
    assert_eq!(h.counts(CONVERSE), vec![2, 2], "nothing more went upstream");

    // The OpenAI surface says the same in its own format.
    let mut resp = client()
        .post(h.url("/v1/chat/completions"))
        .send_json(&json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["scope"], "targets");
}

#[actix_rt::test]
async fn tokens_are_reserved_while_in_flight_then_settled_to_real_usage() {
    // 60,000 tpm: 1,000 tokens a second come back, so readings are taken quickly and compared
    // with that refill in mind.
    let h = two_regions(("{ tpm: 60000 }", 1000), ("{ tpm: 60000 }", 1)).await;
    // Long enough for the reading below to catch the request in flight on a loaded machine.
    h.fault(
        0,
        Faults {
            latency_ms: 3_000,
            ..Faults::default()
        },
    );
    let started = Instant::now();
    let slow = {
        let url = h.url("/model/claude/converse");
        actix_rt::spawn(async move {
            let mut resp = client()
                .post(url)
                .insert_header(("content-type", "application/json"))
                .send_body(hello(Some(20_000)).to_string())
                .await
                .unwrap();
            let body: Value = resp.json().await.unwrap();
            body
        })
    };
    // Settled usage is under 200 tokens, so a reading 1,000 down is the reservation in flight.
    let deadline = started + Duration::from_secs(20);
    let during = loop {
        let remaining = admin_targets(&h).await[0]["limits"]["remaining_tpm"]
            .as_u64()
            .unwrap();
        if remaining < 60_000 - 1_000 {
            break remaining;
        }
        assert!(
            Instant::now() < deadline,
            "no reservation seen: {remaining}"
        );
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    };
    // Reserved: 20,000 of max_tokens plus a few input tokens, less the refill (a token a
    // millisecond) since the request started.
    let refill = u64::try_from(started.elapsed().as_millis()).unwrap();
    assert!(
        (60_000 - 20_100..=60_000 - 20_000 + refill).contains(&during),
        "remaining while in flight: {during}, {refill} ms after the start"
    );
    let body = slow.await.unwrap();
    let used = body["usage"]["totalTokens"].as_u64().unwrap();
    assert!(used > 0 && used < 200, "the simulator's usage: {used}");
    let after = admin_targets(&h).await[0]["limits"]["remaining_tpm"]
        .as_u64()
        .unwrap();
    // Settled: only the real usage stays taken (give or take the refill of the last moments).
    assert!(
        after >= 60_000 - used - 5 && after <= 60_000,
        "remaining after settlement: {after}, used {used}"
    );
}

#[actix_rt::test]
async fn a_request_larger_than_every_token_limit_is_refused_with_400() {
    let h = two_regions(("{ tpm: 1000 }", 1), ("{ tpm: 1000 }", 1)).await;
    let (status, retry_after, body) = converse(&h, &hello(Some(5_000))).await;
    assert_eq!(status, 400);
    assert_eq!(retry_after, None, "waiting would not help");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("1000 tokens per minute"), "{message}");
    assert_eq!(h.counts(CONVERSE), vec![0, 0]);
    // A request that fits is served.
    assert_eq!(converse(&h, &hello(Some(500))).await.0, 200);
}
