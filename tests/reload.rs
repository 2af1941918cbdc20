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

#[actix_rt::test]
async fn ten_reloads_under_load_lose_no_request() {
    let sims = start_sims(&["us-east-1", "us-west-2", "eu-west-1"]).await;
    let urls: Vec<(&str, String)> = ["us-east-1", "us-west-2", "eu-west-1"]
        .into_iter()
        .zip(sims.iter().map(|s| s.url()))
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_owned();
    std::fs::write(&path, yaml(&urls[..2], 1)).unwrap();
    let loader_path = path.clone();
    let running = app::start(
        config::load(&path).unwrap(),
        Some(Box::new(move || config::load(&loader_path))),
    )
    .unwrap();
    let base = format!("http://{}", running.listen);
    let admin = format!("http://{}", running.admin);
    // Keeps the simulators and the gateway alive to the end of the test.
    let _harness = Harness {
        sims,
        gateway: running,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, url) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            format!("{base}/model/claude/converse"),
        );
        clients.push(actix_rt::spawn(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .finish();
            // Bounded: at most this many requests per client, whatever happens.
            for _ in 0..5000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let status = client
                    .post(&url)
                    .insert_header(("content-type", "application/json"))
                    .send_body(converse_body("under reload"))
                    .await
                    .map(|r| r.status().as_u16());
                match status {
                    Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }

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
        let before = ok.load(Ordering::Relaxed);
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
        while ok.load(Ordering::Relaxed) < before + 20 {
            assert!(
                Instant::now() < deadline,
                "step {i}: traffic stalled after the reload"
            );
            actix_rt::time::sleep(Duration::from_millis(2)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    assert!(ok.load(Ordering::Relaxed) >= 200);
    // us-east-1 stayed through the last reload: its counters carried over, never reset.
    assert!(target_requests(&admin, "us-east-1").await >= last_valid_requests);
    assert!(last_valid_requests > 0);
}
