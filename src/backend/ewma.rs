//! Time-decayed moving averages for load signals, updated lock-free from the request path.
//!
//! The maths follows Finagle's and tower's Peak-EWMA (`tower/src/load/peak_ewma.rs`): a sample
//! `elapsed` after the previous one keeps `w = exp(-elapsed / tau)` of the old estimate, so the
//! estimate forgets at the same rate whatever the request rate. The *peak* variant jumps straight
//! to a sample above the estimate, so a target that turns slow is avoided at once, and only drifts
//! back down as faster samples arrive.
//!
//! A cell packs the estimate (an `f32`) and the time of the last sample (milliseconds, `u32`,
//! wrapping) into one `AtomicU64`, so an update is a single compare-and-swap: two concurrent
//! samples can never pair one's value with the other's timestamp.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Finagle's and tower's default decay: a sample ten seconds old weighs `1/e` of a new one.
/// LLM calls take seconds, so a shorter window would rest on a handful of samples.
pub const DEFAULT_TAU: Duration = Duration::from_secs(10);

/// The packed word of a cell with no sample yet (its `f32` half is a NaN, never a stored value).
const EMPTY: u64 = u64::MAX;

/// Smallest stored estimate, so that 0 can mean "no sample" to readers.
const MIN_VALUE: f32 = 1e-6;

/// Plain time-decayed EWMA: `prev` weighted by `exp(-elapsed / tau)`, the rest on `sample`.
pub fn decay(prev: f64, sample: f64, elapsed: Duration, tau: Duration) -> f64 {
    let tau = tau.as_secs_f64();
    if tau <= 0.0 {
        return sample;
    }
    let w = (-elapsed.as_secs_f64() / tau).exp();
    prev * w + sample * (1.0 - w)
}

/// Peak-EWMA: a sample above the estimate replaces it; one below decays it as [`decay`] does.
pub fn peak(prev: f64, sample: f64, elapsed: Duration, tau: Duration) -> f64 {
    if sample > prev {
        sample
    } else {
        decay(prev, sample, elapsed, tau)
    }
}

/// Which update rule a cell applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Latency: jump up on a slow sample, decay down.
    Peak,
    /// Usage: a plain moving average; a large response is not a sign of trouble.
    Average,
}

/// One lock-free estimate; see the module docs for the packing.
#[derive(Debug)]
pub struct EwmaCell {
    word: AtomicU64,
    kind: Kind,
    tau: Duration,
}

fn pack(value: f32, stamp_ms: u32) -> u64 {
    (u64::from(value.to_bits()) << 32) | u64::from(stamp_ms)
}

fn unpack(word: u64) -> Option<(f32, u32)> {
    if word == EMPTY {
        return None;
    }
    // The halves are exactly 32 bits each, so these conversions cannot truncate.
    Some((f32::from_bits((word >> 32) as u32), word as u32))
}

/// Milliseconds between two wrapped stamps. A writer may carry a `now` a little older than the
/// stamp another thread just stored; that reads as a huge wrapped gap, which is clamped to 0.
fn elapsed_ms(stamp: u32, now: u32) -> u32 {
    let gap = now.wrapping_sub(stamp);
    if gap > u32::MAX / 2 { 0 } else { gap }
}

impl EwmaCell {
    pub fn new(kind: Kind, tau: Duration) -> Self {
        Self {
            word: AtomicU64::new(EMPTY),
            kind,
            tau,
        }
    }

