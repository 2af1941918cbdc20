//! Consistent hashing on a request header, as Kong's `consistent-hashing` (`hash_on_header`,
//! `slots`): a hash ring of `slots` points, each target owning points in proportion to its
//! weight (Karger et al.'s ring with virtual nodes, as in nginx's `hash ... consistent`). A key is
//! served by the owner of the first point at or after the key's hash.
//!
//! Points are placed by hashing the target's label (`region/model`), not its index, so adding or
//! removing a target moves only the keys of the points it gains or loses. When a key's owner is
//! not ready, the walk goes on to the next point of a ready target: only that target's keys move,
//! and they come back when it recovers. Hashes are FNV-1a with a fixed finaliser, stable across
//! processes and releases (never `RandomState`), so every gateway replica agrees.
//!
//! Requests without the header fall back to smooth weighted round-robin.

use super::round_robin::RoundRobin;
use super::strategy::{PickContext, Strategy};

#[derive(Debug)]
pub struct ConsistentHashing {
    /// Ring points sorted by hash: `(hash, target index)`.
    ring: Vec<(u64, usize)>,
    targets: usize,
    fallback: RoundRobin,
}

/// FNV-1a, 64-bit: tiny, stable and good enough for keys once [`mix`] spreads its output.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// MurmurHash3's 64-bit finaliser: FNV-1a alone leaves similar inputs ("a#1", "a#2") close
/// together on the ring; this avalanche spreads them.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A key's position on the ring.
pub fn key_hash(key: &[u8]) -> u64 {
    mix(fnv1a(key))
}

fn point_hash(label: &str, replica: u32) -> u64 {
    let mut bytes = Vec::with_capacity(label.len() + 11);
    bytes.extend_from_slice(label.as_bytes());
    bytes.push(b'#');
    bytes.extend_from_slice(replica.to_string().as_bytes());
    key_hash(&bytes)
}

/// Points per target: `slots` shared in proportion to weight, at least one each.
fn points_per_target(weights: &[u32], slots: u32) -> Vec<u32> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum::<u64>().max(1);
    weights
        .iter()
        .map(|&w| {
            let share = u64::from(slots) * u64::from(w) / total;
            u32::try_from(share).unwrap_or(u32::MAX).max(1)
        })
        .collect()
}

impl ConsistentHashing {
    /// `labels` name the targets stably (duplicates are told apart by occurrence); `weights` as
    /// for round-robin; `slots` is the ring size.
    pub fn new(labels: &[String], weights: &[u32], slots: u32) -> Self {
        let mut ring = Vec::with_capacity(slots as usize + labels.len());
        for (index, (label, &points)) in labels
            .iter()
            .zip(&points_per_target(weights, slots))
            .enumerate()
        {
            let seen = labels[..index].iter().filter(|l| *l == label).count();
            let name = if seen == 0 {
                label.clone()
            } else {
                format!("{label}~{seen}")
            };
            ring.extend((0..points).map(|k| (point_hash(&name, k), index)));
        }
        // Equal hashes (vanishingly rare) are ordered by index so every replica agrees.
        ring.sort_unstable();
        Self {
            ring,
            targets: labels.len(),
            fallback: RoundRobin::new(weights),
        }
    }

    /// The ready target serving `hash`: the owner of the first point at or after it, else the
    /// next point's owner that is ready. Each target is asked at most once.
    pub fn pick_hash(&self, hash: u64, ready: &mut dyn FnMut(usize) -> bool) -> Option<usize> {
        let len = self.ring.len();
        if len == 0 {
            return None;
        }
        let first = self.ring.partition_point(|&(h, _)| h < hash);
        let mut asked = vec![false; self.targets];
        let mut remaining = self.targets;
        for offset in 0..len {
            let (_, index) = self.ring[(first + offset) % len];
            if asked[index] {
                continue;
            }
            if ready(index) {
                return Some(index);
            }
            asked[index] = true;
            remaining -= 1;
            if remaining == 0 {
                break;
            }
        }
        None
    }
}

impl Strategy for ConsistentHashing {
    fn pick(&self, ctx: &PickContext<'_>, ready: &mut dyn FnMut(usize) -> bool) -> Option<usize> {
        match ctx.hash_key {
            Some(key) => self.pick_hash(key_hash(key), ready),
            None => self.fallback.pick_ready(ready),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("us-east-{i}/model")).collect()
    }

