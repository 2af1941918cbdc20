//! Limits shared by every replica, kept in Redis: the same GCRA as the local [`Budget`], run by
//! Lua scripts so each admission is one atomic round trip against Redis's own clock.
//!
//! If Redis cannot be reached (or does not answer within [`CALL_TIMEOUT`]), callers get `None`
//! and fall back to local limits at this replica's share. A supervisor task reconnects, and
//! meanwhile counts the live replicas through heartbeats, so the share is `quota / replicas`.
//!
//! [`Budget`]: super::budget::Budget

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script};

use super::budget::Refusal;
use crate::config::Limits;
use crate::metrics;

/// A slow Redis must not become a slow gateway: past this, the local share decides.
const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// How often the supervisor reconnects, or heartbeats while connected.
const TICK: Duration = Duration::from_secs(1);
/// A replica whose heartbeat is older than this no longer counts towards the share.
const REPLICA_TTL_MS: u64 = 5_000;

/// What is left of each limit; `None` where the meter has no such limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Remaining {
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
}

/// Shared GCRA helpers. Times are microseconds of Redis's `TIME`; a cell of a per-minute quota
/// is `60e6 / quota` of them. A key holds its theoretical arrival time and expires once idle.
const GCRA_LIB: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function cell(quota) return 60000000 / quota end
local function tat_of(key)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  return tat
end
local function store(key, tat)
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
local function left(key, quota)
  if quota <= 0 then return -1 end
  local free = quota * cell(quota) - (tat_of(key) - now)
  if free < 0 then return 0 end
  return math.floor(free / cell(quota))
end
";

/// KEYS: rpm, tpm, cooldown. ARGV: rpm quota, tpm quota (0 = none), tokens, requests.
/// Returns {admitted, wait_ms}: both cells or neither, and no admission while cooling down.
const ADMIT: &str = r"
local rq, tq, n, r = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local cool = tonumber(redis.call('GET', KEYS[3]) or '0')
if cool > now then return {0, math.ceil((cool - now) / 1000)} end
local wait, next_r, next_t = 0, 0, 0
if rq > 0 then
  next_r = tat_of(KEYS[1]) + r * cell(rq)
  wait = math.max(wait, next_r - now - rq * cell(rq))
end
if tq > 0 then
  next_t = tat_of(KEYS[2]) + n * cell(tq)
  wait = math.max(wait, next_t - now - tq * cell(tq))
end
if wait > 0 then return {0, math.ceil(wait / 1000)} end
if rq > 0 then store(KEYS[1], next_r) end
if tq > 0 and n > 0 then store(KEYS[2], next_t) end
return {1, 0}
";

/// KEYS: tpm. ARGV: tpm quota, cells to add (negative: give back).
const SETTLE: &str = r"
local q, d = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat
if d >= 0 then
  tat = tat_of(KEYS[1]) + d * cell(q)
else
  tat = tonumber(redis.call('GET', KEYS[1]) or '0') + d * cell(q)
end
if tat > now then store(KEYS[1], tat) else redis.call('DEL', KEYS[1]) end
return 1
";

/// KEYS: rpm, tpm. ARGV: rpm quota, tpm quota. Returns {rpm left, tpm left}, -1 = no limit.
const REMAINING: &str = r"
return {left(KEYS[1], tonumber(ARGV[1])), left(KEYS[2], tonumber(ARGV[2]))}
";

/// KEYS: cooldown. ARGV: milliseconds. Extends, never shortens, the shared rest.
const COOLDOWN: &str = r"
local untl = now + tonumber(ARGV[1]) * 1000
if untl > tonumber(redis.call('GET', KEYS[1]) or '0') then store(KEYS[1], untl) end
return 1
";

/// KEYS: replica set. ARGV: this replica's id, ttl ms. Returns the live replica count.
const HEARTBEAT: &str = r"
local now_ms = math.floor(now / 1000)
redis.call('ZADD', KEYS[1], now_ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1])
";

struct Scripts {
    admit: Script,
    settle: Script,
    remaining: Script,
    cooldown: Script,
    heartbeat: Script,
}

impl Scripts {
    fn new() -> Self {
        let with_lib = |body: &str| Script::new(&format!("{GCRA_LIB}{body}"));
        Self {
            admit: with_lib(ADMIT),
            settle: with_lib(SETTLE),
            remaining: with_lib(REMAINING),
            cooldown: with_lib(COOLDOWN),
            heartbeat: with_lib(HEARTBEAT),
        }
    }
}

pub struct SharedLimits {
    client: redis::Client,
    /// `None` while Redis is unreachable: every caller uses its local share.
    connection: ArcSwapOption<MultiplexedConnection>,
    scripts: Scripts,
    key_space: String,
    replica_id: String,
    replicas: AtomicU32,
    /// Whether local shares decide now (each change is logged and counted once).
    in_fallback: AtomicBool,
}

