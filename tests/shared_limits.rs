//! Limits shared across replicas through a real `redis-server` (Debian's package; `tests/run.sh`
//! installs it): three gateways, one quota; Redis stopped and started again mid-test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use bedrock_balancer_sim::Faults;
use common::*;
use futures_util::StreamExt;
use serde_json::Value;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// A `redis-server` of the test's own on a free port, killed on drop.
struct Redis {
    port: u16,
    child: Option<Child>,
}

/// Why a `redis-server` did not come up: only a port taken meanwhile is worth another try.
#[derive(Debug)]
struct PortTaken;

impl Redis {
    /// A port is free when asked for but Redis binds it later, so another process may take it
    /// first: Redis then exits saying so, and a new port is tried (a bounded number of times).
    fn new() -> Self {
        for _ in 0..20 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut redis = Self { port, child: None };
            if redis.try_start().is_ok() {
                return redis;
            }
        }
        panic!("20 free ports in a row were taken before redis-server could bind them");
    }

    /// Starts again on the same port (the gateways know its URL); bounded, for a port that a
    /// stranger holds for a moment.
    fn restart(&mut self) {
        for _ in 0..50 {
            if self.try_start().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "port {} stayed taken; redis-server could not restart",
            self.port
        );
    }

    /// Runs redis-server and waits (bounded) for its own word that it listens: a connection to
    /// the port alone could reach whoever else holds it.
    fn try_start(&mut self) -> Result<(), PortTaken> {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-server not found: install Debian's redis-server (tests/run.sh does)");
        let stdout = child.stdout.take().unwrap();
        let (lines, said) = std::sync::mpsc::channel();
        // Keeps draining after start-up so Redis never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut output = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match said.recv_timeout(left) {
                Ok(line) if line.contains("Ready to accept connections") => {
                    self.child = Some(child);
                    return Ok(());
                }
                Ok(line) => output.push(line),
                // The pipe closed: Redis exited.
                Err(RecvTimeoutError::Disconnected) => {
                    child.wait().unwrap();
                    if output.iter().any(|l| l.contains("Address already in use")) {
                        return Err(PortTaken);
                    }
                    panic!("redis-server exited:\n{}", output.join("\n"));
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!(
                        "redis-server not ready on port {} within 20 s:\n{}",
                        self.port,
                        output.join("\n")
                    );
                }
            }
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

const TEAM_KEY: &str = "team-a-secret-key";

/// `n` gateways, each in front of its own simulated region, whose consumer `team-a` shares a
/// quota of 120 requests per minute through Redis.
async fn replicas(redis: &Redis, n: usize) -> Vec<Harness> {
    let mut out = Vec::new();
    for _ in 0..n {
        let sims = start_sims(&["us-east-1"]).await;
        let target = target_yaml(MODEL, "us-east-1", &sims[0].url(), 1);
        let yaml = format!(
            "{}
consumers:
  - name: team-a
    api_key: {TEAM_KEY}
    limits: {{ rpm: 120 }}
rate_limits:
  backend: redis
  redis_url: {}
",
            config_yaml("claude", "      retries: 0", &[target]),
            redis.url()
        );
        out.push(start_gateway(&yaml, sims).await);
    }
    out
}

async fn rate_limit_status(h: &Harness) -> Value {
    h.admin_targets().await["rate_limits"].clone()
}

