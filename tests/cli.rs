//! The real binary: `check-config`, `serve` with the AWS credential chain, readiness and a
//! graceful stop on SIGTERM, and `demo` followed by its own printed instructions.
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
        .env("SIM_ANTHROPIC", "http://127.0.0.1:4")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "config/demo.yaml: ok (3 routes, 8 targets)\n"
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

/// The lines received up to and including the first that is `done`, waiting at most 30 s.
fn read_until(lines: &mpsc::Receiver<String>, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {what}:\n{text}"));
        text.push_str(&line);
        text.push('\n');
        if done(&line) {
            return text;
        }
    }
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

/// A Bedrock target with static keys that need not work: nothing is sent to it.
const IDLE_TARGET: &str = "
      - model: { provider: bedrock, name: m, options: { bedrock: { aws_region: us-west-2 } } }
        auth: { aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: example-secret }";

/// Starts `serve` listening on `listen` with no consumers and one route over `targets`, and
/// returns its log up to the admin server's start, the last line of start-up (lines are written
/// in order by one thread).
fn startup_log(listen: &str, targets: &str) -> String {
    let config = write_config(&format!(
        r#"
server: {{ listen: "{listen}", admin_listen: 127.0.0.1:0, workers: 1 }}
routes:
  - name: unused
    targets:{targets}
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
    let log = read_until(&log_lines, "admin server start logged", |line| {
        line.contains("starting service") && line.contains(&admin)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    log
}

#[test]
fn an_open_data_listener_without_consumers_warns_once_at_start() {
    const WARNING: &str = "anyone who reaches it spends the configured AWS credentials";
    let open = startup_log("0.0.0.0:0", IDLE_TARGET);
    assert_eq!(open.matches(WARNING).count(), 1, "{open}");
    let local = startup_log("127.0.0.1:0", IDLE_TARGET);
    assert_eq!(local.matches(WARNING).count(), 0, "{local}");
}

/// A Bedrock Claude target and an OpenAI GPT one in the route `unused`.
const CLAUDE_AND_GPT: &str = "
      - model: { provider: bedrock, name: anthropic.claude-3-haiku-20240307-v1:0, options: { bedrock: { aws_region: us-west-2 } } }
        auth: { aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: example-secret }
      - model: { provider: openai, name: gpt-4o }";

#[test]
fn a_route_mixing_claude_and_gpt_is_accepted_with_a_warning_that_serve_logs_too() {
    const WARNING: &str = "route \"unused\" mixes Claude targets [routes[0].targets[0] \
        (us-west-2/anthropic.claude-3-haiku-20240307-v1:0)] with other models \
        [routes[0].targets[1] (api.openai.com/gpt-4o)]";
    let file = write_config(&format!(
        "routes:\n  - name: unused\n    targets:{CLAUDE_AND_GPT}\n"
    ));
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(file.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.starts_with(&format!("warning: routes[0].targets: {WARNING}: ")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok (1 routes, 2 targets)\n"));

    let log = startup_log("127.0.0.1:0", CLAUDE_AND_GPT);
    assert_eq!(log.matches(WARNING).count(), 1, "{log}");
    assert!(log.contains("routes[0].targets"), "{log}");
    let single = startup_log("127.0.0.1:0", IDLE_TARGET);
    assert!(!single.contains("mixes Claude"), "{single}");
}

/// A running `demo`, killed when the test ends, however it ends.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `demo` on free ports and returns it with everything it printed up to `Stop with Ctrl-C.`
fn start_demo() -> (Demo, String) {
    let mut demo = Demo(
        Command::new(BIN)
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let printed = lines(demo.0.stdout.take().unwrap());
    let text = read_until(&printed, "demo instructions", |line| {
        line == "Stop with Ctrl-C."
    });
    (demo, text)
}

/// The `curl` commands in the demo's text, each joined with its `\` continuation lines.
fn printed_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut open: Option<String> = None;
    for line in text.lines().map(str::trim) {
        let Some(mut command) = open
            .take()
            .or_else(|| line.starts_with("curl ").then(String::new))
        else {
            continue;
        };
        match line.strip_suffix('\\') {
            Some(head) => {
                command.push_str(head);
                open = Some(command);
            }
            None => {
                command.push_str(line);
                commands.push(command);
            }
        }
    }
    commands
}

/// Runs a printed command as the reader would paste it; its output.
fn run_printed(command: &str) -> String {
    let out = Command::new("sh").args(["-c", command]).output().unwrap();
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The target a `curl -si` answer names in `x-bedrock-balancer-target`, once it is known to be a
/// 200, and the answer's text.
fn served_by(answer: &str) -> (String, String) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{answer}");
    let target = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-bedrock-balancer-target")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no target header: {answer}"));
    let answer: serde_json::Value = serde_json::from_str(body).unwrap();
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    (target, text.to_owned())
}

#[test]
fn the_demo_fails_over_from_two_bedrock_regions_to_the_anthropic_api_and_back_as_it_prints() {
    let (_demo, text) = start_demo();
    let sim_url = |name: &str| {
        let prefix = format!("  simulated {name}: ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} simulator printed:\n{text}"))
            .to_owned()
    };
    let (east, west) = (sim_url("us-east-1"), sim_url("us-west-2"));
    let anthropic = sim_url("the Anthropic API");
    let commands = printed_commands(&text);
    let find = |what: &str, test: &dyn Fn(&str) -> bool| -> Vec<&String> {
        let found: Vec<_> = commands.iter().filter(|c| test(c)).collect();
        assert!(!found.is_empty(), "no {what} command printed:\n{text}");
        found
    };
    let ask = find("overflow request", &|c| {
        c.contains("\"model\":\"claude-overflow\"")
    });
    let throttle = find("throttle", &|c| c.contains("/_sim/faults -d"));
    let clear = find("clear", &|c| {
        c.contains("-X DELETE") && c.contains("/_sim/faults")
    });
    let stats = find("stats", &|c| c.contains(&format!("{anthropic}/_sim/stats")));
    assert_eq!(ask.len(), 1, "{text}");
    for commands in [&throttle, &clear] {
        let mut urls: Vec<&str> = commands
            .iter()
            .filter_map(|c| {
                [&east, &west]
                    .into_iter()
                    .find(|url| c.contains(url.as_str()))
            })
            .map(String::as_str)
            .collect();
        urls.sort_unstable();
        let mut both = [east.as_str(), west.as_str()];
        both.sort_unstable();
        assert_eq!(urls, both, "one command per region: {commands:?}");
    }
    let is_region = |target: &str| {
        target.starts_with("us-east-1/us.anthropic.")
            || target.starts_with("us-west-2/us.anthropic.")
    };
    let anthropic_target = format!("{}/", anthropic.trim_start_matches("http://"));

    let (target, answer) = served_by(&run_printed(ask[0]));
    assert!(is_region(&target), "{target}: {answer}");

    for command in &throttle {
        assert!(run_printed(command).contains("\"status\":429"), "{command}");
    }
    let (target, answer) = served_by(&run_printed(ask[0]));
    assert!(target.starts_with(&anthropic_target), "{target}");
    assert!(answer.starts_with("Hello from anthropic "), "{answer}");
    let served: serde_json::Value = serde_json::from_str(&run_printed(stats[0])).unwrap();
    assert_eq!(served["requests_total"], 1, "{served}");

    for command in &clear {
        assert!(
            run_printed(command).contains("\"status\":null"),
            "{command}"
        );
    }
    // The regions come back when their Retry-After is over, so poll, bounded.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (target, answer) = served_by(&run_printed(ask[0]));
        if is_region(&target) {
            assert!(answer.starts_with("Hello from us-"), "{answer}");
            break;
        }
        assert!(target.starts_with(&anthropic_target), "{target}");
        assert!(
            Instant::now() < deadline,
            "the regions never took the traffic back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
