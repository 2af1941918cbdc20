//! The four Bedrock Runtime operations the gateway forwards.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Converse,
    ConverseStream,
    Invoke,
    InvokeWithResponseStream,
}

impl Operation {
    pub fn from_path_suffix(suffix: &str) -> Option<Self> {
        match suffix {
            "converse" => Some(Self::Converse),
            "converse-stream" => Some(Self::ConverseStream),
            "invoke" => Some(Self::Invoke),
            "invoke-with-response-stream" => Some(Self::InvokeWithResponseStream),
            _ => None,
        }
    }

    pub const fn path_suffix(self) -> &'static str {
        match self {
            Self::Converse => "converse",
            Self::ConverseStream => "converse-stream",
            Self::Invoke => "invoke",
            Self::InvokeWithResponseStream => "invoke-with-response-stream",
        }
    }

    /// Whether the response is an AWS event stream.
    pub const fn is_stream(self) -> bool {
        matches!(self, Self::ConverseStream | Self::InvokeWithResponseStream)
    }
}
