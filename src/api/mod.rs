//! HTTP surfaces: the Bedrock-native API, the admin endpoints, and the shared request plumbing.

pub mod admin;
pub mod admission;
pub mod body;
pub mod fallback;
pub mod in_flight;
pub mod native;
pub mod openai;
pub mod quota;
pub mod reply;
pub mod state;
