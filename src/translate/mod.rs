//! Pure translation between the OpenAI API and Amazon Bedrock.
//!
//! Bytes in, bytes out: no I/O, no HTTP types, no async. The gateway's handlers call these
//! functions and own everything around them (routing, signing, retries, streaming transport).
//! Requests borrow from the client's body wherever they can, and bodies are serialized from
//! typed structs rather than assembled as `serde_json::Value`s, because this is the hot path.
//!
//! | OpenAI surface | request | response |
//! |---|---|---|
//! | chat completions | [`chat_request`] -> Converse body | [`chat_response`], [`ChatStreamTranslator`] |
//! | legacy completions | [`completion_request`] | [`completion_response`], [`completion_stream_translator`] |
//! | embeddings | [`embeddings_request`] -> InvokeModel bodies | [`embeddings_response`] |
//! | errors | [`TranslateError::to_openai_body`] | [`openai_error_for_bedrock`] |
//!
//! Across providers (Anthropic API, OpenAI-compatible and Azure targets):
//!
//! | client -> target | request | response | stream | errors |
//! |---|---|---|---|---|
//! | OpenAI chat -> Anthropic | [`chat_messages::messages_request`] | [`chat_messages::chat_response`] | [`chat_messages_stream::MessagesChatStream`] | [`openai_error_from_anthropic`] |
//! | Anthropic -> OpenAI chat | [`messages_chat::chat_request`] | [`messages_chat::messages_response`] | [`messages_chat_stream::ChatMessagesStream`] | [`anthropic_error_from_openai`] |
//!
//! Upstream SSE bytes are decoded by [`sse_decode::SseDecoder`], fed at any split.
//!
//! Policy for OpenAI parameters: translate what Bedrock can honour, ignore only what cannot
//! change the output (`user`, `seed`, neutral values), refuse everything else by name, including
//! parameters this module does not know (OpenAI does the same).

mod body;
mod converse;
mod inference;

pub mod anthropic;
pub mod chat_messages;
pub mod chat_messages_stream;
pub mod chat_request;
pub mod chat_response;
pub mod chat_stream;
pub mod completions;
pub mod embeddings;
pub mod error;
pub mod error_map;
pub mod finish_reason;
pub mod messages_bedrock;
pub mod messages_chat;
pub mod messages_chat_stream;
pub mod messages_converse;
pub mod messages_stream;
pub mod openai_chat;
pub mod sse;
pub mod sse_decode;
pub mod usage;

pub use chat_request::{ChatRequest, DEFAULT_JSON_TOOL, chat_request};
pub use chat_response::{TranslatedResponse, chat_response};
pub use chat_stream::{ChatStreamTranslator, StreamStep};
pub use completions::{
    CompletionRequest, completion_request, completion_response, completion_stream_translator,
};
pub use embeddings::{
    EmbeddingFamily, EmbeddingsRequest, EmbeddingsResponse, EncodingFormat, UpstreamEmbedding,
    embeddings_model, embeddings_request, embeddings_response,
};
pub use error::TranslateError;
pub use error_map::{
    OpenAiErrorKind, anthropic_error_for_bedrock, anthropic_error_for_openai,
    anthropic_error_from_anthropic, anthropic_error_from_openai, bedrock_error_message, classify,
    openai_error_body, openai_error_for_bedrock, openai_error_from_anthropic,
    openai_error_from_openai, openai_kind_for_anthropic,
};
pub use finish_reason::FinishReason;
pub use usage::Usage;
