//! Balancing, health and retry behaviour end to end: three simulated regions and the gateway
//! in-process on free ports, faults injected live, assertions on the simulators' counters and on
//! `/admin/targets` and `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bedrock_balancer_sim::Faults;
use common::*;
use futures_util::StreamExt;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];
const CONVERSE: &str = "converse";

/// Three regions, one route named `route`, each target with an optional `priority`.
async fn three_regions(route: &str, balancer: &str, priorities: [Option<u32>; 3]) -> Harness {
    let sims = start_sims(&REGIONS).await;
    let targets: Vec<String> = sims
        .iter()
        .zip(REGIONS)
        .zip(priorities)
        .map(|((sim, region), priority)| {
            let mut t = target_yaml(MODEL, region, &sim.url(), 100);
            if let Some(p) = priority {
                t.push_str(&format!("\n        priority: {p}"));
            }
            t
        })
        .collect();
    start_gateway(&config_yaml(route, balancer, &targets), sims).await
}

thread_local! {
    /// One pooled client per test thread (each `actix_rt::test` runs on its own thread).
    static CLIENT: awc::Client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
}

fn client() -> awc::Client {
    CLIENT.with(Clone::clone)
}

/// One Converse call through the gateway: status and the `x-bedrock-balancer-target` header.
async fn converse(h: &Harness, route: &str, session: Option<&str>) -> (u16, Option<String>) {
    let mut req = client()
        .post(h.url(&format!("/model/{route}/converse")))
        .insert_header(("content-type", "application/json"));
    if let Some(s) = session {
        req = req.insert_header(("x-session", s));
    }
    let mut resp = req.send_body(converse_body("hello")).await.unwrap();
    let _ = resp.body().limit(1 << 20).await.unwrap();
    let target = resp
        .headers()
        .get("x-bedrock-balancer-target")
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), target)
}

