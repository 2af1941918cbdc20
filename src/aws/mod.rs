//! What the gateway needs of AWS itself, apart from any request: SigV4 signing and the credentials
//! it signs with. A leaf: it knows the config's target settings and nothing else of the gateway.

pub mod credentials;
pub mod sign;
