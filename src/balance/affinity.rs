//! Session affinity: a request that names its session (`x-claude-code-session-id`, or the route's
//! own `hash_on_header`) goes back to the target that served the session last, while that target
//! is ready, so the prompt cache Bedrock built there is read instead of written again. When it is
//! not ready the route's algorithm picks, and the session moves to whichever target serves it.
//!
//! One table per route, kept across reloads by the route's `BalancerActor`, which also sweeps it.
//! The request path reads and writes it directly (a sharded map, no mailbox). An entry names its
//! target by the target's runtime itself (a `Weak`): a reload keeps the same runtime for a target
//! whose settings stay and builds a new one otherwise, so an entry can never point at a target
//! that took another's place or index. Sessions are keyed by a keyed hash of the client's value:
//! the value itself (client input, possibly a secret-looking id) is never stored, and a long one
//! costs no more memory than a short one.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;

use super::roster::Roster;
use crate::backend::TargetRuntime;
use crate::clock;
use crate::config::SessionAffinity;
use crate::metrics;

/// One route's sessions and the target each was last served by.
pub struct Sessions {
    route: String,
    entries: DashMap<u64, Pin>,
    hasher: RandomState,
}

struct Pin {
    target: Weak<TargetRuntime>,
    last_seen_ms: AtomicU64,
}

/// Whether `pinned` names `target`. A `Weak` keeps its allocation, so no other target can have
/// taken its address while the pin exists.
fn is_target(pinned: &Weak<TargetRuntime>, target: &Arc<TargetRuntime>) -> bool {
    std::ptr::eq(pinned.as_ptr(), Arc::as_ptr(target))
}

/// How a session's request was served, the `result` label of `session_affinity_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// By the target the session was pinned to.
    Hit,
    /// By another target: the pinned one was not ready, failed, or left the config.
    Moved,
    /// The session was unknown (or had expired).
    New,
}

impl Served {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Moved => "moved",
            Self::New => "new",
        }
    }
}

/// A sweep leaves the table at most this full, so new sessions find room until the next sweep.
const FILL_AFTER_SWEEP_PERCENT: usize = 90;

impl Sessions {
    pub fn new(route: String) -> Self {
        Self {
            route,
            entries: DashMap::new(),
            hasher: RandomState::new(),
        }
    }

    /// The session a request belongs to, over the roster it picks from. Without a session key,
    /// or with affinity off for the route, the session has no pin and records nothing. A request
    /// pinned to one model id has a session of its own per model: Claude Code sends one session
    /// id for its main and its small model, whose prompt caches live on different targets.
    pub fn session<'a>(
        &'a self,
        roster: &'a Roster,
        key: Option<&str>,
        model: Option<&str>,
        now_ms: u64,
    ) -> Session<'a> {
        let settings = roster.session_affinity.as_ref();
        let key = settings
            .zip(key)
            .map(|(_, k)| self.hasher.hash_one((k, model)));
        let pinned = key.zip(settings).and_then(|(key, settings)| {
            let pin = self.entries.get(&key)?;
            let idle = now_ms.saturating_sub(pin.last_seen_ms.load(Ordering::Relaxed));
            (idle < clock::as_ms(settings.ttl)).then(|| pin.target.clone())
        });
        Session {
            sessions: self,
            roster,
            key,
            pinned,
        }
    }

    /// Forgets sessions idle for the TTL and those whose target is gone for good; when more than
    /// 90 % of `max_sessions` remain, also the least recently seen, down to 90 %. With affinity
    /// off (`None`), forgets everything. Returns the sessions left.
    pub fn sweep(&self, settings: Option<&SessionAffinity>, now_ms: u64) -> usize {
        let Some(settings) = settings else {
            self.entries.clear();
            return 0;
        };
        let ttl = clock::as_ms(settings.ttl);
        self.entries.retain(|_, pin| {
            now_ms.saturating_sub(pin.last_seen_ms.load(Ordering::Relaxed)) < ttl
                && pin.target.strong_count() > 0
        });
        let keep = settings.max_sessions.get() as usize * FILL_AFTER_SWEEP_PERCENT / 100;
        let held = self.entries.len();
        if held > keep {
            let mut by_age: Vec<(u64, u64)> = self
                .entries
                .iter()
                .map(|e| (e.last_seen_ms.load(Ordering::Relaxed), *e.key()))
                .collect();
            let excess = by_age.len().saturating_sub(keep);
            if excess > 0 {
                by_age.select_nth_unstable(excess - 1);
                for (_, key) in &by_age[..excess] {
                    self.entries.remove(key);
                }
            }
        }
        self.entries.len()
    }
}

