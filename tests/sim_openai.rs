//! The simulator's OpenAI and Azure OpenAI modes in-process on a free port: the key checked where
//! each API puts it, chat and legacy completions plain and as SSE chunks, embeddings, errors and
//! faults in the OpenAI error format with each API's throttling headers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bedrock_balancer_sim::{self as sim, Faults, SimHandle, SimOptions, SimProvider};
use common::post_json;
use serde_json::{Value, json};

const KEY: &str = "sk-sim-openai-key";
const BEARER: &str = "Bearer sk-sim-openai-key";
const DEPLOYMENT: &str = "gpt4o-prod";
const API_VERSION: &str = "2024-10-21";

async fn start(provider: SimProvider, region: &str) -> SimHandle {
    let mut opts = SimOptions::new(region);
    opts.provider = provider;
    opts.api_keys = vec![KEY.to_owned()];
    sim::start(opts).await.unwrap()
}

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-4o", "stream": stream, "stream_options": {"include_usage": stream},
           "messages": [{"role": "user", "content": "Hello"}]})
}

fn azure_url(sim: &SimHandle, op: &str, version: Option<&str>) -> String {
    let query = version
        .map(|v| format!("?api-version={v}"))
        .unwrap_or_default();
    format!("{}/openai/deployments/{DEPLOYMENT}/{op}{query}", sim.url())
}

fn error_of(body: &[u8]) -> Value {
    let json: Value = serde_json::from_slice(body).unwrap();
    assert!(json["error"]["message"].is_string(), "{json}");
    json["error"].clone()
}

/// The JSON of each `data:` line of an SSE body, and whether it ended with `[DONE]`.
fn sse_chunks(body: &[u8]) -> (Vec<Value>, bool) {
    let text = std::str::from_utf8(body).unwrap();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    let done = data.last() == Some(&"[DONE]");
    let chunks = data
        .iter()
        .filter(|d| **d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (chunks, done)
}

#[actix_rt::test]
async fn openai_chat_answers_plain_and_streamed_and_records_the_bearer_header() {
    let sim = start(SimProvider::OpenAi, "openai-east").await;
    let url = format!("{}/v1/chat/completions", sim.url());
    let auth = [("authorization", BEARER)];
    let (status, _, body) = post_json(&url, chat(false).to_string(), &auth).await;
    assert_eq!(status, 200, "{body:?}");
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(json["model"], "gpt-4o");
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "Hello from openai-east (gpt-4o). You said: Hello"
    );
    assert_eq!(json["usage"]["prompt_tokens_details"]["cached_tokens"], 0);

    let (status, headers, body) = post_json(&url, chat(true).to_string(), &auth).await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(headers.get("content-type").unwrap(), "text/event-stream");
    let (chunks, done) = sse_chunks(&body);
    assert!(done, "{body:?}");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello from openai-east (gpt-4o). You said: Hello");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["total_tokens"], json["usage"]["total_tokens"]);

    let stats = sim.stats();
    assert_eq!(stats.by_operation["chat-completions"], 1);
    assert_eq!(stats.by_operation["chat-completions-stream"], 1);
    assert_eq!(stats.by_model["gpt-4o"].values().sum::<u64>(), 2);
    assert_eq!(stats.last_request_headers["authorization"], BEARER);
    assert_eq!(stats.bad_signatures, 0);
}

fn text_completion(stream: bool) -> Value {
    json!({"model": "gpt-35-instruct", "prompt": ["Hello", "Bye now"], "max_tokens": 40,
           "stream": stream, "stream_options": {"include_usage": stream}})
}

/// Each choice's text of a streamed legacy completion, joined by its index.
fn streamed_texts(chunks: &[Value]) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    for choice in chunks.iter().filter_map(|c| c["choices"].get(0)) {
        let index = choice["index"].as_u64().unwrap() as usize;
        if texts.len() <= index {
            texts.resize(index + 1, String::new());
        }
        texts[index].push_str(choice["text"].as_str().unwrap());
    }
    texts
}

