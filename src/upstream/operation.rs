//! The Bedrock Runtime and Agent Runtime operations the gateway forwards, the Anthropic API's
//! Messages call and OpenAI's chat completions, legacy completions and embeddings (an
//! OpenAI-compatible server's or Azure's).

use crate::config::Service;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Converse,
    ConverseStream,
    Invoke,
    InvokeWithResponseStream,
    CountTokens,
    ApplyGuardrail,
    StartAsyncInvoke,
    GetAsyncInvoke,
    ListAsyncInvokes,
    Rerank,
    Retrieve,
    RetrieveAndGenerate,
    RetrieveAndGenerateStream,
    /// The Anthropic API's `POST /v1/messages`, answered whole.
    Messages,
    /// The same, answered as server-sent events.
    MessagesStream,
    /// OpenAI's `POST /v1/chat/completions` (Azure: on the deployment's path), answered whole.
    ChatCompletions,
    /// The same, answered as server-sent events.
    ChatCompletionsStream,
    /// OpenAI's legacy `POST /v1/completions` (Azure: on the deployment's path), answered whole.
    Completions,
    /// The same, answered as server-sent events.
    CompletionsStream,
    /// OpenAI's `POST /v1/embeddings` (Azure: on the deployment's path).
    Embeddings,
}

/// Geographic prefixes of cross-region inference profile ids (`us.anthropic.claude-...`).
const PROFILE_PREFIXES: [&str; 6] = ["us.", "eu.", "apac.", "jp.", "au.", "global."];

impl Operation {
    /// A model operation by the last segment of `/model/{modelId}/{suffix}`.
    pub fn from_path_suffix(suffix: &str) -> Option<Self> {
        match suffix {
            "converse" => Some(Self::Converse),
            "converse-stream" => Some(Self::ConverseStream),
            "invoke" => Some(Self::Invoke),
            "invoke-with-response-stream" => Some(Self::InvokeWithResponseStream),
            "count-tokens" => Some(Self::CountTokens),
            _ => None,
        }
    }

