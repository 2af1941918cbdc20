//! Consumer authentication end to end: a gateway with consumers in front of a simulated region.
//! A refused request must never reach the region; an accepted one is re-signed with the target's
//! own key, whatever the client sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bedrock_balancer::{app, config};
use common::*;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const TEAM_KEY: &str = "sk-team-a-integration";
const LIMITED_KEY: &str = "sk-limited-integration";
const BATCH_KEY_ID: &str = "AKIDBATCHJOBS";
const BATCH_SECRET: &str = "batch/secret+key";

fn yaml(api_key: &str, sim_url: &str) -> String {
    format!(
        r#"
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
consumers:
  - {{ name: team-a, api_key: "{api_key}" }}
  - {{ name: limited, api_key: "{LIMITED_KEY}", limits: {{ rpm: 2 }} }}
  - {{ name: batch-jobs, aws_access_key_id: {BATCH_KEY_ID}, aws_secret_access_key: "{BATCH_SECRET}" }}
routes:
  - name: claude
    balancer: {{ retries: 0 }}
    targets:{}
"#,
        target_yaml(MODEL, "us-east-1", sim_url, 100)
    )
}

struct Reply {
    status: u16,
    headers: awc::http::header::HeaderMap,
    json: serde_json::Value,
}

/// A request without credentials.
const NO_HEADERS: &[(&str, String)] = &[];

async fn send<N: AsRef<str>>(
    method: awc::http::Method,
    url: &str,
    headers: &[(N, String)],
    body: &str,
) -> Reply {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut req = client
        .request(method, url)
        .insert_header(("content-type", "application/json"));
    for (name, value) in headers {
        req = req.insert_header((name.as_ref(), value.as_str()));
    }
    let mut resp = req.send_body(body.to_owned()).await.unwrap();
    let bytes = resp.body().limit(1 << 20).await.unwrap();
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        json: serde_json::from_slice(&bytes).unwrap_or_default(),
    }
}

async fn post<N: AsRef<str>>(url: &str, headers: &[(N, String)], body: &str) -> Reply {
    send(awc::http::Method::POST, url, headers, body).await
}

fn bearer(key: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {key}"))]
}

fn chat_body() -> String {
    serde_json::json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
}

/// The headers an AWS SDK would add to sign `body` for `url` with the given key pair.
fn sigv4(url: &str, body: &str, key_id: &str, secret: &str) -> Vec<(String, String)> {
    sdk_signed_headers(url, body.as_bytes(), key_id, secret, "eu-west-3")
}

fn assert_bedrock_401(reply: &Reply, error_type: &str) {
    assert_eq!(reply.status, 401, "{}", reply.json);
    assert_eq!(reply.headers.get("x-amzn-errortype").unwrap(), error_type);
    let body = reply.json.as_object().unwrap();
    assert!(
        body.len() == 1 && body["message"].is_string(),
        "{}",
        reply.json
    );
}

fn assert_openai_401(reply: &Reply) {
    assert_eq!(reply.status, 401, "{}", reply.json);
    assert_eq!(reply.json["error"]["type"], "authentication_error");
    assert_eq!(reply.json["error"]["code"], "invalid_api_key");
}

