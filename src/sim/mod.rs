//! The Bedrock Runtime simulator.
