//! Token budgets on PostgreSQL: the counters (`model_usage.tokens`) and the tokens reserved by
//! calls in flight on every instance (`model_usage.reserved`) live in the shared database.
//!
//! What it guarantees:
//! - a reservation is one conditional update per budget, in one transaction (rows locked in
//!   a fixed order): admitted when the budget has room by the same rule as on one instance
//!   (no call in flight anywhere: some of the budget left; calls in flight: this one fits
//!   beside theirs), so concurrent calls on every instance together never reserve past a
//!   limit;
//! - a store error refuses the call ([`BudgetRefused::Unavailable`]), never admits it
//!   unmetered;
//! - the tokens a call used are counted and its reservation released in one statement per
//!   budget ([`super::CountedTokens::releasing`]); a reservation dropped without being
//!   counted (a call refused or failed after it reserved) is released by a task on the
//!   budgets' tracker. If counting fails the reservation is kept: it stands in for the tokens
//!   not counted (the budget errs closed). A reservation of an instance that crashed stays
//!   until its window ends (for a budget over the whole session: with the session).

use std::collections::HashMap;

use sqlx::{PgPool, Postgres, Row, Transaction};
use time::OffsetDateTime;
use tokio_util::task::TaskTracker;
use warden_charter::TokenBudget;

use super::{BudgetExceeded, CountedTokens, CounterKey, Reservation, Store, TokenBudgets};
use crate::sessions::Session;
use crate::state_db::StoreError;

/// Why a model call is not admitted.
#[derive(Debug)]
pub enum BudgetRefused {
    /// A budget has no room for it.
    Exceeded(BudgetExceeded),
    /// The budgets' store failed: nothing can be vouched for, so the call is refused.
    Unavailable(StoreError),
}

/// A reservation held in the shared database; released when dropped unless counted.
#[derive(Debug)]
pub(super) struct Held {
    pool: PgPool,
    tracker: TaskTracker,
    keys: Vec<CounterKey>,
    tokens: u64,
    armed: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.armed || self.keys.is_empty() || self.tokens == 0 {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "A token reservation could not be released (no runtime); it stays held."
            );
            return;
        };
        let (pool, keys, tokens) = (
            self.pool.clone(),
            std::mem::take(&mut self.keys),
            self.tokens,
        );
        self.tracker.spawn_on(
            async move {
                let mut deltas = HashMap::new();
                for k in keys {
                    let d: &mut (i64, i64) = deltas.entry(k).or_default();
                    d.1 = d.1.saturating_add(clamp(tokens));
                }
                if let Err(e) = apply(&pool, deltas).await {
                    tracing::warn!(error = %e, "A token reservation could not be released; it stays held.");
                }
            },
            &handle,
        );
    }
}

/// A count or limit as PostgreSQL's `BIGINT`.
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The order rows are locked in.
fn order(k: &CounterKey) -> (&'static str, &str, i64) {
    (k.per.as_str(), k.who.as_str(), k.window_start)
}

impl TokenBudgets {
    /// Admits a model call as [`reserve`](Self::reserve) does, on either backend: on SQLite
    /// it is that; on PostgreSQL the reservation is made in the shared database (see
    /// [`shared`](self)), so it holds across every instance. A store error refuses.
    pub async fn reserve_async(
        &self,
        session: &Session,
        now: OffsetDateTime,
        tokens: u64,
    ) -> Result<Reservation, BudgetRefused> {
        let (pool, tracker) = match &self.store {
            Store::Sqlite(_) => {
                return self
                    .reserve(session, now, tokens)
                    .map_err(BudgetRefused::Exceeded);
            }
            Store::Postgres(pool, tracker) => (pool, tracker),
        };
        let mut keyed: Vec<(CounterKey, &TokenBudget, Option<OffsetDateTime>)> = self
            .of(session)
            .iter()
            .map(|b| {
                let (key, resets_at) = Self::key(b, session, now);
                (key, b, resets_at)
            })
            .collect();
        keyed.sort_by(|a, b| order(&a.0).cmp(&order(&b.0)));
        if !keyed.is_empty() {
            let mut tx = pool.begin().await.map_err(unavailable)?;
            for (key, budget, resets_at) in &keyed {
                if let Some(exceeded) =
                    reserve_one(&mut tx, key, budget, *resets_at, tokens).await?
                {
                    tx.rollback().await.map_err(unavailable)?;
                    return Err(BudgetRefused::Exceeded(exceeded));
                }
            }
            tx.commit().await.map_err(unavailable)?;
        }
        Ok(Reservation {
            counters: self.counts.clone(),
            keys: Vec::new(),
            tokens,
            shared: Some(Held {
                pool: pool.clone(),
                tracker: tracker.clone(),
                keys: keyed.into_iter().map(|(k, ..)| k).collect(),
                tokens,
                armed: true,
            }),
        })
    }
}