/// Waits (bounded) until every replica says whether Redis decides, as `shared` expects.
async fn wait_for_shared(hs: &[Harness], shared: bool) {
    for _ in 0..100 {
        let mut all = true;
        for h in hs {
            let status = rate_limit_status(h).await;
            all &= status["shared"] == shared && (!shared || status["replicas"] == hs.len());
        }
        if all {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("replicas never reported shared = {shared}");
}

/// `count` requests of team-a spread round-robin over the replicas, 12 at a time; their
/// statuses, in the order they finished.
async fn spread(hs: &[Harness], count: usize) -> Vec<u16> {
    let body = converse_body("hello");
    futures_util::stream::iter(0..count)
        .map(|i| {
            let url = hs[i % hs.len()].url("/model/claude/converse");
            let req = client()
                .post(url)
                .insert_header(("content-type", "application/json"))
                .insert_header(("authorization", format!("Bearer {TEAM_KEY}")));
            let body = body.clone();
            async move {
                let mut resp = req.send_body(body).await.unwrap();
                let _ = resp.body().await;
                resp.status().as_u16()
            }
        })
        .buffer_unordered(12)
        .collect()
        .await
}

/// Admissions allowed for a quota of `per_minute` over `elapsed`: the burst plus GCRA's refill.
fn allowed(per_minute: u64, elapsed: Duration) -> std::ops::RangeInclusive<u64> {
    let refill = (elapsed.as_secs_f64() * per_minute as f64 / 60.0).ceil() as u64;
    per_minute - 1..=per_minute + 1 + refill
}

#[actix_rt::test]
async fn three_replicas_share_a_consumer_quota_and_survive_redis_going_away() {
    let mut redis = Redis::new();
    let hs = replicas(&redis, 3).await;
    wait_for_shared(&hs, true).await;

    let started = Instant::now();
    let statuses = spread(&hs, 300).await;
    let elapsed = started.elapsed();
    let admitted = statuses.iter().filter(|s| **s == 200).count() as u64;
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        allowed(120, elapsed).contains(&admitted),
        "admitted {admitted} of 300 in {elapsed:?} (one replica alone would admit 120)"
    );
    let upstream: u64 = hs.iter().map(|h| h.counts("converse")[0]).sum();
    assert_eq!(
        upstream, admitted,
        "every admitted request went upstream once"
    );

    // Redis goes away: every replica keeps answering, each on its own third of the quota.
    let before: Vec<u64> = hs.iter().map(|h| h.counts("converse")[0]).collect();
    redis.stop();
    let started = Instant::now();
    let statuses = spread(&hs, 150).await;
    let most = *allowed(40, started.elapsed()).end();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let per_replica: Vec<u64> = hs
        .iter()
        .zip(&before)
        .map(|(h, b)| h.counts("converse")[0] - b)
        .collect();
    for (i, h) in hs.iter().enumerate() {
        assert!(
            (1..=most).contains(&per_replica[i]),
            "replica {i} on its 40 rpm share admitted {} (at most {most})",
            per_replica[i]
        );
        assert_eq!(rate_limit_status(h).await["shared"], false);
    }
    let local_admitted = statuses.iter().filter(|s| **s == 200).count() as u64;
    assert_eq!(local_admitted, per_replica.iter().sum::<u64>());

    // Redis is back (empty, as after a failover): the replicas share one quota again.
    redis.restart();
    wait_for_shared(&hs, true).await;
    let started = Instant::now();
    let statuses = spread(&hs, 300).await;
    let admitted = statuses.iter().filter(|s| **s == 200).count() as u64;
    assert!(
        allowed(120, started.elapsed()).contains(&admitted),
        "after Redis returned: admitted {admitted}"
    );
}

#[actix_rt::test]
async fn a_throttle_seen_by_one_replica_rests_the_target_on_every_replica() {
    let redis = Redis::new();
    let hs = replicas(&redis, 2).await;
    wait_for_shared(&hs, true).await;
    hs[0].fault(
        0,
        Faults {
            status: Some(429),
            retry_after: Some(30),
            ..Faults::default()
        },
    );
    assert_eq!(
        spread(&hs[..1], 1).await,
        vec![429],
        "Bedrock's throttle, passed on"
    );
    // The other replica learns of it through Redis (published in the background): within a few
    // requests it stops sending to the region and answers 429 itself, scoped to the targets.
    let throttled = Instant::now();
    let deadline = throttled + Duration::from_secs(20);
    let mut answered = Vec::new();
    while Instant::now() < deadline {
        let mut resp = client()
            .post(hs[1].url("/model/claude/converse"))
            .insert_header(("content-type", "application/json"))
            .insert_header(("authorization", format!("Bearer {TEAM_KEY}")))
            .send_body(converse_body("hello"))
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        answered.push(resp.status().as_u16());
        if resp.status() == 429 {
            assert_eq!(body["scope"], "targets");
            let wait: u64 = resp
                .headers()
                .get("retry-after")
                .unwrap()
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            // 30 s from the throttle, less the time this loop has taken since.
            let least = 29u64.saturating_sub(throttled.elapsed().as_secs());
            assert!((least..=30).contains(&wait), "Retry-After {wait}");
            let before_cooldown = answered.iter().filter(|s| **s == 200).count() as u64;
            assert_eq!(hs[1].counts("converse")[0], before_cooldown);
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the second replica never rested the throttled target: {answered:?}");
}
