//! The Bedrock Runtime and Agent Runtime operations the gateway forwards.

use crate::config::Service;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Converse,
    ConverseStream,
    Invoke,
    InvokeWithResponseStream,
    ApplyGuardrail,
    StartAsyncInvoke,
    GetAsyncInvoke,
    ListAsyncInvokes,
    Rerank,
    Retrieve,
    RetrieveAndGenerate,
    RetrieveAndGenerateStream,
}

impl Operation {
    /// A model operation by the last segment of `/model/{modelId}/{suffix}`.
    pub fn from_path_suffix(suffix: &str) -> Option<Self> {
        match suffix {
            "converse" => Some(Self::Converse),
            "converse-stream" => Some(Self::ConverseStream),
            "invoke" => Some(Self::Invoke),
            "invoke-with-response-stream" => Some(Self::InvokeWithResponseStream),
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
            Self::ApplyGuardrail
            | Self::StartAsyncInvoke
            | Self::GetAsyncInvoke
            | Self::ListAsyncInvokes
            | Self::Rerank
            | Self::Retrieve
            | Self::RetrieveAndGenerate
            | Self::RetrieveAndGenerateStream => None,
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
            | Self::ApplyGuardrail
            | Self::StartAsyncInvoke
            | Self::Rerank
            | Self::Retrieve
            | Self::RetrieveAndGenerate
            | Self::RetrieveAndGenerateStream => "POST",
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
            | Self::ApplyGuardrail
            | Self::StartAsyncInvoke
            | Self::GetAsyncInvoke
            | Self::ListAsyncInvokes => Service::Runtime,
        }
    }

    /// Whether the operation runs a model synchronously, so its tokens count against limits.
    pub const fn generates(self) -> bool {
        match self {
            Self::Converse
            | Self::ConverseStream
            | Self::Invoke
            | Self::InvokeWithResponseStream => true,
            Self::ApplyGuardrail
            | Self::StartAsyncInvoke
            | Self::GetAsyncInvoke
            | Self::ListAsyncInvokes
            | Self::Rerank
            | Self::Retrieve
            | Self::RetrieveAndGenerate
            | Self::RetrieveAndGenerateStream => false,
        }
    }

    /// Whether Bedrock reads the [`crate::config::INVOKE_HEADERS`] on this operation.
    pub const fn takes_invoke_headers(self) -> bool {
        matches!(self, Self::Invoke | Self::InvokeWithResponseStream)
    }
}
