//! Shared harness for integration tests: simulated regions and a gateway in-process on free ports.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bedrock_balancer::app::{self, Running};
use bedrock_balancer::config;
use bedrock_balancer_sim::{self as sim, Faults, SimHandle, SimOptions};

pub const KEY_ID: &str = "AKIDEXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

pub struct Harness {
    pub sims: Vec<SimHandle>,
    pub gateway: Running,
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.listen)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.admin)
    }

    /// Requests each simulator counted for an operation.
    pub fn counts(&self, op: &str) -> Vec<u64> {
        self.sims
            .iter()
            .map(|s| s.stats().by_operation.get(op).copied().unwrap_or(0))
            .collect()
    }

    pub fn bad_signatures(&self) -> u64 {
        self.sims.iter().map(|s| s.stats().bad_signatures).sum()
    }

    /// `GET /admin/targets`: the targets and the rate-limit backend, as JSON.
    pub async fn admin_targets(&self) -> serde_json::Value {
        let mut resp = awc::Client::default()
            .get(self.admin_url("/admin/targets"))
            .send()
            .await
            .unwrap();
        resp.json().limit(1 << 20).await.unwrap()
    }

    /// The gateway's Prometheus text.
    pub async fn metrics(&self) -> String {
        let mut resp = awc::Client::default()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap();
        String::from_utf8(resp.body().limit(1 << 22).await.unwrap().to_vec()).unwrap()
    }

    pub fn fault(&self, index: usize, faults: Faults) {
        self.sims[index].set_faults(faults);
    }

    /// The `/admin/targets` entry of the target in `region`.
    pub async fn admin_target(&self, region: &str) -> serde_json::Value {
        self.admin_target_where("region", region).await
    }

    /// The `/admin/targets` entry whose `field` is `value`.
    pub async fn admin_target_where(&self, field: &str, value: &str) -> serde_json::Value {
        let json = self.admin_targets().await;
        json["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t[field] == value)
            .cloned()
            .unwrap_or_else(|| panic!("{field} {value} missing from {json}"))
    }
}

/// The value of the series `name{labels}` in Prometheus text, if it is there. The text format
/// lists labels sorted by name, so `labels` are sorted before matching.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut labels = labels.to_vec();
    labels.sort_unstable();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let prefix = format!("bedrock_balancer_{name}{{{}}} ", labels.join(","));
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

/// Polls `check` every 10 ms until it holds, failing the test after `limit`.
pub async fn poll_until<F, Fut>(what: &str, limit: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

pub async fn start_sims(regions: &[&str]) -> Vec<SimHandle> {
    let mut sims = Vec::new();
    for region in regions {
        sims.push(sim::start(SimOptions::new(region)).await.unwrap());
    }
    sims
}

/// One target of a route, in the config's YAML shape.
pub fn target_yaml(model: &str, region: &str, url: &str, weight: u16) -> String {
    format!(
        r#"
      - model:
          provider: bedrock
          name: "{model}"
          options:
            bedrock: {{ aws_region: {region} }}
            upstream_url: {url}
        auth: {{ aws_access_key_id: {KEY_ID}, aws_secret_access_key: "{SECRET}" }}
        weight: {weight}"#
    )
}

/// A gateway config with one route over the given targets and balancer settings.
pub fn config_yaml(route: &str, balancer: &str, targets: &[String]) -> String {
    config_yaml_with_server("", route, balancer, targets)
}

/// As [`config_yaml`], with extra `server:` lines (each indented two spaces).
pub fn config_yaml_with_server(
    server: &str,
    route: &str,
    balancer: &str,
    targets: &[String],
) -> String {
    format!(
        r#"
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  workers: 2
{server}
routes:
  - name: {route}
    balancer:
{balancer}
    targets:{}
"#,
        targets.concat()
    )
}

pub async fn start_gateway(yaml: &str, sims: Vec<SimHandle>) -> Harness {
    let config = config::parse(yaml, &|_| None).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let gateway = app::start(config, None).unwrap();
    wait_until_ready(&gateway).await;
    Harness { sims, gateway }
}

/// Credentials load asynchronously in each target's actor; wait for `/readyz` (bounded).
pub async fn wait_until_ready(gateway: &Running) {
    let client = awc::Client::default();
    let url = format!("http://{}/readyz", gateway.admin);
    for _ in 0..200 {
        if let Ok(resp) = client.get(&url).send().await
            && resp.status().is_success()
        {
            return;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("gateway never became ready");
}

/// POSTs a JSON `body` with extra `headers`; the status, headers and whole body.
pub async fn post_json(
    url: &str,
    body: String,
    headers: &[(&str, &str)],
) -> (u16, awc::http::header::HeaderMap, bytes::Bytes) {
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .finish();
    let mut req = client
        .post(url)
        .insert_header(("content-type", "application/json"));
    for header in headers {
        req = req.insert_header(*header);
    }
    let mut resp = req.send_body(body).await.unwrap();
    let body = resp.body().limit(1 << 22).await.unwrap();
    (resp.status().as_u16(), resp.headers().clone(), body)
}

pub fn converse_body(text: &str) -> String {
    serde_json::json!({"messages": [{"role": "user", "content": [{"text": text}]}]}).to_string()
}

/// Every frame of a whole AWS event-stream body.
pub fn decode_frames(body: &[u8]) -> Vec<bedrock_balancer::eventstream::Frame> {
    let mut decoder = bedrock_balancer::eventstream::Decoder::new();
    decoder.push(body);
    let mut frames = Vec::new();
    while let Some(raw) = decoder.next_frame().unwrap() {
        frames.push(raw.frame);
    }
    decoder.finish().unwrap();
    frames
}

/// The headers an AWS SDK adds to sign a JSON POST of `body` to `url` (aws-sigv4's general signer,
/// independent of the gateway's own signer and of the hand-written verifiers).
pub fn sdk_signed_headers(
    url: &str,
    body: &[u8],
    key_id: &str,
    secret: &str,
    region: &str,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity =
        aws_credential_types::Credentials::new(key_id, secret, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [("content-type", "application/json")];
    let signable =
        SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body)).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions
        .headers()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}