#[actix_rt::test]
async fn openai_legacy_completions_answer_plain_and_streamed_with_usage() {
    let sim = start(SimProvider::OpenAi, "openai-east").await;
    let url = format!("{}/v1/completions", sim.url());
    let auth = [("authorization", BEARER)];
    let (status, _, body) = post_json(&url, text_completion(false).to_string(), &auth).await;
    assert_eq!(status, 200, "{body:?}");
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["object"], "text_completion");
    assert!(json["id"].as_str().unwrap().starts_with("cmpl-"), "{json}");
    assert_eq!(json["model"], "gpt-35-instruct");
    let texts: Vec<&str> = json["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "Hello from openai-east (gpt-35-instruct). You said: Hello",
            "Hello from openai-east (gpt-35-instruct). You said: Bye now",
        ]
    );
    assert_eq!(json["choices"][1]["index"], 1);
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    assert_eq!(json["usage"]["prompt_tokens"], 3);
    assert_eq!(json["usage"]["completion_tokens"], 15);
    assert_eq!(json["usage"]["total_tokens"], 18);

    let (status, headers, body) = post_json(&url, text_completion(true).to_string(), &auth).await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(headers.get("content-type").unwrap(), "text/event-stream");
    let (chunks, done) = sse_chunks(&body);
    assert!(done, "{body:?}");
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    assert_eq!(streamed_texts(&chunks), texts);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], json["usage"]);

    // Without a `max_tokens` the API's default of 16 cuts the answer.
    let long =
        json!({"model": "m", "prompt": "one two three four five six seven eight nine ten eleven"});
    let (_, _, body) = post_json(&url, long.to_string(), &auth).await;
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["choices"][0]["finish_reason"], "length");
    assert_eq!(json["usage"]["completion_tokens"], 16);

    let (status, _, body) = post_json(&url, json!({"model": "m"}).to_string(), &auth).await;
    assert_eq!(status, 400);
    assert_eq!(error_of(&body)["param"], "prompt");
    let (status, _, _) = post_json(&url, text_completion(false).to_string(), &[]).await;
    assert_eq!(status, 401);

    let stats = sim.stats();
    assert_eq!(stats.by_model["gpt-35-instruct"]["completions"], 1);
    assert_eq!(stats.by_model["gpt-35-instruct"]["completions-stream"], 1);
    assert_eq!(stats.by_operation["completions"], 2);
    assert_eq!(stats.last_request_headers["authorization"], BEARER);
}

#[actix_rt::test]
async fn azure_serves_legacy_completions_on_the_deployment_with_the_same_faults() {
    let sim = start(SimProvider::Azure, "eastus").await;
    let key = [("api-key", KEY)];
    let url = azure_url(&sim, "completions", Some(API_VERSION));
    let mut body = text_completion(true);
    body.as_object_mut().unwrap().remove("model");
    let (status, _, out) = post_json(&url, body.to_string(), &key).await;
    assert_eq!(status, 200, "{out:?}");
    let (chunks, done) = sse_chunks(&out);
    assert!(done);
    assert_eq!(
        streamed_texts(&chunks)[0],
        format!("Hello from eastus ({DEPLOYMENT}). You said: Hello")
    );
    assert_eq!(sim.stats().last_request_headers["api-key"], KEY);

    sim.set_faults(Faults {
        status: Some(429),
        retry_after: Some(2),
        ..Faults::default()
    });
    let (status, headers, out) = post_json(&url, body.to_string(), &key).await;
    assert_eq!(status, 429);
    assert_eq!(headers.get("retry-after-ms").unwrap(), "2000");
    assert_eq!(error_of(&out)["code"], "429");
    sim.set_faults(Faults {
        stream_exception_after: Some(2),
        ..Faults::default()
    });
    let (status, _, out) = post_json(&url, body.to_string(), &key).await;
    assert_eq!(status, 200);
    let (chunks, done) = sse_chunks(&out);
    assert!(!done);
    assert_eq!(chunks.len(), 3);
    assert!(chunks[2]["error"]["message"].is_string(), "{:?}", chunks[2]);
    let stats = sim.stats();
    assert_eq!(stats.by_model[DEPLOYMENT]["completions-stream"], 3);
    assert_eq!(stats.errors_injected, 1);
}

