//! Everything between a picked target and Bedrock: forwarding one attempt, failing over, classifying.

pub mod attempt;
pub mod backoff;
pub mod body;
pub mod classify;
pub mod client;
pub mod forward;
pub mod operation;
pub mod pick;
pub mod request;
pub mod stream;
pub mod timeouts;
