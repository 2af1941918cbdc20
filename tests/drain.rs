//! A graceful stop under load: SIGTERM with 50 streams in flight. Streams shorter than the
//! shutdown timeout complete; a longer one ends with an exception frame; the process exits in time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bedrock_balancer::eventstream::Frame;
use bedrock_balancer_sim::{self as sim, Faults, SimOptions};
use common::decode_frames;

const BIN: &str = env!("CARGO_BIN_EXE_bedrock-balancer");
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
/// The same model through its US inference profile: a model id selects one route.
const PROFILE: &str = "us.anthropic.claude-3-haiku-20240307-v1:0";

fn route(name: &str, model: &str, region: &str, url: &str) -> String {
    format!(
        r#"
  - name: {name}
    balancer: {{ read_timeout: 30s }}
    targets:
      - model:
          provider: bedrock
          name: "{model}"
          options: {{ bedrock: {{ aws_region: {region} }}, upstream_url: {url} }}
        auth: {{ aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }}"#
    )
}

#[actix_rt::test]
async fn sigterm_with_streams_in_flight() {
    let mut short = SimOptions::new("us-east-1");
    short.faults = Faults {
        inter_token_ms: 100,
        ..Faults::default()
    };
    short.workers = 2;
    let short = sim::start(short).await.unwrap();
    let mut long = SimOptions::new("us-west-2");
    long.faults = Faults {
        inter_token_ms: 3000,
        ..Faults::default()
    };
    let long = sim::start(long).await.unwrap();

    let mut config = tempfile::NamedTempFile::new().unwrap();
    write!(
        config,
        "server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2, drain_grace: 1s, shutdown_timeout: 3s }}\nroutes:{}{}\n",
        route("short", MODEL, "us-east-1", &short.url()),
        route("long", PROFILE, "us-west-2", &long.url())
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["--log-format", "text", "serve", "--config"])
        .arg(config.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap_or_default());
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let public = line
        .strip_prefix("bedrock-balancer listening on ")
        .and_then(|rest| rest.split_once(' '))
        .map(|(public, _)| public.to_owned())
        .unwrap();

    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let body = r#"{"messages":[{"role":"user","content":[{"text":"please stream a reasonably long answer"}]}]}"#;
    let send = |route: &str| {
        let request = client
            .post(format!("{public}/model/{route}/converse-stream"))
            .insert_header(("content-type", "application/json"));
        async move {
            let mut resp = request.send_body(body).await.unwrap();
            assert_eq!(resp.status(), 200);
            decode_frames(&resp.body().limit(1 << 20).await.unwrap())
        }
    };
    let mut streams: Vec<_> = (0..50).map(|_| actix_rt::spawn(send("short"))).collect();
    let long_stream = actix_rt::spawn(send("long"));
    // Signal once every stream has reached its simulator.
    let deadline = Instant::now() + Duration::from_secs(20);
    while short.stats().requests_total < 50 || long.stats().requests_total < 1 {
        assert!(Instant::now() < deadline, "streams never all started");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );

    for stream in streams.drain(..) {
        let frames = stream.await.unwrap();
        assert!(
            frames
                .iter()
                .any(|f| matches!(f, Frame::Event { event_type, .. } if event_type == "metadata")),
            "a short stream did not complete: {frames:?}"
        );
    }
    let frames = long_stream.await.unwrap();
    match frames.last() {
        Some(Frame::Exception { payload, .. }) => {
            assert!(
                String::from_utf8_lossy(payload).contains("shutting down"),
                "{frames:?}"
            );
        }
        other => panic!("the long stream should end in an exception frame, got {other:?}"),
    }
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "did not exit in time"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");
    // drain_grace (1 s) + shutdown_timeout (3 s), with slack for a loaded machine.
    assert!(
        signalled.elapsed() < Duration::from_secs(8),
        "{:?}",
        signalled.elapsed()
    );
}