#[actix_rt::test]
async fn openai_refuses_missing_or_wrong_keys_and_bodies_in_its_error_format() {
    let sim = start(SimProvider::OpenAi, "us-east-1").await;
    let url = format!("{}/v1/chat/completions", sim.url());
    let (status, _, body) = post_json(&url, chat(false).to_string(), &[]).await;
    assert_eq!(status, 401);
    assert!(
        error_of(&body)["message"]
            .as_str()
            .unwrap()
            .contains("didn't provide an API key")
    );
    let (status, _, body) = post_json(
        &url,
        chat(false).to_string(),
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(status, 401);
    let error = error_of(&body);
    assert_eq!(error["code"], "invalid_api_key");
    assert!(
        !body.windows(4).any(|w| w == b"nope"),
        "the key is not echoed"
    );
    // Another API's header is no key here.
    let (status, _, _) = post_json(&url, chat(false).to_string(), &[("x-api-key", KEY)]).await;
    assert_eq!(status, 401);

    let auth = [("authorization", BEARER)];
    let mut no_model = chat(false);
    no_model.as_object_mut().unwrap().remove("model");
    let (status, _, body) = post_json(&url, no_model.to_string(), &auth).await;
    assert_eq!(status, 400);
    assert_eq!(error_of(&body)["param"], "model");
    let (status, _, body) = post_json(&url, "[1]".to_owned(), &auth).await;
    assert_eq!(status, 400);
    assert_eq!(error_of(&body)["type"], "invalid_request_error");
    let (status, _, body) = post_json(
        &format!("{}/v1/responses", sim.url()),
        "{}".to_owned(),
        &auth,
    )
    .await;
    assert_eq!(status, 404);
    error_of(&body);
    let stats = sim.stats();
    assert_eq!(stats.bad_signatures, 3);
    assert!(stats.by_operation.is_empty(), "{:?}", stats.by_operation);
}

#[actix_rt::test]
async fn openai_embeds_and_lists_models() {
    let sim = start(SimProvider::OpenAi, "us-east-1").await;
    let auth = [("authorization", BEARER)];
    let body = json!({"model": "text-embedding-3-small", "input": ["a", "b c"], "dimensions": 16});
    let (status, _, out) = post_json(
        &format!("{}/v1/embeddings", sim.url()),
        body.to_string(),
        &auth,
    )
    .await;
    assert_eq!(status, 200, "{out:?}");
    let json: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["data"].as_array().unwrap().len(), 2);
    assert_eq!(json["data"][1]["embedding"].as_array().unwrap().len(), 16);
    assert_eq!(json["usage"]["prompt_tokens"], 3);

    let client = awc::Client::default();
    let mut resp = client
        .get(format!("{}/v1/models", sim.url()))
        .insert_header(auth[0])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let models: Value = resp.json().await.unwrap();
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gpt-4o")
    );
    let stats = sim.stats();
    assert_eq!(stats.by_model["text-embedding-3-small"]["embeddings"], 1);
    assert_eq!(stats.by_operation["models"], 1);
}

#[actix_rt::test]
async fn azure_serves_deployments_behind_api_key_and_api_version() {
    let sim = start(SimProvider::Azure, "eastus").await;
    let key = [("api-key", KEY)];
    let url = azure_url(&sim, "chat/completions", Some(API_VERSION));
    let mut body = chat(false);
    body.as_object_mut().unwrap().remove("model");
    let (status, _, out) = post_json(&url, body.to_string(), &key).await;
    assert_eq!(status, 200, "{out:?}");
    let json: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["model"], DEPLOYMENT);
    assert_eq!(
        json["choices"][0]["message"]["content"],
        format!("Hello from eastus ({DEPLOYMENT}). You said: Hello")
    );
    assert_eq!(sim.stats().last_request_headers["api-key"], KEY);

    let (status, _, out) = post_json(
        &azure_url(&sim, "chat/completions", None),
        body.to_string(),
        &key,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_of(&out)["code"], "MissingApiVersionParameter");
    let (status, _, out) = post_json(&url, body.to_string(), &[("authorization", BEARER)]).await;
    assert_eq!(status, 401);
    assert_eq!(error_of(&out)["code"], "401");

    let embed = json!({"input": "hello"});
    let (status, _, out) = post_json(
        &azure_url(&sim, "embeddings", Some(API_VERSION)),
        embed.to_string(),
        &key,
    )
    .await;
    assert_eq!(status, 200, "{out:?}");
    let json: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["data"][0]["embedding"].as_array().unwrap().len(), 1536);
    let stats = sim.stats();
    assert_eq!(stats.by_model[DEPLOYMENT]["chat-completions"], 1);
    assert_eq!(stats.by_model[DEPLOYMENT]["embeddings"], 1);
    assert_eq!(stats.bad_signatures, 1);
    assert_eq!(stats.requests_total, 4);
}

