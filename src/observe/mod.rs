//! Observing requests: the per-request [`Obs`], the access log line it writes, and the headers
//! that tell a client its request id and the gateway's overhead. It records into the
//! [`crate::metrics`] registry.

mod access_log;
mod obs;
mod stamp;

pub use obs::Obs;
pub use stamp::stamp;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const OVERHEAD_HEADER: &str = "x-bedrock-balancer-overhead-ms";