impl TokenBudgets {
    /// Waits until the reservations dropped so far are released in the shared database
    /// (at once on SQLite).
    pub async fn released(&self) {
        if let Store::Postgres(_, tracker) = &self.store {
            tracker.close();
            tracker.wait().await;
            tracker.reopen();
        }
    }
}

fn unavailable(e: sqlx::Error) -> BudgetRefused {
    BudgetRefused::Unavailable(StoreError::Database(e))
}

/// Reserves `tokens` against one budget's row if it has room; what is exceeded otherwise.
async fn reserve_one(
    tx: &mut Transaction<'static, Postgres>,
    key: &CounterKey,
    budget: &TokenBudget,
    resets_at: Option<OffsetDateTime>,
    tokens: u64,
) -> Result<Option<BudgetExceeded>, BudgetRefused> {
    sqlx::query("INSERT INTO model_usage (scope, key, window_start, tokens, reserved) VALUES ($1, $2, $3, 0, 0) ON CONFLICT (scope, key, window_start) DO NOTHING")
        .bind(key.per.as_str())
        .bind(&key.who)
        .bind(key.window_start)
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    let admitted = sqlx::query("UPDATE model_usage SET reserved = reserved + $4 WHERE scope = $1 AND key = $2 AND window_start = $3 AND ((reserved = 0 AND tokens < $5) OR (tokens + reserved + $4 <= $5))")
        .bind(key.per.as_str())
        .bind(&key.who)
        .bind(key.window_start)
        .bind(clamp(tokens))
        .bind(clamp(budget.tokens))
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    if admitted.rows_affected() == 1 {
        return Ok(None);
    }
    let row = sqlx::query("SELECT tokens, reserved FROM model_usage WHERE scope = $1 AND key = $2 AND window_start = $3")
        .bind(key.per.as_str())
        .bind(&key.who)
        .bind(key.window_start)
        .fetch_one(&mut **tx)
        .await
        .map_err(unavailable)?;
    let read = |c: &str| -> Result<u64, BudgetRefused> {
        let n: i64 = row.try_get(c).map_err(unavailable)?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    Ok(Some(BudgetExceeded {
        per: budget.per,
        limit: budget.tokens,
        used: read("tokens")?,
        reserved: read("reserved")?,
        resets_at,
    }))
}

/// Counts `counted` and releases the reservation it hands over, in one transaction.
pub(super) async fn persist(pool: &PgPool, counted: CountedTokens) {
    let CountedTokens {
        keys,
        tokens,
        release,
    } = counted;
    let mut held = release.and_then(|mut r| r.shared.take());
    let mut deltas: HashMap<CounterKey, (i64, i64)> = HashMap::new();
    for k in keys {
        let d = deltas.entry(k).or_default();
        d.0 = d.0.saturating_add(clamp(tokens));
    }
    if let Some(h) = &held {
        for k in &h.keys {
            let d = deltas.entry(k.clone()).or_default();
            d.1 = d.1.saturating_add(clamp(h.tokens));
        }
    }
    if let Err(e) = apply(pool, deltas).await {
        tracing::error!(error = %e, "Token usage could not be counted in the shared store; the call's reservation stays held in its place.");
    }
    // Released with the count, or kept in its place: never released again.
    if let Some(h) = held.as_mut() {
        h.armed = false;
    }
}

/// Adds `tokens` to and takes `reserved` from each counter, in one transaction (rows in a
/// fixed order).
async fn apply(pool: &PgPool, deltas: HashMap<CounterKey, (i64, i64)>) -> Result<(), sqlx::Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<(CounterKey, (i64, i64))> = deltas.into_iter().collect();
    rows.sort_by(|a, b| order(&a.0).cmp(&order(&b.0)));
    let mut tx = pool.begin().await?;
    for (key, (tokens, released)) in rows {
        sqlx::query("INSERT INTO model_usage (scope, key, window_start, tokens, reserved) VALUES ($1, $2, $3, $4, 0) ON CONFLICT (scope, key, window_start) DO UPDATE SET tokens = model_usage.tokens + excluded.tokens, reserved = GREATEST(model_usage.reserved - $5, 0)")
            .bind(key.per.as_str())
            .bind(&key.who)
            .bind(key.window_start)
            .bind(tokens)
            .bind(released)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}
