//! Counters of what the simulator was asked, for tests and benchmarks to assert on.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use serde_json::{Map, Value};

/// Claude bodies kept for inspection, the newest last; older ones are dropped.
const CLAUDE_RECORDS: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub region: String,
    /// Every request to the Bedrock surface, refused ones included.
    pub requests_total: u64,
    /// Requests that passed signature verification, by what their path names (model id,
    /// `guardrail:version`, knowledge base id, invocation ARN, else `-`) then operation.
    pub by_model: BTreeMap<String, BTreeMap<String, u64>>,
    pub by_operation: BTreeMap<String, u64>,
    pub bad_signatures: u64,
    pub errors_injected: u64,
    /// Temporary credentials handed out by the STS endpoint.
    pub assumed_roles: u64,
    /// The same, by the caller's `RoleSessionName`.
    pub assumed_roles_by_session: BTreeMap<String, u64>,
    /// All headers of the last verified request, names lower-cased.
    pub last_request_headers: BTreeMap<String, String>,
    /// The latest Claude InvokeModel / InvokeModelWithResponseStream / CountTokens bodies as they
    /// arrived (decoded from base64 for CountTokens), before any of Bedrock's rules was applied.
    pub claude_requests: Vec<ClaudeRequest>,
    /// Replayed `thinking` / `redacted_thinking` blocks whose signature or data was checked and held.
    pub thinking_signatures_verified: u64,
    /// Requests refused because a replayed thinking block had been altered.
    pub thinking_signatures_rejected: u64,
}

/// One Claude body, with the facts tests check most pulled out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaudeRequest {
    pub model: String,
    pub operation: String,
    /// Its top-level keys.
    pub keys: Vec<String>,
    pub anthropic_version: Option<Value>,
    pub anthropic_beta: Option<Value>,
    pub body: Value,
}

#[derive(Debug)]
pub struct Stats {
    inner: Mutex<StatsSnapshot>,
}

impl Stats {
    pub fn new(region: &str) -> Self {
        Self {
            inner: Mutex::new(Self::empty(region)),
        }
    }

    fn empty(region: &str) -> StatsSnapshot {
        StatsSnapshot {
            region: region.to_owned(),
            ..StatsSnapshot::default()
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut StatsSnapshot) -> R) -> R {
        // A panic elsewhere cannot leave counters inconsistent enough to matter, so poisoning is ignored.
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn request(&self) {
        self.with(|s| s.requests_total += 1);
    }

    pub fn bad_signature(&self) {
        self.with(|s| s.bad_signatures += 1);
    }

    pub fn assumed_role(&self, session_name: &str) {
        self.with(|s| {
            s.assumed_roles += 1;
            *s.assumed_roles_by_session
                .entry(session_name.to_owned())
                .or_default() += 1;
        });
    }

    pub fn error_injected(&self) {
        self.with(|s| s.errors_injected += 1);
    }

    pub fn model_request(&self, model: &str, op: &str, headers: BTreeMap<String, String>) {
        self.with(|s| {
            *s.by_model
                .entry(model.to_owned())
                .or_default()
                .entry(op.to_owned())
                .or_default() += 1;
            *s.by_operation.entry(op.to_owned()).or_default() += 1;
            s.last_request_headers = headers;
        });
    }

    pub fn claude_request(&self, model: &str, op: &str, body: &Map<String, Value>) {
        let record = ClaudeRequest {
            model: model.to_owned(),
            operation: op.to_owned(),
            keys: body.keys().cloned().collect(),
            anthropic_version: body.get("anthropic_version").cloned(),
            anthropic_beta: body.get("anthropic_beta").cloned(),
            body: Value::Object(body.clone()),
        };
        self.with(|s| {
            if s.claude_requests.len() >= CLAUDE_RECORDS {
                s.claude_requests.remove(0);
            }
            s.claude_requests.push(record);
        });
    }

    pub fn thinking_checked(&self, verified: u64, rejected: bool) {
        self.with(|s| {
            s.thinking_signatures_verified += verified;
            s.thinking_signatures_rejected += u64::from(rejected);
        });
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        self.with(|s| s.clone())
    }

    pub fn reset(&self) {
        self.with(|s| *s = Self::empty(&s.region));
    }
}
