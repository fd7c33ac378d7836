//! Token budgets of the model proxy: tokens counted per session, agent and principal over the
//! charter's windows, in memory and written through to `state.db` (so they survive a restart).
//!
//! A call **reserves** before it is forwarded and is **counted** when its usage is known; the
//! reservation is released when the call ends (its [`Reservation`] dropped, after the count).
//! A call is admitted when every budget has room for it: with no call of the budget in flight,
//! when some of the budget is left (so the call that crosses a limit completes and the next
//! one is refused); with calls in flight, when its reservation fits beside theirs. So
//! concurrent calls cannot overrun a budget by more than one call would alone.
//!
//! Counters of windows that have ended are pruned from memory at most once a minute, when
//! tokens are counted (the table in `state.db` keeps them, for the record).
//!
//! On PostgreSQL (a fleet) the counters and the reservations live in the shared database
//! only, and the same rule holds across every instance: see [`shared`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::{PgPool, Row, SqlitePool};
use time::OffsetDateTime;
use warden_charter::{BudgetScope, TokenBudget};

use crate::sessions::Session;
use crate::state_db::{Backend, StateDb, StoreError};

pub mod shared;
pub use shared::BudgetRefused;

/// A spent budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetExceeded {
    /// Whose budget.
    pub per: BudgetScope,
    /// Its limit.
    pub limit: u64,
    /// Tokens used in the window.
    pub used: u64,
    /// Tokens reserved in the window by calls in flight.
    pub reserved: u64,
    /// When the window ends (`None`: with the session).
    pub resets_at: Option<OffsetDateTime>,
}

impl BudgetExceeded {
    /// A sentence for the agent.
    pub fn message(&self) -> String {
        let when = self.resets_at.map_or_else(
            || "for the rest of this session".to_owned(),
            |t| format!("until {}", warden_core::text::rfc3339(t)),
        );
        if self.reserved > 0 && self.used < self.limit {
            return format!(
                "the {} token budget of {} has no room for this call ({} used, {} reserved by calls in flight); try again when they end",
                self.per.as_str(),
                self.limit,
                self.used,
                self.reserved
            );
        }
        format!(
            "the {} token budget of {} is spent ({} used); model calls are refused {when}",
            self.per.as_str(),
            self.limit,
            self.used
        )
    }
}

/// One token counter: whose (`per` and the session, agent or principal id) and which window
/// (its start, in unix seconds; 0 for a budget over the whole session).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CounterKey {
    per: BudgetScope,
    who: String,
    window_start: i64,
}

/// Tokens counted in memory, to be written through (on PostgreSQL: to be counted, releasing
/// the call's reservation in the same statement, see [`CountedTokens::releasing`]).
#[derive(Debug, Default)]
pub struct CountedTokens {
    keys: Vec<CounterKey>,
    tokens: u64,
    release: Option<Reservation>,
}

impl CountedTokens {
    /// Hands the call's reservation over: it is released when these tokens are written
    /// (on PostgreSQL in the same statement that counts them, so no other instance sees the
    /// budget with neither the reservation nor the count).
    pub fn releasing(mut self, reservation: Option<Reservation>) -> CountedTokens {
        // On SQLite the tokens are counted in memory already: the reservation goes now.
        self.release = reservation.filter(|r| r.shared.is_some());
        self
    }
}

/// How often counters of ended windows are pruned from memory, in seconds.
const PRUNE_EVERY_SECONDS: i64 = 60;

/// The counters in memory: tokens counted, tokens reserved by calls in flight.
#[derive(Debug, Default)]
struct Counters {
    used: HashMap<CounterKey, u64>,
    reserved: HashMap<CounterKey, u64>,
    /// When counters of ended windows were last pruned (unix seconds).
    pruned_at: i64,
}

/// Tokens a call in flight holds against its budgets; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    counters: Arc<Mutex<Counters>>,
    keys: Vec<CounterKey>,
    tokens: u64,
    /// On PostgreSQL: the reservation held in the shared database.
    shared: Option<shared::Held>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // A poisoned lock leaves the reservation held: the budget stays closed, never open.
        if let Ok(mut c) = self.counters.lock() {
            for k in &self.keys {
                if let Some(r) = c.reserved.get_mut(k) {
                    *r = r.saturating_sub(self.tokens);
                    if *r == 0 {
                        c.reserved.remove(k);
                    }
                }
            }
        }
    }
}

