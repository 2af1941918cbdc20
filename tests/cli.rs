//! The real binary: `check-config`, and `serve` with the AWS credential chain, readiness and a
//! graceful stop on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bedrock_balancer_sim::{self as sim, SimKey, SimOptions};

const BIN: &str = env!("CARGO_BIN_EXE_bedrock-balancer");

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

/// A config file with one `claude` route over `targets` (YAML list items), on free ports.
fn claude_route_config(targets: &str) -> tempfile::NamedTempFile {
    write_config(&format!(
        "server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 1, drain_grace: 0s }}
routes:
  - name: claude
    targets:{targets}"
    ))
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

/// The lines of a child's output as they come, read by a thread so the pipe never fills.
fn lines(output: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let _ = tx.send(line.unwrap_or_default());
        }
    });
    rx
}

/// Reads the `listening on` line (bounded) and returns (public, admin) URLs.
fn wait_for_listening(child: &mut Child) -> (String, String) {
    let line = lines(child.stdout.take().unwrap())
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
    let config = claude_route_config(&format!(
        r#"
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

/// A target that assumes a role through the simulator's STS under its own session name, so the
/// simulator counts its credential fetches apart from the others'.
fn assume_role_target(session: &str, region: &str, weight: u16, sim_url: &str) -> String {
    assume_role_model_target(
        "anthropic.claude-3-haiku-20240307-v1:0",
        session,
        region,
        weight,
        sim_url,
    )
}

/// As [`assume_role_target`], for `model` (a model id selects one route, so a second route needs
/// its own).
fn assume_role_model_target(
    model: &str,
    session: &str,
    region: &str,
    weight: u16,
    sim_url: &str,
) -> String {
    format!(
        r#"
      - model:
          provider: bedrock
          name: {model}
          options:
            bedrock:
              aws_region: {region}
              aws_assume_role_arn: arn:aws:iam::123456789012:role/bedrock-invoke
              aws_role_session_name: {session}
              aws_sts_endpoint_url: {sim_url}
            upstream_url: {sim_url}
        weight: {weight}"#
    )
}

/// Step `i` of the reload sequence. Always: `stay`. Each step replaces `flip-{i-1}` with
/// `flip-{i}` (a changed setting) and swaps `odd-{i}` / `even-{i}` (one target dropped, one
/// added); odd steps add a route `extra` that the next step removes.
fn reload_step(i: u16, sim_url: &str) -> String {
    let parity = if i.is_multiple_of(2) { "even" } else { "odd" };
    let claude = [
        assume_role_target("stay", "us-west-2", 1, sim_url),
        assume_role_target(&format!("flip-{i}"), "ap-northeast-1", 1 + i % 2, sim_url),
        assume_role_target(&format!("{parity}-{i}"), "eu-west-1", 1, sim_url),
    ];
    let mut text = String::from(
        "server: { listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 1, drain_grace: 0s }\nroutes:\n",
    );
    if !i.is_multiple_of(2) {
        text.push_str("  - name: extra\n    targets:");
        text.push_str(&assume_role_model_target(
            "us.anthropic.claude-3-haiku-20240307-v1:0",
            &format!("extra-{i}"),
            "eu-central-1",
            1,
            sim_url,
        ));
        text.push('\n');
    }
    text.push_str("  - name: claude\n    targets:");
    text.push_str(&claude.concat());
    text.push('\n');
    text
}

async fn gauge(admin: &str, name: &str) -> Option<i64> {
    let mut resp = awc::Client::default()
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .ok()?;
    let body = resp.body().await.ok()?;
    String::from_utf8_lossy(&body).lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[actix_rt::test]
async fn twenty_reloads_leave_only_the_current_targets_actors_and_their_credential_refreshes() {
    let mut options = SimOptions::new("us-west-2");
    // Credentials that expire at once make every live target refresh at the shortest interval.
    options.sts_session = Duration::ZERO;
    let sim = sim::start(options).await.unwrap();
    let url = sim.url();
    let config = write_config(&reload_step(0, &url));
    let (mut child, _public, admin) = serve_with_env_credentials(
        config.path(),
        (
            sim::DEFAULT_ACCESS_KEY_ID,
            sim::DEFAULT_SECRET_ACCESS_KEY,
            None,
        ),
    )
    .await;
    let client = awc::Client::default();
    for i in 1..=20 {
        std::fs::write(config.path(), reload_step(i, &url)).unwrap();
        let status = client
            .post(format!("{admin}/admin/reload"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "reload {i}");
    }
    // Step 20 is even: stay, flip and even remain.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let live = gauge(&admin, "bedrock_balancer_target_actors").await;
        if live == Some(3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "target actors still running: {live:?}, want 3"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let fetches = |session: &str| {
        sim.stats()
            .assumed_roles_by_session
            .get(session)
            .copied()
            .unwrap_or(0)
    };
    // The last-started targets refresh once: every target a reload dropped was started earlier,
    // so a refresh of any of them would have come due by then too.
    let deadline = Instant::now() + Duration::from_secs(60);
    while fetches("flip-20") < 2 || fetches("even-20") < 2 {
        assert!(
            Instant::now() < deadline,
            "current targets stopped refreshing"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let by_session = sim.stats().assumed_roles_by_session;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(by_session["stay"] >= 2, "{by_session:?}");
    // 20 flips, 10 odds, 10 extras and 10 evens were dropped: at most their first fetch each (none
    // if a reload dropped them before it was answered).
    let current = ["stay", "flip-20", "even-20"];
    assert!(
        by_session
            .iter()
            .filter(|(session, _)| !current.contains(&session.as_str()))
            .all(|(_, &n)| n <= 1),
        "{by_session:?}"
    );
    assert_eq!(sim.stats().bad_signatures, 0);
}

/// Starts `serve` listening on `listen` with no consumers and returns its log up to the admin
/// server's start, the last line of start-up (lines are written in order by one thread).
fn startup_log(listen: &str) -> String {
    let config = write_config(&format!(
        r#"
server: {{ listen: "{listen}", admin_listen: 127.0.0.1:0, workers: 1 }}
routes:
  - name: unused
    targets:
      - model: {{ provider: bedrock, name: m, options: {{ bedrock: {{ aws_region: us-west-2 }} }} }}
        auth: {{ aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: example-secret }}
"#
    ));
    let mut child = Command::new(BIN)
        .args(["--log-format", "text", "serve", "--config"])
        .arg(config.path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log_lines = lines(child.stderr.take().unwrap());
    let (_, admin) = wait_for_listening(&mut child);
    let admin = admin.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = log_lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no admin server start logged:\n{log}"));
        log.push_str(&line);
        log.push('\n');
        if line.contains("starting service") && line.contains(&admin) {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    log
}

#[test]
fn an_open_data_listener_without_consumers_warns_once_at_start() {
    const WARNING: &str = "anyone who reaches it spends the configured AWS credentials";
    let open = startup_log("0.0.0.0:0");
    assert_eq!(open.matches(WARNING).count(), 1, "{open}");
    let local = startup_log("127.0.0.1:0");
    assert_eq!(local.matches(WARNING).count(), 0, "{local}");
}

/// `serve` in an environment where the AWS credential chain finds nothing: no keys, no profile,
/// no instance metadata.
fn serve_without_aws_credentials(config: &std::path::Path, home: &std::path::Path) -> Child {
    let mut command = Command::new(BIN);
    command
        .args(["--log-format", "text", "serve", "--config"])
        .arg(config)
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        command.env_remove(var);
    }
    command.spawn().unwrap()
}

#[actix_rt::test]
async fn key_targets_make_the_gateway_ready_without_any_aws_credentials() {
    let mut options = SimOptions::new("us-east-1");
    options.provider = sim::SimProvider::Anthropic;
    options.api_keys = vec!["anthropic-test-key".to_owned()];
    let anthropic = sim::start(options).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    // The Bedrock target relies on the credential chain, which has nothing to give here.
    let config = claude_route_config(&format!(
        r#"
      - model: {{ provider: bedrock, name: anthropic.claude-3-haiku-20240307-v1:0, options: {{ bedrock: {{ aws_region: us-east-1 }}, upstream_url: "http://127.0.0.1:9" }} }}
      - name: anthropic-api
        model: {{ provider: anthropic, name: claude-sonnet-4-5, options: {{ upstream_url: "{}" }} }}
        auth: {{ header_name: x-api-key, header_value: anthropic-test-key }}
"#,
        anthropic.url()
    ));
    let mut child = serve_without_aws_credentials(config.path(), home.path());
    let (public, admin) = wait_for_listening(&mut child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&format!("{admin}/readyz")).await != Some(200) {
        assert!(Instant::now() < deadline, "never ready with a key target");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let mut resp = awc::Client::default()
        .get(format!("{admin}/admin/targets"))
        .send()
        .await
        .unwrap();
    let targets: serde_json::Value = resp.json().await.unwrap();
    let mut resp = awc::Client::default()
        .post(format!("{public}/v1/messages"))
        .insert_header(("content-type", "application/json"))
        .send_body(
            r#"{"model":"claude","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .await
        .unwrap();
    let served_by = resp
        .headers()
        .get("x-bedrock-balancer-target")
        .map(|v| v.to_str().unwrap().to_owned());
    let answered = resp.status().as_u16();
    let _ = resp.body().await;
    child.kill().unwrap();
    child.wait().unwrap();

    let row = |label: &str| {
        targets["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == label)
            .cloned()
            .unwrap_or_else(|| panic!("{label} missing from {targets}"))
    };
    let key_target = row("anthropic-api");
    assert_eq!(key_target["credentials_loaded"], true, "{key_target}");
    assert_eq!(key_target["ready"], true, "{key_target}");
    // The chain can never load here, so this is not a race with a slow fetch.
    let chain_target = row("us-east-1/anthropic.claude-3-haiku-20240307-v1:0");
    assert_eq!(chain_target["credentials_loaded"], false, "{chain_target}");
    assert_eq!(chain_target["ready"], false, "{chain_target}");
    // Requests go to the target that can authenticate.
    assert_eq!(answered, 200);
    assert_eq!(served_by.as_deref(), Some("anthropic-api"));
    assert_eq!(anthropic.stats().requests_total, 1);
}
