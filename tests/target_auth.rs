//! A target's own authentication, end to end: a keyless OpenAI-compatible server gets no
//! credentials of anyone's; a target refusing the gateway's credentials or config is the
//! gateway's failure (failed over, a 502 in the client's format without the upstream's body);
//! upstream error bodies that are not in the client's error shape are written in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use actix_web::{App, HttpResponse, HttpServer, web};
use bedrock_balancer_sim::{self as sim, Faults, SimOptions};
use common::*;
use serde_json::{Value, json};

const OPENAI_KEY: &str = "sk-proj-upstream-0123456789ABCD";
const WRONG_KEY: &str = "sk-proj-revoked-9876543210WXYZ";
const CLIENT_SECRET: &str = "client-own-secret-42";
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

fn chat(model: &str) -> String {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello"}]}).to_string()
}

fn messages(model: &str) -> String {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}]})
        .to_string()
}

/// An `openai` target named `name` on `url` serving the model `llama3`, with `auth` (none when
/// empty).
fn openai_target(name: &str, url: &str, auth: &str, priority: u32) -> String {
    format!(
        r#"
      - name: {name}
        model: {{ provider: openai, name: llama3, options: {{ upstream_url: "{url}" }} }}
        priority: {priority}{auth}"#
    )
}

fn bearer(key: &str) -> String {
    format!("\n        auth: {{ header_name: Authorization, header_value: \"Bearer {key}\" }}")
}

/// A gateway whose chat route `chat` has `targets`, failing over only on connection errors: a
/// target's refusal must fail over whatever the criteria.
async fn gateway(targets: &[String], sims: Vec<sim::SimHandle>) -> Harness {
    let yaml = format!(
        r#"
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
routes:
  - name: chat
    balancer: {{ algorithm: priority, retries: 2, failover_criteria: [error] }}
    targets:{}
"#,
        targets.concat()
    );
    start_gateway(&yaml, sims).await
}

async fn openai_sim(keys: &[&str]) -> sim::SimHandle {
    let mut opts = SimOptions::new("vllm");
    opts.provider = sim::SimProvider::OpenAi;
    opts.api_keys = keys.iter().map(|k| (*k).to_owned()).collect();
    sim::start(opts).await.unwrap()
}

/// A route whose first-priority target `name` (with `key`) on `refusing` refuses, and whose
/// second, `good`, answers: the request is served by `good`, and the first counted a failure.
async fn refused_then_served(refusing: sim::SimHandle, name: &str, key: &str) -> Harness {
    let good = openai_sim(&[OPENAI_KEY]).await;
    let targets = [
        openai_target(name, &refusing.url(), &bearer(key), 1),
        openai_target("good", &good.url(), &bearer(OPENAI_KEY), 2),
    ];
    let h = gateway(&targets, vec![refusing, good]).await;
    let (status, head, body) = post_json(&h.url("/v1/chat/completions"), chat("chat"), &[]).await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(head.get("x-bedrock-balancer-target").unwrap(), "good");
    let refused = h.admin_target_where("target", name).await;
    assert_eq!(
        refused["failures"], 1,
        "a refusal counts toward the breaker: {refused}"
    );
    h
}

