//! Target selection: a strategy per algorithm over an immutable roster, session affinity on top,
//! and the lease that tracks an attempt.

pub mod actor;
pub mod affinity;
pub mod consistent_hashing;
pub mod lease;
pub mod least_connections;
pub mod lowest_cost;
pub mod lowest_latency;
pub mod lowest_usage;
pub mod p2c;
pub mod priority;
pub mod retry_budget;
pub mod roster;
pub mod round_robin;
pub mod strategy;

pub use actor::BalancerHandle;
pub use lease::Lease;
pub use roster::Roster;
pub use strategy::{Load, PickContext, Strategy};
