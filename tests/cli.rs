//! The real binary: `check-config`, and `serve` with the AWS credential chain, readiness and a
//! graceful stop on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bedrock_balancer::sim::{self, SimKey, SimOptions};

const BIN: &str = env!("CARGO_BIN_EXE_bedrock-balancer");

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn check_config_prints_every_problem_and_fails() {
    let file = write_config(
        r#"
routes:
  - name: claude
    balancer: { algorithm: fastest }
    targets:
      - model: { provider: bedrock, name: m, options: { bedrock: { aws_region: us-east-1 } } }
        weight: 0
  - name: claude
    targets: []
"#,
    );
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "routes[0].balancer.algorithm: unknown algorithm \"fastest\"; expected one of round-robin, least-connections, lowest-latency, lowest-usage, consistent-hashing, priority, p2c-ewma\n\
         routes[0].targets[0].weight: must be 1..=65535, got 0\n\
         routes[1].name: duplicate route name \"claude\" (also routes[0])\n\
         routes[1].targets: must list at least one target\n"
    );
}

#[test]
fn check_config_accepts_the_demo_config() {
    let out = Command::new(BIN)
        .args(["check-config", "config/demo.yaml"])
        .env("SIM_US_EAST_1", "http://127.0.0.1:1")
        .env("SIM_US_WEST_2", "http://127.0.0.1:2")
        .env("SIM_EU_WEST_1", "http://127.0.0.1:3")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "config/demo.yaml: ok (2 routes, 5 targets)\n"
    );
}

/// Reads the `listening on` line (bounded) and returns (public, admin) URLs.
fn wait_for_listening(child: &mut Child) -> (String, String) {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap_or_default());
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("gateway announced itself");
    let rest = line.strip_prefix("bedrock-balancer listening on ").unwrap();
    let (public, admin) = rest.split_once(" (admin ").unwrap();
    (public.to_owned(), admin.trim_end_matches(')').to_owned())
}

async fn status(url: &str) -> Option<u16> {
    awc::Client::default()
        .get(url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// One Converse call through the gateway; its status.
async fn converse(public: &str) -> u16 {
    let mut resp = awc::Client::default()
        .post(format!("{public}/model/claude/converse"))
        .insert_header(("content-type", "application/json"))
        .send_body(r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#)
        .await
        .unwrap();
    let _ = resp.body().await;
    resp.status().as_u16()
}

/// `serve` with AWS credentials only in its environment (the default chain's first source);
/// returns once `/readyz` says the credentials loaded.
async fn serve_with_env_credentials(
    config: &std::path::Path,
    (key_id, secret, token): (&str, &str, Option<&str>),
) -> (Child, String, String) {
    let mut command = Command::new(BIN);
    command
        .args(["--log-format", "text", "serve", "--config"])
        .arg(config)
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match token {
        Some(token) => command.env("AWS_SESSION_TOKEN", token),
        None => command.env_remove("AWS_SESSION_TOKEN"),
    };
    let mut child = command.spawn().unwrap();
    let (public, admin) = wait_for_listening(&mut child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&format!("{admin}/readyz")).await != Some(200) {
        assert!(Instant::now() < deadline, "never ready: no credentials?");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    (child, public, admin)
}

#[actix_rt::test]
async fn serve_signs_with_the_credential_chain_and_drains_on_sigterm() {
    let mut options = SimOptions::new("us-west-2");
    options.keys = vec![SimKey {
        access_key_id: "ASIAENVCHAIN".into(),
        secret_access_key: "env-chain-secret".into(),
        session_token: Some("env-chain-session-token".into()),
    }];
    let sim = sim::start(options).await.unwrap();
    let config = write_config(&format!(
        r#"
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 1, drain_grace: 3s, shutdown_timeout: 5s }}
routes:
  - name: claude
    targets:
      - model:
          provider: bedrock
          name: anthropic.claude-3-haiku-20240307-v1:0
          options: {{ bedrock: {{ aws_region: us-west-2 }}, upstream_url: {} }}
"#,
        sim.url()
    ));
    let (mut child, public, admin) = serve_with_env_credentials(
        config.path(),
        (
            "ASIAENVCHAIN",
            "env-chain-secret",
            Some("env-chain-session-token"),
        ),
    )
    .await;
    assert_eq!(converse(&public).await, 200);
    let stats = sim.stats();
    assert_eq!(stats.bad_signatures, 0);
    assert_eq!(
        stats.last_request_headers["x-amz-security-token"],
        "env-chain-session-token"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // During the grace period the gateway still answers, but tells the load balancer to go. The
    // grace (3 s) is a window the poll must not miss on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(5);
    while status(&format!("{admin}/readyz")).await != Some(503) {
        assert!(Instant::now() < deadline, "readyz never turned 503");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "gateway did not stop");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

#[actix_rt::test]
async fn serve_assumes_a_role_through_sts_and_signs_with_the_temporary_credentials() {
    // The simulator doubles as STS: it accepts the base key (from the environment chain) for
    // AssumeRole, then the temporary key and token it handed out for Bedrock calls.
    let sim = sim::start(SimOptions::new("us-west-2")).await.unwrap();
    let config = write_config(&format!(
        r#"
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 1, drain_grace: 0s }}
routes:
  - name: claude
    targets:
      - model:
          provider: bedrock
          name: anthropic.claude-3-haiku-20240307-v1:0
          options:
            bedrock:
              aws_region: us-west-2
              aws_assume_role_arn: arn:aws:iam::123456789012:role/bedrock-invoke
              aws_role_session_name: gateway-test
              aws_sts_endpoint_url: {url}
            upstream_url: {url}
"#,
        url = sim.url()
    ));
    let (mut child, public, _admin) = serve_with_env_credentials(
        config.path(),
        (
            sim::DEFAULT_ACCESS_KEY_ID,
            sim::DEFAULT_SECRET_ACCESS_KEY,
            None,
        ),
    )
    .await;
    let status_code = converse(&public).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status_code, 200);
    let stats = sim.stats();
    assert_eq!(stats.assumed_roles, 1);
    assert_eq!(stats.bad_signatures, 0);
    let headers = &stats.last_request_headers;
    assert!(
        headers["authorization"].contains("Credential=ASIA"),
        "signed with the temporary key: {}",
        headers["authorization"]
    );
    assert!(headers["x-amz-security-token"].starts_with("sim-session-"));
}