async fn metrics_text(h: &Harness) -> String {
    let mut resp = awc::Client::default()
        .get(h.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap()
}

fn counter(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[actix_rt::test]
async fn bad_or_missing_credentials_get_401s_and_reach_no_region() {
    let sims = start_sims(&["us-east-1"]).await;
    let url = sims[0].url();
    let h = start_gateway(&yaml(TEAM_KEY, &url), sims).await;
    let converse = h.url("/model/claude/converse");
    let body = converse_body("hi");

    assert_bedrock_401(
        &post(&converse, NO_HEADERS, &body).await,
        "MissingAuthenticationTokenException",
    );
    assert_bedrock_401(
        &post(&converse, &bearer("sk-wrong"), &body).await,
        "UnrecognizedClientException",
    );
    // 401, not 404: an unauthenticated client learns nothing about which models exist.
    assert_bedrock_401(
        &post(
            &h.url("/model/no-such-model/converse"),
            &bearer("sk-wrong"),
            &body,
        )
        .await,
        "UnrecognizedClientException",
    );
    let wrong_secret = sigv4(&converse, &body, BATCH_KEY_ID, "not-the-secret");
    assert_bedrock_401(
        &post(&converse, &wrong_secret, &body).await,
        "InvalidSignatureException",
    );
    let unknown_id = sigv4(&converse, &body, "AKIDUNKNOWN", BATCH_SECRET);
    assert_bedrock_401(
        &post(&converse, &unknown_id, &body).await,
        "UnrecognizedClientException",
    );
    // Signed for one body, sent with another.
    let signed = sigv4(&converse, &body, BATCH_KEY_ID, BATCH_SECRET);
    assert_bedrock_401(
        &post(&converse, &signed, &converse_body("tampered")).await,
        "InvalidSignatureException",
    );

    for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] {
        assert_openai_401(&post(&h.url(path), NO_HEADERS, &chat_body()).await);
        let wrong = [("x-api-key", "sk-wrong".to_owned())];
        assert_openai_401(&post(&h.url(path), &wrong, &chat_body()).await);
    }
    let models = send(awc::http::Method::GET, &h.url("/v1/models"), NO_HEADERS, "").await;
    assert_openai_401(&models);

    let stats = h.sims[0].stats();
    assert_eq!(stats.requests_total, 0, "{stats:?}");

    let text = metrics_text(&h).await;
    for (reason, at_least) in [
        ("missing", 4.0),
        ("invalid_key", 5.0),
        ("unknown_access_key", 1.0),
        ("bad_signature", 2.0),
    ] {
        let series = format!("bedrock_balancer_auth_failures_total{{reason=\"{reason}\"}}");
        assert!(counter(&text, &series) >= at_least, "{reason}:\n{text}");
    }
    assert!(!text.contains(TEAM_KEY) && !text.contains("sk-wrong"));
}

#[actix_rt::test]
async fn good_credentials_pass_and_only_the_targets_key_goes_upstream() {
    let sims = start_sims(&["us-east-1"]).await;
    let url = sims[0].url();
    let h = start_gateway(&yaml(TEAM_KEY, &url), sims).await;
    let converse = h.url("/model/claude/converse");
    let body = converse_body("hi");

    let reply = post(&converse, &bearer(TEAM_KEY), &body).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let seen = h.sims[0].stats().last_request_headers;
    assert!(!seen.values().any(|v| v.contains(TEAM_KEY)), "{seen:?}");

    let signed = sigv4(&converse, &body, BATCH_KEY_ID, BATCH_SECRET);
    let reply = post(&converse, &signed, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let seen = h.sims[0].stats().last_request_headers;
    assert!(
        seen["authorization"].contains(&format!("Credential={KEY_ID}/")),
        "{seen:?}"
    );
    assert!(!seen.values().any(|v| v.contains(BATCH_KEY_ID)), "{seen:?}");

    let api_key = [("x-api-key", TEAM_KEY.to_owned())];
    let reply = post(&h.url("/v1/chat/completions"), &api_key, &chat_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert!(
        !h.sims[0]
            .stats()
            .last_request_headers
            .contains_key("x-api-key")
    );

    let models = send(
        awc::http::Method::GET,
        &h.url("/v1/models"),
        &bearer(TEAM_KEY),
        "",
    )
    .await;
    assert_eq!(models.status, 200, "{}", models.json);
    assert_eq!(h.sims[0].stats().by_operation.values().sum::<u64>(), 3);
}

/// A gateway started from the config file at `path`, which `POST /admin/reload` reads again;
/// `${VAR}` comes from `env`.
async fn start_reloadable(
    path: &std::path::Path,
    sims: Vec<bedrock_balancer_sim::SimHandle>,
    env: fn(&str) -> Option<String>,
) -> Harness {
    let loader_path = path.to_owned();
    let running = app::start(
        config::load_with_env(path, &env).unwrap(),
        Some(Box::new(move || config::load_with_env(&loader_path, &env))),
    )
    .unwrap();
    wait_until_ready(&running).await;
    Harness {
        sims,
        gateway: running,
    }
}

#[actix_rt::test]
async fn a_reload_rotates_keys() {
    let sims = start_sims(&["us-east-1"]).await;
    let sim_url = sims[0].url();
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_owned();
    std::fs::write(&path, yaml("sk-old", &sim_url)).unwrap();
    let h = start_reloadable(&path, sims, |_| None).await;
    let chat = h.url("/v1/chat/completions");
    assert_eq!(
        post(&chat, &bearer("sk-old"), &chat_body()).await.status,
        200
    );

    std::fs::write(&path, yaml("sk-new", &sim_url)).unwrap();
    let resp = awc::Client::default()
        .post(h.admin_url("/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    assert_openai_401(&post(&chat, &bearer("sk-old"), &chat_body()).await);
    assert_eq!(
        post(&chat, &bearer("sk-new"), &chat_body()).await.status,
        200
    );
    assert_eq!(h.sims[0].stats().by_operation["converse"], 2);
}

#[actix_rt::test]
async fn consumer_limits_apply_to_the_authenticated_consumer_only() {
    let sims = start_sims(&["us-east-1"]).await;
    let url = sims[0].url();
    let h = start_gateway(&yaml(TEAM_KEY, &url), sims).await;
    let converse = h.url("/model/claude/converse");
    let body = converse_body("hi");
    // 2 rpm: the limited consumer is refused within a few requests (bounded loop).
    let mut refused = None;
    for _ in 0..5 {
        let reply = post(&converse, &bearer(LIMITED_KEY), &body).await;
        if reply.status == 429 {
            refused = Some(reply);
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.json);
    }
    let refused = refused.expect("the limited consumer was never refused");
    assert_eq!(refused.json["scope"], "consumer", "{}", refused.json);
    // Another consumer, by key and by signature, is not held back by it.
    assert_eq!(post(&converse, &bearer(TEAM_KEY), &body).await.status, 200);
    let signed = sigv4(&converse, &body, BATCH_KEY_ID, BATCH_SECRET);
    assert_eq!(post(&converse, &signed, &body).await.status, 200);
}

#[actix_rt::test]
async fn a_body_no_target_can_take_costs_the_consumer_none_of_its_requests() {
    let sims = start_sims(&["us-east-1"]).await;
    let url = sims[0].url();
    let h = start_gateway(&yaml(TEAM_KEY, &url), sims).await;
    let chat = h.url("/v1/chat/completions");
    // An image by URL, which Converse cannot carry, on a route of one Bedrock region.
    let image_url =
        serde_json::json!({"model": "claude", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ]}]})
        .to_string();
    for _ in 0..3 {
        let reply = post(&chat, &bearer(LIMITED_KEY), &image_url).await;
        assert_eq!(reply.status, 400, "{}", reply.json);
    }
    // Its 2 rpm are whole.
    for _ in 0..2 {
        let reply = post(&chat, &bearer(LIMITED_KEY), &chat_body()).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
    }
    assert_eq!(h.sims[0].stats().requests_total, 2);
}

/// One route, with `server.admin_token` taken from the variable `token_var`.
fn admin_yaml(token_var: &str, sim_url: &str) -> String {
    config_yaml_with_server(
        &format!("  admin_token: ${{{token_var}}}"),
        "claude",
        "      retries: 0",
        &[target_yaml(MODEL, "us-east-1", sim_url, 100)],
    )
}

#[actix_rt::test]
async fn the_admin_token_guards_reload_and_targets_but_not_probes_or_metrics() {
    // A token with YAML metacharacters: it is data, whatever it holds.
    const TOKEN: &str = "adm#n: 't0ken\" {x}";
    const NEXT_TOKEN: &str = "rotated-admin-token";
    let env = |name: &str| match name {
        "ADMIN_TOKEN" => Some(TOKEN.to_owned()),
        "NEXT_ADMIN_TOKEN" => Some(NEXT_TOKEN.to_owned()),
        _ => None,
    };
    let sims = start_sims(&["us-east-1"]).await;
    let sim_url = sims[0].url();
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_owned();
    std::fs::write(&path, admin_yaml("ADMIN_TOKEN", &sim_url)).unwrap();
    // Waits on /readyz, which needs no token.
    let h = start_reloadable(&path, sims, env).await;
    let get = |path: &str, headers: Vec<(&'static str, String)>| {
        let url = h.admin_url(path);
        async move { send(awc::http::Method::GET, &url, &headers, "").await }
    };
    let reload = |headers: Vec<(&'static str, String)>| {
        let url = h.admin_url("/admin/reload");
        async move { post(&url, &headers, "").await }
    };

    for refused in [
        reload(vec![]).await,
        reload(bearer("wrong")).await,
        reload(vec![("authorization", TOKEN.to_owned())]).await,
        get("/admin/targets", vec![]).await,
        get("/admin/targets", bearer(&format!("{TOKEN}x"))).await,
    ] {
        assert_bedrock_401(&refused, "UnrecognizedClientException");
        assert_eq!(refused.headers.get("www-authenticate").unwrap(), "Bearer");
        assert!(
            refused.json["message"]
                .as_str()
                .unwrap()
                .contains("server.admin_token"),
            "{}",
            refused.json
        );
        assert!(!refused.json.to_string().contains("t0ken"));
    }

    let targets = get("/admin/targets", bearer(TOKEN)).await;
    assert_eq!(targets.status, 200, "{}", targets.json);
    assert_eq!(targets.json["targets"][0]["region"], "us-east-1");
    assert_eq!(get("/metrics", vec![]).await.status, 200);
    assert_eq!(get("/healthz", vec![]).await.status, 200);
    assert_eq!(get("/readyz", vec![]).await.status, 200);

    // A reload reads the token again: the new one opens /admin/*, the old one no longer does.
    std::fs::write(&path, admin_yaml("NEXT_ADMIN_TOKEN", &sim_url)).unwrap();
    let reloaded = reload(bearer(TOKEN)).await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.json);
    assert_bedrock_401(&reload(bearer(TOKEN)).await, "UnrecognizedClientException");
    assert_eq!(reload(bearer(NEXT_TOKEN)).await.status, 200);
    assert_eq!(get("/admin/targets", bearer(NEXT_TOKEN)).await.status, 200);
}
