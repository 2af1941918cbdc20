//! Every operation of Bedrock Runtime and Bedrock Agent Runtime by its REST method and path (from
//! the services' Smithy models), each either served or refused by name. A request is matched here
//! on its raw, still-encoded path, so an ARN's `%2F` stays inside its one label.

use actix_web::http::Method;
use percent_encoding::percent_decode_str;

use crate::upstream::operation::Operation;

/// What the gateway does with an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    Served(Operation),
    /// Answered 501 in Bedrock's shape, naming the operation; the text says why.
    Refused(&'static str),
}

#[derive(Debug)]
pub struct Spec {
    /// The AWS operation name, e.g. `InvokeModel`.
    pub name: &'static str,
    pub method: &'static str,
    /// The Smithy `http` URI; `{label}` is one path segment.
    pub uri: &'static str,
    pub handling: Handling,
}

const BIDIRECTIONAL: &str =
    "it is an HTTP/2 bidirectional event stream, which the gateway does not proxy";
const AGENTS: &str = "agents, flows and their sessions live in one account and region, so they \
                      cannot be balanced; call bedrock-agent-runtime directly";
const GUARDRAIL_CHECKS: &str = "the gateway serves ApplyGuardrail for guardrails";
const NOT_YET: &str = "the gateway does not serve it";

const fn served(
    name: &'static str,
    method: &'static str,
    uri: &'static str,
    op: Operation,
) -> Spec {
    Spec {
        name,
        method,
        uri,
        handling: Handling::Served(op),
    }
}

const fn refused(
    name: &'static str,
    method: &'static str,
    uri: &'static str,
    why: &'static str,
) -> Spec {
    Spec {
        name,
        method,
        uri,
        handling: Handling::Refused(why),
    }
}

/// bedrock-runtime, then bedrock-agent-runtime, each in the model's order.
#[rustfmt::skip]
pub const OPERATIONS: [Spec; 46] = [
    served("ApplyGuardrail", "POST", "/guardrail/{guardrailIdentifier}/version/{guardrailVersion}/apply", Operation::ApplyGuardrail),
    served("Converse", "POST", "/model/{modelId}/converse", Operation::Converse),
    served("ConverseStream", "POST", "/model/{modelId}/converse-stream", Operation::ConverseStream),
    served("CountTokens", "POST", "/model/{modelId}/count-tokens", Operation::CountTokens),
    served("GetAsyncInvoke", "GET", "/async-invoke/{invocationArn}", Operation::GetAsyncInvoke),
    refused("InvokeGuardrailChecks", "POST", "/guardrail-checks/invoke", GUARDRAIL_CHECKS),
    served("InvokeModel", "POST", "/model/{modelId}/invoke", Operation::Invoke),
    refused("InvokeModelWithBidirectionalStream", "POST", "/model/{modelId}/invoke-with-bidirectional-stream", BIDIRECTIONAL),
    served("InvokeModelWithResponseStream", "POST", "/model/{modelId}/invoke-with-response-stream", Operation::InvokeWithResponseStream),
    served("ListAsyncInvokes", "GET", "/async-invoke", Operation::ListAsyncInvokes),
    served("StartAsyncInvoke", "POST", "/async-invoke", Operation::StartAsyncInvoke),
    refused("AgenticRetrieveStream", "POST", "/agenticRetrieveStream", NOT_YET),
    refused("CheckIngestedDocumentAcl", "POST", "/knowledgebases/{knowledgeBaseId}/datasources/{dataSourceId}/check-ingested-document-acl", NOT_YET),
    refused("CreateInvocation", "PUT", "/sessions/{sessionIdentifier}/invocations/", AGENTS),
    refused("CreateSession", "PUT", "/sessions/", AGENTS),
    refused("DeleteAgentMemory", "DELETE", "/agents/{agentId}/agentAliases/{agentAliasId}/memories", AGENTS),
    refused("DeleteSession", "DELETE", "/sessions/{sessionIdentifier}/", AGENTS),
    refused("EndSession", "PATCH", "/sessions/{sessionIdentifier}", AGENTS),
    refused("GenerateQuery", "POST", "/generateQuery", NOT_YET),
    refused("GetAgentMemory", "GET", "/agents/{agentId}/agentAliases/{agentAliasId}/memories", AGENTS),
    refused("GetDocumentContent", "POST", "/knowledgebases/{knowledgeBaseId}/datasources/{dataSourceId}/documents/{documentId}/content", NOT_YET),
    refused("GetExecutionFlowSnapshot", "GET", "/flows/{flowIdentifier}/aliases/{flowAliasIdentifier}/executions/{executionIdentifier}/flowsnapshot", AGENTS),
    refused("GetFlowExecution", "GET", "/flows/{flowIdentifier}/aliases/{flowAliasIdentifier}/executions/{executionIdentifier}", AGENTS),
    refused("GetIngestedDocumentAcl", "POST", "/knowledgebases/{knowledgeBaseId}/datasources/{dataSourceId}/get-ingested-document-acl", NOT_YET),
    refused("GetInvocationStep", "POST", "/sessions/{sessionIdentifier}/invocationSteps/{invocationStepId}", AGENTS),
    refused("GetSession", "GET", "/sessions/{sessionIdentifier}/", AGENTS),
    refused("InvokeAgent", "POST", "/agents/{agentId}/agentAliases/{agentAliasId}/sessions/{sessionId}/text", AGENTS),
    refused("InvokeFlow", "POST", "/flows/{flowIdentifier}/aliases/{flowAliasIdentifier}", AGENTS),
    refused("InvokeInlineAgent", "POST", "/agents/{sessionId}", AGENTS),
    refused("ListFlowExecutionEvents", "GET", "/flows/{flowIdentifier}/aliases/{flowAliasIdentifier}/executions/{executionIdentifier}/events", AGENTS),
    refused("ListFlowExecutions", "GET", "/flows/{flowIdentifier}/executions", AGENTS),
    refused("ListInvocationSteps", "POST", "/sessions/{sessionIdentifier}/invocationSteps/", AGENTS),
    refused("ListInvocations", "POST", "/sessions/{sessionIdentifier}/invocations/", AGENTS),
    refused("ListSessions", "POST", "/sessions/", AGENTS),
    refused("ListTagsForResource", "GET", "/tags/{resourceArn}", AGENTS),
    refused("OptimizePrompt", "POST", "/optimize-prompt", NOT_YET),
    refused("PutInvocationStep", "PUT", "/sessions/{sessionIdentifier}/invocationSteps/", AGENTS),
    served("Rerank", "POST", "/rerank", Operation::Rerank),
    served("Retrieve", "POST", "/knowledgebases/{knowledgeBaseId}/retrieve", Operation::Retrieve),
    served("RetrieveAndGenerate", "POST", "/retrieveAndGenerate", Operation::RetrieveAndGenerate),
    served("RetrieveAndGenerateStream", "POST", "/retrieveAndGenerateStream", Operation::RetrieveAndGenerateStream),
    refused("StartFlowExecution", "POST", "/flows/{flowIdentifier}/aliases/{flowAliasIdentifier}/executions", AGENTS),
    refused("StopFlowExecution", "POST", "/flows/{flowIdentifier}/aliases/{flowAliasIdentifier}/executions/{executionIdentifier}/stop", AGENTS),
    refused("TagResource", "POST", "/tags/{resourceArn}", AGENTS),
    refused("UntagResource", "DELETE", "/tags/{resourceArn}", AGENTS),
    refused("UpdateSession", "PUT", "/sessions/{sessionIdentifier}/", AGENTS),
];

