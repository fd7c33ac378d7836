//! The scope counters on PostgreSQL: exact across every instance of a fleet.
//!
//! What it guarantees:
//! - a decision reads each rule's usage (the session's and the UTC day's windows) from the
//!   shared database, decides, and counts the use **in one transaction** that checks the
//!   usage it read is unchanged: the rows read are locked (`FOR UPDATE`, in a fixed order, and
//!   only those of the rules the decision reads: unrelated rules never wait on each other),
//!   and every count is a compare-and-set (`UPDATE … WHERE count = $seen AND spend = $seen`,
//!   or an insert that conflicts when the row appeared meanwhile);
//! - a lost race (a row that appeared, a changed row, a deadlock or serialisation failure
//!   reported by PostgreSQL) rolls back and decides again, at most [`MAX_DECIDE_ATTEMPTS`]
//!   times, then decides as if every scope were used up (the action escalates, never runs
//!   unmetered);
//! - the count is committed before [`ScopeCounters::decide_and_count_async`] returns, so
//!   before the action can be forwarded; any other store error is returned (the governor
//!   refuses the action), never turned into an allow;
//! - counters no decision can read again (days before yesterday, sessions unused for longer
//!   than the longest session lifetime) are deleted at most once a minute per instance.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use sqlx::{PgPool, Postgres, Row, Transaction};
use time::OffsetDateTime;
use warden_charter::CompiledCharter;
use warden_charter::amount::Amount;
use warden_core::{Decision, Tier, Verdict};
use warden_pdp::{RuleUsage, ScopeUsage};

use super::{
    MAX_DECIDE_ATTEMPTS, PRUNE_EVERY_SECONDS, Poisoned, ScopeCounters, ScopeIncrement, Store,
    Window, utc_day,
};
use crate::sessions::MAX_TTL;
use crate::state_db::StoreError;

/// One stored counter as read: its count, and its spend as the stored text (compared as
/// stored, so a compare-and-set never depends on how an amount is written).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    count: i64,
    spend: String,
}

/// The rows read, by (rule, window key); a rule without a row has not been used.
type Rows = HashMap<(String, String), Stored>;

/// How a transaction ended.
enum Outcome {
    /// Decided (and counted, if it was a preapproved allow).
    Done(Decision),
    /// The usage changed under it, or it read a rule it had not loaded (the rules it read):
    /// decide again.
    Again(Vec<String>),
}

impl ScopeCounters {
    /// Decides and counts as [`decide_and_count`](Self::decide_and_count) does, on either
    /// backend: on SQLite it is that (the change to persist is returned); on PostgreSQL the
    /// usage is read from, and the use counted in, the shared database in one transaction
    /// (see [`shared`](self)), committed before this returns (no change to persist). A store
    /// error is returned: the caller refuses the action.
    pub async fn decide_and_count_async(
        &self,
        charter: &CompiledCharter,
        session_id: &str,
        now: OffsetDateTime,
        args: &serde_json::Value,
        decide: impl Fn(&dyn ScopeUsage) -> Decision + Send + Sync,
    ) -> Result<(Decision, Option<ScopeIncrement>), StoreError> {
        let pool = match &self.store {
            Store::Sqlite(_) => {
                return Ok(self.decide_and_count(charter, session_id, now, args, decide));
            }
            Store::Postgres(pool) => pool,
        };
        let session = Window::Session(session_id.to_owned()).key();
        let day = Window::Day(utc_day(now)).key();
        // The rules the decision reads: with no usage every determining rule's scope is
        // checked, so this is every rule it can read (more are loaded below if not).
        let mut wanted: BTreeSet<String> = decide_reading(&decide, &Rows::new(), &session, &day)
            .1
            .into_iter()
            .collect();
        for _ in 0..MAX_DECIDE_ATTEMPTS {
            match attempt(pool, charter, &wanted, [&session, &day], now, args, &decide).await {
                Ok(Outcome::Done(decision)) => {
                    self.prune_shared(pool, now).await;
                    return Ok((decision, None));
                }
                // A rule read but not loaded is loaded next time.
                Ok(Outcome::Again(read)) => wanted.extend(read),
                Err(StoreError::Database(e)) if lost_race(&e) => {}
                Err(e) => return Err(e),
            }
        }
        tracing::warn!(
            session = session_id,
            attempts = MAX_DECIDE_ATTEMPTS,
            "Scope usage kept changing under a decision; it is decided with every scope used up."
        );
        Ok((decide(&Poisoned), None))
    }