#[actix_rt::test]
async fn injected_faults_keep_their_status_with_each_apis_throttling_headers() {
    let openai = start(SimProvider::OpenAi, "us-east-1").await;
    openai.set_faults(Faults {
        status: Some(429),
        ..Faults::default()
    });
    let url = format!("{}/v1/chat/completions", openai.url());
    let auth = [("authorization", BEARER)];
    let (status, headers, body) = post_json(&url, chat(false).to_string(), &auth).await;
    assert_eq!(status, 429);
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    assert_eq!(headers.get("x-ratelimit-remaining-requests").unwrap(), "0");
    assert_eq!(error_of(&body)["code"], "rate_limit_exceeded");
    openai.set_faults(Faults {
        status: Some(503),
        retry_after: Some(4),
        ..Faults::default()
    });
    let (status, headers, body) = post_json(&url, chat(true).to_string(), &auth).await;
    assert_eq!(status, 503);
    assert_eq!(headers.get("retry-after").unwrap(), "4");
    assert_eq!(error_of(&body)["type"], "server_error");
    openai.set_faults(Faults {
        stream_exception_after: Some(2),
        ..Faults::default()
    });
    let (status, _, body) = post_json(&url, chat(true).to_string(), &auth).await;
    assert_eq!(status, 200);
    let (chunks, done) = sse_chunks(&body);
    assert!(!done);
    assert_eq!(chunks.len(), 3);
    assert!(chunks[2]["error"]["message"].is_string(), "{:?}", chunks[2]);
    assert_eq!(openai.stats().errors_injected, 2);

    let azure = start(SimProvider::Azure, "eastus").await;
    azure.set_faults(Faults {
        status: Some(429),
        retry_after: Some(2),
        ..Faults::default()
    });
    let (status, headers, body) = post_json(
        &azure_url(&azure, "chat/completions", Some(API_VERSION)),
        chat(false).to_string(),
        &[("api-key", KEY)],
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(headers.get("retry-after-ms").unwrap(), "2000");
    assert_eq!(headers.get("retry-after").unwrap(), "2");
    assert_eq!(error_of(&body)["code"], "429");
}

#[actix_rt::test]
async fn stream_options_are_refused_by_an_older_server_and_by_azure_before_they_existed() {
    let mut opts = SimOptions::new("us-east-1");
    opts.provider = SimProvider::OpenAi;
    opts.api_keys = vec![KEY.to_owned()];
    opts.refuse_stream_options = true;
    let older = sim::start(opts).await.unwrap();
    let url = format!("{}/v1/chat/completions", older.url());
    let auth = [("authorization", BEARER)];
    let (status, _, out) = post_json(&url, chat(true).to_string(), &auth).await;
    assert_eq!(status, 400, "{out:?}");
    assert_eq!(error_of(&out)["param"], "stream_options");
    let mut bare = chat(true);
    bare.as_object_mut().unwrap().remove("stream_options");
    let (status, _, out) = post_json(&url, bare.to_string(), &auth).await;
    assert_eq!(status, 200, "{out:?}");
    let (chunks, done) = sse_chunks(&out);
    assert!(
        done && chunks.iter().all(|c| c.get("usage").is_none()),
        "{chunks:?}"
    );

    let azure = start(SimProvider::Azure, "eastus").await;
    let key = [("api-key", KEY)];
    for (version, want) in [
        ("2023-05-15", 400),
        ("2024-06-01", 400),
        ("2024-09-01-preview", 200),
        (API_VERSION, 200),
    ] {
        let url = azure_url(&azure, "chat/completions", Some(version));
        let (status, _, out) = post_json(&url, chat(true).to_string(), &key).await;
        assert_eq!(status, want, "{version}: {out:?}");
        let (status, _, out) = post_json(&url, bare.to_string(), &key).await;
        assert_eq!(status, 200, "{version}: {out:?}");
    }
}

#[actix_rt::test]
async fn an_openai_server_started_without_keys_takes_every_request_as_vllm_does() {
    let mut opts = SimOptions::new("vllm");
    opts.provider = SimProvider::OpenAi;
    let keyless = sim::start(opts).await.unwrap();
    let url = format!("{}/v1/chat/completions", keyless.url());
    let (status, _, out) = post_json(&url, chat(false).to_string(), &[]).await;
    assert_eq!(status, 200, "{out:?}");
    assert!(
        !keyless
            .stats()
            .last_request_headers
            .contains_key("authorization")
    );
    // Azure always wants its key.
    let mut opts = SimOptions::new("eastus");
    opts.provider = SimProvider::Azure;
    let azure = sim::start(opts).await.unwrap();
    let url = azure_url(&azure, "chat/completions", Some(API_VERSION));
    let (status, _, out) = post_json(&url, chat(false).to_string(), &[]).await;
    assert_eq!(status, 401, "{out:?}");
}
