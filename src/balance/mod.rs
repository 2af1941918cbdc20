//! Target selection: a strategy per algorithm over an immutable roster, and the lease that tracks
//! an attempt.

pub mod actor;
pub mod lease;
pub mod roster;
pub mod round_robin;
pub mod strategy;

pub use actor::BalancerHandle;
pub use lease::Lease;
pub use roster::Roster;
