//! Timeouts, failover of sent requests and the retry budget end to end: simulated regions and the
//! gateway in-process on free ports, faults injected live, assertions on what each region saw.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bedrock_balancer::eventstream::Frame;
use bedrock_balancer_sim::{Faults, SimHandle};
use common::*;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
/// The same model through its US inference profile, for a second route (a model id selects one
/// route).
const PROFILE: &str = "us.anthropic.claude-3-haiku-20240307-v1:0";
const REGIONS: [&str; 5] = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
];
/// A response head 20 s late: far beyond the 1 s `read_timeout` of these tests, and short of the
/// 61 s that `write_timeout + read_timeout` used to wait.
fn slow_head() -> Faults {
    Faults {
        latency_ms: 20_000,
        ..Faults::default()
    }
}
/// Generous for a 1 s timeout on a loaded machine, yet far below the 61 s of the old wait.
const PROMPTLY: Duration = Duration::from_secs(20);

/// Targets for `(url, region)`s in `priority` order (the first is always tried first).
fn tiered(targets: &[(String, &str)]) -> Vec<String> {
    targets
        .iter()
        .enumerate()
        .map(|(tier, (url, region))| {
            format!(
                "{}\n        priority: {}",
                target_yaml(MODEL, region, url, 100),
                tier + 1
            )
        })
        .collect()
}

/// Each simulator's URL with its region.
fn located(sims: &[SimHandle], regions: &[&'static str]) -> Vec<(String, &'static str)> {
    sims.iter()
        .map(SimHandle::url)
        .zip(regions.iter().copied())
        .collect()
}

fn balancer(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A route `tiers` over `regions` simulators, tried in order, with the given criteria.
async fn tiers(regions: usize, criteria: &str, extra: &[&str]) -> Harness {
    let sims = start_sims(&REGIONS[..regions]).await;
    let targets = tiered(&located(&sims, &REGIONS));
    let mut lines = vec!["algorithm: priority", "retries: 1", criteria];
    lines.extend_from_slice(extra);
    start_gateway(&config_yaml("tiers", &balancer(&lines), &targets), sims).await
}

struct Answer {
    status: u16,
    attempts: Option<String>,
    body: bytes::Bytes,
    took: Duration,
}

async fn post(h: &Harness, route: &str, operation: &str) -> Answer {
    let started = Instant::now();
    let mut resp = awc::Client::builder()
        .timeout(Duration::from_secs(90))
        .finish()
        .post(h.url(&format!("/model/{route}/{operation}")))
        .insert_header(("content-type", "application/json"))
        .send_body(converse_body("hello"))
        .await
        .unwrap();
    let body = resp.body().limit(1 << 22).await.unwrap();
    Answer {
        status: resp.status().as_u16(),
        attempts: resp
            .headers()
            .get("x-bedrock-balancer-attempts")
            .map(|v| v.to_str().unwrap().to_owned()),
        body,
        took: started.elapsed(),
    }
}

/// A Converse call to a route with `read_timeout: 1000` whose first region answers 20 s late.
async fn post_to_a_silent_first_region(criteria: &str) -> (Harness, Answer) {
    let h = tiers(2, criteria, &["read_timeout: 1000"]).await;
    h.fault(0, slow_head());
    let answer = post(&h, "tiers", "converse").await;
    (h, answer)
}

#[actix_rt::test]
async fn a_silent_region_is_left_after_read_timeout_not_write_plus_read() {
    let (h, answer) =
        post_to_a_silent_first_region("failover_criteria: [error, timeout, non_idempotent]").await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.attempts.as_deref(), Some("2"));
    assert_eq!(h.counts("converse"), vec![1, 1]);
    assert!(answer.took >= Duration::from_secs(1), "{:?}", answer.took);
    assert!(answer.took < PROMPTLY, "failover took {:?}", answer.took);
}

#[actix_rt::test]
async fn a_timed_out_post_goes_to_a_second_region_only_with_non_idempotent() {
    let (h, answer) = post_to_a_silent_first_region("failover_criteria: [error, timeout]").await;
    assert_eq!(answer.status, 504, "{:?}", answer.body);
    assert!(
        String::from_utf8_lossy(&answer.body).contains("no response head"),
        "{:?}",
        answer.body
    );
    assert_eq!(
        h.counts("converse"),
        vec![1, 0],
        "the request was sent and may be generating: it is not sent again"
    );
    assert!(answer.took < PROMPTLY, "gave up after {:?}", answer.took);
}

#[actix_rt::test]
async fn a_refused_connection_fails_over_under_error_alone() {
    let sims = start_sims(&REGIONS[1..2]).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let lines = [
        "algorithm: priority",
        "retries: 1",
        "failover_criteria: [error]",
    ];
    let targets = tiered(&[(closed_url, REGIONS[0]), (sims[0].url(), REGIONS[1])]);
    let h = start_gateway(&config_yaml("tiers", &balancer(&lines), &targets), sims).await;
    let answer = post(&h, "tiers", "converse").await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.attempts.as_deref(), Some("2"));
    assert_eq!(h.counts("converse"), vec![1]);
}

