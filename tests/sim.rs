//! The simulator in-process on a free port, driven over HTTP with requests signed by `aws-sigv4`'s
//! general signer (independent of both the simulator's verifier and the gateway's own signer).
//! What boto3 sees of the simulator (answers, errors, streams, stats) is tested once, with boto3, in
//! `tests/clients/test_sim_boto3.py`; here, what no SDK sends or shows: unsigned requests, every-Nth
//! faults, a dropped connection, a silent body.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bedrock_balancer_sim::{self as sim, Faults, SimHandle, SimOptions};
use serde_json::json;

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
async fn a_dropped_stream_ends_without_its_terminator() {
    let sim = start().await;
    let body = converse_body("stream please");
    sim.set_faults(Faults {
        drop_after_events: Some(2),
        ..Faults::default()
    });
    // awc hands back a chunked body cut short as if it were complete, so read the raw bytes.
    let raw = raw_exchange(&sim, &model_path(HAIKU, "converse-stream"), &body).await;
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 200 OK"));
    assert!(raw.contains("messageStart") && raw.contains("contentBlockDelta"));
    assert!(
        !raw.ends_with("0\r\n\r\n"),
        "the body should end without its terminator"
    );
    sim.stop().await;
}

/// One signed request over a plain socket, read until the server closes the connection. The
/// blocking socket work runs off this thread: the simulator's server runs on it too.
async fn raw_exchange(sim: &SimHandle, path: &str, body: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\ncontent-type: application/json\r\n",
        sim.addr(),
        body.len()
    )
    .into_bytes();
    for (name, value) in signed_headers(sim, path, body, SECRET) {
        request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    let addr = sim.addr();
    actix_rt::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(&request).unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).unwrap();
        out
    })
    .await
    .unwrap()
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
