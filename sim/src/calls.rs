//! Which Bedrock Runtime or Agent Runtime operation a request is, from its method and raw path.
//! Both services are served on one port (their paths do not overlap); both sign as `bedrock`.

use actix_web::http::Method;
use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `/model/{modelId}/{op}`, answered by the model operations.
    Model {
        model_id: String,
        op: String,
    },
    ApplyGuardrail {
        identifier: String,
        version: String,
    },
    StartAsyncInvoke,
    GetAsyncInvoke {
        arn: String,
    },
    ListAsyncInvokes,
    Rerank,
    Retrieve {
        knowledge_base_id: String,
    },
    RetrieveAndGenerate,
    RetrieveAndGenerateStream,
}

impl Call {
    pub fn parse(method: &Method, raw_path: &str) -> Option<Self> {
        let decode = |s: &str| {
            let d = percent_decode_str(s).decode_utf8().ok()?.into_owned();
            (!d.is_empty()).then_some(d)
        };
        let segments: Vec<&str> = raw_path.split('/').skip(1).collect();
        let call = match (method.as_str(), segments.as_slice()) {
            ("POST", ["model", id, op]) => Self::Model {
                model_id: decode(id)?,
                op: (*op).to_owned(),
            },
            ("POST", ["guardrail", id, "version", version, "apply"]) => Self::ApplyGuardrail {
                identifier: decode(id)?,
                version: decode(version)?,
            },
            ("POST", ["async-invoke"]) => Self::StartAsyncInvoke,
            ("GET", ["async-invoke"]) => Self::ListAsyncInvokes,
            ("GET", ["async-invoke", arn]) => Self::GetAsyncInvoke { arn: decode(arn)? },
            ("POST", ["rerank"]) => Self::Rerank,
            ("POST", ["knowledgebases", kb, "retrieve"]) => Self::Retrieve {
                knowledge_base_id: decode(kb)?,
            },
            ("POST", ["retrieveAndGenerate"]) => Self::RetrieveAndGenerate,
            ("POST", ["retrieveAndGenerateStream"]) => Self::RetrieveAndGenerateStream,
            _ => return None,
        };
        Some(call)
    }

    /// The name stats count the call under: the model operation's path suffix, else a kebab-case
    /// operation name.
    pub fn operation(&self) -> &str {
        match self {
            Self::Model { op, .. } => op,
            Self::ApplyGuardrail { .. } => "apply-guardrail",
            Self::StartAsyncInvoke => "start-async-invoke",
            Self::GetAsyncInvoke { .. } => "get-async-invoke",
            Self::ListAsyncInvokes => "list-async-invokes",
            Self::Rerank => "rerank",
            Self::Retrieve { .. } => "retrieve",
            Self::RetrieveAndGenerate => "retrieve-and-generate",
            Self::RetrieveAndGenerateStream => "retrieve-and-generate-stream",
        }
    }

    /// What stats count the call against: the model, guardrail (`id:version`) or knowledge base
    /// named in the path; `-` when the path names none.
    pub fn resource(&self) -> String {
        match self {
            Self::Model { model_id, .. } => model_id.clone(),
            Self::ApplyGuardrail {
                identifier,
                version,
            } => format!("{identifier}:{version}"),
            Self::Retrieve { knowledge_base_id } => knowledge_base_id.clone(),
            Self::GetAsyncInvoke { arn } => arn.clone(),
            Self::StartAsyncInvoke
            | Self::ListAsyncInvokes
            | Self::Rerank
            | Self::RetrieveAndGenerate
            | Self::RetrieveAndGenerateStream => "-".to_owned(),
        }
    }

    pub fn is_stream(&self) -> bool {
        match self {
            Self::Model { op, .. } => op.ends_with("-stream"),
            Self::RetrieveAndGenerateStream => true,
            Self::ApplyGuardrail { .. }
            | Self::StartAsyncInvoke
            | Self::GetAsyncInvoke { .. }
            | Self::ListAsyncInvokes
            | Self::Rerank
            | Self::Retrieve { .. }
            | Self::RetrieveAndGenerate => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_name_their_calls() {
        assert_eq!(
            Call::parse(
                &Method::POST,
                "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.anthropic.x-v1%3A0/converse"
            ),
            Some(Call::Model {
                model_id: "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.x-v1:0"
                    .into(),
                op: "converse".into()
            })
        );
        assert_eq!(Call::parse(&Method::POST, "/model//converse"), None);
        assert_eq!(
            Call::parse(
                &Method::GET,
                "/async-invoke/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aasync-invoke%2Fx"
            ),
            Some(Call::GetAsyncInvoke {
                arn: "arn:aws:bedrock:us-east-1:1:async-invoke/x".into()
            })
        );
        assert_eq!(
            Call::parse(&Method::POST, "/knowledgebases/KB1/retrieve"),
            Some(Call::Retrieve {
                knowledge_base_id: "KB1".into()
            })
        );
        assert_eq!(Call::parse(&Method::GET, "/rerank"), None);
        assert_eq!(
            Call::parse(&Method::POST, "/guardrail//version/1/apply"),
            None
        );
    }
}
