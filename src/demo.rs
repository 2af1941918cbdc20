//! `bedrock-balancer demo`: three simulated Bedrock regions on loopback and the gateway in front of
//! them, so the whole product can be tried with no AWS account.

use std::path::PathBuf;

use bedrock_balancer::{app, config};
use bedrock_balancer_sim as sim;

/// The regions the demo simulates, and the variable `config/demo.yaml` reads each one's URL from.
const REGIONS: [(&str, &str); 3] = [
    ("us-east-1", "SIM_US_EAST_1"),
    ("us-west-2", "SIM_US_WEST_2"),
    ("eu-west-1", "SIM_EU_WEST_1"),
];

pub async fn run(config_path: PathBuf) -> std::io::Result<()> {
    let mut sims = Vec::new();
    for (region, _) in REGIONS {
        let mut options = sim::SimOptions::new(region);
        options.listen = ([127, 0, 0, 1], 0).into();
        sims.push(sim::start(options).await?);
    }
    let urls: Vec<(&str, String)> = REGIONS
        .iter()
        .zip(&sims)
        .map(|((_, var), sim)| (*var, sim.url()))
        .collect();
    let printed = urls.clone();
    let env = move |name: &str| {
        urls.iter()
            .find(|(var, _)| *var == name)
            .map(|(_, url)| url.clone())
            .or_else(|| std::env::var(name).ok())
    };
    let config = config::load_with_env(&config_path, &env)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let reload_path = config_path.clone();
    let loader = Box::new(move || config::load_with_env(&reload_path, &env));
    let running = app::start(config, Some(loader)).map_err(std::io::Error::other)?;
    let base = format!("http://{}", running.listen);
    println!(
        "bedrock-balancer demo: gateway on {base}, admin on http://{}",
        running.admin
    );
    for ((region, _), url) in REGIONS.iter().zip(&printed) {
        println!("  simulated {region}: {}", url.1);
    }
    println!(
        r#"
Try it (Bedrock-native Converse, balanced across the three regions):
  curl -s {base}/model/claude/converse -H 'content-type: application/json' \
    -d '{{"messages":[{{"role":"user","content":[{{"text":"Hello there"}}]}}]}}'
Streaming:
  curl -sN {base}/model/claude/converse-stream -H 'content-type: application/json' \
    -d '{{"messages":[{{"role":"user","content":[{{"text":"Stream please"}}]}}]}}' | strings
Live target state:
  curl -s http://{admin}/admin/targets
Stop with Ctrl-C."#,
        admin = running.admin
    );
    let result = running.serve_until_signalled().await;
    for sim in sims {
        sim.stop().await;
    }
    result
}
