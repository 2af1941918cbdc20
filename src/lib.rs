//! bedrock-balancer: a gateway that spreads LLM traffic across Amazon Bedrock regions and models.

pub mod config;
pub mod sim;
pub mod translate;
pub mod error;
pub mod eventstream;
pub mod upstream;
