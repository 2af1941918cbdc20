//! Everything between a picked target and its upstream (Bedrock or another provider's API):
//! forwarding one attempt, failing over, classifying.

pub mod attempt;
pub mod backoff;
pub mod body;
pub mod classify;
pub mod client;
pub mod forward;
pub mod operation;
pub mod pick;
pub mod request;
pub mod sse_stream;
pub mod stream;
pub mod stream_body;
pub mod stream_head;
pub mod timeouts;
