//! The Bedrock Runtime simulator: a local stand-in for `bedrock-runtime.REGION.amazonaws.com` that
//! verifies SigV4, answers Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream
//! deterministically, and injects faults on demand.
//!
//! It shares no code with the gateway's signing, translation or event-stream encoding: it exists to
//! check what the gateway produces, so a shared bug would cancel out.

mod errors;
mod eventstream;
mod sigv4;

/// Credentials the simulator accepts, as `ID:SECRET[:SESSION_TOKEN]` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}