#[actix_rt::test]
async fn a_keyless_openai_compatible_target_gets_no_credentials_and_needs_no_aws_ones() {
    let vllm = openai_sim(&[]).await;
    let h = gateway(&[openai_target("vllm", &vllm.url(), "", 1)], vec![vllm]).await;
    let target = h.admin_target_where("target", "vllm").await;
    assert_eq!(target["ready"], true, "{target}");

    let client_auth = format!("Bearer {CLIENT_SECRET}");
    let (status, _, body) = post_json(
        &h.url("/v1/chat/completions"),
        chat("chat"),
        &[
            ("authorization", &client_auth),
            ("x-api-key", CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        json["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Hello from vllm (llama3)"),
        "{json}"
    );
    let headers = h.sims[0].stats().last_request_headers;
    assert!(!headers.is_empty());
    let credentials: Vec<&String> = headers
        .keys()
        .filter(|name| {
            ["authorization", "x-api-key", "api-key"].contains(&name.as_str())
                || name.starts_with("x-amz")
        })
        .collect();
    assert!(
        credentials.is_empty(),
        "credentials went upstream: {headers:?}"
    );
}

/// The client's error for a refusal: a 502 naming the target and the upstream status, with
/// nothing of the upstream's body (which may quote the target's key).
fn assert_refusal_told_as_the_gateways(body: &[u8], message: &str, target: &str, status: u16) {
    let text = String::from_utf8_lossy(body);
    assert!(
        message.contains(&format!("target {target} refused"))
            && message.contains(&format!("upstream status {status}")),
        "{message}"
    );
    for leak in [
        OPENAI_KEY,
        WRONG_KEY,
        "WXYZ",
        "Incorrect API key",
        "injected",
    ] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
}

#[actix_rt::test]
async fn a_target_refusing_its_key_fails_over_and_alone_is_a_502_in_the_clients_format() {
    let h = refused_then_served(openai_sim(&[OPENAI_KEY]).await, "revoked", WRONG_KEY).await;
    assert_eq!(h.sims[0].stats().bad_signatures, 1);

    // With the good target gone, the refusal is what the client learns of, in its own format.
    let alone = openai_sim(&[OPENAI_KEY]).await;
    let h = gateway(
        &[openai_target(
            "revoked",
            &alone.url(),
            &bearer(WRONG_KEY),
            1,
        )],
        vec![alone],
    )
    .await;
    let (status, _, body) = post_json(&h.url("/v1/chat/completions"), chat("chat"), &[]).await;
    assert_eq!(status, 502, "{body:?}");
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "target_refused", "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert_refusal_told_as_the_gateways(&body, message, "revoked", 401);

    let (status, _, body) = post_json(&h.url("/v1/messages"), messages("chat"), &[]).await;
    assert_eq!(status, 502, "{body:?}");
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (&error["type"], &error["error"]["type"]),
        (&json!("error"), &json!("api_error")),
        "{error}"
    );
    let message = error["error"]["message"].as_str().unwrap();
    assert_refusal_told_as_the_gateways(&body, message, "revoked", 401);
}

#[actix_rt::test]
async fn a_403_or_404_naming_a_key_targets_key_or_model_is_its_config_and_fails_over() {
    for (status, code) in [
        (404, "model_not_found"),
        (404, "DeploymentNotFound"),
        (403, "unsupported_country_region_territory"),
    ] {
        let refusing = openai_sim(&[OPENAI_KEY]).await;
        refusing.set_faults(Faults {
            status: Some(status),
            exception: Some(code.to_owned()),
            ..Faults::default()
        });
        let h = refused_then_served(refusing, "misconfigured", OPENAI_KEY).await;
        assert_eq!(h.sims[0].stats().errors_injected, 1, "{status}");
    }
}

#[actix_rt::test]
async fn a_403_or_404_about_the_clients_request_is_the_clients_and_counts_for_nothing() {
    // As OpenRouter answers a request with `tools` no provider of the model takes (404), or
    // input its moderation flagged (403): nothing about the target's key or config.
    for status in [403, 404] {
        let picky = openai_sim(&[OPENAI_KEY]).await;
        picky.set_faults(Faults {
            status: Some(status),
            ..Faults::default()
        });
        let good = openai_sim(&[OPENAI_KEY]).await;
        let targets = [
            openai_target("picky", &picky.url(), &bearer(OPENAI_KEY), 1),
            openai_target("good", &good.url(), &bearer(OPENAI_KEY), 2),
        ];
        let h = gateway(&targets, vec![picky, good]).await;
        let (got, _, body) = post_json(&h.url("/v1/chat/completions"), chat("chat"), &[]).await;
        // The upstream's own answer, in the client's format, and no other target tried.
        assert_eq!(got, status, "{body:?}");
        let error: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            error["error"]["message"], "Injected by bedrock-sim.",
            "{error}"
        );
        assert_eq!(h.sims[1].stats().requests_total, 0, "{status}");
        let picky = h.admin_target_where("target", "picky").await;
        assert_eq!(picky["failures"], 0, "{status}: {picky}");
    }
}