/// The budgets and their counters.
#[derive(Debug)]
pub struct TokenBudgets {
    /// Each agent's budgets (its charter's), by agent id; a session is held to its agent's.
    budgets: HashMap<String, Vec<TokenBudget>>,
    store: Store,
    counts: Arc<Mutex<Counters>>,
}

/// Where the counters are kept.
#[derive(Debug)]
enum Store {
    /// In memory, written through to `state.db`.
    Sqlite(SqlitePool),
    /// In the fleet's PostgreSQL database only; reservations dropped without being counted
    /// are released by tasks on the tracker.
    Postgres(PgPool, tokio_util::task::TaskTracker),
}

impl TokenBudgets {
    /// Opens the counters in the state database, with each agent's budgets (agent id →
    /// its charter's budgets). A session is held to its own agent's budgets; a budget per
    /// principal counts the principal's tokens through every agent (one counter), so each
    /// agent's limit is checked against all the principal spent.
    pub async fn open(
        db: &StateDb,
        budgets: HashMap<String, Vec<TokenBudget>>,
    ) -> Result<TokenBudgets, StoreError> {
        let pool = match db.backend() {
            Backend::Sqlite(pool) => pool.clone(),
            Backend::Postgres(pool) => {
                return Ok(TokenBudgets {
                    budgets,
                    store: Store::Postgres(pool.clone(), tokio_util::task::TaskTracker::new()),
                    counts: Arc::default(),
                });
            }
        };
        let mut counts = HashMap::new();
        for row in sqlx::query("SELECT scope, key, window_start, tokens FROM model_usage")
            .fetch_all(&pool)
            .await?
        {
            let scope = match row.try_get::<String, _>("scope")?.as_str() {
                "session" => BudgetScope::Session,
                "agent" => BudgetScope::Agent,
                "principal" => BudgetScope::Principal,
                _ => return Err(StoreError::Corrupt("model_usage.scope")),
            };
            let tokens: i64 = row.try_get("tokens")?;
            counts.insert(
                CounterKey {
                    per: scope,
                    who: row.try_get("key")?,
                    window_start: row.try_get("window_start")?,
                },
                u64::try_from(tokens).unwrap_or(0),
            );
        }
        Ok(TokenBudgets {
            budgets,
            store: Store::Sqlite(pool),
            counts: Arc::new(Mutex::new(Counters {
                used: counts,
                ..Counters::default()
            })),
        })
    }

    /// The budgets `session` is held to: its agent's (none for an agent without any).
    fn of(&self, session: &Session) -> &[TokenBudget] {
        self.budgets.get(&session.agent).map_or(&[], Vec::as_slice)
    }

    /// The counter key of `budget` for `session` at `now`, and when its window ends.
    fn key(
        budget: &TokenBudget,
        session: &Session,
        now: OffsetDateTime,
    ) -> (CounterKey, Option<OffsetDateTime>) {
        let who = match budget.per {
            BudgetScope::Session => session.id.clone(),
            BudgetScope::Agent => session.agent.clone(),
            BudgetScope::Principal => session.principal.clone(),
        };
        match budget.window {
            None => (
                CounterKey {
                    per: budget.per,
                    who,
                    window_start: 0,
                },
                None,
            ),
            Some(w) => {
                let len = i64::try_from(w.as_secs()).unwrap_or(i64::MAX).max(1);
                let start = now.unix_timestamp().div_euclid(len).saturating_mul(len);
                let end = OffsetDateTime::from_unix_timestamp(start.saturating_add(len)).ok();
                (
                    CounterKey {
                        per: budget.per,
                        who,
                        window_start: start,
                    },
                    end,
                )
            }
        }
    }

