//! The Bedrock Runtime operations the gateway forwards.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Converse,
    ConverseStream,
    Invoke,
    InvokeWithResponseStream,
    CountTokens,
}

/// Geographic prefixes of cross-region inference profile ids (`us.anthropic.claude-...`).
const PROFILE_PREFIXES: [&str; 6] = ["us.", "eu.", "apac.", "jp.", "au.", "global."];

impl Operation {
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

    pub const fn path_suffix(self) -> &'static str {
        match self {
            Self::Converse => "converse",
            Self::ConverseStream => "converse-stream",
            Self::Invoke => "invoke",
            Self::InvokeWithResponseStream => "invoke-with-response-stream",
            Self::CountTokens => "count-tokens",
        }
    }

    /// The model id this operation is addressed to. CountTokens takes only a foundation model
    /// id: Bedrock refuses a cross-region inference profile there, so its geographic prefix goes.
    pub fn model_id(self, target_model_id: &str) -> &str {
        match self {
            Self::CountTokens => PROFILE_PREFIXES
                .iter()
                .find_map(|p| target_model_id.strip_prefix(p))
                .unwrap_or(target_model_id),
            Self::Converse
            | Self::ConverseStream
            | Self::Invoke
            | Self::InvokeWithResponseStream => target_model_id,
        }
    }

    /// Whether the response is an AWS event stream.
    pub const fn is_stream(self) -> bool {
        matches!(self, Self::ConverseStream | Self::InvokeWithResponseStream)
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
            Operation::from_path_suffix("count-tokens"),
            Some(Operation::CountTokens)
        );
        assert!(!Operation::CountTokens.is_stream());
    }
}