    fn key(k: u32) -> Vec<u8> {
        format!("session-{k}").into_bytes()
    }

    fn owner(ch: &ConsistentHashing, k: u32, ready: impl Fn(usize) -> bool) -> Option<usize> {
        let ctx = PickContext {
            hash_key: Some(&key(k)),
            load: &|_| Default::default(),
        };
        ch.pick(&ctx, &mut |i| ready(i))
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_same_key_goes_to_the_same_target() {
        let ch = ConsistentHashing::new(&labels(5), &[1; 5], 1000);
        for k in 0..100 {
            let first = owner(&ch, k, |_| true);
            assert!(first.is_some());
            for _ in 0..3 {
                assert_eq!(owner(&ch, k, |_| true), first);
            }
        }
    }

    #[test]
    fn no_key_falls_back_to_round_robin() {
        let ch = ConsistentHashing::new(&labels(3), &[1; 3], 100);
        let got: Vec<_> = (0..3)
            .filter_map(|_| ch.pick(&PickContext::idle(), &mut |_| true))
            .collect();
        assert_eq!(got, vec![0, 1, 2]);
    }

    #[test]
    fn key_shares_follow_the_weights() {
        let weights = [1, 2, 3, 4];
        let ch = ConsistentHashing::new(&labels(4), &weights, 10_000);
        let keys = 40_000;
        let mut counts = [0u32; 4];
        for k in 0..keys {
            if let Some(i) = owner(&ch, k, |_| true) {
                counts[i] += 1;
            }
        }
        for (i, &w) in weights.iter().enumerate() {
            let expected = keys * w / 10;
            // Ring arcs vary; within 10% of each target's expected share.
            assert!(counts[i].abs_diff(expected) < expected / 10, "{counts:?}");
        }
    }

    #[test]
    fn a_target_leaving_moves_about_its_share_and_nothing_else() {
        let n = 5;
        let all_labels = labels(n);
        let all = ConsistentHashing::new(&all_labels, &[1; 5], 5_000);
        let mut fewer_labels = labels(n);
        fewer_labels.remove(2);
        let fewer = ConsistentHashing::new(&fewer_labels, &[1; 4], 4_000);
        let keys = 20_000;
        let mut moved = 0u32;
        for k in 0..keys {
            let before = owner(&all, k, |_| true).map(|i| all_labels[i].clone());
            let after = owner(&fewer, k, |_| true).map(|i| fewer_labels[i].clone());
            if before != after {
                // Only keys that target 2 served may move.
                assert_eq!(before.as_deref(), Some(all_labels[2].as_str()));
                moved += 1;
            }
        }
        let expected = keys / n as u32;
        assert!(moved.abs_diff(expected) < expected / 5, "moved {moved}");
    }

    proptest! {
        #[test]
        fn never_picks_unready_while_a_ready_one_exists(
            weights in proptest::collection::vec(1u32..100, 1..20),
            mask in any::<u32>(),
            k in any::<u32>(),
            slots in 10u32..2_000,
        ) {
            let ch = ConsistentHashing::new(&labels(weights.len()), &weights, slots);
            let ready = |i: usize| mask & (1 << i) != 0;
            let any_ready = (0..weights.len()).any(ready);
            for got in [owner(&ch, k, ready), ch.pick(&PickContext::idle(), &mut |i| ready(i))] {
                match got {
                    Some(i) => prop_assert!(ready(i)),
                    None => prop_assert!(!any_ready),
                }
            }
        }

        /// A target going unready moves only its own keys; every other key stays put.
        #[test]
        fn an_unready_target_moves_only_its_keys(
            n in 2usize..8,
            down in 0usize..8,
            keys in proptest::collection::vec(any::<u32>(), 50),
        ) {
            let down = down % n;
            let ch = ConsistentHashing::new(&labels(n), &vec![1; n], 500);
            for k in keys {
                let before = owner(&ch, k, |_| true);
                let after = owner(&ch, k, |i| i != down);
                if before != Some(down) {
                    prop_assert_eq!(before, after);
                } else {
                    prop_assert!(after.is_some() && after != Some(down));
                }
            }
        }
    }
}
