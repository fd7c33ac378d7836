//! Preapproved-scope counters, per session and per UTC day.
//!
//! On SQLite they are kept in memory and written through to `state.db`, so a restart does not
//! reset a day's spend. On PostgreSQL (a fleet) they live in the shared database only, and
//! are read, checked and counted there by [`ScopeCounters::decide_and_count_async`] (see
//! [`shared`]), exact across instances.
//!
//! On SQLite, a decision is made without the counters' lock (it reads each rule's usage under the lock,
//! one at a time); then, under the lock, the usage it read is checked to be unchanged and the
//! use is counted. Usage that changed meanwhile (a concurrent call counted) makes it decide
//! again, at most [`MAX_DECIDE_ATTEMPTS`] times; past that every scope looks used up, so the
//! action escalates rather than runs unmetered.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::{PgPool, Row, SqlitePool};
use time::OffsetDateTime;
use warden_charter::CompiledCharter;
use warden_charter::amount::Amount;
use warden_core::{Decision, Tier, Verdict};
use warden_pdp::{RuleUsage, ScopeUsage};

use crate::sessions::MAX_TTL;
use crate::state_db::{Backend, StateDb, StoreError};

pub mod shared;

/// How many times a decision is made again when the usage it read changed before it could be
/// counted.
pub const MAX_DECIDE_ATTEMPTS: usize = 8;

/// The window a counter covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Window {
    Session(String),
    Day(String),
}

