//! The reference library: per-agent behaviour profiles learned from the ledger over the
//! baseline window, and the per-session state the detectors read. Everything is bounded;
//! when a bound is reached the least recently seen entry goes first.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Milliseconds in an hour (the profile's bucket).
pub(crate) const HOUR_MS: i64 = 3_600_000;
/// Hour buckets a profile keeps at most (90 days), whatever the baseline window says.
pub(crate) const MAX_BUCKETS: usize = 24 * 90;
/// Resource prefixes a profile keeps at most.
pub(crate) const MAX_PREFIXES: usize = 4096;
/// Tools a profile counts at most.
pub(crate) const MAX_TOOLS: usize = 256;
/// Events a session keeps per detector window at most.
pub(crate) const MAX_EVENTS: usize = 256;
/// Pending intents a session keeps at most.
pub(crate) const MAX_INTENTS: usize = 64;
/// Labels a session remembers at most.
pub(crate) const MAX_LABELS: usize = 64;
/// Resources read from one action's arguments at most.
const MAX_RESOURCES: usize = 8;
/// Longest argument string inspected for a resource.
const MAX_RESOURCE_BYTES: usize = 4096;

/// One hour of an agent's activity, across its sessions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Bucket {
    /// Hours since the epoch.
    pub hour: i64,
    /// Actions attempted.
    pub actions: u64,
    /// Sessions active in this hour (a session counts once per hour).
    pub session_hours: u64,
    /// Minutes in which a session acted (a session counts once per minute).
    pub session_minutes: u64,
    /// Actions decided, and of those denied.
    pub decided: u64,
    pub denied: u64,
    /// Approvals granted and denied.
    pub approved: u64,
    pub refused: u64,
    /// Model turns and their tokens.
    pub turns: u64,
    pub tokens: u64,
}

/// A resource prefix the agent has touched.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub(crate) struct Seen {
    pub first_ms: i64,
    pub last_ms: i64,
}

/// What an agent normally does: tools and their counts, resource prefixes, rates, tokens per
/// turn, denial and approval rates and active hours, over the baseline window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct AgentProfile {
    /// The first record about this agent (ledger time).
    pub first_ms: i64,
    /// Hour buckets, oldest first; older than the baseline window they age out.
    pub buckets: VecDeque<Bucket>,
    /// Resource prefixes (`/dir`, `host:example.com`, `table:orders`).
    pub prefixes: HashMap<String, Seen>,
    /// Tools and how often each was attempted (with the last time).
    pub tools: BTreeMap<String, (u64, i64)>,
    /// Actions by hour of day (UTC).
    pub active_hours: [u64; 24],
}

/// The baseline a detector holds a session against (derived from the buckets before the
/// current hour).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub(crate) struct Baseline {
    /// Hours of history it covers.
    pub hours: u64,
    /// Actions per session-hour.
    pub actions_per_session_hour: f64,
    /// Actions per minute of a session's activity (a minute it acted in).
    pub actions_per_active_minute: f64,
    /// Tokens per model turn.
    pub tokens_per_turn: f64,
    /// Model turns it is based on.
    pub turns: u64,
    /// Denied share of decisions.
    pub denial_rate: f64,
    /// Granted share of approval answers.
    pub approval_rate: f64,
}

impl AgentProfile {
    /// The bucket for `ms` (the current hour), created and the window aged as needed.
    /// Records arrive in ledger order, so the last bucket is the current hour; a clock step
    /// backwards lands in the last one too.
    pub(crate) fn bucket(&mut self, ms: i64, baseline_ms: i64) -> Option<&mut Bucket> {
        let hour = ms.div_euclid(HOUR_MS);
        let oldest = (ms.saturating_sub(baseline_ms)).div_euclid(HOUR_MS);
        while self.buckets.front().is_some_and(|b| b.hour < oldest)
            || self.buckets.len() > MAX_BUCKETS
        {
            self.buckets.pop_front();
        }
        if self.buckets.back().is_none_or(|b| b.hour < hour) {
            self.buckets.push_back(Bucket {
                hour,
                ..Bucket::default()
            });
        }
        self.buckets.back_mut()
    }

