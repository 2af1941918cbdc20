//! One upstream request for one target: method, path, query, headers and body. What differs
//! between targets is written here: the target's model id, its region's guardrail and knowledge
//! base, its default InvokeModel headers, the Anthropic API's version and beta headers. The body
//! is passed as received unless an id in it must change (StartAsyncInvoke's `modelId`, a mapped
//! knowledge base, the Anthropic API's `model`).

use bytes::Bytes;
use percent_encoding::utf8_percent_encode;
use serde_json::Value;

use super::operation::Operation;
use crate::aws::sign::PATH_LABEL;
use crate::config::{ProviderOptions, Target};

/// What the client named besides the operation: path labels, the query and Bedrock's request
/// headers, decoded. Each operation reads the ones its REST path has.
#[derive(Debug, Default, Clone)]
pub struct Params {
    /// ApplyGuardrail's `guardrailIdentifier` and `guardrailVersion`.
    pub guardrail: Option<(String, String)>,
    /// Retrieve's `knowledgeBaseId`.
    pub knowledge_base: Option<String>,
    /// GetAsyncInvoke's `invocationArn`.
    pub invocation_arn: Option<String>,
    /// ListAsyncInvokes' query, as it goes on the wire (without `?`).
    pub query: String,
    /// The client's values of [`crate::config::INVOKE_HEADERS`], names lower-cased.
    pub invoke_headers: Vec<(&'static str, String)>,
    /// The client's Anthropic beta flags, for the Anthropic API's `anthropic-beta` header.
    pub anthropic_betas: Vec<String>,
}

/// The request for one target.
#[derive(Debug)]
pub struct Upstream {
    /// Encoded, as sent and signed.
    pub path: String,
    /// As sent and signed, without `?`.
    pub query: String,
    pub body: Bytes,
    /// Extra headers to send and sign (InvokeModel's Bedrock headers).
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The path lacks a label its operation needs: a bug in the surface that built the params.
    #[error("{operation:?} needs its {label} path label")]
    MissingLabel {
        operation: Operation,
        label: &'static str,
    },
    #[error("a {operation:?} target has no model id")]
    NoModel { operation: Operation },
    #[error("the request body is not a JSON object: {0}")]
    Body(String),
    /// A call picked for a target of another provider: a bug in the surface's shaping.
    #[error("{operation:?} cannot go to a target of this provider")]
    WrongProvider { operation: Operation },
}

pub fn prepare(
    target: &Target,
    operation: Operation,
    params: &Params,
    body: &Bytes,
) -> Result<Upstream, PrepareError> {
    let encode = |s: &str| utf8_percent_encode(s, PATH_LABEL).to_string();
    let missing = |label| PrepareError::MissingLabel { operation, label };
    let model = || {
        target
            .model_id
            .as_deref()
            .ok_or(PrepareError::NoModel { operation })
    };
    let mut headers = Vec::new();
    let (path, body) = match operation {
        Operation::Converse
        | Operation::ConverseStream
        | Operation::Invoke
        | Operation::InvokeWithResponseStream
        | Operation::CountTokens => {
            if operation.takes_invoke_headers() {
                headers = invoke_headers(target, &params.invoke_headers);
            }
            let suffix = operation.path_suffix().unwrap_or_default();
            let model = operation.model_id(model()?);
            (format!("/model/{}/{suffix}", encode(model)), body.clone())
        }
        Operation::ApplyGuardrail => {
            let (id, version) = params.guardrail.as_ref().ok_or(missing("guardrail"))?;
            let mapped = target.guardrail_map.get(id);
            let id = mapped.map_or(id, |m| &m.identifier);
            let version = mapped.and_then(|m| m.version.as_ref()).unwrap_or(version);
            let path = format!(
                "/guardrail/{}/version/{}/apply",
                encode(id),
                encode(version)
            );
            (path, body.clone())
        }
        Operation::StartAsyncInvoke => {
            let model = model()?;
            let body = rewrite(body, |doc| {
                doc.insert("modelId".to_owned(), Value::String(model.to_owned()));
                true
            })?;
            ("/async-invoke".to_owned(), body)
        }
        Operation::GetAsyncInvoke => {
            let arn = params
                .invocation_arn
                .as_ref()
                .ok_or(missing("invocationArn"))?;
            (format!("/async-invoke/{}", encode(arn)), Bytes::new())
        }
        Operation::ListAsyncInvokes => ("/async-invoke".to_owned(), Bytes::new()),
        Operation::Rerank => ("/rerank".to_owned(), body.clone()),
        Operation::Retrieve => {
            let kb = params
                .knowledge_base
                .as_ref()
                .ok_or(missing("knowledgeBaseId"))?;
            let kb = target.knowledge_base_map.get(kb).unwrap_or(kb);
            (
                format!("/knowledgebases/{}/retrieve", encode(kb)),
                body.clone(),
            )
        }
        Operation::RetrieveAndGenerate | Operation::RetrieveAndGenerateStream => {
            let path = if operation.is_stream() {
                "/retrieveAndGenerateStream"
            } else {
                "/retrieveAndGenerate"
            };
            let body = if target.knowledge_base_map.is_empty() {
                body.clone()
            } else {
                rewrite(body, |doc| map_knowledge_base(doc, target))?
            };
            (path.to_owned(), body)
        }
        Operation::Messages | Operation::MessagesStream => {
            let ProviderOptions::Anthropic { version } = &target.provider else {
                return Err(PrepareError::WrongProvider { operation });
            };
            headers.push(("anthropic-version", version.clone()));
            if !params.anthropic_betas.is_empty() {
                headers.push(("anthropic-beta", params.anthropic_betas.join(",")));
            }
            (
                format!("{}/v1/messages", target.base_path),
                with_model(body, model()?)?,
            )
        }
        Operation::ChatCompletions
        | Operation::ChatCompletionsStream
        | Operation::Completions
        | Operation::CompletionsStream
        | Operation::Embeddings => {
            let call = match operation {
                Operation::Embeddings => "embeddings",
                Operation::Completions | Operation::CompletionsStream => "completions",
                _ => "chat/completions",
            };
            let path = match &target.provider {
                ProviderOptions::OpenAi { .. } => format!("{}/{call}", target.base_path),
                ProviderOptions::Azure { deployment_id, .. } => {
                    format!("/openai/deployments/{}/{call}", encode(deployment_id))
                }
                ProviderOptions::Bedrock | ProviderOptions::Anthropic { .. } => {
                    return Err(PrepareError::WrongProvider { operation });
                }
            };
            // Azure picks the model by deployment; a `model` named for it goes as well.
            let body = match target.model_id.as_deref() {
                Some(model) => with_model(body, model)?,
                None => body.clone(),
            };
            (path, body)
        }
    };
    let query = match (operation, &target.provider) {
        (Operation::ListAsyncInvokes, _) => params.query.clone(),
        (
            Operation::ChatCompletions
            | Operation::ChatCompletionsStream
            | Operation::Completions
            | Operation::CompletionsStream
            | Operation::Embeddings,
            ProviderOptions::Azure { api_version, .. },
        ) => format!("api-version={}", encode(api_version)),
        _ => String::new(),
    };
    Ok(Upstream {
        path,
        query,
        body,
        headers,
    })
}

/// The target's defaults, with the client's values where the target allows them.
fn invoke_headers(
    target: &Target,
    client: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let config = &target.invoke_headers;
    let mut out: Vec<(&'static str, String)> = config.defaults.clone();
    for (name, value) in client {
        match out.iter_mut().find(|(n, _)| n == name) {
            Some(default) if config.overridable => default.1.clone_from(value),
            Some(_) => {}
            None => out.push((name, value.clone())),
        }
    }
    out
}

/// RetrieveAndGenerate names its knowledge base in the body; a mapped one is replaced.
fn map_knowledge_base(doc: &mut serde_json::Map<String, Value>, target: &Target) -> bool {
    let Some(Value::String(kb)) = doc
        .get_mut("retrieveAndGenerateConfiguration")
        .and_then(|c| c.get_mut("knowledgeBaseConfiguration"))
        .and_then(|c| c.get_mut("knowledgeBaseId"))
    else {
        return false;
    };
    match target.knowledge_base_map.get(kb.as_str()) {
        Some(mapped) => {
            mapped.clone_into(kb);
            true
        }
        None => false,
    }
}

/// The body with `model` set to the target's.
fn with_model(body: &Bytes, model: &str) -> Result<Bytes, PrepareError> {
    rewrite(body, |doc| {
        doc.insert("model".to_owned(), Value::String(model.to_owned()));
        true
    })
}

/// Applies `edit` to the body's JSON object; re-serialises only when it changed something.
fn rewrite(
    body: &Bytes,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>) -> bool,
) -> Result<Bytes, PrepareError> {
    let mut doc: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| PrepareError::Body(e.to_string()))?;
    if !edit(&mut doc) {
        return Ok(body.clone());
    }
    serde_json::to_vec(&doc)
        .map(Bytes::from)
        .map_err(|e| PrepareError::Body(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;
    use std::num::NonZeroU16;

    use super::*;
    use crate::config::{GuardrailRef, InvokeHeaders, Limits, Service, TargetAuth};

    fn target(model: Option<&str>) -> Target {
        Target {
            name: None,
            model_id: model.map(str::to_owned),
            service: Service::Runtime,
            provider: ProviderOptions::Bedrock,
            region: "eu-west-1".into(),
            upstream_url: "http://127.0.0.1:1".into(),
            base_path: String::new(),
            invoke_headers: InvokeHeaders::default(),
            guardrail_map: BTreeMap::new(),
            knowledge_base_map: BTreeMap::new(),
            auth: TargetAuth::SigV4 {
                keys: None,
                assume_role: None,
            },
            input_cost: 0.0,
            output_cost: 0.0,
            cache_read_cost: 0.0,
            cache_write_cost: 0.0,
            anthropic_betas: Default::default(),
            model_family: None,
            max_tokens: None,
            max_tokens_field: crate::config::MaxTokensField::MaxTokens,
            weight: NonZeroU16::MIN,
            priority: None,
            limits: Limits::default(),
        }
    }

    #[test]
    fn model_paths_carry_the_targets_model_as_one_label() {
        let up = prepare(
            &target(Some("arn:aws:bedrock:eu-west-1:1:inference-profile/eu.x")),
            Operation::Converse,
            &Params::default(),
            &Bytes::from_static(b"{}"),
        )
        .unwrap();
        assert_eq!(
            up.path,
            "/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A1%3Ainference-profile%2Feu.x/converse"
        );
    }

    #[test]
    fn guardrails_map_to_the_regions_own_and_unmapped_ones_pass() {
        let mut t = target(None);
        t.guardrail_map.insert(
            "client-gr".into(),
            GuardrailRef {
                identifier: "gr-eu".into(),
                version: Some("3".into()),
            },
        );
        let path = |id: &str| {
            let params = Params {
                guardrail: Some((id.into(), "1".into())),
                ..Params::default()
            };
            prepare(&t, Operation::ApplyGuardrail, &params, &Bytes::new())
                .unwrap()
                .path
        };
        assert_eq!(path("client-gr"), "/guardrail/gr-eu/version/3/apply");
        assert_eq!(path("other"), "/guardrail/other/version/1/apply");
    }

    #[test]
    fn async_invoke_takes_the_targets_model_and_keeps_the_rest() {
        let body = Bytes::from_static(
            br#"{"modelId":"route","clientRequestToken":"tok-1","modelInput":{"a":1}}"#,
        );
        let up = prepare(
            &target(Some("amazon.nova-reel-v1:0")),
            Operation::StartAsyncInvoke,
            &Params::default(),
            &body,
        )
        .unwrap();
        let doc: Value = serde_json::from_slice(&up.body).unwrap();
        assert_eq!(doc["modelId"], "amazon.nova-reel-v1:0");
        assert_eq!(doc["clientRequestToken"], "tok-1");
        assert_eq!(doc["modelInput"]["a"], 1);
    }

    #[test]
    fn knowledge_bases_map_in_path_and_body() {
        let mut t = target(None);
        t.knowledge_base_map
            .insert("KBCLIENT".into(), "KBEU".into());
        let params = Params {
            knowledge_base: Some("KBCLIENT".into()),
            ..Params::default()
        };
        let up = prepare(&t, Operation::Retrieve, &params, &Bytes::new()).unwrap();
        assert_eq!(up.path, "/knowledgebases/KBEU/retrieve");
        let body = Bytes::from_static(
            br#"{"input":{"text":"q"},"retrieveAndGenerateConfiguration":{"type":"KNOWLEDGE_BASE","knowledgeBaseConfiguration":{"knowledgeBaseId":"KBCLIENT","modelArn":"m"}}}"#,
        );
        let up = prepare(
            &t,
            Operation::RetrieveAndGenerate,
            &Params::default(),
            &body,
        )
        .unwrap();
        let doc: Value = serde_json::from_slice(&up.body).unwrap();
        assert_eq!(
            doc["retrieveAndGenerateConfiguration"]["knowledgeBaseConfiguration"]["knowledgeBaseId"],
            "KBEU"
        );
        // An unmapped id leaves the body byte for byte.
        let other = Bytes::from_static(
            br#"{"retrieveAndGenerateConfiguration":{"knowledgeBaseConfiguration":{"knowledgeBaseId":"X"}}}"#,
        );
        let up = prepare(
            &t,
            Operation::RetrieveAndGenerate,
            &Params::default(),
            &other,
        )
        .unwrap();
        assert_eq!(up.body, other);
    }

    #[test]
    fn messages_go_to_the_anthropic_api_with_its_headers_and_the_targets_model() {
        let mut t = target(Some("claude-sonnet-4-5"));
        let body = Bytes::from_static(
            br#"{"model":"route","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
        );
        let params = Params {
            anthropic_betas: vec!["b1".into(), "b2".into()],
            ..Params::default()
        };
        let refused = prepare(&t, Operation::Messages, &params, &body).unwrap_err();
        assert!(matches!(refused, PrepareError::WrongProvider { .. }));
        t.provider = ProviderOptions::Anthropic {
            version: "2023-06-01".into(),
        };
        let up = prepare(&t, Operation::MessagesStream, &params, &body).unwrap();
        assert_eq!(up.path, "/v1/messages");
        t.base_path = "/anthropic".into();
        let prefixed = prepare(&t, Operation::Messages, &params, &body).unwrap();
        assert_eq!(prefixed.path, "/anthropic/v1/messages");
        t.base_path.clear();
        assert_eq!(
            up.headers,
            [
                ("anthropic-version", "2023-06-01".to_owned()),
                ("anthropic-beta", "b1,b2".to_owned())
            ]
        );
        let doc: Value = serde_json::from_slice(&up.body).unwrap();
        assert_eq!(doc["model"], "claude-sonnet-4-5");
        assert_eq!(doc["max_tokens"], 5);
        assert_eq!(doc["messages"][0]["content"], "hi");
        let bare = prepare(&t, Operation::Messages, &Params::default(), &body).unwrap();
        assert_eq!(bare.headers.len(), 1);
    }

    #[test]
    fn openai_calls_go_to_openai_or_the_azure_deployment_with_its_api_version() {
        let mut t = target(Some("gpt-4o-mini"));
        let body = Bytes::from_static(br#"{"model":"route","messages":[]}"#);
        let params = Params::default();
        assert!(prepare(&t, Operation::ChatCompletions, &params, &body).is_err());
        t.provider = ProviderOptions::OpenAi {
            stream_include_usage: true,
        };
        t.base_path = "/v1".into();
        let up = prepare(&t, Operation::ChatCompletionsStream, &params, &body).unwrap();
        assert_eq!(
            (up.path.as_str(), up.query.as_str()),
            ("/v1/chat/completions", "")
        );
        // An OpenAI SDK's base_url with a path: the calls go under it.
        t.base_path = "/openai/v1".into();
        let groq = prepare(&t, Operation::Embeddings, &params, &body).unwrap();
        assert_eq!(groq.path, "/openai/v1/embeddings");
        t.base_path = "/v1".into();
        let doc: Value = serde_json::from_slice(&up.body).unwrap();
        assert_eq!(doc["model"], "gpt-4o-mini");
        t.provider = ProviderOptions::Azure {
            deployment_id: "prod-4o".into(),
            api_version: "2024-10-21".into(),
            stream_include_usage: true,
        };
        let up = prepare(&t, Operation::ChatCompletions, &params, &body).unwrap();
        assert_eq!(up.path, "/openai/deployments/prod-4o/chat/completions");
        assert_eq!(up.query, "api-version=2024-10-21");
        assert!(up.headers.is_empty());
        let up = prepare(&t, Operation::Embeddings, &params, &body).unwrap();
        assert_eq!(up.path, "/openai/deployments/prod-4o/embeddings");
        assert_eq!(up.query, "api-version=2024-10-21");
        let up = prepare(&t, Operation::CompletionsStream, &params, &body).unwrap();
        assert_eq!(up.path, "/openai/deployments/prod-4o/completions");
        assert_eq!(up.query, "api-version=2024-10-21");
        t.provider = ProviderOptions::OpenAi {
            stream_include_usage: true,
        };
        let up = prepare(&t, Operation::Completions, &params, &body).unwrap();
        assert_eq!(
            (up.path.as_str(), up.query.as_str()),
            ("/v1/completions", "")
        );
    }

    #[test]
    fn invoke_headers_follow_the_targets_defaults_and_override_switch() {
        let mut t = target(Some("m"));
        t.invoke_headers = InvokeHeaders {
            defaults: vec![("x-amzn-bedrock-guardrailidentifier", "gr-eu".into())],
            overridable: false,
        };
        let params = Params {
            invoke_headers: vec![
                ("x-amzn-bedrock-guardrailidentifier", "client".into()),
                ("x-amzn-bedrock-trace", "ENABLED".into()),
            ],
            ..Params::default()
        };
        let headers = |t: &Target, op| prepare(t, op, &params, &Bytes::new()).unwrap().headers;
        assert_eq!(
            headers(&t, Operation::Invoke),
            [
                ("x-amzn-bedrock-guardrailidentifier", "gr-eu".to_owned()),
                ("x-amzn-bedrock-trace", "ENABLED".to_owned())
            ]
        );
        t.invoke_headers.overridable = true;
        assert_eq!(
            headers(&t, Operation::InvokeWithResponseStream)[0].1,
            "client"
        );
        // Converse reads its guardrail from the body, never these headers.
        assert!(headers(&t, Operation::Converse).is_empty());
    }
}
