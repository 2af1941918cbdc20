//! The simulator in-process on a free port, driven over HTTP with requests signed by `aws-sigv4`'s
//! general signer (independent of both the simulator's verifier and the gateway's own signer).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bedrock_balancer_sim::{self as sim, Faults, SimHandle, SimOptions};
use serde_json::{Value, json};

mod common;
use common::sdk_signed_headers;

const SECRET: &str = sim::DEFAULT_SECRET_ACCESS_KEY;
const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

async fn start() -> SimHandle {
    sim::start(SimOptions::new("us-west-2")).await.unwrap()
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
}

/// A model path as the SDKs send it: the id percent-encoded, `:` and `/` included.
fn model_path(model: &str, op: &str) -> String {
    let id = percent_encoding::utf8_percent_encode(model, percent_encoding::NON_ALPHANUMERIC);
    format!("/model/{id}/{op}")
}

/// The headers `aws-sigv4` adds for a JSON POST to `path` on the simulator.
fn signed_headers(sim: &SimHandle, path: &str, body: &[u8], secret: &str) -> Vec<(String, String)> {
    let url = format!("{}{path}", sim.url());
    sdk_signed_headers(&url, body, sim::DEFAULT_ACCESS_KEY_ID, secret, "us-west-2")
}

fn signed(sim: &SimHandle, path: &str, body: &[u8], secret: &str) -> awc::ClientRequest {
    let mut req = client()
        .post(format!("{}{path}", sim.url()))
        .insert_header(("content-type", "application/json"));
    for header in signed_headers(sim, path, body, secret) {
        req = req.insert_header(header);
    }
    req
}

fn converse_body(text: &str) -> Vec<u8> {
    json!({ "messages": [{ "role": "user", "content": [{ "text": text }] }] })
        .to_string()
        .into_bytes()
}

fn error_type(res: &awc::ClientResponse<impl futures_util::Stream>) -> String {
    let value = res.headers().get("x-amzn-errortype").unwrap();
    value
        .to_str()
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_owned()
}

async fn stats(sim: &SimHandle) -> Value {
    let mut res = client()
        .get(format!("{}/_sim/stats", sim.url()))
        .send()
        .await
        .unwrap();
    res.json().await.unwrap()
}

#[actix_rt::test]
async fn unsigned_requests_are_refused() {
    let sim = start().await;
    let res = client()
        .post(format!("{}{}", sim.url(), model_path(HAIKU, "converse")))
        .send_body(converse_body("hi"))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(error_type(&res), "MissingAuthenticationTokenException");
    assert!(res.headers().contains_key("x-amzn-requestid"));
    assert_eq!(sim.stats().bad_signatures, 1);
    sim.stop().await;
}

