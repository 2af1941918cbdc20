//! HTTP surfaces: the Bedrock-native, OpenAI and Anthropic APIs, the admin endpoints, and the
//! shared request plumbing.

pub mod admin;
pub mod admission;
pub mod anthropic;
pub mod async_invoke;
pub mod async_merge;
pub mod body;
pub mod failure;
pub mod fallback;
pub mod in_flight;
pub mod native;
pub mod openai;
pub mod operations;
pub mod quota;
pub mod reply;
pub mod sse;
pub mod state;