#[actix_rt::test]
async fn a_stream_silent_between_chunks_for_longer_than_read_timeout_ends_with_an_error_frame() {
    let h = tiers(
        1,
        "failover_criteria: [error, timeout, non_idempotent]",
        &["read_timeout: 1000"],
    )
    .await;
    h.fault(
        0,
        Faults {
            inter_token_ms: 20_000,
            ..Faults::default()
        },
    );
    let answer = post(&h, "tiers", "converse-stream").await;
    assert_eq!(answer.status, 200);
    let frames = decode_frames(&answer.body);
    assert!(
        matches!(frames.first(), Some(Frame::Event { .. })),
        "the first event came before the silence: {frames:?}"
    );
    assert!(
        matches!(frames.last(), Some(Frame::Exception { .. })),
        "{frames:?}"
    );
    assert!(
        answer.took < PROMPTLY,
        "the stream ended after {:?}",
        answer.took
    );
    assert_eq!(h.counts("converse-stream"), vec![1]);
}

/// The retry budget's floor (retry_budget.rs): 10 retries a second, one second's worth at once.
const FLOOR_PER_SEC: f64 = 10.0;
const FLOOR_BURST: f64 = 10.0;

#[actix_rt::test]
async fn a_503_storm_on_every_region_stays_within_a_fifth_more_plus_the_floor() {
    let sims = start_sims(&REGIONS).await;
    let located = located(&sims, &REGIONS);
    let criteria = "failover_criteria: [error, timeout, http_503, non_idempotent]";
    let storm_targets: Vec<String> = located[..3]
        .iter()
        .map(|(url, region)| target_yaml(PROFILE, region, url, 100))
        .collect();
    // A second, quiet route on two other regions, the first of which also answers 503.
    let yaml = format!(
        "{}  - name: quiet\n    balancer:\n{}\n    targets:{}\n",
        config_yaml(
            "storm",
            &balancer(&["retries: 5", criteria]),
            &storm_targets
        ),
        balancer(&["algorithm: priority", "retries: 5", criteria]),
        tiered(&located[3..]).concat(),
    );
    let h = start_gateway(&yaml, sims).await;
    for i in 0..4 {
        h.fault(
            i,
            Faults {
                status: Some(503),
                ..Faults::default()
            },
        );
    }

    // 32 clients send 8 requests each, pausing between them as real clients do: the storm lasts
    // about a second while every 503 comes back at once (a floor that refills as fast as the
    // 503s return would fund almost every retry).
    const CLIENTS: usize = 32;
    const EACH: usize = 8;
    const N: usize = CLIENTS * EACH;
    let started = Instant::now();
    let client = |_| async {
        let mut statuses = Vec::with_capacity(EACH);
        for i in 0..EACH {
            if i > 0 {
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
            statuses.push(post(&h, "storm", "converse").await.status);
        }
        statuses
    };
    let statuses: Vec<u16> = futures_util::future::join_all((0..CLIENTS).map(client))
        .await
        .concat();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    let attempts: u64 = h.counts("converse")[..3].iter().sum();
    let n = N as f64;
    let bound = 1.2 * n + FLOOR_BURST + FLOOR_PER_SEC * elapsed;
    eprintln!("storm: {attempts} upstream attempts for {N} requests in {elapsed:.2} s");
    assert!(attempts > N as u64, "some retries are still allowed");
    assert!(
        attempts as f64 <= bound,
        "{attempts} upstream attempts for {N} requests in {elapsed:.2} s: over {bound:.0}"
    );

    for _ in 0..5 {
        let answer = post(&h, "quiet", "converse").await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert_eq!(answer.attempts.as_deref(), Some("2"));
    }
    assert_eq!(h.counts("converse")[3..], [5, 5]);
}