#[actix_rt::test]
async fn signed_converse_answers_and_is_counted() {
    let sim = start().await;
    let body = converse_body("hello simulator");
    let mut res = signed(&sim, &model_path(HAIKU, "converse"), &body, SECRET)
        .send_body(body.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-amzn-requestid"));
    let out: Value = res.json().await.unwrap();
    let text = out["output"]["message"]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert_eq!(
        text,
        format!("Hello from us-west-2 ({HAIKU}). You said: hello simulator")
    );
    assert_eq!(out["usage"]["inputTokens"], 2);

    let stats = stats(&sim).await;
    assert_eq!(stats["by_model"][HAIKU]["converse"], 1);
    assert_eq!(stats["by_operation"]["converse"], 1);
    assert!(
        stats["last_request_headers"]["authorization"]
            .as_str()
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    );
    sim.stop().await;
}

#[actix_rt::test]
async fn inference_profile_arns_survive_the_path() {
    let sim = start().await;
    let arn = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0";
    let body = converse_body("hi");
    let res = signed(&sim, &model_path(arn, "converse"), &body, SECRET)
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(sim.stats().by_model[arn]["converse"], 1);
    sim.stop().await;
}

#[actix_rt::test]
async fn wrong_secret_and_unknown_model_are_refused() {
    let sim = start().await;
    let body = converse_body("hi");
    let res = signed(
        &sim,
        &model_path(HAIKU, "converse"),
        &body,
        "not-the-secret",
    )
    .send_body(body.clone())
    .await
    .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(error_type(&res), "InvalidSignatureException");

    let res = signed(
        &sim,
        &model_path("acme.unknown-v1:0", "converse"),
        &body,
        SECRET,
    )
    .send_body(body)
    .await
    .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(error_type(&res), "ResourceNotFoundException");
    let stats = sim.stats();
    assert_eq!(stats.bad_signatures, 1);
    assert_eq!(stats.requests_total, 2);
    sim.stop().await;
}

#[actix_rt::test]
async fn faults_endpoint_toggles_throttling() {
    let sim = start().await;
    let faults_url = format!("{}/_sim/faults", sim.url());
    let res = client()
        .post(&faults_url)
        .send_json(&json!({ "status": 429, "retry_after": 2 }))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let body = converse_body("hi");
    let res = signed(&sim, &model_path(HAIKU, "converse"), &body, SECRET)
        .send_body(body.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(error_type(&res), "ThrottlingException");
    assert_eq!(res.headers().get("retry-after").unwrap(), "2");

    let res = client().delete(&faults_url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = signed(&sim, &model_path(HAIKU, "converse"), &body, SECRET)
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let stats = sim.stats();
    assert_eq!(stats.errors_injected, 1);
    assert_eq!(stats.by_operation["converse"], 2);
    sim.stop().await;
}

#[actix_rt::test]
async fn every_nth_request_fails() {
    let sim = start().await;
    sim.set_faults(Faults {
        status: Some(503),
        fail_every_nth: 2,
        ..Faults::default()
    });
    let body = converse_body("hi");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let res = signed(&sim, &model_path(HAIKU, "converse"), &body, SECRET)
            .send_body(body.clone())
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 503, 200, 503]);
    sim.stop().await;
}

#[actix_rt::test]
async fn converse_stream_sends_event_frames() {
    let sim = start().await;
    let body = converse_body("stream please");
    let mut res = signed(&sim, &model_path(HAIKU, "converse-stream"), &body, SECRET)
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/vnd.amazon.eventstream"
    );
    let bytes = res.body().await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for event in [
        "messageStart",
        "contentBlockDelta",
        "messageStop",
        "metadata",
    ] {
        assert!(text.contains(event), "{event} missing");
    }
    sim.stop().await;
}

#[actix_rt::test]
async fn stream_faults_send_an_exception_or_drop_the_connection() {
    let sim = start().await;
    let body = converse_body("stream please");
    sim.set_faults(Faults {
        stream_exception_after: Some(2),
        stream_exception: Some("throttlingException".to_owned()),
        ..Faults::default()
    });
    let mut res = signed(&sim, &model_path(HAIKU, "converse-stream"), &body, SECRET)
        .send_body(body.clone())
        .await
        .unwrap();
    let bytes = res.body().await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains(":exception-type") && text.contains("throttlingException"));
    assert!(!text.contains("messageStop"));

    sim.set_faults(Faults {
        drop_after_events: Some(2),
        ..Faults::default()
    });
    // awc hands back a chunked body cut short as if it were complete, so read the raw bytes.
    let raw = raw_exchange(&sim, &model_path(HAIKU, "converse-stream"), &body);
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 200 OK"));
    assert!(raw.contains("messageStart") && raw.contains("contentBlockDelta"));
    assert!(
        !raw.ends_with("0\r\n\r\n"),
        "the body should end without its terminator"
    );
    sim.stop().await;
}

/// One signed request over a plain socket, read until the server closes the connection.
fn raw_exchange(sim: &SimHandle, path: &str, body: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\ncontent-type: application/json\r\n",
        sim.addr(),
        body.len()
    );
    for (name, value) in signed_headers(sim, path, body, SECRET) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = std::net::TcpStream::connect(sim.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    out
}

#[actix_rt::test]
async fn silence_after_headers_sends_only_the_head() {
    let sim = start().await;
    sim.set_faults(Faults {
        silence_after_headers: true,
        ..Faults::default()
    });
    let body = converse_body("hi");
    let mut res = signed(&sim, &model_path(HAIKU, "converse"), &body, SECRET)
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // No body byte ever comes, so only a client-side deadline ends the wait.
    let read = tokio::time::timeout(Duration::from_millis(200), res.body()).await;
    assert!(read.is_err());
    sim.stop().await;
}

#[actix_rt::test]
async fn invoke_embeds_with_titan_v2() {
    let sim = start().await;
    let body = json!({ "inputText": "hello world", "dimensions": 256 })
        .to_string()
        .into_bytes();
    let mut res = signed(
        &sim,
        &model_path("amazon.titan-embed-text-v2:0", "invoke"),
        &body,
        SECRET,
    )
    .send_body(body)
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("x-amzn-bedrock-input-token-count")
            .unwrap(),
        "2"
    );
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["embedding"].as_array().unwrap().len(), 256);
    sim.stop().await;
}