    /// Admits a model call of `session` now that may use about `tokens` tokens (its prompt and
    /// its largest completion), or says which budget has no room. The reservation is held
    /// until the returned [`Reservation`] is dropped: keep it until the call's usage is
    /// [counted](Self::count).
    ///
    /// This is the SQLite path: on PostgreSQL it refuses (use
    /// [`reserve_async`](Self::reserve_async)).
    pub fn reserve(
        &self,
        session: &Session,
        now: OffsetDateTime,
        tokens: u64,
    ) -> Result<Reservation, BudgetExceeded> {
        let locked = match self.store {
            Store::Sqlite(_) => self.counts.lock().ok(),
            Store::Postgres(..) => None,
        };
        let Some(mut counts) = locked else {
            // Fail closed: without the counters no budget can be vouched for.
            return Err(BudgetExceeded {
                per: BudgetScope::Session,
                limit: 0,
                used: 0,
                reserved: 0,
                resets_at: None,
            });
        };
        let budgets = self.of(session);
        let mut keys = Vec::with_capacity(budgets.len());
        for b in budgets {
            let (key, resets_at) = Self::key(b, session, now);
            let used = counts.used.get(&key).copied().unwrap_or(0);
            let reserved = counts.reserved.get(&key).copied().unwrap_or(0);
            let room = if reserved == 0 {
                used < b.tokens
            } else {
                used.saturating_add(reserved).saturating_add(tokens) <= b.tokens
            };
            if !room {
                return Err(BudgetExceeded {
                    per: b.per,
                    limit: b.tokens,
                    used,
                    reserved,
                    resets_at,
                });
            }
            keys.push(key);
        }
        for k in &keys {
            let r = counts.reserved.entry(k.clone()).or_insert(0);
            *r = r.saturating_add(tokens);
        }
        Ok(Reservation {
            counters: self.counts.clone(),
            keys,
            tokens,
            shared: None,
        })
    }

    /// Drops the in-memory counters of windows that have ended (at most once a minute).
    fn prune(&self, counts: &mut Counters, now: OffsetDateTime) {
        let t = now.unix_timestamp();
        if t.saturating_sub(counts.pruned_at) < PRUNE_EVERY_SECONDS {
            return;
        }
        counts.pruned_at = t;
        let budgets = &self.budgets;
        counts.used.retain(|k, _| {
            k.window_start == 0
                || budgets.values().flatten().any(|b| {
                    b.per == k.per
                        && b.window.is_some_and(|w| {
                            let len = i64::try_from(w.as_secs()).unwrap_or(i64::MAX).max(1);
                            t.div_euclid(len).saturating_mul(len) == k.window_start
                        })
                })
        });
    }

    /// Counts `tokens` against every budget of `session`, in memory, at once: the next
    /// [`reserve`](Self::reserve) sees them. Returns what [`persist`](Self::persist) writes through.
    pub fn count(&self, session: &Session, now: OffsetDateTime, tokens: u64) -> CountedTokens {
        let budgets = self.of(session);
        if tokens == 0 || budgets.is_empty() {
            return CountedTokens::default();
        }
        let keys: Vec<CounterKey> = budgets
            .iter()
            .map(|b| Self::key(b, session, now).0)
            .collect();
        if let Store::Postgres(..) = self.store {
            return CountedTokens {
                keys,
                tokens,
                release: None,
            };
        }
        if let Ok(mut counts) = self.counts.lock() {
            for k in &keys {
                let c = counts.used.entry(k.clone()).or_insert(0);
                *c = c.saturating_add(tokens);
            }
            self.prune(&mut counts, now);
        }
        CountedTokens {
            keys,
            tokens,
            release: None,
        }
    }

    /// Writes counted tokens through to the state store (on PostgreSQL: counts them, and
    /// releases the reservation handed over, in one statement per budget; if that fails the
    /// reservation stays held, standing in for the tokens not counted).
    pub async fn persist(&self, counted: CountedTokens) {
        let pool = match &self.store {
            Store::Sqlite(pool) => pool,
            Store::Postgres(pool, _) => return shared::persist(pool, counted).await,
        };
        let CountedTokens { keys, tokens, .. } = counted;
        for CounterKey {
            per,
            who,
            window_start,
        } in keys
        {
            let r = sqlx::query("INSERT INTO model_usage (scope, key, window_start, tokens) VALUES (?, ?, ?, ?) ON CONFLICT (scope, key, window_start) DO UPDATE SET tokens = tokens + excluded.tokens")
                .bind(per.as_str())
                .bind(who)
                .bind(window_start)
                .bind(i64::try_from(tokens).unwrap_or(i64::MAX))
                .execute(pool)
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "Token usage could not be written through; it stays counted in memory.");
            }
        }
    }
}

#[cfg(test)]
mod tests;