    /// The baseline from every bucket before the current hour.
    pub(crate) fn baseline(&self, now_ms: i64) -> Baseline {
        let hour = now_ms.div_euclid(HOUR_MS);
        let mut b = Bucket::default();
        let mut hours = 0u64;
        for x in self.buckets.iter().filter(|x| x.hour < hour) {
            hours += 1;
            b.actions += x.actions;
            b.session_hours += x.session_hours;
            b.session_minutes += x.session_minutes;
            b.decided += x.decided;
            b.denied += x.denied;
            b.approved += x.approved;
            b.refused += x.refused;
            b.turns += x.turns;
            b.tokens += x.tokens;
        }
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Baseline {
            hours,
            actions_per_session_hour: ratio(b.actions, b.session_hours),
            actions_per_active_minute: ratio(b.actions, b.session_minutes),
            tokens_per_turn: ratio(b.tokens, b.turns),
            turns: b.turns,
            denial_rate: ratio(b.denied, b.decided),
            approval_rate: ratio(b.approved, b.approved + b.refused),
        }
    }

    /// Notes a touch of `prefix`; answers whether it is new: never seen, aged out of the
    /// baseline window, or first seen less than `fresh_ms` ago.
    pub(crate) fn touch(&mut self, prefix: &str, ms: i64, baseline_ms: i64, fresh_ms: i64) -> bool {
        match self.prefixes.get_mut(prefix) {
            Some(seen) if seen.last_ms >= ms.saturating_sub(baseline_ms) => {
                seen.last_ms = seen.last_ms.max(ms);
                seen.first_ms > ms.saturating_sub(fresh_ms)
            }
            Some(seen) => {
                *seen = Seen {
                    first_ms: ms,
                    last_ms: ms,
                };
                true
            }
            None => {
                if self.prefixes.len() >= MAX_PREFIXES {
                    evict_oldest(&mut self.prefixes, |s| s.last_ms);
                }
                self.prefixes.insert(
                    prefix.to_owned(),
                    Seen {
                        first_ms: ms,
                        last_ms: ms,
                    },
                );
                true
            }
        }
    }

    /// Counts an attempt of `tool`.
    pub(crate) fn count_tool(&mut self, tool: &str, ms: i64) {
        if let Some(t) = self.tools.get_mut(tool) {
            t.0 += 1;
            t.1 = ms;
            return;
        }
        if self.tools.len() >= MAX_TOOLS {
            evict_oldest(&mut self.tools, |t| t.1);
        }
        self.tools.insert(tool.to_owned(), (1, ms));
    }
}

/// Removes the entry with the smallest `key` (ties by map key, so eviction is deterministic).
pub(crate) fn evict_oldest<M, V, F>(map: &mut M, key: F)
where
    M: MapLike<V>,
    F: Fn(&V) -> i64,
{
    if let Some(k) = map.oldest(&key) {
        map.remove_key(&k);
    }
}

/// The maps [`evict_oldest`] works on.
pub(crate) trait MapLike<V> {
    fn oldest(&self, key: &dyn Fn(&V) -> i64) -> Option<String>;
    fn remove_key(&mut self, k: &str);
}

impl<V> MapLike<V> for HashMap<String, V> {
    fn oldest(&self, key: &dyn Fn(&V) -> i64) -> Option<String> {
        self.iter()
            .min_by(|a, b| key(a.1).cmp(&key(b.1)).then_with(|| a.0.cmp(b.0)))
            .map(|(k, _)| k.clone())
    }
    fn remove_key(&mut self, k: &str) {
        self.remove(k);
    }
}

impl<V> MapLike<V> for BTreeMap<String, V> {
    fn oldest(&self, key: &dyn Fn(&V) -> i64) -> Option<String> {
        self.iter()
            .min_by(|a, b| key(a.1).cmp(&key(b.1)).then_with(|| a.0.cmp(b.0)))
            .map(|(k, _)| k.clone())
    }
    fn remove_key(&mut self, k: &str) {
        self.remove(k);
    }
}

/// A time-stamped ledger record in a session's window.
pub(crate) type Event = (i64, u64);

/// A tool call the model proposed and the agent has not attempted yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Intent {
    pub ms: i64,
    pub seq: u64,
    pub tool: String,
}

