//! State shared by the simulator's workers and its handle.

use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use super::async_jobs::Jobs;
use super::faults::Faults;
use super::prompt_cache::PromptCache;
use super::stats::Stats;
use super::{SimKey, SimOptions};

#[derive(Debug)]
pub struct SimState {
    pub region: String,
    /// The configured keys, then the temporary ones its STS endpoint handed out.
    keys: RwLock<Vec<SimKey>>,
    api_keys: Vec<String>,
    pub stats: Stats,
    /// Async invocations started here.
    pub jobs: Jobs,
    pub accept_unsigned: bool,
    /// Chat requests with `stream_options` are refused (an older OpenAI-compatible server).
    pub refuse_stream_options: bool,
    /// Answers and stream chunks carry no `usage` (a server that reports none).
    pub omit_usage: bool,
    /// Lifetime of the credentials its STS endpoint hands out.
    pub sts_session: Duration,
    /// Claude prompt prefixes cached by this region.
    pub prompt_cache: PromptCache,
    /// The faults and how many model requests they have seen, so `fail_every_nth` counts from a reset.
    faults: Mutex<(Faults, u64)>,
}

impl SimState {
    pub fn new(opts: &SimOptions) -> Self {
        Self {
            region: opts.region.clone(),
            keys: RwLock::new(opts.keys.clone()),
            api_keys: opts.api_keys.clone(),
            stats: Stats::new(&opts.region),
            jobs: Jobs::default(),
            accept_unsigned: opts.accept_unsigned,
            refuse_stream_options: opts.refuse_stream_options,
            omit_usage: opts.omit_usage,
            sts_session: opts.sts_session,
            prompt_cache: PromptCache::default(),
            faults: Mutex::new((opts.faults.clone(), 0)),
        }
    }

    pub fn key(&self, access_key_id: &str) -> Option<SimKey> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|k| k.access_key_id == access_key_id)
            .cloned()
    }

    /// Whether `key` is one of the Bedrock API keys this region accepts.
    pub fn accepts_api_key(&self, key: &str) -> bool {
        self.api_keys.iter().any(|k| k == key)
    }

    /// Whether any API key is configured.
    pub fn has_api_keys(&self) -> bool {
        !self.api_keys.is_empty()
    }

    /// Whether a provider API's key is one of the configured ones; a missing or unknown key is
    /// counted as a bad one.
    pub fn admits_api_key(&self, key: Option<&str>) -> bool {
        let admitted = key.is_some_and(|k| self.accepts_api_key(k));
        if !admitted {
            self.stats.bad_signature();
        }
        admitted
    }

    pub fn add_key(&self, key: SimKey) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key);
    }

    pub fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner) = (faults, 0);
    }

    /// The faults for a new model request, with its number since they were set (from 1).
    pub fn next_request(&self) -> (Faults, u64) {
        let mut guard = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        guard.1 += 1;
        (guard.0.clone(), guard.1)
    }
}
