//! The controls on PostgreSQL: one table for the fleet, each instance's snapshot following it.
//!
//! What it guarantees:
//! - every write (set, forgotten, lifted, expired) takes a new `changed` from the table's
//!   sequence and announces the control (`NOTIFY` on [`Channel::Controls`]) in the same
//!   transaction: other instances hear of it when, and only if, it commits;
//! - an instance applies what another wrote on the notice ([`Controls::apply_changed`]: the
//!   row as it is now) and on every poll ([`Controls::apply_since`]: the rows whose `changed`
//!   is past what it last applied, less [`LOOKBACK`] so a write that committed after a later
//!   one is not skipped), so a control set on one instance is in force on every other within
//!   about a second, and one lifted or expired stops applying there as fast. Applying reads
//!   the row's current state: applying twice, or late, never brings back an old state;
//! - expiry is recorded once across the fleet: the instance whose conditional state change
//!   (`in_force` → `expired`) succeeds records it ([`Controls::claim_expiry`]); the others
//!   only forget it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use sqlx::{PgPool, Row};

use super::{Control, Controls, MAX_CONTROLS_LISTED, body};
use crate::state_db::StoreError;
use crate::state_db::notices::{Channel, notify};

/// How far back (in `changed` numbers) a poll reads again: a write that took its number
/// before others but committed after them is still seen.
pub const LOOKBACK: i64 = 100;

/// Most rows one poll reads (it reads again at the next poll if there were more).
const MAX_POLLED: i64 = 2000;

/// The new `changed` of a row being written.
const BUMP: &str = "nextval(pg_get_serial_sequence('controls', 'changed'))";

/// Opens the controls in the shared database: those in force now.
pub(super) async fn open(pool: &PgPool) -> Result<Controls, StoreError> {
    // The mark first: whatever changes while the rows are read is read again by the poll.
    let seen: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(changed), 0) FROM controls")
        .fetch_one(pool)
        .await?;
    let rows = sqlx::query("SELECT body FROM controls WHERE state = 'in_force' ORDER BY id")
        .fetch_all(pool)
        .await?;
    let mut loaded = Vec::with_capacity(rows.len());
    for row in rows {
        loaded.push(Arc::new(parse(&row.try_get::<String, _>("body")?)?));
    }
    Ok(Controls {
        pool: None,
        shared: Some((pool.clone(), AtomicI64::new(seen))),
        snapshot: std::sync::RwLock::new(Arc::new(loaded)),
    })
}

fn parse(body: &str) -> Result<Control, StoreError> {
    serde_json::from_str(body).map_err(|_| StoreError::Corrupt("controls.body"))
}

/// The newest controls stored (forgotten ones left out), newest first.
pub(super) async fn list_all(pool: &PgPool) -> Result<Vec<Control>, StoreError> {
    let rows =
        sqlx::query("SELECT body FROM controls WHERE state <> 'void' ORDER BY id DESC LIMIT $1")
            .bind(i64::from(MAX_CONTROLS_LISTED))
            .fetch_all(pool)
            .await?;
    rows.iter()
        .map(|r| parse(&r.try_get::<String, _>("body")?))
        .collect()
}

/// Stores a new control, announced.
pub(super) async fn store(pool: &PgPool, control: &Control, state: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO controls (id, state, body) VALUES ($1, $2, $3)")
        .bind(&control.id)
        .bind(state)
        .bind(body(control)?)
        .execute(&mut *tx)
        .await?;
    notify(&mut *tx, Channel::Controls, &control.id).await?;
    tx.commit().await?;
    Ok(())
}

/// Forgets a control that could not be recorded: kept as `void` (so a poll sees it go),
/// announced.
pub(super) async fn unstore(pool: &PgPool, id: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE controls SET state = 'void', changed = {BUMP} WHERE id = $1"
    )))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    notify(&mut *tx, Channel::Controls, id).await?;
    tx.commit().await?;
    Ok(())
}

/// Ends a control in force (`lifted` or `expired`), announced. Whether this write ended it
/// (false: it was no longer in force, another instance ended it).
pub(super) async fn finish(
    pool: &PgPool,
    control: &Control,
    state: &str,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE controls SET state = $1, body = $2, changed = {BUMP} WHERE id = $3 AND state = 'in_force'"
    )))
    .bind(state)
    .bind(body(control)?)
    .bind(&control.id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    notify(&mut *tx, Channel::Controls, &control.id).await?;
    tx.commit().await?;
    Ok(true)
}

