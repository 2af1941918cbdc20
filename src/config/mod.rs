//! Configuration: raw serde types, validated into [`model::Config`].

pub mod model;
pub use model::*;
