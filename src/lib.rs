//! bedrock-balancer: a gateway that spreads LLM traffic across Amazon Bedrock regions and models.

pub mod api;
pub mod app;
pub mod auth;
pub mod aws;
pub mod backend;
pub mod balance;
pub mod body_limit;
pub mod clock;
pub mod config;
pub mod error;
pub mod eventstream;
pub mod fuzz_checks;
pub mod gateway;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod observe;
pub mod shutdown;
pub mod translate;
pub mod upstream;

/// Third-party test inputs kept in the repository (`tests/fixtures/README.md` names their sources).
#[cfg(test)]
fn fixtures_dir() -> &'static std::path::Path {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}