    /// Folds in a sample taken at `now_ms` (on [`crate::clock`]). Negative or non-finite samples
    /// are ignored: they come from a clock or a counter gone wrong, not from the target.
    pub fn record(&self, sample: f64, now_ms: u64) {
        if !sample.is_finite() || sample < 0.0 {
            return;
        }
        // The stamp wraps every 49 days; only differences between nearby stamps are used.
        let now = now_ms as u32;
        let _ = self
            .word
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                let next = match unpack(word) {
                    None => sample,
                    Some((prev, stamp)) => {
                        let elapsed = Duration::from_millis(u64::from(elapsed_ms(stamp, now)));
                        match self.kind {
                            Kind::Peak => peak(f64::from(prev), sample, elapsed, self.tau),
                            Kind::Average => decay(f64::from(prev), sample, elapsed, self.tau),
                        }
                    }
                };
                Some(pack((next as f32).max(MIN_VALUE), now))
            });
    }

    /// The current estimate, or 0 when no sample has been recorded.
    pub fn get(&self) -> f64 {
        unpack(self.word.load(Ordering::Relaxed)).map_or(0.0, |(v, _)| f64::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{prop_assert, proptest};

    const TAU: Duration = Duration::from_secs(10);

    #[test]
    fn decay_is_exact_on_injected_times() {
        assert_eq!(decay(100.0, 50.0, Duration::ZERO, TAU), 100.0);
        let w = (-1.0f64).exp();
        assert_eq!(
            decay(100.0, 50.0, Duration::from_secs(10), TAU),
            100.0 * w + 50.0 * (1.0 - w)
        );
        let w = (-0.5f64).exp();
        assert_eq!(
            decay(80.0, 20.0, Duration::from_secs(5), TAU),
            80.0 * w + 20.0 * (1.0 - w)
        );
    }

    #[test]
    fn peak_jumps_up_and_decays_down() {
        assert_eq!(peak(100.0, 400.0, Duration::ZERO, TAU), 400.0);
        let w = (-0.2f64).exp();
        assert_eq!(
            peak(400.0, 100.0, Duration::from_secs(2), TAU),
            400.0 * w + 100.0 * (1.0 - w)
        );
    }

    #[test]
    fn cell_follows_the_rule_with_injected_times() {
        let cell = EwmaCell::new(Kind::Peak, TAU);
        assert_eq!(cell.get(), 0.0);
        cell.record(100.0, 1_000);
        assert_eq!(cell.get(), 100.0);
        cell.record(300.0, 1_001);
        assert_eq!(cell.get(), 300.0);
        cell.record(100.0, 11_001);
        let expected = peak(300.0, 100.0, Duration::from_secs(10), TAU);
        assert!((cell.get() - expected).abs() < 1e-4 * expected);

        let avg = EwmaCell::new(Kind::Average, TAU);
        avg.record(100.0, 0);
        avg.record(300.0, 10_000);
        let expected = decay(100.0, 300.0, Duration::from_secs(10), TAU);
        assert!((avg.get() - expected).abs() < 1e-4 * expected);
    }

    #[test]
    fn bad_samples_and_out_of_order_stamps_are_harmless() {
        let cell = EwmaCell::new(Kind::Average, TAU);
        cell.record(f64::NAN, 0);
        cell.record(-1.0, 0);
        assert_eq!(cell.get(), 0.0);
        cell.record(100.0, 5_000);
        // A `now` older than the stamp counts as no time elapsed: the estimate stays put.
        cell.record(0.0, 4_999);
        assert_eq!(cell.get(), 100.0);
        // Stamps wrap at 2^32 ms.
        cell.record(100.0, u64::from(u32::MAX));
        cell.record(0.0, u64::from(u32::MAX) + 10_001);
        let expected = decay(100.0, 0.0, Duration::from_millis(10_001), TAU);
        assert!((cell.get() - expected).abs() < 1e-3);
    }

    proptest! {
        #[test]
        fn peak_never_below_decay_and_within_bounds(
            prev in 0.0f64..1e6, sample in 0.0f64..1e6, ms in 0u64..1_000_000,
        ) {
            let elapsed = Duration::from_millis(ms);
            let p = peak(prev, sample, elapsed, TAU);
            let d = decay(prev, sample, elapsed, TAU);
            prop_assert!(p >= d - 1e-9);
            prop_assert!(p >= prev.min(sample) - 1e-9 && p <= prev.max(sample) + 1e-9);
        }
    }
}
