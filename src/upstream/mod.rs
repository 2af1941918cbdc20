//! Everything between a picked target and Bedrock: credentials, signing, forwarding, classifying.

pub mod backoff;
pub mod body;
pub mod classify;
pub mod client;
pub mod credentials;
pub mod forward;
pub mod operation;
pub mod retry_budget;
pub mod sign;
pub mod stream;
pub mod timeouts;
