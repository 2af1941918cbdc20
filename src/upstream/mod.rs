//! Everything between a picked target and Bedrock: credentials, signing, forwarding, classifying.

pub mod sign;
