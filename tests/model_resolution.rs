//! Which targets a model name reaches: a model id only its own targets (balanced and failed over
//! among them), a route name or one of its `model_aliases` every target of the route.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bedrock_balancer_sim::Faults;
use common::*;

/// Served in two regions.
const PINNED: &str = "anthropic.claude-3-haiku-20240307-v1:0";
/// Served in the third region, by the same route.
const OTHER: &str = "us.anthropic.claude-3-haiku-20240307-v1:0";
const REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];
const CONVERSE: &str = "converse";

/// Route `claude` (round-robin, with `aliases`): `PINNED` in the first two regions, `OTHER` in
/// the third.
async fn route_with_aliases(aliases: &str, balancer: &str) -> Harness {
    let sims = start_sims(&REGIONS).await;
    let targets: String = sims
        .iter()
        .zip(REGIONS)
        .zip([PINNED, PINNED, OTHER])
        .map(|((sim, region), model)| target_yaml(model, region, &sim.url(), 1))
        .collect();
    let yaml = format!(
        r#"
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
routes:
  - name: claude
    model_aliases: [{aliases}]
    balancer: {{ algorithm: round-robin, {balancer} }}
    targets:{targets}
"#
    );
    start_gateway(&yaml, sims).await
}

async fn mixed_route(balancer: &str) -> Harness {
    route_with_aliases("claude-any", balancer).await
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

/// `n` Converse calls for `model`, one after another: every status and the converse calls each
/// region saw meanwhile.
async fn converse_n(h: &Harness, model: &str, n: usize) -> (Vec<u16>, Vec<u64>) {
    let before = h.counts(CONVERSE);
    let mut statuses = Vec::with_capacity(n);
    for _ in 0..n {
        let mut resp = client()
            .post(h.url(&format!("/model/{model}/converse")))
            .insert_header(("content-type", "application/json"))
            .send_body(converse_body("hello"))
            .await
            .unwrap();
        let _ = resp.body().limit(1 << 20).await.unwrap();
        statuses.push(resp.status().as_u16());
    }
    let after = h.counts(CONVERSE);
    let seen = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    (statuses, seen)
}

#[actix_rt::test]
async fn a_model_id_reaches_only_its_own_targets_and_spreads_over_them() {
    let h = mixed_route("retries: 0").await;
    let (statuses, seen) = converse_n(&h, PINNED, 12).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // Round-robin over the pinned targets alone: an exact split, nothing to the other model.
    assert_eq!(seen, vec![6, 6, 0]);
    let (statuses, seen) = converse_n(&h, OTHER, 4).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(seen, vec![0, 0, 4]);
}

#[actix_rt::test]
async fn the_route_name_and_an_alias_spread_over_every_target() {
    let h = mixed_route("retries: 0").await;
    for name in ["claude", "claude-any"] {
        let (statuses, seen) = converse_n(&h, name, 9).await;
        assert!(statuses.iter().all(|&s| s == 200), "{name}: {statuses:?}");
        assert_eq!(seen, vec![3, 3, 3], "{name}");
    }
}

#[actix_rt::test]
async fn failover_stays_among_the_model_ids_targets() {
    let h =
        mixed_route("retries: 5, failover_criteria: [error, timeout, http_503, non_idempotent]")
            .await;
    let down = Faults {
        status: Some(503),
        ..Faults::default()
    };
    // One of the pinned model's regions fails: the other pinned region serves everything.
    h.fault(0, down.clone());
    let (statuses, seen) = converse_n(&h, PINNED, 6).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(
        seen[2], 0,
        "a pinned request failed over to another model: {seen:?}"
    );
    assert_eq!(seen[1], 6, "{seen:?}");
    // The other model's only region fails: its error comes back, no other model answers.
    h.fault(0, Faults::default());
    h.fault(2, down);
    let (statuses, seen) = converse_n(&h, OTHER, 3).await;
    assert_eq!(statuses, vec![503; 3]);
    assert_eq!(seen, vec![0, 0, 3]);
}

#[actix_rt::test]
async fn an_alias_naming_a_model_id_spreads_it_over_the_whole_route() {
    // A client stuck on one model id (an SDK default) is spread over every target.
    let h = route_with_aliases(&format!("claude-any, \"{PINNED}\""), "retries: 0").await;
    let (statuses, seen) = converse_n(&h, PINNED, 9).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(seen, vec![3, 3, 3]);
    // The route's other model id stays pinned.
    let (_, seen) = converse_n(&h, OTHER, 2).await;
    assert_eq!(seen, vec![0, 0, 2]);
}