#[actix_rt::test]
async fn a_bedrock_region_refusing_the_gateways_aws_keys_fails_over_and_alone_is_a_bedrock_502() {
    let sims = start_sims(&["us-east-1", "us-west-2"]).await;
    let wrong = target_yaml(MODEL, "us-east-1", &sims[0].url(), 1)
        .replace(SECRET, "not-the-secret")
        .replace("weight: 1", "priority: 1");
    let right =
        target_yaml(MODEL, "us-west-2", &sims[1].url(), 1).replace("weight: 1", "priority: 2");
    let yaml = config_yaml(
        "claude",
        "      algorithm: priority\n      retries: 1\n      failover_criteria: [error]",
        &[wrong.clone(), right],
    );
    let h = start_gateway(&yaml, sims).await;
    let url = h.url("/model/claude/converse");
    let (status, head, body) = post_json(&url, converse_body("Hi"), &[]).await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(
        head.get("x-bedrock-balancer-target").unwrap(),
        format!("us-west-2/{MODEL}").as_str()
    );
    assert_eq!(h.sims[0].stats().bad_signatures, 1);
    assert_eq!(h.admin_target("us-east-1").await["failures"], 1);

    let sims = start_sims(&["us-east-1"]).await;
    let alone =
        target_yaml(MODEL, "us-east-1", &sims[0].url(), 1).replace(SECRET, "not-the-secret");
    let h = start_gateway(&config_yaml("claude", "      retries: 0", &[alone]), sims).await;
    let (status, head, body) =
        post_json(&h.url("/model/claude/converse"), converse_body("Hi"), &[]).await;
    assert_eq!(status, 502, "{body:?}");
    assert_eq!(
        head.get("x-amzn-errortype").unwrap(),
        "InternalServerException"
    );
    let error: Value = serde_json::from_slice(&body).unwrap();
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("target us-east-1/{MODEL} refused"))
            && message.contains("upstream status 403 InvalidSignatureException"),
        "{message}"
    );
    // Bedrock's own message explains the signature mismatch to the signer: not the client.
    assert!(!message.contains("signature we calculated"), "{message}");
}

/// A proxy in front of the upstream answering `502` with an HTML page and Azure's
/// `retry-after-ms: 500`.
async fn html_proxy() -> (String, actix_web::dev::ServerHandle) {
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|| async {
            HttpResponse::BadGateway()
                .content_type("text/html")
                .insert_header(("retry-after-ms", "500"))
                .body("<html><body><h1>502 Bad Gateway</h1></body></html>")
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (url, handle)
}

/// The body is JSON (not the HTML page) and `Retry-After` is the 500 ms rounded up.
fn written_error(head: &awc::http::header::HeaderMap, body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(body);
    assert!(!text.contains("<html"), "{text}");
    assert_eq!(head.get("content-type").unwrap(), "application/json");
    assert_eq!(head.get("retry-after").unwrap(), "1");
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[actix_rt::test]
async fn a_non_json_error_page_reaches_each_client_in_its_own_error_shape() {
    let (url, proxy) = html_proxy().await;
    let anthropic = format!(
        r#"
  - name: claude
    targets:
      - model: {{ provider: anthropic, name: claude-sonnet-4-5, options: {{ upstream_url: "{url}" }} }}
        auth: {{ header_name: x-api-key, header_value: k }}
  - name: native
    targets:{}"#,
        target_yaml(MODEL, "us-east-1", &url, 1)
    );
    let yaml = format!(
        r#"
server: {{ listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, workers: 2 }}
routes:
  - name: chat
    targets:{}{anthropic}
"#,
        openai_target("vllm", &url, &bearer(OPENAI_KEY), 1)
    );
    let h = start_gateway(&yaml, Vec::new()).await;

    let (status, head, body) = post_json(&h.url("/v1/chat/completions"), chat("chat"), &[]).await;
    assert_eq!(status, 502);
    let error = written_error(&head, &body);
    assert!(
        error["error"]["message"].as_str().unwrap().contains("502"),
        "{error}"
    );

    let (status, head, body) = post_json(&h.url("/v1/messages"), messages("claude"), &[]).await;
    assert_eq!(status, 500, "Anthropic's error for a 5xx it cannot read");
    let error = written_error(&head, &body);
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["error"]["type"], "api_error", "{error}");

    let (status, head, body) =
        post_json(&h.url("/model/native/converse"), converse_body("Hi"), &[]).await;
    assert_eq!(status, 502);
    let error = written_error(&head, &body);
    assert!(
        error["message"].as_str().unwrap().contains("502"),
        "{error}"
    );
    proxy.stop(true).await;
}