/// One request's view of its session.
pub struct Session<'a> {
    sessions: &'a Sessions,
    roster: &'a Roster,
    /// `None`: the request names no session (or the route has affinity off).
    key: Option<u64>,
    /// The target the session was last served by, if it has not expired.
    pinned: Option<Weak<TargetRuntime>>,
}

impl Session<'_> {
    /// The pinned target's roster index if it is in this roster, not yet tried and ready now
    /// (claiming a half-open trial or the like, as a strategy's pick does).
    pub fn target_ready(&self, tried: &[bool], now_ms: u64) -> Option<usize> {
        let pinned = self.pinned.as_ref()?;
        let index = self
            .roster
            .targets
            .iter()
            .position(|t| is_target(pinned, t))?;
        self.roster
            .admit_untried(tried, index, now_ms)
            .then_some(index)
    }

    /// `target` served the request: the session is pinned to it from now on, and the result is
    /// counted. A new session finds no room while the table is full (until the next sweep).
    pub fn served_by(&self, target: &Arc<TargetRuntime>, now_ms: u64) {
        let Some(key) = self.key else { return };
        let sessions = self.sessions;
        let served = match &self.pinned {
            Some(pinned) if is_target(pinned, target) => Served::Hit,
            Some(_) => Served::Moved,
            None => Served::New,
        };
        metrics::session_affinity(&sessions.route, served.as_str());
        if served == Served::Hit
            && let Some(pin) = sessions.entries.get(&key)
            && is_target(&pin.target, target)
        {
            pin.last_seen_ms.store(now_ms, Ordering::Relaxed);
            return;
        }
        let full = self
            .roster
            .session_affinity
            .as_ref()
            .is_none_or(|s| sessions.entries.len() >= s.max_sessions.get() as usize);
        if full && !sessions.entries.contains_key(&key) {
            return;
        }
        let pin = Pin {
            target: Arc::downgrade(target),
            last_seen_ms: AtomicU64::new(now_ms),
        };
        if sessions.entries.insert(key, pin).is_none() {
            metrics::session_affinity_added(&sessions.route);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::limits::Backend;
    use std::time::Duration;

    const HOUR_MS: u64 = 3_600_000;

    /// A route of `n` targets (credentials loaded from static keys) with affinity on.
    async fn roster(n: usize, max_sessions: u32) -> Roster {
        let targets: String = ["us-east-1", "us-west-2", "eu-west-1"][..n]
            .iter()
            .map(|region| {
                format!(
                    "      - {{ model: {{ provider: bedrock, name: m, options: {{ bedrock: {{ aws_region: {region} }} }} }}, auth: {{ aws_access_key_id: a, aws_secret_access_key: s }} }}\n"
                )
            })
            .collect();
        let yaml = format!(
            "routes:\n  - name: r\n    balancer: {{ session_affinity_max_sessions: {max_sessions} }}\n    targets:\n{targets}"
        );
        let config = crate::config::parse(&yaml, &|_| None).unwrap();
        let route = &config.routes[0];
        let backend = Backend::start(&config.rate_limits, None).unwrap();
        let runtimes = route
            .targets
            .iter()
            .map(|t| TargetRuntime::start(t.clone(), &route.balancer, &backend))
            .collect();
        let roster = Roster::new(runtimes, &route.balancer);
        // Credentials load in each target's actor; a target without them is never ready.
        for _ in 0..1000 {
            if roster
                .targets
                .iter()
                .all(|t| t.state.credentials.load().is_some())
            {
                return roster;
            }
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("credentials never loaded");
    }

    fn pinned_index(sessions: &Sessions, roster: &Roster, key: &str, now_ms: u64) -> Option<usize> {
        let tried = vec![false; roster.targets.len()];
        sessions
            .session(roster, Some(key), None, now_ms)
            .target_ready(&tried, now_ms)
    }

    #[actix_rt::test]
    async fn a_session_returns_to_its_target_until_its_ttl_runs_out() {
        let roster = roster(3, 100).await;
        let sessions = Sessions::new("r".to_owned());
        assert_eq!(pinned_index(&sessions, &roster, "s1", 0), None);
        sessions
            .session(&roster, Some("s1"), None, 0)
            .served_by(&roster.targets[2], 0);
        assert_eq!(pinned_index(&sessions, &roster, "s1", 10), Some(2));
        // Each visit restarts the idle clock.
        sessions
            .session(&roster, Some("s1"), None, HOUR_MS - 1)
            .served_by(&roster.targets[2], HOUR_MS - 1);
        assert_eq!(
            pinned_index(&sessions, &roster, "s1", 2 * HOUR_MS - 2),
            Some(2)
        );
        // Idle for the whole TTL: unknown again, and a sweep drops it.
        assert_eq!(
            pinned_index(&sessions, &roster, "s1", 2 * HOUR_MS - 1),
            None
        );
        assert_eq!(sessions.entries.len(), 1);
        assert_eq!(
            sessions.sweep(roster.session_affinity.as_ref(), 2 * HOUR_MS - 2),
            1
        );
        assert_eq!(
            sessions.sweep(roster.session_affinity.as_ref(), 2 * HOUR_MS - 1),
            0
        );
        // Another session, or none at all, has no pin.
        assert_eq!(pinned_index(&sessions, &roster, "s2", 0), None);
        let tried = vec![false; 3];
        assert_eq!(
            sessions
                .session(&roster, None, None, 0)
                .target_ready(&tried, 0),
            None
        );
    }

    /// Claude Code sends one session id for its main and its small model: each model id keeps its
    /// own pin, so neither evicts the other's cache target.
    #[actix_rt::test]
    async fn one_session_id_pins_each_model_apart() {
        let roster = roster(3, 100).await;
        let sessions = Sessions::new("r".to_owned());
        sessions
            .session(&roster, Some("s"), Some("model-a"), 0)
            .served_by(&roster.targets[0], 0);
        sessions
            .session(&roster, Some("s"), Some("model-b"), 0)
            .served_by(&roster.targets[2], 0);
        let tried = vec![false; 3];
        let pin = |model| {
            sessions
                .session(&roster, Some("s"), model, 1)
                .target_ready(&tried, 1)
        };
        assert_eq!(pin(Some("model-a")), Some(0));
        assert_eq!(pin(Some("model-b")), Some(2));
        assert_eq!(pin(None), None, "the whole route is a session of its own");
    }

    #[actix_rt::test]
    async fn an_unready_or_tried_pin_gives_way_and_the_session_moves() {
        let roster = roster(3, 100).await;
        let sessions = Sessions::new("r".to_owned());
        sessions
            .session(&roster, Some("s"), None, 0)
            .served_by(&roster.targets[0], 0);
        let session = sessions.session(&roster, Some("s"), None, 1);
        assert_eq!(session.target_ready(&[true, false, false], 1), None);
        roster.targets[0].state.set_cooldown_until(u64::MAX);
        assert_eq!(session.target_ready(&[false; 3], 1), None);
        session.served_by(&roster.targets[1], 1);
        assert_eq!(pinned_index(&sessions, &roster, "s", 2), Some(1));
        assert_eq!(sessions.entries.len(), 1);
    }

    #[actix_rt::test]
    async fn a_pin_never_names_a_target_of_another_roster() {
        let roster_a = roster(2, 100).await;
        let roster_b = roster(2, 100).await;
        let sessions = Sessions::new("r".to_owned());
        sessions
            .session(&roster_a, Some("s"), None, 0)
            .served_by(&roster_a.targets[1], 0);
        // Same labels, same indices, but other runtimes (as a reload that changed the targets'
        // settings builds): the pin is not carried over to them.
        assert_eq!(pinned_index(&sessions, &roster_b, "s", 1), None);
        // The targets it named are gone for good: the sweep forgets the session.
        drop(roster_a);
        assert_eq!(sessions.sweep(roster_b.session_affinity.as_ref(), 1), 0);
    }

    #[actix_rt::test]
    async fn the_table_is_bounded_and_a_sweep_keeps_the_most_recent() {
        let roster = roster(1, 10).await;
        let sessions = Sessions::new("r".to_owned());
        let target = &roster.targets[0];
        for i in 0..20u64 {
            sessions
                .session(&roster, Some(&format!("s{i}")), None, i)
                .served_by(target, i);
        }
        assert_eq!(
            sessions.entries.len(),
            10,
            "sessions past the cap are not held"
        );
        // The ten held are s0..s9; the sweep keeps the 9 seen last.
        assert_eq!(sessions.sweep(roster.session_affinity.as_ref(), 20), 9);
        assert_eq!(pinned_index(&sessions, &roster, "s0", 21), None);
        for i in 1..10 {
            assert_eq!(
                pinned_index(&sessions, &roster, &format!("s{i}"), 21),
                Some(0)
            );
        }
        // The room the sweep made takes one new session; then the table is full again, yet a
        // session it holds still has its visits recorded.
        for i in 20..22u64 {
            sessions
                .session(&roster, Some(&format!("s{i}")), None, i)
                .served_by(target, i);
        }
        assert_eq!(pinned_index(&sessions, &roster, "s20", 30), Some(0));
        assert_eq!(pinned_index(&sessions, &roster, "s21", 30), None);
        sessions
            .session(&roster, Some("s1"), None, HOUR_MS)
            .served_by(target, HOUR_MS);
        assert_eq!(pinned_index(&sessions, &roster, "s1", HOUR_MS + 1), Some(0));
        assert_eq!(sessions.entries.len(), 10);
        assert_eq!(
            sessions.sweep(None, HOUR_MS),
            0,
            "affinity off forgets everything"
        );
    }
}
