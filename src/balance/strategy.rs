//! The strategy seam: each algorithm is a small type that picks an index from the roster, asking
//! a readiness predicate only about candidates it would actually use.

/// Picks one target index, or `None` when no candidate is ready.
///
/// `ready(i)` may claim capacity (a half-open trial, a rate-limit token), so a strategy calls it
/// only for the candidate it is about to return, and returns that candidate when it says yes.
pub trait Strategy: Send + Sync {
    fn pick(&self, ready: &mut dyn FnMut(usize) -> bool) -> Option<usize>;
}