    /// Deletes (at most once a minute) the shared counters no decision can read again. Best
    /// effort: a failure is logged and retried a minute later.
    async fn prune_shared(&self, pool: &PgPool, now: OffsetDateTime) {
        use std::sync::atomic::Ordering;
        let t = now.unix_timestamp();
        let last = self.pruned_at.load(Ordering::Acquire);
        if t.saturating_sub(last) < PRUNE_EVERY_SECONDS {
            return;
        }
        self.pruned_at.store(t, Ordering::Release);
        let oldest_day = Window::Day(utc_day(now.saturating_sub(time::Duration::days(1)))).key();
        let cutoff = time::Duration::try_from(MAX_TTL)
            .ok()
            .and_then(|ttl| now.checked_sub(ttl))
            .map(used_at);
        let r = sqlx::query(
            "DELETE FROM scope_usage WHERE (scope_window LIKE 'day:%' AND scope_window < $1) OR (scope_window LIKE 'session:%' AND used_at < $2)",
        )
        .bind(oldest_day)
        .bind(cutoff.unwrap_or_default())
        .execute(pool)
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "Scope counters of ended windows could not be pruned; retried later.");
        }
    }
}

/// When a counter was used, as stored: RFC 3339 in whole seconds (so the text orders as the
/// time does).
fn used_at(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    warden_core::text::rfc3339(t.replace_nanosecond(0).unwrap_or(t))
}

/// Whether PostgreSQL reported a race another attempt resolves: a unique violation, a
/// deadlock, a serialisation failure.
fn lost_race(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| matches!(&*c, "23505" | "40P01" | "40001"))
}

/// One transaction: read (and lock) the rows of `wanted`, decide, and count with a
/// compare-and-set.
async fn attempt(
    pool: &PgPool,
    charter: &CompiledCharter,
    wanted: &BTreeSet<String>,
    [session, day]: [&String; 2],
    now: OffsetDateTime,
    args: &serde_json::Value,
    decide: &(impl Fn(&dyn ScopeUsage) -> Decision + Send + Sync),
) -> Result<Outcome, StoreError> {
    let mut tx = pool.begin().await?;
    let rows = read_locked(&mut tx, wanted, [session, day]).await?;
    let (decision, read) = decide_reading(decide, &rows, session, day);
    if read.iter().any(|r| !wanted.contains(r)) {
        tx.rollback().await?;
        return Ok(Outcome::Again(read));
    }
    if decision.verdict != Verdict::Allow || decision.tier != Tier::Preapproved {
        // Nothing to count: what it read was current when read.
        tx.rollback().await?;
        return Ok(Outcome::Done(decision));
    }
    let mut counted = BTreeSet::new();
    for r in &decision.rules {
        if !counted.insert(r.id.to_string()) {
            continue;
        }
        let spent = warden_pdp::spend_of(charter, &r.id, args);
        for w in [session, day] {
            let key = (r.id.to_string(), w.clone());
            let ok = match rows.get(&key) {
                Some(seen) => update(&mut tx, &key, seen, spent, now).await?,
                None => insert(&mut tx, &key, spent, now).await?,
            };
            if !ok {
                tx.rollback().await?;
                return Ok(Outcome::Again(Vec::new()));
            }
        }
    }
    tx.commit().await?;
    Ok(Outcome::Done(decision))
}

