//! Token budgets of the model proxy: tokens counted per session, agent and principal over the
//! charter's windows, in memory and written through to `state.db` (so they survive a restart).
//!
//! A call is checked before it is forwarded and counted when its usage is known, so the call
//! that crosses a limit completes and the next one is refused.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;
use warden_charter::{BudgetScope, TokenBudget};

use crate::sessions::Session;
use crate::state_db::{StateDb, StoreError};

/// A spent budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetExceeded {
    /// Whose budget.
    pub per: BudgetScope,
    /// Its limit.
    pub limit: u64,
    /// Tokens used in the window.
    pub used: u64,
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

/// Tokens counted in memory, to be written through.
#[derive(Debug, Default)]
pub struct CountedTokens {
    keys: Vec<CounterKey>,
    tokens: u64,
}

/// The budgets and their counters.
#[derive(Debug)]
pub struct TokenBudgets {
    budgets: Vec<TokenBudget>,
    pool: SqlitePool,
    counts: Mutex<HashMap<CounterKey, u64>>,
}

impl TokenBudgets {
    /// Opens the counters in the state database.
    pub async fn open(db: &StateDb, budgets: Vec<TokenBudget>) -> Result<TokenBudgets, StoreError> {
        let pool = db.pool();
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
            pool,
            counts: Mutex::new(counts),
        })
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
                let start = now.unix_timestamp().div_euclid(len) * len;
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

    /// Whether `session` may make a model call now.
    pub fn check(&self, session: &Session, now: OffsetDateTime) -> Result<(), BudgetExceeded> {
        let Ok(counts) = self.counts.lock() else {
            // Fail closed: without the counters no budget can be vouched for.
            return Err(BudgetExceeded {
                per: BudgetScope::Session,
                limit: 0,
                used: 0,
                resets_at: None,
            });
        };
        for b in &self.budgets {
            let (key, resets_at) = Self::key(b, session, now);
            let used = counts.get(&key).copied().unwrap_or(0);
            if used >= b.tokens {
                return Err(BudgetExceeded {
                    per: b.per,
                    limit: b.tokens,
                    used,
                    resets_at,
                });
            }
        }
        Ok(())
    }

    /// Counts `tokens` against every budget of `session`, in memory, at once: the next
    /// [`check`](Self::check) sees them. Returns what [`persist`](Self::persist) writes through.
    pub fn count(&self, session: &Session, now: OffsetDateTime, tokens: u64) -> CountedTokens {
        if tokens == 0 || self.budgets.is_empty() {
            return CountedTokens::default();
        }
        let keys: Vec<CounterKey> = self
            .budgets
            .iter()
            .map(|b| Self::key(b, session, now).0)
            .collect();
        if let Ok(mut counts) = self.counts.lock() {
            for k in &keys {
                let c = counts.entry(k.clone()).or_insert(0);
                *c = c.saturating_add(tokens);
            }
        }
        CountedTokens { keys, tokens }
    }

    /// Writes counted tokens through to the state store.
    pub async fn persist(&self, counted: CountedTokens) {
        let CountedTokens { keys, tokens } = counted;
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
                .execute(&self.pool)
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "Token usage could not be written through; it stays counted in memory.");
            }
        }
    }
}