/// What the engine remembers about one session.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct SessionState {
    pub agent: String,
    pub principal: Option<String>,
    pub last_ms: i64,
    /// The last hour this session was counted active in.
    pub hour: Option<i64>,
    /// The last minute this session was counted active in.
    pub minute: Option<i64>,
    /// Whether the session's model calls go through the proxy (it has a model turn).
    pub has_model: bool,
    pub actions: VecDeque<Event>,
    pub novel: VecDeque<Event>,
    pub denials: VecDeque<Event>,
    pub mismatches: VecDeque<Event>,
    pub intents: VecDeque<Intent>,
    /// Labels the session carries, with the record that added each.
    pub labels: BTreeMap<String, Event>,
    /// Per detector, the seq it last signalled at: an episode's events count once.
    pub since: BTreeMap<String, u64>,
    /// A delegated session's ancestors, root first, as `session_delegated` named them
    /// (empty for a session an operator opened). Bounded by [`MAX_CHAIN`].
    #[serde(default)]
    pub chain: Vec<ChainLink>,
}

/// Ancestors a session's chain keeps at most (a charter's `max_depth` is at most 8).
pub(crate) const MAX_CHAIN: usize = 16;

/// One ancestor of a delegated session.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ChainLink {
    pub session: String,
    pub agent: String,
}

/// Pushes an event, keeping at most [`MAX_EVENTS`].
pub(crate) fn push_event(q: &mut VecDeque<Event>, e: Event) {
    if q.len() >= MAX_EVENTS {
        q.pop_front();
    }
    q.push_back(e);
}

/// Drops events older than `window_ms` before `now_ms`; returns how many remain.
pub(crate) fn prune(q: &mut VecDeque<Event>, now_ms: i64, window_ms: i64) -> usize {
    let oldest = now_ms.saturating_sub(window_ms);
    while q.front().is_some_and(|e| e.0 < oldest) {
        q.pop_front();
    }
    q.len()
}

/// The resource prefixes an action's arguments name: a path's parent directory (the path
/// itself for a `dir`-like argument or a trailing `/`), `host:<host>` for a URL, and
/// `table:<name>` for the table of a SQL statement. Bounded; anything unreadable is skipped.
pub(crate) fn resources(args: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(obj) = args.as_object() else {
        return out;
    };
    for (key, v) in obj {
        if out.len() >= MAX_RESOURCES {
            break;
        }
        let Some(s) = v.as_str() else { continue };
        if s.len() > MAX_RESOURCE_BYTES {
            continue;
        }
        let key = key.to_ascii_lowercase();
        let r = if let Some(host) = url_host(s) {
            Some(format!("host:{host}"))
        } else if s.starts_with('/') {
            Some(dir_of(s, key.contains("dir")))
        } else if key.contains("sql") || key == "query" || key == "statement" {
            sql_table(s).map(|t| format!("table:{t}"))
        } else if key.contains("path") || key.contains("file") || key.contains("dir") {
            Some(dir_of(s, key.contains("dir")))
        } else {
            None
        };
        if let Some(r) = r
            && !out.contains(&r)
        {
            out.push(r);
        }
    }
    out
}

fn dir_of(path: &str, is_dir: bool) -> String {
    let trimmed = path.trim_end_matches('/');
    if is_dir || path.ends_with('/') {
        return if trimmed.is_empty() { "/" } else { trimmed }.to_owned();
    }
    match trimmed.rsplit_once('/') {
        Some(("", _)) => "/".to_owned(),
        Some((parent, _)) => parent.to_owned(),
        None => ".".to_owned(),
    }
}

fn url_host(s: &str) -> Option<String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The first table of a SQL statement (after FROM, INTO, UPDATE or JOIN).
fn sql_table(sql: &str) -> Option<String> {
    let mut words = sql.split_whitespace();
    while let Some(w) = words.next() {
        if ["from", "into", "update", "join"]
            .iter()
            .any(|k| w.eq_ignore_ascii_case(k))
        {
            let t: String = words
                .next()?
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '"'))
                .filter(|c| *c != '"')
                .collect();
            return (!t.is_empty()).then(|| t.to_ascii_lowercase());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resources_name_directories_hosts_and_tables() {
        let r = resources(&json!({
            "path": "/srv/data/x.csv",
            "url": "https://User@API.example.com:8443/v1?q=1",
            "sql": "SELECT * FROM orders o JOIN items",
            "dir": "/srv/logs/",
            "text": "hello",
        }));
        assert!(r.contains(&"/srv/data".to_owned()), "{r:?}");
        assert!(r.contains(&"host:api.example.com".to_owned()), "{r:?}");
        assert!(r.contains(&"table:orders".to_owned()), "{r:?}");
        assert!(r.contains(&"/srv/logs".to_owned()), "{r:?}");
        assert_eq!(r.len(), 4);
        assert_eq!(dir_of("/x", false), "/");
        assert_eq!(dir_of("rel/y.txt", false), "rel");
    }
}