/// The rows of `wanted` in both windows, locked until the transaction ends (in a fixed
/// order, so two transactions never lock the same rows crosswise).
async fn read_locked(
    tx: &mut Transaction<'static, Postgres>,
    wanted: &BTreeSet<String>,
    [session, day]: [&String; 2],
) -> Result<Rows, StoreError> {
    let mut rows = Rows::new();
    if wanted.is_empty() {
        return Ok(rows);
    }
    let rules: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let found = sqlx::query(
        "SELECT rule, scope_window, count, spend FROM scope_usage WHERE rule = ANY($1) AND scope_window IN ($2, $3) ORDER BY rule, scope_window FOR UPDATE",
    )
    .bind(&rules)
    .bind(session)
    .bind(day)
    .fetch_all(&mut **tx)
    .await?;
    for row in found {
        rows.insert(
            (row.try_get("rule")?, row.try_get("scope_window")?),
            Stored {
                count: row.try_get("count")?,
                spend: row.try_get("spend")?,
            },
        );
    }
    Ok(rows)
}

/// Counts one use in an existing row, if it still holds what was read.
async fn update(
    tx: &mut Transaction<'static, Postgres>,
    (rule, window): &(String, String),
    seen: &Stored,
    spent: Amount,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let spend = Amount::parse(&seen.spend).map_err(|_| StoreError::Corrupt("scope_usage.spend"))?;
    let done = sqlx::query(
        "UPDATE scope_usage SET count = count + 1, spend = $1, used_at = $2 WHERE rule = $3 AND scope_window = $4 AND count = $5 AND spend = $6",
    )
    .bind(spend.checked_add(spent).unwrap_or(spend).to_string())
    .bind(used_at(now))
    .bind(rule)
    .bind(window)
    .bind(seen.count)
    .bind(&seen.spend)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Counts the first use in a new row, unless the row appeared meanwhile.
async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    (rule, window): &(String, String),
    spent: Amount,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO scope_usage (rule, scope_window, count, spend, used_at) VALUES ($1, $2, 1, $3, $4) ON CONFLICT (rule, scope_window) DO NOTHING",
    )
    .bind(rule)
    .bind(window)
    .bind(spent.to_string())
    .bind(used_at(now))
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Decides with the usage in `rows` (synchronously: nothing is held across an await),
/// returning the decision and the rules it read. A stored value that cannot be read makes
/// every scope look used up.
fn decide_reading(
    decide: &(impl Fn(&dyn ScopeUsage) -> Decision + Send + Sync),
    rows: &Rows,
    session: &str,
    day: &str,
) -> (Decision, Vec<String>) {
    let usage = Loaded {
        rows,
        session,
        day,
        read: RefCell::new(Vec::new()),
    };
    let decision = decide(&usage);
    (decision, usage.read.into_inner())
}

/// The usage a decision reads from the rows loaded, remembering which rules it read.
struct Loaded<'a> {
    rows: &'a Rows,
    session: &'a str,
    day: &'a str,
    read: RefCell<Vec<String>>,
}

impl ScopeUsage for Loaded<'_> {
    fn rule(&self, rule_id: &str) -> RuleUsage {
        self.read.borrow_mut().push(rule_id.to_owned());
        let get = |w: &str| self.rows.get(&(rule_id.to_owned(), w.to_owned()));
        let read = |row: Option<&Stored>| -> Option<(u32, Amount)> {
            match row {
                None => Some((0, Amount::ZERO)),
                Some(r) => Some((u32::try_from(r.count).ok()?, Amount::parse(&r.spend).ok()?)),
            }
        };
        match (read(get(self.session)), read(get(self.day))) {
            (Some((session_count, session_spend)), Some((day_count, day_spend))) => RuleUsage {
                session_count,
                day_count,
                session_spend,
                day_spend,
            },
            _ => Poisoned.rule(rule_id),
        }
    }
}
