//! Hot reload under constant load: routes and targets swap atomically, target state carries over,
//! and an invalid config is rejected while the old one keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bedrock_balancer::{app, config};
use common::*;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
/// The same model through its US inference profile, for a second route (a model id selects one
/// route).
const PROFILE: &str = "us.anthropic.claude-3-haiku-20240307-v1:0";

fn yaml(urls: &[(&str, String)], retries: u32) -> String {
    let targets: Vec<String> = urls
        .iter()
        .map(|(region, url)| target_yaml(MODEL, region, url, 100))
        .collect();
    config_yaml("claude", &format!("      retries: {retries}"), &targets)
}

async fn target_requests(admin: &str, region: &str) -> u64 {
    let mut resp = awc::Client::default()
        .get(format!("{admin}/admin/targets"))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    body["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["region"] == region)
        .map_or(0, |t| t["requests"].as_u64().unwrap())
}

/// A gateway whose reloads re-read `file`, which starts out holding `text`.
fn start_reloadable(file: &tempfile::NamedTempFile, text: &str) -> app::Running {
    let path = file.path().to_owned();
    std::fs::write(&path, text).unwrap();
    app::start(
        config::load(&path).unwrap(),
        Some(Box::new(move || config::load(&path))),
    )
    .unwrap()
}

/// What a load's clients saw, and the flag that ends them.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Load {
    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// A client posting Converse to `url` until stopped.
    fn spawn_client(self: &Arc<Self>, url: String) -> actix_rt::task::JoinHandle<()> {
        let load = Arc::clone(self);
        actix_rt::spawn(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .finish();
            // Bounded: at most this many requests per client, whatever happens.
            for _ in 0..5000 {
                if load.stop.load(Ordering::Relaxed) {
                    break;
                }
                let status = client
                    .post(&url)
                    .insert_header(("content-type", "application/json"))
                    .send_body(converse_body("under reload"))
                    .await
                    .map(|r| r.status().as_u16());
                let counter = if matches!(status, Ok(200)) {
                    &load.ok
                } else {
                    &load.failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
    }

    async fn stop(&self, clients: Vec<actix_rt::task::JoinHandle<()>>) {
        self.stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }
    }
}

#[actix_rt::test]
async fn ten_reloads_under_load_lose_no_request() {
    let sims = start_sims(&["us-east-1", "us-west-2", "eu-west-1"]).await;
    let urls: Vec<(&str, String)> = ["us-east-1", "us-west-2", "eu-west-1"]
        .into_iter()
        .zip(sims.iter().map(|s| s.url()))
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_owned();
    let running = start_reloadable(&file, &yaml(&urls[..2], 1));
    let base = format!("http://{}", running.listen);
    let admin = format!("http://{}", running.admin);
    // Keeps the simulators and the gateway alive to the end of the test.
    let _harness = Harness {
        sims,
        gateway: running,
    };

    let load = Arc::new(Load::default());
    let clients: Vec<_> = (0..4)
        .map(|_| load.spawn_client(format!("{base}/model/claude/converse")))
        .collect();

    let steps: Vec<(String, bool)> = vec![
        (yaml(&urls, 1), true),          // add a region
        (yaml(&urls[1..], 1), true),     // drop a region
        (yaml(&urls, 2), true),          // change retries
        ("routes: [".to_owned(), false), // invalid: rejected
        (yaml(&urls[..1], 0), true),     // down to one region
        (yaml(&urls, 3), true),          // all back
        (yaml(&urls[..2], 1), true),
        ("routes: []\n".to_owned(), false), // invalid: no routes
        (yaml(&urls, 1), true),
        (yaml(&urls, 1), true), // unchanged
    ];
    let client = awc::Client::default();
    let mut last_valid_requests = 0;
    for (i, (text, valid)) in steps.into_iter().enumerate() {
        let before = load.ok();
        std::fs::write(&path, &text).unwrap();
        let mut resp = client
            .post(format!("{admin}/admin/reload"))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = resp.json().await.unwrap();
        if valid {
            assert_eq!(resp.status(), 200, "step {i}: {body}");
            last_valid_requests = target_requests(&admin, "us-east-1").await;
        } else {
            assert_eq!(resp.status(), 422, "step {i}: {body}");
            assert_eq!(body["status"], "rejected");
        }
        // Traffic flows on the new config before the next change (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(20);
        while load.ok() < before + 20 {
            assert!(
                Instant::now() < deadline,
                "step {i}: traffic stalled after the reload"
            );
            actix_rt::time::sleep(Duration::from_millis(2)).await;
        }
    }
    load.stop(clients).await;
    assert_eq!(load.failed(), 0, "requests failed during reloads");
    assert!(load.ok() >= 200);
    // us-east-1 stayed through the last reload: its counters carried over, never reset.
    assert!(target_requests(&admin, "us-east-1").await >= last_valid_requests);
    assert!(last_valid_requests > 0);
}

/// `claude` over `regions` (breaker opens on the first failure and stays open for the test), and
/// `busy`, which carries the load during the reload.
fn two_routes(sims: &[bedrock_balancer_sim::SimHandle], regions: &[usize]) -> String {
    let target = |i: usize, region: &str| target_yaml(MODEL, region, &sims[i].url(), 1);
    let busy = target_yaml(PROFILE, "us-west-2", &sims[1].url(), 1);
    let claude: Vec<String> = regions
        .iter()
        .map(|&i| target(i, ["us-east-1", "us-west-2", "eu-west-1"][i]))
        .collect();
    format!(
        "server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
routes:
  - name: claude
    balancer: {{ algorithm: round-robin, retries: 1, failover_criteria: [error, http_503, non_idempotent], max_fails: 1, fail_timeout: 600s }}
    targets:{}
  - name: busy
    targets:{}
",
        claude.concat(),
        busy,
    )
}

async fn claude_targets(admin: &str) -> Vec<serde_json::Value> {
    let mut resp = awc::Client::default()
        .get(format!("{admin}/admin/targets"))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().limit(1 << 20).await.unwrap();
    body["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["route"] == "claude")
        .cloned()
        .collect()
}

#[actix_rt::test]
async fn a_reload_under_load_that_adds_a_target_keeps_the_others_breaker_and_latency() {
    let sims = start_sims(&["us-east-1", "us-west-2", "eu-west-1"]).await;
    sims[0].set_faults(bedrock_balancer_sim::Faults {
        status: Some(503),
        ..Default::default()
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    let running = start_reloadable(&file, &two_routes(&sims, &[0, 1]));
    wait_until_ready(&running).await;
    let base = format!("http://{}", running.listen);
    let admin = format!("http://{}", running.admin);
    let client = awc::Client::default();
    let converse = |route: &str| {
        client
            .post(format!("{base}/model/{route}/converse"))
            .insert_header(("content-type", "application/json"))
            .send_body(converse_body("keep my state"))
    };

    // us-east-1 fails once and its circuit opens; us-west-2 answers and gets a latency history.
    let mut before = Vec::new();
    for _ in 0..100 {
        let mut resp = converse("claude").await.unwrap();
        let body = resp.body().await.unwrap();
        assert_eq!(resp.status(), 200, "{body:?} {:?}", resp.headers());
        before = claude_targets(&admin).await;
        if before[0]["state"] == "open" && before[1]["requests"].as_u64().unwrap() >= 5 {
            break;
        }
    }
    assert_eq!(before[0]["state"], "open", "{before:?}");
    assert!(before[1]["ewma_latency_ms"].as_f64().unwrap() > 0.0);

    let load = Arc::new(Load::default());
    let client_task = load.spawn_client(format!("{base}/model/busy/converse"));
    for _ in 0..500 {
        if load.ok() >= 20 {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(2)).await;
    }

    std::fs::write(file.path(), two_routes(&sims, &[0, 1, 2])).unwrap();
    let resp = client
        .post(format!("{admin}/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let after = claude_targets(&admin).await;
    let served_during = load.ok();
    load.stop(vec![client_task]).await;
    drop(running);

    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(after[2]["region"], "eu-west-1");
    assert_eq!(after[2]["requests"], 0);
    // us-east-1: still open, its wait running on from before, its counters kept.
    let remaining = |t: &serde_json::Value| t["open_remaining_ms"].as_u64().unwrap();
    assert_eq!(after[0]["state"], "open", "{after:?}");
    assert!(remaining(&after[0]) > 0 && remaining(&after[0]) <= remaining(&before[0]));
    for field in ["requests", "failures", "ready", "credentials_loaded"] {
        assert_eq!(after[0][field], before[0][field], "us-east-1 {field}");
    }
    // us-west-2 saw no request since: every field the same, its EWMA to the bit.
    assert_eq!(after[1], before[1]);
    assert!(served_during >= 20, "the load ran across the reload");
    assert_eq!(load.failed(), 0);
}