/// A matched request: its operation and its path labels, decoded, in the order of the URI.
#[derive(Debug)]
pub struct Matched {
    pub spec: &'static Spec,
    pub labels: Vec<String>,
}

/// The operation a request names, if any. A label must be a non-empty segment that decodes to UTF-8.
pub fn find(method: &Method, raw_path: &str) -> Option<Matched> {
    OPERATIONS
        .iter()
        .filter(|spec| spec.method == method.as_str())
        .find_map(|spec| {
            let labels = match_uri(spec.uri, raw_path)?;
            Some(Matched { spec, labels })
        })
}

fn match_uri(uri: &str, raw_path: &str) -> Option<Vec<String>> {
    let mut want = uri.split('/');
    let mut got = raw_path.split('/');
    let mut labels = Vec::new();
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(labels),
            (Some(w), Some(g)) if w.starts_with('{') => {
                let label = percent_decode_str(g).decode_utf8().ok()?;
                if label.is_empty() {
                    return None;
                }
                labels.push(label.into_owned());
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn name(method: Method, path: &str) -> Option<(&'static str, Vec<String>)> {
        find(&method, path).map(|m| (m.spec.name, m.labels))
    }

    #[test]
    fn labels_are_one_decoded_segment() {
        assert_eq!(
            name(
                Method::POST,
                "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.x/invoke-with-response-stream"
            ),
            Some((
                "InvokeModelWithResponseStream",
                vec!["arn:aws:bedrock:us-east-1:123:inference-profile/us.x".to_owned()]
            ))
        );
        assert_eq!(
            name(
                Method::GET,
                "/async-invoke/arn%3Aaws%3Abedrock%3Aeu-west-1%3A1%3Aasync-invoke%2Fab"
            ),
            Some((
                "GetAsyncInvoke",
                vec!["arn:aws:bedrock:eu-west-1:1:async-invoke/ab".to_owned()]
            ))
        );
        assert_eq!(
            name(Method::POST, "/guardrail/gr1/version/DRAFT/apply"),
            Some(("ApplyGuardrail", vec!["gr1".to_owned(), "DRAFT".to_owned()]))
        );
    }

    #[test]
    fn method_and_shape_must_both_match() {
        assert_eq!(
            name(Method::GET, "/async-invoke").unwrap().0,
            "ListAsyncInvokes"
        );
        assert_eq!(
            name(Method::POST, "/async-invoke").unwrap().0,
            "StartAsyncInvoke"
        );
        assert_eq!(name(Method::PATCH, "/sessions/s1").unwrap().0, "EndSession");
        assert_eq!(name(Method::GET, "/sessions/s1/").unwrap().0, "GetSession");
        assert_eq!(
            name(Method::POST, "/agents/s1").unwrap().0,
            "InvokeInlineAgent"
        );
        assert!(name(Method::POST, "/model/x/explode").is_none());
        assert!(name(Method::POST, "/model//converse").is_none());
        assert!(name(Method::GET, "/model/x/converse").is_none());
        assert!(name(Method::POST, "/v1/chat/completions").is_none());
    }

    #[test]
    fn every_operation_is_listed_once_per_method() {
        for (i, a) in OPERATIONS.iter().enumerate() {
            for b in &OPERATIONS[i + 1..] {
                assert!(
                    !(a.method == b.method && a.uri == b.uri),
                    "{} and {} collide",
                    a.name,
                    b.name
                );
            }
        }
    }
}