impl Controls {
    /// Takes the recording of `control`'s expiry for this instance: `true` when this
    /// instance is to record it (always on SQLite; on PostgreSQL only for the instance whose
    /// conditional state change succeeded — the others [`forget`](Self::forget) it).
    pub async fn claim_expiry(&self, control: &Control) -> Result<bool, StoreError> {
        match &self.shared {
            Some((pool, _)) => finish(pool, control, "expired").await,
            None => Ok(true),
        }
    }

    /// Gives back a claimed expiry that could not be recorded (PostgreSQL; nothing on SQLite),
    /// so the next sweep, on any instance, records it.
    pub async fn unclaim_expiry(&self, control: &Control) -> Result<(), StoreError> {
        let Some((pool, _)) = &self.shared else {
            return Ok(());
        };
        let mut tx = pool.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE controls SET state = 'in_force', changed = {BUMP} WHERE id = $1 AND state = 'expired'"
        )))
        .bind(&control.id)
        .execute(&mut *tx)
        .await?;
        notify(&mut *tx, Channel::Controls, &control.id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets control `id` in memory (its end was written by another instance).
    pub fn forget(&self, id: &str) -> Result<(), StoreError> {
        self.swap(|all| all.retain(|c| c.id != id))
    }

    /// Applies control `id` as it is stored now (PostgreSQL; nothing on SQLite): in force, it
    /// is put in (or replaced in) the snapshot; otherwise, or gone, taken out.
    pub async fn apply_changed(&self, id: &str) -> Result<(), StoreError> {
        let Some((pool, _)) = &self.shared else {
            return Ok(());
        };
        let row = sqlx::query("SELECT state, body FROM controls WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
        let state = match row {
            Some(row) => Some((
                row.try_get::<String, _>("state")?,
                row.try_get::<String, _>("body")?,
            )),
            None => None,
        };
        let change = match state {
            Some((state, body)) => read_row(&state, &body, id)?,
            None => (id.to_owned(), None),
        };
        self.apply(vec![change])
    }

    /// Applies every control written since this instance last looked (PostgreSQL; nothing
    /// on SQLite). Returns how many rows it read.
    pub async fn apply_since(&self) -> Result<usize, StoreError> {
        let Some((pool, seen)) = &self.shared else {
            return Ok(0);
        };
        let from = seen.load(Ordering::Acquire).saturating_sub(LOOKBACK);
        let rows = sqlx::query(
            "SELECT id, state, body, changed FROM controls WHERE changed > $1 ORDER BY changed LIMIT $2",
        )
        .bind(from)
        .bind(MAX_POLLED)
        .fetch_all(pool)
        .await?;
        let mut newest = None;
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            let state: String = row.try_get("state")?;
            changes.push(read_row(&state, &row.try_get::<String, _>("body")?, &id)?);
            newest = Some(row.try_get::<i64, _>("changed")?);
        }
        self.apply(changes)?;
        if let Some(n) = newest {
            seen.fetch_max(n, Ordering::AcqRel);
        }
        Ok(rows.len())
    }

    /// Applies rows read (id, and the control if it is in force) to the snapshot in one swap,
    /// and only if one of them changes it.
    fn apply(&self, changes: Vec<(String, Option<Control>)>) -> Result<(), StoreError> {
        let current = self.current().ok_or(StoreError::Poisoned)?;
        let changes: Vec<_> = changes
            .into_iter()
            .filter(|(id, control)| {
                let held = current.iter().find(|c| c.id == *id);
                match (held, control) {
                    (Some(h), Some(c)) => **h != *c,
                    (None, None) => false,
                    _ => true,
                }
            })
            .collect();
        if changes.is_empty() {
            return Ok(());
        }
        self.swap(|all| {
            for (id, control) in changes {
                all.retain(|c| c.id != id);
                if let Some(c) = control {
                    all.push(Arc::new(c));
                }
            }
        })
    }
}

/// A row read: its id, and its control if it is in force.
fn read_row(state: &str, body: &str, id: &str) -> Result<(String, Option<Control>), StoreError> {
    if state != "in_force" {
        return Ok((id.to_owned(), None));
    }
    let control = parse(body)?;
    if control.id != id {
        return Err(StoreError::Corrupt("controls.body"));
    }
    Ok((id.to_owned(), Some(control)))
}
