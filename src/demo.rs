//! `bedrock-balancer demo`: three simulated Bedrock regions and a simulated Anthropic API on
//! loopback, and the gateway in front of them, so the whole product can be tried with no AWS
//! account and no Anthropic key.

use std::net::SocketAddr;
use std::path::PathBuf;

use bedrock_balancer::app;
use bedrock_balancer::config::{self, Config, ConfigErrors};
use bedrock_balancer_sim::{self as sim, SimProvider};

/// A simulator the demo starts: the name it is printed under (a Bedrock simulator's region), the
/// variable `config/demo.yaml` reads its URL from, and the API it serves.
struct DemoSim {
    name: &'static str,
    var: &'static str,
    provider: SimProvider,
    /// Whether the printed failover instructions throttle it: `claude-overflow`'s first tier.
    throttled: bool,
}

const SIMS: [DemoSim; 4] = [
    DemoSim {
        name: "us-east-1",
        var: "SIM_US_EAST_1",
        provider: SimProvider::Bedrock,
        throttled: true,
    },
    DemoSim {
        name: "us-west-2",
        var: "SIM_US_WEST_2",
        provider: SimProvider::Bedrock,
        throttled: true,
    },
    DemoSim {
        name: "eu-west-1",
        var: "SIM_EU_WEST_1",
        provider: SimProvider::Bedrock,
        throttled: false,
    },
    // Its answers say "Hello from anthropic", which tells it apart from the regions at a glance.
    DemoSim {
        name: "anthropic",
        var: "SIM_ANTHROPIC",
        provider: SimProvider::Anthropic,
        throttled: false,
    },
];

/// The `x-api-key` the simulated Anthropic API accepts: the one `config/demo.yaml` gives the
/// `claude-overflow` route's Anthropic target. A made-up key, like the AWS example key pair the
/// simulated regions accept.
const ANTHROPIC_KEY: &str = "sk-ant-demo-not-a-real-key";

/// The `Retry-After` of the printed throttle, so the cooldown is short enough to watch end.
const THROTTLE_RETRY_AFTER_SECS: u64 = 5;

/// Addresses that replace the config's `server.listen` / `server.admin_listen` (port 0 picks a
/// free one), so the demo can run beside anything already on 8080 / 9090.
#[derive(Debug, Clone, Copy)]
pub struct Listeners {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
}

impl Listeners {
    fn apply(self, mut config: Config) -> Config {
        if let Some(listen) = self.listen {
            config.server.listen = listen;
        }
        if let Some(admin_listen) = self.admin_listen {
            config.server.admin_listen = admin_listen;
        }
        config
    }
}

pub async fn run(config_path: PathBuf, listeners: Listeners) -> std::io::Result<()> {
    let mut sims = Vec::new();
    for demo_sim in &SIMS {
        let mut options = sim::SimOptions::new(demo_sim.name);
        options.provider = demo_sim.provider;
        if demo_sim.provider == SimProvider::Anthropic {
            options.api_keys = vec![ANTHROPIC_KEY.to_owned()];
        }
        sims.push(sim::start(options).await?);
    }
    let urls: Vec<(&DemoSim, String)> = SIMS
        .iter()
        .zip(sims.iter().map(sim::SimHandle::url))
        .collect();
    let env_urls: Vec<(&str, String)> = urls.iter().map(|(s, url)| (s.var, url.clone())).collect();
    let env = move |name: &str| {
        env_urls
            .iter()
            .find(|(var, _)| *var == name)
            .map(|(_, url)| url.clone())
            .or_else(|| std::env::var(name).ok())
    };
    let load = move |path: &PathBuf| -> Result<Config, ConfigErrors> {
        config::load_with_env(path, &env).map(|config| listeners.apply(config))
    };
    let config = load(&config_path).map_err(|e| std::io::Error::other(e.to_string()))?;
    let loader = Box::new(move || load(&config_path));
    let running = app::start(config, Some(loader)).map_err(std::io::Error::other)?;
    print_instructions(
        &format!("http://{}", running.listen),
        &format!("http://{}", running.admin),
        &urls,
    );
    let result = running.serve_until_signalled().await;
    for sim in sims {
        sim.stop().await;
    }
    result
}

fn print_instructions(base: &str, admin: &str, urls: &[(&DemoSim, String)]) {
    let throttled = || urls.iter().filter(|(s, _)| s.throttled).map(|(_, url)| url);
    println!("bedrock-balancer demo: gateway on {base}, admin on {admin}");
    for (demo_sim, url) in urls {
        let what = match demo_sim.provider {
            SimProvider::Anthropic => "the Anthropic API".to_owned(),
            _ => demo_sim.name.to_owned(),
        };
        println!("  simulated {what}: {url}");
    }
    println!(
        r#"
Try it (Bedrock-native Converse, balanced across the three regions):
  curl -s {base}/model/claude/converse -H 'content-type: application/json' \
    -d '{{"messages":[{{"role":"user","content":[{{"text":"Hello there"}}]}}]}}'
Streaming:
  curl -sN {base}/model/claude/converse-stream -H 'content-type: application/json' \
    -d '{{"messages":[{{"role":"user","content":[{{"text":"Stream please"}}]}}]}}' | strings

Failover to the Anthropic API (route claude-overflow: us-east-1 and us-west-2 first, the
Anthropic API when neither can serve). The x-bedrock-balancer-target header names the target
that answered, a region at first:
  curl -si {base}/v1/chat/completions -H 'content-type: application/json' \
    -d '{{"model":"claude-overflow","messages":[{{"role":"user","content":"Hello"}}]}}'
Make both regions throttle (429 ThrottlingException, Retry-After {retry}s), then ask again: the
Anthropic API answers, and /admin/targets shows the regions cooling down."#,
        retry = THROTTLE_RETRY_AFTER_SECS,
    );
    for url in throttled() {
        println!(
            r#"  curl -s {url}/_sim/faults -d '{{"status":429,"retry_after":{THROTTLE_RETRY_AFTER_SECS}}}'"#
        );
    }
    println!(
        "Clear the faults: once the {THROTTLE_RETRY_AFTER_SECS}s cooldown is over, the regions take the traffic back."
    );
    for url in throttled() {
        println!("  curl -s -X DELETE {url}/_sim/faults");
    }
    println!("Requests the simulated Anthropic API served:");
    for (_, url) in urls
        .iter()
        .filter(|(s, _)| s.provider == SimProvider::Anthropic)
    {
        println!("  curl -s {url}/_sim/stats");
    }
    println!(
        r#"Live target state:
  curl -s {admin}/admin/targets
Stop with Ctrl-C."#
    );
}
