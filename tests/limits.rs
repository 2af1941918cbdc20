//! Input limits and overload shedding: oversized bodies, slow clients, the concurrency cap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bedrock_balancer_sim::Faults;
use common::*;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

async fn gateway(server: &str) -> Harness {
    let sims = start_sims(&["us-east-1"]).await;
    let targets = vec![target_yaml(MODEL, "us-east-1", &sims[0].url(), 100)];
    start_gateway(
        &config_yaml_with_server(server, "claude", "      retries: 0", &targets),
        sims,
    )
    .await
}

/// Sends the start of a request and never the rest; returns what the server answered, and
/// whether it closed the connection (rather than the 30 s read bound running out).
fn send_and_stall(addr: std::net::SocketAddr, start: &[u8]) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(start).unwrap();
    let mut answer = Vec::new();
    let closed = stream.read_to_end(&mut answer).is_ok();
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

#[actix_rt::test]
async fn oversized_bodies_get_413_in_the_clients_format() {
    let h = gateway("  max_request_body_size: 1000").await;
    let big = "x".repeat(5000);
    let client = awc::Client::default();
    let mut resp = client
        .post(h.url("/model/claude/converse"))
        .send_body(big.clone())
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.headers().get("x-amzn-errortype").unwrap(),
        "ValidationException"
    );
    assert!(String::from_utf8_lossy(&resp.body().await.unwrap()).contains("1000 bytes"));

    // Chunked: no Content-Length, cut off as it crosses the limit.
    let chunks = futures_util::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 500]))),
    );
    let mut resp = client
        .post(h.url("/v1/chat/completions"))
        .send_stream(chunks)
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: serde_json::Value = serde_json::from_slice(&resp.body().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");
    assert_eq!(h.counts("converse"), vec![0]);
}

#[actix_rt::test]
async fn slow_clients_are_cut_off_while_others_are_served() {
    let h = gateway("  client_request_timeout: 1s\n  client_body_timeout: 1s").await;
    let addr = h.gateway.listen;
    let slow_body = std::thread::spawn(move || {
        send_and_stall(
            addr,
            b"POST /model/claude/converse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mess",
        )
    });
    let slow_head = std::thread::spawn(move || send_and_stall(addr, b"POST /model/claude/conv"));
    // Meanwhile a normal request is served.
    let mut resp = awc::Client::default()
        .post(h.url("/model/claude/converse"))
        .insert_header(("content-type", "application/json"))
        .send_body(converse_body("hi"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.body().await);

    let (answer, closed) = slow_body.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1 s"), "{answer}");
    assert!(closed, "the gateway let a stalled body hold the connection");
    let (answer, closed) = slow_head.join().unwrap();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(closed, "the gateway let a stalled head hold the connection");
    assert_eq!(h.counts("converse"), vec![1]);
}

#[actix_rt::test]
async fn over_the_cap_requests_are_shed_fast_and_service_recovers() {
    let h = gateway("  max_concurrent_requests: 2").await;
    // The two requests that fill the cap stay upstream this long: the overflow must be answered
    // before either comes back, which is what shedding without queueing means.
    h.fault(
        0,
        Faults {
            latency_ms: 5_000,
            ..Faults::default()
        },
    );
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(20))
        .finish();
    let send = |client: awc::Client, url: String| async move {
        let resp = client
            .post(url)
            .insert_header(("content-type", "application/json"))
            .send_body(converse_body("hi"))
            .await
            .unwrap();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (resp.status().as_u16(), retry_after)
    };
    let first: Vec<_> = (0..2)
        .map(|_| actix_rt::spawn(send(client.clone(), h.url("/model/claude/converse"))))
        .collect();
    // Wait until both are in flight upstream, then overflow.
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.sims[0].stats().requests_total < 2 {
        assert!(Instant::now() < deadline);
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    let overflow = (0..4).map(|_| send(client.clone(), h.url("/model/claude/converse")));
    for (status, retry_after) in futures_util::future::join_all(overflow).await {
        assert_eq!(status, 503);
        assert_eq!(retry_after.as_deref(), Some("1"));
    }
    assert!(
        first.iter().all(|handle| !handle.is_finished()),
        "shedding must not queue behind the requests in flight"
    );
    for handle in first {
        assert_eq!(handle.await.unwrap().0, 200);
    }
    h.fault(0, Faults::default());
    assert_eq!(
        send(client.clone(), h.url("/model/claude/converse"))
            .await
            .0,
        200
    );
}