    /// The last path segment of a model operation; `None` for the others.
    pub const fn path_suffix(self) -> Option<&'static str> {
        match self {
            Self::Converse => Some("converse"),
            Self::ConverseStream => Some("converse-stream"),
            Self::Invoke => Some("invoke"),
            Self::InvokeWithResponseStream => Some("invoke-with-response-stream"),
            Self::CountTokens => Some("count-tokens"),
            Self::ApplyGuardrail
            | Self::StartAsyncInvoke
            | Self::GetAsyncInvoke
            | Self::ListAsyncInvokes
            | Self::Rerank
            | Self::Retrieve
            | Self::RetrieveAndGenerate
            | Self::RetrieveAndGenerateStream
            | Self::Messages
            | Self::MessagesStream
            | Self::ChatCompletions
            | Self::ChatCompletionsStream
            | Self::Completions
            | Self::CompletionsStream
            | Self::Embeddings => None,
        }
    }

    /// The model id this operation is addressed to. CountTokens takes only a foundation model
    /// id: Bedrock refuses a cross-region inference profile there, so its geographic prefix goes.
    pub fn model_id(self, target_model_id: &str) -> &str {
        match self {
            Self::CountTokens => {
                // A system inference profile's or foundation model's ARN names the model after
                // its last `/`; an application inference profile's names none and stays as is.
                let id = [":inference-profile/", ":foundation-model/"]
                    .iter()
                    .find_map(|kind| Some(target_model_id.split_once(kind)?.1))
                    .unwrap_or(target_model_id);
                PROFILE_PREFIXES
                    .iter()
                    .find_map(|p| id.strip_prefix(p))
                    .unwrap_or(id)
            }
            _ => target_model_id,
        }
    }

    /// Whether the response is an AWS event stream.
    pub const fn is_stream(self) -> bool {
        matches!(
            self,
            Self::ConverseStream | Self::InvokeWithResponseStream | Self::RetrieveAndGenerateStream
        )
    }

    pub const fn method(self) -> &'static str {
        match self {
            Self::GetAsyncInvoke | Self::ListAsyncInvokes => "GET",
            Self::Converse
            | Self::ConverseStream
            | Self::Invoke
            | Self::InvokeWithResponseStream
            | Self::CountTokens
            | Self::ApplyGuardrail
            | Self::StartAsyncInvoke
            | Self::Rerank
            | Self::Retrieve
            | Self::RetrieveAndGenerate
            | Self::RetrieveAndGenerateStream
            | Self::Messages
            | Self::MessagesStream
            | Self::ChatCompletions
            | Self::ChatCompletionsStream
            | Self::Completions
            | Self::CompletionsStream
            | Self::Embeddings => "POST",
        }
    }

    pub const fn service(self) -> Service {
        match self {
            Self::Rerank
            | Self::Retrieve
            | Self::RetrieveAndGenerate
            | Self::RetrieveAndGenerateStream => Service::AgentRuntime,
            Self::Converse
            | Self::ConverseStream
            | Self::Invoke
            | Self::InvokeWithResponseStream
            | Self::CountTokens
            | Self::ApplyGuardrail
            | Self::StartAsyncInvoke
            | Self::GetAsyncInvoke
            | Self::ListAsyncInvokes
            | Self::Messages
            | Self::MessagesStream
            | Self::ChatCompletions
            | Self::ChatCompletionsStream
            | Self::Completions
            | Self::CompletionsStream
            | Self::Embeddings => Service::Runtime,
        }
    }

    /// Whether the operation runs a model synchronously, so its tokens count against limits.
    pub const fn generates(self) -> bool {
        match self {
            Self::Converse
            | Self::ConverseStream
            | Self::Invoke
            | Self::InvokeWithResponseStream
            | Self::Messages
            | Self::MessagesStream
            | Self::ChatCompletions
            | Self::ChatCompletionsStream
            | Self::Completions
            | Self::CompletionsStream
            | Self::Embeddings => true,
            Self::CountTokens
            | Self::ApplyGuardrail
            | Self::StartAsyncInvoke
            | Self::GetAsyncInvoke
            | Self::ListAsyncInvokes
            | Self::Rerank
            | Self::Retrieve
            | Self::RetrieveAndGenerate
            | Self::RetrieveAndGenerateStream => false,
        }
    }

    /// What the upstream is asked to answer in, when it is not the client's `Accept`: the
    /// other providers stream server-sent events where Bedrock streams AWS event streams.
    pub const fn accept(self) -> Option<&'static str> {
        match self {
            Self::Messages | Self::ChatCompletions | Self::Completions | Self::Embeddings => {
                Some("application/json")
            }
            Self::MessagesStream | Self::ChatCompletionsStream | Self::CompletionsStream => {
                Some("text/event-stream")
            }
            _ => None,
        }
    }

    /// Whether Bedrock reads the [`crate::config::INVOKE_HEADERS`] on this operation.
    pub const fn takes_invoke_headers(self) -> bool {
        matches!(self, Self::Invoke | Self::InvokeWithResponseStream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_tokens_addresses_the_foundation_model() {
        let profile = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
        assert_eq!(
            Operation::CountTokens.model_id(profile),
            "anthropic.claude-sonnet-4-5-20250929-v1:0"
        );
        assert_eq!(
            Operation::CountTokens.model_id("global.anthropic.claude-haiku-4-5"),
            "anthropic.claude-haiku-4-5"
        );
        assert_eq!(Operation::Invoke.model_id(profile), profile);
        assert_eq!(
            Operation::CountTokens
                .model_id("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-haiku-4-5"),
            "anthropic.claude-haiku-4-5"
        );
        assert_eq!(
            Operation::CountTokens
                .model_id("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5"),
            "anthropic.claude-haiku-4-5"
        );
        let application =
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3";
        assert_eq!(Operation::CountTokens.model_id(application), application);
        assert_eq!(
            Operation::from_path_suffix("count-tokens"),
            Some(Operation::CountTokens)
        );
        assert!(!Operation::CountTokens.is_stream());
    }
}