impl SharedLimits {
    /// Connects in the background (the gateway serves on local shares until Redis answers).
    /// `url` is validated by the config; the supervisor stops when the last gateway using this
    /// is dropped.
    pub fn start(url: &str) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("rate_limits.redis_url: {}", redact(&e.to_string(), url)))?;
        let shared = Arc::new(Self {
            client,
            connection: ArcSwapOption::empty(),
            scripts: Scripts::new(),
            key_space: "bedrock-balancer".to_owned(),
            replica_id: format!("{:016x}", fastrand::u64(..)),
            replicas: AtomicU32::new(1),
            // Local shares decide until the first answer from Redis.
            in_fallback: AtomicBool::new(true),
        });
        metrics::rate_limit_fallback(true);
        actix_rt::spawn(supervise(Arc::downgrade(&shared)));
        Ok(shared)
    }

    /// The prefix of a meter's keys.
    pub fn key_prefix(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{name}:", self.key_space)
    }

    /// Whether Redis decides now (false: this replica's local share does).
    pub fn is_shared(&self) -> bool {
        !self.in_fallback.load(Ordering::Acquire)
    }

    /// Live replicas as last counted (at least 1).
    pub fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Relaxed).max(1)
    }

    /// `None`: Redis is away, decide locally.
    pub async fn admit(
        &self,
        prefix: &str,
        limits: Limits,
        requests: u32,
        tokens: u32,
    ) -> Option<Result<(), Refusal>> {
        let mut invocation = self.scripts.admit.prepare_invoke();
        invocation
            .key(format!("{prefix}rpm"))
            .key(format!("{prefix}tpm"))
            .key(format!("{prefix}cooldown"))
            .arg(quota(limits.rpm))
            .arg(quota(limits.tpm))
            .arg(tokens)
            .arg(requests);
        let (admitted, wait_ms): (i64, i64) = self.call(&invocation).await?;
        Some(if admitted == 1 {
            Ok(())
        } else {
            Err(Refusal::Wait(Duration::from_millis(
                u64::try_from(wait_ms).unwrap_or(0).max(1),
            )))
        })
    }

    pub async fn remaining(&self, prefix: &str, limits: Limits) -> Option<Remaining> {
        let mut invocation = self.scripts.remaining.prepare_invoke();
        invocation
            .key(format!("{prefix}rpm"))
            .key(format!("{prefix}tpm"))
            .arg(quota(limits.rpm))
            .arg(quota(limits.tpm));
        let (rpm, tpm): (i64, i64) = self.call(&invocation).await?;
        let known = |n: i64| u32::try_from(n).ok();
        Some(Remaining {
            rpm: known(rpm),
            tpm: known(tpm),
        })
    }

    /// Settles in the background: the response is not held up for it.
    pub fn settle_tokens(
        self: &Arc<Self>,
        prefix: String,
        limits: Limits,
        reserved: u32,
        spent: u32,
    ) {
        let Some(tpm) = limits.tpm else { return };
        let this = Arc::clone(self);
        spawn_detached(async move {
            let mut invocation = this.scripts.settle.prepare_invoke();
            invocation
                .key(format!("{prefix}tpm"))
                .arg(tpm.get())
                .arg(i64::from(spent) - i64::from(reserved));
            let _: Option<i64> = this.call(&invocation).await;
        });
    }

    pub fn share_cooldown(self: &Arc<Self>, prefix: String, rest: Duration) {
        let this = Arc::clone(self);
        spawn_detached(async move {
            let mut invocation = this.scripts.cooldown.prepare_invoke();
            invocation
                .key(format!("{prefix}cooldown"))
                .arg(u64::try_from(rest.as_millis()).unwrap_or(u64::MAX));
            let _: Option<i64> = this.call(&invocation).await;
        });
    }

    async fn call<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Option<T> {
        let connection = self.connection.load_full()?;
        let mut connection = (*connection).clone();
        match tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async(&mut connection)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                self.lost(&format!("{:?}", e.kind()));
                None
            }
            Err(_) => {
                self.lost("timed out");
                None
            }
        }
    }

    /// Drops the connection (the supervisor reconnects) and says so once.
    fn lost(&self, why: &str) {
        self.connection.store(None);
        if !self.in_fallback.swap(true, Ordering::AcqRel) {
            metrics::rate_limit_fallback(true);
            tracing::warn!(
                reason = why,
                replicas = self.replicas(),
                "Redis unreachable: rate limits fall back to this replica's local share"
            );
        }
    }

    fn restored(&self) {
        if self.in_fallback.swap(false, Ordering::AcqRel) {
            metrics::rate_limit_fallback(false);
            tracing::info!(
                replicas = self.replicas(),
                "Redis reachable: rate limits are shared across replicas"
            );
        }
    }

    async fn heartbeat(&self) -> Option<u32> {
        let mut invocation = self.scripts.heartbeat.prepare_invoke();
        invocation
            .key(format!("{}:replicas", self.key_space))
            .arg(&self.replica_id)
            .arg(REPLICA_TTL_MS);
        let count: i64 = self.call(&invocation).await?;
        Some(u32::try_from(count).unwrap_or(1).max(1))
    }
}

/// Keeps a connection and the replica count fresh while any gateway holds the limits.
async fn supervise(shared: Weak<SharedLimits>) {
    let mut first = true;
    loop {
        let Some(this) = shared.upgrade() else { return };
        if this.connection.load().is_none() {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CALL_TIMEOUT * 4))
                .set_response_timeout(Some(CALL_TIMEOUT));
            match this
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(connection) => this.connection.store(Some(Arc::new(connection))),
                Err(e) if first => {
                    tracing::warn!(reason = ?e.kind(), "Redis unreachable at start: rate limits use this replica's local share until it answers");
                }
                Err(_) => {}
            }
        }
        if let Some(count) = this.heartbeat().await {
            this.replicas.store(count, Ordering::Relaxed);
            this.restored();
        }
        first = false;
        drop(this);
        tokio::time::sleep(TICK).await;
    }
}

fn quota(limit: Option<std::num::NonZeroU32>) -> u32 {
    limit.map_or(0, std::num::NonZeroU32::get)
}

/// Runs a fire-and-forget task if there is a runtime to run it (a `Drop` may run outside one).
fn spawn_detached(task: impl Future<Output = ()> + 'static) {
    if tokio::runtime::Handle::try_current().is_ok() {
        actix_rt::spawn(task);
    }
}

/// A Redis URL may carry a password: error messages name the problem, not the URL.
fn redact(message: &str, url: &str) -> String {
    message.replace(url, "<redis_url>")
}
