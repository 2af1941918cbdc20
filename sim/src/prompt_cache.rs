//! Prompt caching as Claude on Bedrock reports it: a request whose prefix up to a `cache_control`
//! breakpoint was seen within the breakpoint's TTL reads those tokens from the cache; the rest up to
//! the last breakpoint is written. Entries are keyed by a hash of the prefix, per simulator instance,
//! as Bedrock's cache is per region.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Anthropic's default cache lifetime, and the one `"ttl": "1h"` asks for.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
pub const LONG_TTL: Duration = Duration::from_secs(60 * 60);
/// Prefixes remembered at most; past it the entry closest to expiry goes first.
const MAX_ENTRIES: usize = 4096;

pub type PrefixHash = [u8; 32];

/// The end of a cached prefix: its hash, how many input tokens it holds, how long it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breakpoint {
    pub hash: PrefixHash,
    pub tokens: u64,
    pub ttl: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    pub read: u64,
    pub write: u64,
}

#[derive(Debug, Default)]
pub struct PromptCache {
    expiries: Mutex<HashMap<PrefixHash, Instant>>,
}

impl PromptCache {
    /// Reads the longest live prefix among `breakpoints` (in prompt order), writes the rest up to
    /// the last one, and keeps every breakpoint alive for its TTL from `now`.
    pub fn use_prefixes(&self, breakpoints: &[Breakpoint], now: Instant) -> CacheUsage {
        let Some(last) = breakpoints.last() else {
            return CacheUsage::default();
        };
        let mut expiries = self.expiries.lock().unwrap_or_else(PoisonError::into_inner);
        let read = breakpoints
            .iter()
            .rev()
            .find(|b| expiries.get(&b.hash).is_some_and(|expiry| *expiry > now))
            .map_or(0, |b| b.tokens);
        for b in breakpoints {
            if expiries.len() >= MAX_ENTRIES && !expiries.contains_key(&b.hash) {
                evict(&mut expiries, now);
            }
            let expiry = now + b.ttl;
            let slot = expiries.entry(b.hash).or_insert(expiry);
            *slot = (*slot).max(expiry);
        }
        CacheUsage {
            read,
            write: last.tokens.saturating_sub(read),
        }
    }
}

/// Drops the expired entries, or if none has expired the one that would expire first.
fn evict(expiries: &mut HashMap<PrefixHash, Instant>, now: Instant) {
    let before = expiries.len();
    expiries.retain(|_, expiry| *expiry > now);
    if expiries.len() == before
        && let Some(soonest) = expiries
            .iter()
            .min_by_key(|(_, expiry)| **expiry)
            .map(|(hash, _)| *hash)
    {
        expiries.remove(&soonest);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn point(id: u8, tokens: u64) -> Breakpoint {
        Breakpoint {
            hash: [id; 32],
            tokens,
            ttl: DEFAULT_TTL,
        }
    }

    #[test]
    fn first_use_writes_then_a_repeat_reads() {
        let cache = PromptCache::default();
        let now = Instant::now();
        let prefix = [point(1, 10), point(2, 25)];
        assert_eq!(
            cache.use_prefixes(&prefix, now),
            CacheUsage { read: 0, write: 25 }
        );
        assert_eq!(
            cache.use_prefixes(&prefix, now + Duration::from_secs(1)),
            CacheUsage { read: 25, write: 0 }
        );
    }

    #[test]
    fn a_longer_prompt_reads_the_shared_prefix_and_writes_its_tail() {
        let cache = PromptCache::default();
        let now = Instant::now();
        cache.use_prefixes(&[point(1, 10)], now);
        assert_eq!(
            cache.use_prefixes(&[point(1, 10), point(3, 40)], now),
            CacheUsage {
                read: 10,
                write: 30
            }
        );
        assert_eq!(
            cache.use_prefixes(&[], now),
            CacheUsage::default(),
            "no breakpoint, no caching"
        );
    }

    #[test]
    fn entries_expire_after_their_ttl_and_a_hit_renews_them() {
        let cache = PromptCache::default();
        let now = Instant::now();
        cache.use_prefixes(&[point(1, 10)], now);
        let later = now + DEFAULT_TTL - Duration::from_secs(1);
        assert_eq!(cache.use_prefixes(&[point(1, 10)], later).read, 10);
        let after_renewal = later + DEFAULT_TTL - Duration::from_secs(1);
        assert_eq!(cache.use_prefixes(&[point(1, 10)], after_renewal).read, 10);
        let expired = after_renewal + DEFAULT_TTL;
        assert_eq!(
            cache.use_prefixes(&[point(1, 10)], expired),
            CacheUsage { read: 0, write: 10 }
        );
        let long = Breakpoint {
            ttl: LONG_TTL,
            ..point(2, 5)
        };
        cache.use_prefixes(std::slice::from_ref(&long), now);
        assert_eq!(
            cache
                .use_prefixes(&[long], now + DEFAULT_TTL + DEFAULT_TTL)
                .read,
            5
        );
    }

    #[test]
    fn memory_is_bounded() {
        let cache = PromptCache::default();
        let now = Instant::now();
        for i in 0..(MAX_ENTRIES + 10) {
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let b = Breakpoint {
                hash,
                tokens: 1,
                ttl: DEFAULT_TTL + Duration::from_millis(i as u64),
            };
            cache.use_prefixes(&[b], now);
        }
        let entries = cache.expiries.lock().unwrap();
        assert_eq!(entries.len(), MAX_ENTRIES);
        assert!(
            !entries.contains_key(&[0u8; 32]),
            "the soonest to expire went first"
        );
    }
}
