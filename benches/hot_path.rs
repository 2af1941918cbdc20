//! Micro-benchmarks of the per-request hot path: one pick, one signing, the OpenAI <-> Converse
//! translations, and one event-stream frame decoded and re-encoded as SSE. Run with
//! `cargo bench --bench hot_path`; figures are in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use bedrock_balancer::aws::sign::{BEDROCK_SERVICE, Signer, Unsigned};
use bedrock_balancer::backend::TargetRuntime;
use bedrock_balancer::balance::Roster;
use bedrock_balancer::config::{self, Config};
use bedrock_balancer::eventstream::{Decoder, Frame};
use bedrock_balancer::translate::{self, ChatStreamTranslator};
use criterion::{Criterion, criterion_group, criterion_main};

fn config_with(targets: usize, algorithm: &str) -> Config {
    let regions = ["us-east-1", "us-west-2", "eu-west-1", "ap-south-1"];
    let mut yaml =
        format!("routes:\n  - name: r\n    balancer: {{ algorithm: {algorithm} }}\n    targets:\n");
    for i in 0..targets {
        yaml.push_str(&format!(
            "      - model: {{ provider: bedrock, name: model-{i}, options: {{ bedrock: {{ aws_region: {} }}, upstream_url: http://127.0.0.1:{} }} }}\n        auth: {{ aws_access_key_id: AKID, aws_secret_access_key: secret }}\n        weight: {}\n",
            regions[i % regions.len()],
            10000 + i,
            50 + (i % 3) * 25
        ));
    }
    config::parse(&yaml, &|_| None).unwrap()
}

/// A roster whose targets are ready (credentials published), built inside an actix system
/// because each target owns an actor.
fn roster(system: &actix_rt::SystemRunner, targets: usize, algorithm: &str) -> Roster {
    let config = config_with(targets, algorithm);
    let route = config.routes[0].clone();
    system.block_on(async move {
        let runtimes: Vec<Arc<TargetRuntime>> = route
            .targets
            .iter()
            .map(|t| {
                TargetRuntime::start(
                    t.clone(),
                    &route.balancer,
                    &bedrock_balancer::limits::Backend::Local,
                )
            })
            .collect();
        for t in &runtimes {
            t.state.credentials.store(Some(Arc::new(Credentials::new(
                "AKID", "secret", None, None, "bench",
            ))));
        }
        Roster::new(runtimes, &route.balancer)
    })
}

fn pick(c: &mut Criterion) {
    let system = actix_rt::System::new();
    for algorithm in [
        "round-robin",
        "least-connections",
        "lowest-latency",
        "consistent-hashing",
        "p2c-ewma",
    ] {
        for targets in [4, 64] {
            let roster = roster(&system, targets, algorithm);
            let tried = vec![false; targets];
            c.bench_function(&format!("pick/{algorithm}/{targets}"), |b| {
                b.iter(|| black_box(roster.pick(None, &tried, 1, Some(b"session-42"))))
            });
        }
    }
}

fn signing(c: &mut Criterion) {
    let credentials = Arc::new(Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "bench",
    ));
    let body = vec![b'x'; 1024];
    let headers = [
        ("host", "bedrock-runtime.us-east-1.amazonaws.com"),
        ("content-type", "application/json"),
    ];
    let path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
    // As in the gateway: one signer per target, so every request after the first reuses the key.
    let signer = Signer::new("us-east-1", BEDROCK_SERVICE);
    c.bench_function("sign/1KB", |b| {
        b.iter(|| {
            let request = Unsigned {
                method: "POST",
                path,
                query: "",
                headers: &headers,
                body: &body,
            };
            black_box(
                signer
                    .sign(request, &credentials, SystemTime::now())
                    .unwrap(),
            )
        })
    });
}

const CHAT: &[u8] = br#"{"model":"claude","max_tokens":512,"temperature":0.2,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise the plot of Hamlet in two sentences, please."},{"role":"assistant","content":"A prince avenges his father."},{"role":"user","content":"And the ending?"}]}"#;
const CONVERSE: &[u8] = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Nearly everyone dies, Hamlet included, and Fortinbras takes the throne."}]}},"stopReason":"end_turn","usage":{"inputTokens":42,"outputTokens":15,"totalTokens":57},"metrics":{"latencyMs":420}}"#;

fn translation(c: &mut Criterion) {
    c.bench_function("translate/openai_to_converse", |b| {
        b.iter(|| black_box(translate::chat_request(black_box(CHAT)).unwrap()))
    });
    c.bench_function("translate/converse_to_openai", |b| {
        b.iter(|| {
            black_box(
                translate::chat_response(black_box(CONVERSE), "claude", "chatcmpl-1", 1, None)
                    .unwrap(),
            )
        })
    });
}

fn stream_event(c: &mut Criterion) {
    let frame = frame_bytes(
        "contentBlockDelta",
        br#"{"contentBlockIndex":0,"delta":{"text":"Hello"}}"#,
    );
    c.bench_function("stream/decode_frame_and_encode_sse", |b| {
        let mut translator =
            ChatStreamTranslator::new("claude".into(), "chatcmpl-1".into(), 1, false, None);
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            let mut decoder = Decoder::new();
            decoder.push(&frame);
            let Some(raw) = decoder.next_frame().unwrap() else {
                unreachable!()
            };
            let Frame::Event {
                event_type,
                payload,
            } = raw.frame
            else {
                unreachable!()
            };
            out.clear();
            translator
                .on_event(&event_type, &payload, &mut out)
                .unwrap();
            black_box(&out);
        })
    });
}

/// One ConverseStream event frame, encoded with the AWS crate (independent of the decoder).
fn frame_bytes(event_type: &str, payload: &[u8]) -> Vec<u8> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let message = Message::new(payload.to_vec())
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event_type.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out).unwrap();
    out
}

criterion_group!(benches, pick, signing, translation, stream_event);
criterion_main!(benches);
