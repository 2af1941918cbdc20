//! HTTP surfaces: the Bedrock-native API, the admin endpoints, and the shared request plumbing.

pub mod admin;
pub mod admission;
pub mod async_invoke;
pub mod async_merge;
pub mod body;
pub mod fallback;
pub mod native;
pub mod openai;
pub mod operations;
pub mod quota;
pub mod state;
