//! Session affinity end to end: three simulated regions behind the gateway, sessions named by
//! Claude Code's `x-claude-code-session-id` or a route's `hash_on_header`, where each request
//! landed read from the simulators' counters and the `x-bedrock-balancer-target` header.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bedrock_balancer_sim::Faults;
use common::*;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];
const CONVERSE: &str = "converse";
const CLAUDE_CODE: &str = "x-claude-code-session-id";

async fn three_regions(route: &str, balancer: &str) -> Harness {
    let sims = start_sims(&REGIONS).await;
    let targets: Vec<String> = sims
        .iter()
        .zip(REGIONS)
        .map(|(sim, region)| target_yaml(MODEL, region, &sim.url(), 100))
        .collect();
    start_gateway(&config_yaml(route, balancer, &targets), sims).await
}

/// One Converse call, with `header` when given: its status and the index of the region that
/// served it.
async fn converse(h: &Harness, route: &str, header: Option<(&str, &str)>) -> (u16, Option<usize>) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut req = client
        .post(h.url(&format!("/model/{route}/converse")))
        .insert_header(("content-type", "application/json"));
    if let Some(header) = header {
        req = req.insert_header(header);
    }
    let mut resp = req.send_body(converse_body("hello")).await.unwrap();
    let _ = resp.body().limit(1 << 20).await.unwrap();
    let region = resp
        .headers()
        .get("x-bedrock-balancer-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|label| {
            REGIONS
                .iter()
                .position(|r| label.starts_with(&format!("{r}/")))
        });
    (resp.status().as_u16(), region)
}

/// `bedrock_balancer_session_affinity_total` for a route and result.
async fn affinity_total(h: &Harness, route: &str, result: &str) -> u64 {
    let mut resp = awc::Client::default()
        .get(h.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(resp.body().limit(1 << 22).await.unwrap().to_vec()).unwrap();
    // The text format lists labels by name.
    let prefix = format!(
        "bedrock_balancer_session_affinity_total{{result=\"{result}\",route=\"{route}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn delta(after: &[u64], before: &[u64]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

#[actix_rt::test]
async fn fifty_requests_of_a_session_stay_on_one_target_while_others_round_robin() {
    let h = three_regions("rr-session", "      algorithm: round-robin").await;
    let session = Some((CLAUDE_CODE, "5f1c-session"));
    let (status, home) = converse(&h, "rr-session", session).await;
    assert_eq!(status, 200);
    let home = home.unwrap();
    let before = h.counts(CONVERSE);
    for _ in 0..49 {
        assert_eq!(converse(&h, "rr-session", session).await, (200, Some(home)));
        // Requests naming no session are untouched by the pin: exact round-robin shares.
        for _ in 0..3 {
            assert_eq!(converse(&h, "rr-session", None).await.0, 200);
        }
    }
    let mut expected = vec![49; 3];
    expected[home] += 49;
    assert_eq!(delta(&h.counts(CONVERSE), &before), expected);
    assert_eq!(affinity_total(&h, "rr-session", "new").await, 1);
    assert_eq!(affinity_total(&h, "rr-session", "hit").await, 49);
    assert_eq!(affinity_total(&h, "rr-session", "moved").await, 0);

    // Another session is pinned on its own, wherever round-robin first put it.
    let other = Some((CLAUDE_CODE, "another-session"));
    let (_, other_home) = converse(&h, "rr-session", other).await;
    for _ in 0..5 {
        assert_eq!(converse(&h, "rr-session", other).await.1, other_home);
        assert_eq!(converse(&h, "rr-session", session).await.1, Some(home));
    }
}

#[actix_rt::test]
async fn when_its_target_opens_its_circuit_the_session_moves_and_stays_moved() {
    // No failover on 503: the session's requests meet the failing target until its circuit opens.
    let h = three_regions(
        "breaker-session",
        "      retries: 2\n      max_fails: 3\n      fail_timeout: 5s",
    )
    .await;
    let session = Some((CLAUDE_CODE, "session-moving"));
    let (status, home) = converse(&h, "breaker-session", session).await;
    assert_eq!(status, 200);
    let home = home.unwrap();
    h.fault(
        home,
        Faults {
            status: Some(503),
            ..Faults::default()
        },
    );
    for _ in 0..3 {
        assert_eq!(
            converse(&h, "breaker-session", session).await,
            (503, Some(home)),
            "the session keeps to its target while that target is ready"
        );
    }
    poll_until("the circuit to open", Duration::from_secs(5), || async {
        h.admin_target(REGIONS[home]).await["state"] == "open"
    })
    .await;

    let (status, new_home) = converse(&h, "breaker-session", session).await;
    assert_eq!(status, 200);
    let new_home = new_home.unwrap();
    assert_ne!(new_home, home);
    let before = h.counts(CONVERSE);
    for _ in 0..45 {
        assert_eq!(
            converse(&h, "breaker-session", session).await,
            (200, Some(new_home))
        );
    }
    let mut expected = vec![0; 3];
    expected[new_home] = 45;
    assert_eq!(delta(&h.counts(CONVERSE), &before), expected);

    // The old target recovers and serves again (traffic without a session closes its
    // circuit), yet the session stays where its cache now is.
    h.fault(home, Faults::default());
    poll_until("fail_timeout to pass", Duration::from_secs(10), || async {
        h.admin_target(REGIONS[home]).await["ready"] == true
    })
    .await;
    poll_until(
        "a trial to close the circuit",
        Duration::from_secs(5),
        || async {
            assert_eq!(converse(&h, "breaker-session", None).await.0, 200);
            h.admin_target(REGIONS[home]).await["state"] == "closed"
        },
    )
    .await;
    for _ in 0..10 {
        assert_eq!(
            converse(&h, "breaker-session", session).await,
            (200, Some(new_home))
        );
    }
    assert_eq!(affinity_total(&h, "breaker-session", "new").await, 1);
    assert_eq!(affinity_total(&h, "breaker-session", "moved").await, 1);
    assert_eq!(affinity_total(&h, "breaker-session", "hit").await, 55);
}

#[actix_rt::test]
async fn a_routes_own_hash_on_header_names_sessions_and_a_zero_ttl_turns_affinity_off() {
    let h = three_regions(
        "own-header",
        "      algorithm: least-connections\n      hash_on_header: X-Conversation",
    )
    .await;
    let conversation = Some(("x-conversation", "conversation-7"));
    let (_, home) = converse(&h, "own-header", conversation).await;
    let before = h.counts(CONVERSE);
    for _ in 0..20 {
        assert_eq!(converse(&h, "own-header", conversation).await, (200, home));
    }
    assert_eq!(delta(&h.counts(CONVERSE), &before).iter().max(), Some(&20));
    // Claude Code's header names sessions on such a route too.
    let claude = Some((CLAUDE_CODE, "claude-session"));
    let (_, claude_home) = converse(&h, "own-header", claude).await;
    for _ in 0..10 {
        assert_eq!(converse(&h, "own-header", claude).await.1, claude_home);
    }

    let off = three_regions("no-affinity", "      session_affinity_ttl: 0s").await;
    let before = off.counts(CONVERSE);
    for _ in 0..30 {
        assert_eq!(converse(&off, "no-affinity", claude).await.0, 200);
    }
    assert_eq!(delta(&off.counts(CONVERSE), &before), vec![10, 10, 10]);
    assert_eq!(affinity_total(&off, "no-affinity", "new").await, 0);
}