impl Window {
    fn key(&self) -> String {
        match self {
            Window::Session(s) => format!("session:{s}"),
            Window::Day(d) => format!("day:{d}"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    count: u32,
    spend: Amount,
    /// When this process last counted a use (`None` for a counter loaded from `state.db` and
    /// not seen by a pruning pass yet: the first pass stamps it).
    last_used: Option<OffsetDateTime>,
}

/// The preapproved-scope counters: how often (and how much) each preapproved rule was used,
/// per session and per UTC day.
#[derive(Debug)]
pub struct ScopeCounters {
    /// In memory (SQLite only; empty on PostgreSQL).
    counters: Mutex<Counters>,
    store: Store,
    /// When counters of ended windows were last pruned (unix seconds).
    pruned_at: std::sync::atomic::AtomicI64,
}

/// Where the counters are kept.
#[derive(Debug)]
enum Store {
    /// In memory, written through to `state.db`.
    Sqlite(SqlitePool),
    /// In the fleet's PostgreSQL database only.
    Postgres(PgPool),
}

/// How often, at most, counters of ended windows are pruned (when a use is counted), in
/// seconds.
const PRUNE_EVERY_SECONDS: i64 = 60;

/// The UTC day of `now`, as `YYYY-MM-DD`.
pub fn utc_day(now: OffsetDateTime) -> String {
    let d = now.to_offset(time::UtcOffset::UTC).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

type Counters = HashMap<(String, Window), Counter>;

/// The usage of `rule_id` in the session's and the day's windows.
fn usage_of(counters: &Counters, rule_id: &str, session: &Window, day: &Window) -> RuleUsage {
    let get = |w: &Window| {
        counters
            .get(&(rule_id.to_owned(), w.clone()))
            .copied()
            .unwrap_or_default()
    };
    let s = get(session);
    let d = get(day);
    RuleUsage {
        session_count: s.count,
        day_count: d.count,
        session_spend: s.spend,
        day_spend: d.spend,
    }
}

/// The usage a decision reads, each rule under the lock for the read only; what was read is
/// kept, to be checked before the use is counted.
struct Snapshot<'a> {
    counters: &'a Mutex<Counters>,
    session: &'a Window,
    day: &'a Window,
    read: RefCell<Vec<(String, RuleUsage)>>,
    poisoned: Cell<bool>,
}

impl ScopeUsage for Snapshot<'_> {
    fn rule(&self, rule_id: &str) -> RuleUsage {
        let usage = match self.counters.lock() {
            Ok(c) => usage_of(&c, rule_id, self.session, self.day),
            Err(_) => {
                self.poisoned.set(true);
                Poisoned.rule(rule_id)
            }
        };
        self.read.borrow_mut().push((rule_id.to_owned(), usage));
        usage
    }
}

/// A counter change to persist: the counters a use changed, and those pruned.
#[derive(Debug)]
pub struct ScopeIncrement {
    rows: Vec<(String, String, u32, Amount)>,
    deleted: Vec<(String, String)>,
}

impl ScopeCounters {
    /// Loads the counters from `state.db`; on PostgreSQL nothing is loaded (every decision
    /// reads the shared database).
    pub async fn open(db: &StateDb) -> Result<ScopeCounters, StoreError> {
        let pool = match db.backend() {
            Backend::Sqlite(pool) => pool.clone(),
            Backend::Postgres(pool) => {
                return Ok(ScopeCounters {
                    counters: Mutex::new(HashMap::new()),
                    store: Store::Postgres(pool.clone()),
                    pruned_at: std::sync::atomic::AtomicI64::new(i64::MIN),
                });
            }
        };
        let rows = sqlx::query("SELECT rule, window, count, spend FROM scope_usage")
            .fetch_all(&pool)
            .await?;
        let mut counters = HashMap::new();
        for row in rows {
            let rule: String = row.try_get("rule")?;
            let window: String = row.try_get("window")?;
            let count: i64 = row.try_get("count")?;
            let spend: String = row.try_get("spend")?;
            let window = match window.split_once(':') {
                Some(("session", s)) => Window::Session(s.to_owned()),
                Some(("day", d)) => Window::Day(d.to_owned()),
                _ => return Err(StoreError::Corrupt("scope_usage.window")),
            };
            counters.insert(
                (rule, window),
                Counter {
                    count: u32::try_from(count)
                        .map_err(|_| StoreError::Corrupt("scope_usage.count"))?,
                    spend: Amount::parse(&spend)
                        .map_err(|_| StoreError::Corrupt("scope_usage.spend"))?,
                    last_used: None,
                },
            );
        }
        Ok(ScopeCounters {
            counters: Mutex::new(counters),
            store: Store::Sqlite(pool),
            pruned_at: std::sync::atomic::AtomicI64::new(i64::MIN),
        })
    }

    /// Runs `decide` with this session's usage, without holding the counters' lock, then —
    /// under the lock, if the usage it read is unchanged — counts the use when the decision
    /// allows a preapproved action, so concurrent calls cannot both take the last unit of a
    /// scope. If the usage changed meanwhile it decides again (at most
    /// [`MAX_DECIDE_ATTEMPTS`] times, then as if every scope were used up). Returns the
    /// decision and the change to persist.
    ///
    /// This is the SQLite path: on PostgreSQL it counts nothing and decides as if every scope
    /// were used up (use [`decide_and_count_async`](Self::decide_and_count_async)).
    pub fn decide_and_count(
        &self,
        charter: &CompiledCharter,
        session_id: &str,
        now: OffsetDateTime,
        args: &serde_json::Value,
        decide: impl Fn(&dyn ScopeUsage) -> Decision,
    ) -> (Decision, Option<ScopeIncrement>) {
        if matches!(self.store, Store::Postgres(_)) {
            return (decide(&Poisoned), None);
        }
        let session = Window::Session(session_id.to_owned());
        let day = Window::Day(utc_day(now));
        for _ in 0..MAX_DECIDE_ATTEMPTS {
            let snapshot = Snapshot {
                counters: &self.counters,
                session: &session,
                day: &day,
                read: RefCell::new(Vec::new()),
                poisoned: Cell::new(false),
            };
            let decision = decide(&snapshot);
            if snapshot.poisoned.get() {
                // A poisoned lock is an error on the decision path: every scope used up.
                return (decide(&Poisoned), None);
            }
            let Ok(mut counters) = self.counters.lock() else {
                return (decide(&Poisoned), None);
            };
            let unchanged = snapshot
                .read
                .borrow()
                .iter()
                .all(|(rule, seen)| usage_of(&counters, rule, &session, &day) == *seen);
            if !unchanged {
                continue;
            }
            if decision.verdict != Verdict::Allow || decision.tier != Tier::Preapproved {
                return (decision, None);
            }
            let rows = count_use(
                &mut counters,
                charter,
                &decision,
                args,
                [&session, &day],
                now,
            );
            let deleted = self.prune(&mut counters, now);
            return (decision, Some(ScopeIncrement { rows, deleted }));
        }
        tracing::warn!(
            session = session_id,
            attempts = MAX_DECIDE_ATTEMPTS,
            "Scope usage kept changing under a decision; it is decided with every scope used up."
        );
        (decide(&Poisoned), None)
    }

    /// Drops (at most once a minute) the counters no decision can read again: those of UTC
    /// days before yesterday (a decision reads only its own day's), and those of sessions
    /// whose last counted use is older than the longest session lifetime ([`MAX_TTL`]: such a
    /// session has expired). Returns the dropped keys, to delete from `state.db`.
    fn prune(&self, counters: &mut Counters, now: OffsetDateTime) -> Vec<(String, String)> {
        use std::sync::atomic::Ordering;
        let t = now.unix_timestamp();
        let last = self.pruned_at.load(Ordering::Acquire);
        if t.saturating_sub(last) < PRUNE_EVERY_SECONDS {
            return Vec::new();
        }
        self.pruned_at.store(t, Ordering::Release);
        let oldest_day = utc_day(now.saturating_sub(time::Duration::days(1)));
        let session_cutoff = time::Duration::try_from(MAX_TTL)
            .ok()
            .and_then(|ttl| now.checked_sub(ttl));
        let mut deleted = Vec::new();
        counters.retain(|(rule, window), counter| {
            let keep = match window {
                Window::Day(d) => *d >= oldest_day,
                Window::Session(_) => match counter.last_used {
                    None => {
                        counter.last_used = Some(now);
                        true
                    }
                    Some(used) => session_cutoff.is_none_or(|cutoff| used > cutoff),
                },
            };
            if !keep {
                deleted.push((rule.clone(), window.key()));
            }
            keep
        });
        deleted
    }

    /// Writes counter changes through to `state.db` (nothing to do on PostgreSQL: the count
    /// was committed by the decision).
    pub async fn persist(&self, inc: ScopeIncrement) -> Result<(), StoreError> {
        let Store::Sqlite(pool) = &self.store else {
            return Ok(());
        };
        for (rule, window) in inc.deleted {
            sqlx::query("DELETE FROM scope_usage WHERE rule = ? AND window = ?")
                .bind(rule)
                .bind(window)
                .execute(pool)
                .await?;
        }
        for (rule, window, count, spend) in inc.rows {
            sqlx::query("INSERT INTO scope_usage (rule, window, count, spend) VALUES (?, ?, ?, ?) ON CONFLICT (rule, window) DO UPDATE SET count = MAX(count, excluded.count), spend = excluded.spend")
                .bind(rule)
                .bind(window)
                .bind(i64::from(count))
                .bind(spend.to_string())
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}

/// Counts one use of every rule of `decision` in `windows`; the rows to persist.
fn count_use(
    counters: &mut Counters,
    charter: &CompiledCharter,
    decision: &Decision,
    args: &serde_json::Value,
    windows: [&Window; 2],
    now: OffsetDateTime,
) -> Vec<(String, String, u32, Amount)> {
    let mut rows = Vec::new();
    for r in &decision.rules {
        let spent = warden_pdp::spend_of(charter, &r.id, args);
        for w in windows {
            let c = counters.entry((r.id.to_string(), w.clone())).or_default();
            c.count = c.count.saturating_add(1);
            c.spend = c.spend.checked_add(spent).unwrap_or(c.spend);
            c.last_used = Some(now);
            rows.push((r.id.to_string(), w.key(), c.count, c.spend));
        }
    }
    rows
}

/// ScopeUsage when the counters cannot be read: every scope looks exhausted, so a preapproved
/// action escalates instead of running unmetered.
struct Poisoned;

impl ScopeUsage for Poisoned {
    fn rule(&self, _rule_id: &str) -> RuleUsage {
        RuleUsage {
            session_count: u32::MAX,
            day_count: u32::MAX,
            session_spend: Amount::ZERO,
            day_spend: Amount::ZERO,
        }
    }
}

#[cfg(test)]
mod tests;
