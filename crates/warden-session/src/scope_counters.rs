//! Preapproved-scope counters, per session and per UTC day, kept in memory and written
//! through to `state.db`, so a restart does not reset a day's spend.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;
use warden_charter::CompiledCharter;
use warden_charter::amount::Amount;
use warden_core::{Decision, Tier, Verdict};
use warden_pdp::{RuleUsage, ScopeUsage};

use crate::state_db::{StateDb, StoreError};

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
}

/// The preapproved-scope counters: how often (and how much) each preapproved rule was used,
/// per session and per UTC day.
#[derive(Debug)]
pub struct ScopeCounters {
    counters: Mutex<HashMap<(String, Window), Counter>>,
    pool: SqlitePool,
}

/// The UTC day of `now`, as `YYYY-MM-DD`.
pub fn utc_day(now: OffsetDateTime) -> String {
    let d = now.to_offset(time::UtcOffset::UTC).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

struct View<'a> {
    counters: &'a HashMap<(String, Window), Counter>,
    session: Window,
    day: Window,
}

impl ScopeUsage for View<'_> {
    fn rule(&self, rule_id: &str) -> RuleUsage {
        let get = |w: &Window| {
            self.counters
                .get(&(rule_id.to_owned(), w.clone()))
                .copied()
                .unwrap_or_default()
        };
        let s = get(&self.session);
        let d = get(&self.day);
        RuleUsage {
            session_count: s.count,
            day_count: d.count,
            session_spend: s.spend,
            day_spend: d.spend,
        }
    }
}

/// A counter change to persist.
#[derive(Debug)]
pub struct ScopeIncrement {
    rows: Vec<(String, String, u32, Amount)>,
}

impl ScopeCounters {
    /// Loads the counters from `state.db`.
    pub async fn open(db: &StateDb) -> Result<ScopeCounters, StoreError> {
        let pool = db.pool();
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
                },
            );
        }
        Ok(ScopeCounters {
            counters: Mutex::new(counters),
            pool,
        })
    }

    /// Runs `decide` with this session's usage, and — atomically with it — counts the use
    /// when the decision allows a preapproved action, so concurrent calls cannot both take the
    /// last unit of a scope. Returns the decision and the change to persist.
    pub fn decide_and_count(
        &self,
        charter: &CompiledCharter,
        session_id: &str,
        now: OffsetDateTime,
        args: &serde_json::Value,
        decide: impl FnOnce(&dyn ScopeUsage) -> Decision,
    ) -> (Decision, Option<ScopeIncrement>) {
        let Ok(mut counters) = self.counters.lock() else {
            // A poisoned lock is an error on the decision path: deny.
            return (decide(&Poisoned), None);
        };
        let session = Window::Session(session_id.to_owned());
        let day = Window::Day(utc_day(now));
        let decision = decide(&View {
            counters: &counters,
            session: session.clone(),
            day: day.clone(),
        });
        if decision.verdict != Verdict::Allow || decision.tier != Tier::Preapproved {
            return (decision, None);
        }
        let mut rows = Vec::new();
        for r in &decision.rules {
            let spent = charter
                .rule(&r.id)
                .and_then(|rule| rule.scope.as_ref())
                .and_then(|s| s.spend.as_ref())
                .and_then(|spend| warden_pdp::lookup(args, &spend.path))
                .and_then(|v| Amount::from_json(v).ok())
                .unwrap_or(Amount::ZERO);
            for w in [&session, &day] {
                let c = counters.entry((r.id.to_string(), w.clone())).or_default();
                c.count = c.count.saturating_add(1);
                c.spend = c.spend.checked_add(spent).unwrap_or(c.spend);
                rows.push((r.id.to_string(), w.key(), c.count, c.spend));
            }
        }
        (decision, Some(ScopeIncrement { rows }))
    }

    /// Writes counter changes through to `state.db`.
    pub async fn persist(&self, inc: ScopeIncrement) -> Result<(), StoreError> {
        for (rule, window, count, spend) in inc.rows {
            sqlx::query("INSERT INTO scope_usage (rule, window, count, spend) VALUES (?, ?, ?, ?) ON CONFLICT (rule, window) DO UPDATE SET count = MAX(count, excluded.count), spend = excluded.spend")
                .bind(rule)
                .bind(window)
                .bind(i64::from(count))
                .bind(spend.to_string())
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
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
