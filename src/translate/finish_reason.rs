//! Bedrock `stopReason` to OpenAI `finish_reason`.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

impl FinishReason {
    /// Maps a Bedrock stop reason.
    ///
    /// `model_context_window_exceeded` is `length` because, as with `max_tokens`, the answer was
    /// cut short by a token budget. Everything else unknown (`malformed_model_output`,
    /// `malformed_tool_use`, reasons added later) is `stop`: OpenAI has no value for "the model
    /// misbehaved", and `stop` is what clients treat as a normal end.
    pub fn from_bedrock(stop_reason: &str) -> Self {
        match stop_reason {
            "max_tokens" | "model_context_window_exceeded" => Self::Length,
            "tool_use" => Self::ToolCalls,
            "guardrail_intervened" | "content_filtered" | "refusal" => Self::ContentFilter,
            _ => Self::Stop,
        }
    }

    /// Maps an Anthropic `stop_reason`. Converse took Anthropic's words for the shared reasons
    /// (`end_turn`, `stop_sequence`, `max_tokens`, `tool_use`, `model_context_window_exceeded`),
    /// and Anthropic's `refusal` is already in the Bedrock table, so one table serves both;
    /// `pause_turn` (a server tool paused) is `stop`, the turn ended for now.
    pub fn from_anthropic(stop_reason: &str) -> Self {
        Self::from_bedrock(stop_reason)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
        }
    }

    /// A forced `response_format` tool is an implementation detail: to the client the model
    /// simply answered.
    pub(crate) fn hiding_forced_tool(self, forced_tool: bool) -> Self {
        if forced_tool && self == Self::ToolCalls {
            Self::Stop
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bedrock_reason() {
        let cases = [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool_calls"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
            ("malformed_model_output", "stop"),
            ("malformed_tool_use", "stop"),
            ("refusal", "content_filter"),
            ("something_new", "stop"),
        ];
        for (bedrock, openai) in cases {
            assert_eq!(
                FinishReason::from_bedrock(bedrock).as_str(),
                openai,
                "{bedrock}"
            );
        }
    }

    #[test]
    fn forced_tool_reads_as_stop() {
        assert_eq!(
            FinishReason::ToolCalls.hiding_forced_tool(true),
            FinishReason::Stop
        );
        assert_eq!(
            FinishReason::ToolCalls.hiding_forced_tool(false),
            FinishReason::ToolCalls
        );
        assert_eq!(
            FinishReason::Length.hiding_forced_tool(true),
            FinishReason::Length
        );
    }
}