/// `n` calls, `concurrency` at a time; returns every status.
async fn converse_many(h: &Harness, route: &str, n: usize, concurrency: usize) -> Vec<u16> {
    futures_util::stream::iter(0..n)
        .map(|_| async { converse(h, route, None).await.0 })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

fn delta(after: &[u64], before: &[u64]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

async fn metric(h: &Harness, name: &str, route: &str) -> f64 {
    let mut resp = client().get(h.admin_url("/metrics")).send().await.unwrap();
    let body = resp.body().limit(1 << 22).await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let prefix = format!("{name}{{route=\"{route}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn latency(ms: u64) -> Faults {
    Faults {
        latency_ms: ms,
        ..Faults::default()
    }
}

fn failing(status: u16) -> Faults {
    Faults {
        status: Some(status),
        ..Faults::default()
    }
}

async fn lowest_latency_avoids_the_slow_region(latency_strategy: &str) {
    let balancer =
        format!("      algorithm: lowest-latency\n      latency_strategy: {latency_strategy}");
    let h = three_regions("claude", &balancer, [None; 3]).await;
    h.fault(0, latency(200));
    h.fault(1, latency(20));
    h.fault(2, latency(20));
    // Warm-up: every region gets sampled (unsampled ones are costed like the best).
    for _ in 0..9 {
        assert_eq!(converse(&h, "claude", None).await.0, 200);
    }
    let before = h.counts(CONVERSE);
    let statuses = converse_many(&h, "claude", 300, 8).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let got = delta(&h.counts(CONVERSE), &before);
    assert_eq!(got.iter().sum::<u64>(), 300);
    assert!(got[0] < 30, "{latency_strategy}: slow region got {got:?}");
    assert!(
        got[1] > 60 && got[2] > 60,
        "{latency_strategy}: the fast regions share the rest: {got:?}"
    );
    let slow = h.admin_target(REGIONS[0]).await;
    let fast = h.admin_target(REGIONS[1]).await;
    let field = if latency_strategy == "e2e" {
        "ewma_latency_ms"
    } else {
        "ewma_tpot_ms"
    };
    assert!(
        slow[field].as_f64().unwrap() > fast[field].as_f64().unwrap(),
        "{slow} vs {fast}"
    );
    assert!(
        fast["avg_completion_tokens"].as_f64().unwrap() > 0.0,
        "{fast}"
    );
}

#[actix_rt::test]
async fn lowest_latency_e2e_sends_little_to_the_slow_region() {
    lowest_latency_avoids_the_slow_region("e2e").await;
}

#[actix_rt::test]
async fn lowest_latency_tpot_sends_little_to_the_slow_region() {
    lowest_latency_avoids_the_slow_region("tpot").await;
}

#[actix_rt::test]
async fn a_throttled_region_rests_for_its_cooldown_then_gets_traffic_again() {
    let h = three_regions(
        "claude",
        "      retries: 2\n      failover_criteria: [error, timeout, http_429, non_idempotent]",
        [None; 3],
    )
    .await;
    h.fault(
        1,
        Faults {
            status: Some(429),
            retry_after: Some(5),
            ..Faults::default()
        },
    );
    // Round-robin reaches the throttled region within three requests; failover hides the 429.
    for _ in 0..3 {
        assert_eq!(converse(&h, "claude", None).await.0, 200);
    }
    assert_eq!(h.counts(CONVERSE)[1], 1);
    poll_until("the cooldown to show", Duration::from_secs(10), || async {
        h.admin_target(REGIONS[1]).await["cooldown_remaining_ms"]
            .as_u64()
            .unwrap()
            > 0
    })
    .await;
    let view = h.admin_target(REGIONS[1]).await;
    assert_eq!(view["ready"], false, "{view}");
    assert_eq!(view["state"], "closed", "cooldown never opens the circuit");
    let before = h.counts(CONVERSE);
    let statuses = converse_many(&h, "claude", 30, 4).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let got = delta(&h.counts(CONVERSE), &before);
    // Only meaningful if the cooldown (5 s) is still running: it is far longer than 30 calls.
    assert!(
        h.admin_target(REGIONS[1]).await["cooldown_remaining_ms"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(got[1], 0, "nothing reaches a cooling target: {got:?}");
    assert_eq!(got.iter().sum::<u64>(), 30);

    h.fault(1, Faults::default());
    poll_until(
        "traffic to return after the cooldown",
        Duration::from_secs(20),
        || async {
            assert_eq!(converse(&h, "claude", None).await.0, 200);
            h.counts(CONVERSE)[1] > 1
        },
    )
    .await;
    let view = h.admin_target(REGIONS[1]).await;
    assert_eq!(view["cooldown_remaining_ms"], 0, "{view}");
    assert_eq!(view["ready"], true, "{view}");
    let before = h.counts(CONVERSE);
    converse_many(&h, "claude", 30, 1).await;
    assert_eq!(delta(&h.counts(CONVERSE), &before), vec![10, 10, 10]);
}

#[actix_rt::test]
async fn the_circuit_opens_after_max_fails_admits_one_trial_and_closes_on_success() {
    let h = three_regions(
        "claude",
        "      retries: 2\n      failover_criteria: [error, timeout, http_503, non_idempotent]\n      max_fails: 3\n      fail_timeout: 3s",
        [None; 3],
    )
    .await;
    h.fault(1, failing(503));
    // Round-robin: the failing region sees one request in three; every client call succeeds.
    for _ in 0..9 {
        assert_eq!(converse(&h, "claude", None).await.0, 200);
    }
    assert_eq!(h.counts(CONVERSE)[1], 3);
    poll_until("the circuit to open", Duration::from_secs(10), || async {
        h.admin_target(REGIONS[1]).await["state"] == "open"
    })
    .await;
    let view = h.admin_target(REGIONS[1]).await;
    assert!(view["open_remaining_ms"].as_u64().unwrap() > 0, "{view}");
    assert_eq!(view["ready"], false);

    // While open, nothing reaches it.
    let statuses = converse_many(&h, "claude", 20, 4).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        h.admin_target(REGIONS[1]).await["open_remaining_ms"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(h.counts(CONVERSE)[1], 3);

    // After fail_timeout, one trial only, even under concurrency; it fails and re-opens.
    poll_until("fail_timeout to pass", Duration::from_secs(10), || async {
        h.admin_target(REGIONS[1]).await["ready"] == true
    })
    .await;
    let statuses = converse_many(&h, "claude", 16, 8).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(h.counts(CONVERSE)[1], 4, "exactly one half-open trial");
    poll_until(
        "the circuit to re-open",
        Duration::from_secs(10),
        || async { h.admin_target(REGIONS[1]).await["state"] == "open" },
    )
    .await;

    // Lift the fault: the next trial succeeds, closes the circuit, and traffic resumes.
    h.fault(1, Faults::default());
    poll_until(
        "fail_timeout to pass again",
        Duration::from_secs(10),
        || async { h.admin_target(REGIONS[1]).await["ready"] == true },
    )
    .await;
    poll_until("the trial to close it", Duration::from_secs(10), || async {
        assert_eq!(converse(&h, "claude", None).await.0, 200);
        h.admin_target(REGIONS[1]).await["state"] == "closed"
    })
    .await;
    assert_eq!(h.counts(CONVERSE)[1], 5);
    let view = h.admin_target(REGIONS[1]).await;
    assert_eq!(view["open_remaining_ms"], 0, "{view}");
    let before = h.counts(CONVERSE);
    converse_many(&h, "claude", 30, 1).await;
    assert_eq!(delta(&h.counts(CONVERSE), &before), vec![10, 10, 10]);
}

/// A 404 and an `AccessDeniedException` name what the client asked for and never open the
/// circuit; a 403 that refuses the gateway's own credentials (the client's never go upstream)
/// fails over whatever the criteria and counts toward the breaker.
#[actix_rt::test]
async fn a_404_is_the_clients_but_a_403_refuses_the_gateway_and_opens_the_circuit() {
    let h = three_regions(
        "claude",
        "      retries: 2\n      failover_criteria: [error, timeout, http_503, non_idempotent]\n      max_fails: 1\n      fail_timeout: 5s",
        [None; 3],
    )
    .await;
    for status in [404, 403] {
        h.fault(1, failing(status));
        let before = h.counts(CONVERSE);
        let statuses = converse_many(&h, "claude", 12, 1).await;
        assert_eq!(
            statuses.iter().filter(|s| **s == status).count(),
            4,
            "{statuses:?}"
        );
        assert_eq!(delta(&h.counts(CONVERSE), &before), vec![4, 4, 4]);
        let view = h.admin_target(REGIONS[1]).await;
        assert_eq!(view["state"], "closed", "{view}");
        assert_eq!(view["ready"], true, "{view}");
    }

    h.fault(
        1,
        Faults {
            exception: Some("UnrecognizedClientException".into()),
            ..failing(403)
        },
    );
    let before = h.counts(CONVERSE);
    let statuses = converse_many(&h, "claude", 12, 1).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let served = delta(&h.counts(CONVERSE), &before);
    assert!(served[1] >= 1, "{served:?}");
    assert_eq!(served[0] + served[2], 12, "{served:?}");
    poll_until(
        "the refusing region's circuit to open",
        Duration::from_secs(10),
        || async { h.admin_target(REGIONS[1]).await["state"] == "open" },
    )
    .await;
}

#[actix_rt::test]
async fn the_second_priority_tier_serves_only_when_the_first_is_down() {
    let h = three_regions(
        "claude",
        "      algorithm: priority\n      retries: 2\n      failover_criteria: [error, timeout, http_503, non_idempotent]\n      max_fails: 1\n      fail_timeout: 10s",
        [Some(1), Some(1), Some(2)],
    )
    .await;
    let statuses = converse_many(&h, "claude", 40, 4).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(h.counts(CONVERSE), vec![20, 20, 0]);

    // One tier-1 region down: the other tier-1 region takes everything.
    h.fault(0, failing(503));
    let statuses = converse_many(&h, "claude", 20, 1).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    poll_until("us-east-1 to open", Duration::from_secs(10), || async {
        h.admin_target(REGIONS[0]).await["state"] == "open"
    })
    .await;
    let counts = h.counts(CONVERSE);
    assert_eq!(
        counts[2], 0,
        "tier 2 idle while tier 1 has a ready target: {counts:?}"
    );

    // The whole first tier down: tier 2 takes the traffic.
    h.fault(1, failing(503));
    for _ in 0..3 {
        assert_eq!(converse(&h, "claude", None).await.0, 200);
    }
    poll_until("us-west-2 to open", Duration::from_secs(10), || async {
        h.admin_target(REGIONS[1]).await["state"] == "open"
    })
    .await;
    let before = h.counts(CONVERSE);
    let statuses = converse_many(&h, "claude", 20, 4).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(delta(&h.counts(CONVERSE), &before), vec![0, 0, 20]);
}

#[actix_rt::test]
async fn consistent_hashing_keeps_a_session_on_one_region_and_spreads_sessions() {
    let h = three_regions(
        "claude",
        "      algorithm: consistent-hashing\n      hash_on_header: X-Session",
        [None; 3],
    )
    .await;
    let results: Vec<(u16, Option<String>)> = futures_util::stream::iter(0..1000)
        .map(|_| converse(&h, "claude", Some("conversation-42")))
        .buffer_unordered(4)
        .collect()
        .await;
    assert!(results.iter().all(|(s, _)| *s == 200));
    let first = results[0].1.clone().unwrap();
    assert!(results.iter().all(|(_, t)| t.as_deref() == Some(&first)));
    let counts = h.counts(CONVERSE);
    assert_eq!(
        counts.iter().filter(|c| **c == 1000).count(),
        1,
        "{counts:?}"
    );
    assert_eq!(counts.iter().sum::<u64>(), 1000);

    let before = h.counts(CONVERSE);
    for i in 0..90 {
        let session = format!("session-{i}");
        let (_, a) = converse(&h, "claude", Some(&session)).await;
        let (_, b) = converse(&h, "claude", Some(&session)).await;
        assert_eq!(a, b, "{session} moved");
    }
    let got = delta(&h.counts(CONVERSE), &before);
    assert!(
        got.iter().all(|c| *c >= 20),
        "sessions spread over all regions: {got:?}"
    );
}

#[actix_rt::test]
async fn least_connections_sends_fewer_to_the_slow_region() {
    let h = three_regions("claude", "      algorithm: least-connections", [None; 3]).await;
    h.fault(0, latency(200));
    h.fault(1, latency(20));
    h.fault(2, latency(20));
    let statuses = converse_many(&h, "claude", 150, 8).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let got = h.counts(CONVERSE);
    assert!(
        got[0] * 3 < got[1].min(got[2]),
        "the slow region holds its connections longer: {got:?}"
    );
}

#[actix_rt::test]
async fn with_every_target_unready_the_least_bad_one_is_still_tried() {
    let h = three_regions(
        "forced",
        "      retries: 2\n      failover_criteria: [error, timeout, http_429, non_idempotent]",
        [None; 3],
    )
    .await;
    for i in 0..3 {
        h.fault(
            i,
            Faults {
                status: Some(429),
                retry_after: Some(10),
                ..Faults::default()
            },
        );
    }
    assert_eq!(converse(&h, "forced", None).await.0, 429);
    assert_eq!(h.counts(CONVERSE), vec![1, 1, 1]);
    poll_until(
        "every target to cool down",
        Duration::from_secs(10),
        || async {
            let mut all = true;
            for region in REGIONS {
                all &= h.admin_target(region).await["cooldown_remaining_ms"]
                    .as_u64()
                    .unwrap()
                    > 0;
            }
            all
        },
    )
    .await;
    let mut resp = client().get(h.admin_url("/readyz")).send().await.unwrap();
    let _ = resp.body().await;
    assert_eq!(resp.status().as_u16(), 503, "no target ready");

    let forced_before = metric(&h, "bedrock_balancer_forced_picks_total", "forced").await;
    let (status, _) = converse(&h, "forced", None).await;
    assert_eq!(status, 429, "the least-bad target's own answer");
    assert_eq!(h.counts(CONVERSE).iter().sum::<u64>(), 4, "tried, once");
    let forced_after = metric(&h, "bedrock_balancer_forced_picks_total", "forced").await;
    assert_eq!(forced_after - forced_before, 1.0);
}
