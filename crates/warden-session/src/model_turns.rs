//! The recent model turns of each session, written through to `state.db` so that an approval
//! raised after a restart still shows the approver what the model was asked and proposed just
//! before the call (the model proxy keeps them in memory; see `warden_models::turns`).
//!
//! One row per session: its last turns as a JSON array, and a sequence number that orders the
//! writes. A write never replaces a newer one (two turns of a session finishing together may
//! be written in either order). At most [`MAX_STORED_SESSIONS`] sessions are kept: the most
//! recently written; older rows are deleted when the store is opened.
//!
//! On PostgreSQL the table is shared: each instance reads the turns every instance wrote when
//! it starts, and writes through as on SQLite. A `seq` orders one instance's writes; two
//! instances serving one session's model calls at once may each keep the other's older turns
//! in memory (the turns are an aid to the approver; the ledger holds every model call).

use serde_json::Value;
use sqlx::{PgPool, Row, SqlitePool};

use crate::state_db::{Backend, StateDb, StoreError};

/// Sessions whose turns are kept in `state.db` (and loaded at start).
pub const MAX_STORED_SESSIONS: i64 = 10_000;

/// The model turns table of `state.db`.
#[derive(Debug, Clone)]
pub struct TurnStore {
    pool: Pool,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What [`TurnStore::open`] read back: each session's turns, oldest first, and the highest
/// sequence number written so far (later writes continue after it).
#[derive(Debug, Default)]
pub struct StoredTurns {
    /// `(session, turns)`, the most recently written session first.
    pub sessions: Vec<(String, Vec<Value>)>,
    /// The highest sequence number stored.
    pub last_seq: i64,
}

impl TurnStore {
    /// The turns kept in `db`: deletes all but the [`MAX_STORED_SESSIONS`] most recently
    /// written sessions, and reads those back. A row that cannot be read is skipped (the
    /// turns are an aid to the approver; the ledger holds every model call anyway).
    pub async fn open(db: &StateDb) -> Result<(TurnStore, StoredTurns), StoreError> {
        let pool = match db.backend() {
            Backend::Sqlite(pool) => pool.clone(),
            Backend::Postgres(pg) => return open_postgres(pg).await,
        };
        sqlx::query(
            "DELETE FROM model_turns WHERE seq NOT IN (SELECT seq FROM model_turns ORDER BY seq DESC LIMIT ?)",
        )
        .bind(MAX_STORED_SESSIONS)
        .execute(&pool)
        .await?;
        let rows = sqlx::query("SELECT session, turns, seq FROM model_turns ORDER BY seq DESC")
            .fetch_all(&pool)
            .await?;
        let mut stored = StoredTurns::default();
        for row in rows {
            let seq: i64 = row.try_get("seq")?;
            stored.last_seq = stored.last_seq.max(seq);
            let session: String = row.try_get("session")?;
            let text: String = row.try_get("turns")?;
            match serde_json::from_str::<Vec<Value>>(&text) {
                Ok(turns) => stored.sessions.push((session, turns)),
                Err(e) => {
                    tracing::warn!(session = %session, error = %e, "Stored model turns could not be read; they are skipped.");
                }
            }
        }
        Ok((
            TurnStore {
                pool: Pool::Sqlite(pool),
            },
            stored,
        ))
    }

    /// Writes each `(session, turns, seq)` of `snapshots` as in [`TurnStore::save`], all in
    /// one transaction (one durable write for the lot): all are stored, or none.
    pub async fn save_many(
        &self,
        snapshots: &[(String, Vec<Value>, i64)],
    ) -> Result<(), StoreError> {
        let mut texts = Vec::with_capacity(snapshots.len());
        for (session, turns, seq) in snapshots {
            let text =
                serde_json::to_string(turns).map_err(|_| StoreError::Corrupt("model_turns"))?;
            texts.push((session.as_str(), text, *seq));
        }
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                for (session, text, seq) in texts {
                    sqlx::query(
                        "INSERT INTO model_turns (session, turns, seq) VALUES (?, ?, ?) \
                         ON CONFLICT (session) DO UPDATE SET turns = excluded.turns, seq = excluded.seq \
                         WHERE excluded.seq > model_turns.seq",
                    )
                    .bind(session)
                    .bind(text)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
            Pool::Postgres(pg) => {
                let mut tx = pg.begin().await?;
                for (session, text, seq) in texts {
                    sqlx::query(
                        "INSERT INTO model_turns (session, turns, seq) VALUES ($1, $2, $3) \
                         ON CONFLICT (session) DO UPDATE SET turns = excluded.turns, seq = excluded.seq \
                         WHERE excluded.seq > model_turns.seq",
                    )
                    .bind(session)
                    .bind(text)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Writes `turns` as the last turns of `session`, unless a write with a higher `seq`
    /// is stored already.
    pub async fn save(&self, session: &str, turns: &[Value], seq: i64) -> Result<(), StoreError> {
        self.save_many(&[(session.to_owned(), turns.to_vec(), seq)])
            .await
    }
}

/// [`TurnStore::open`] on PostgreSQL: the same pruning and reading, on the shared table.
async fn open_postgres(pg: &PgPool) -> Result<(TurnStore, StoredTurns), StoreError> {
    sqlx::query(
        "DELETE FROM model_turns WHERE seq NOT IN (SELECT seq FROM model_turns ORDER BY seq DESC LIMIT $1)",
    )
    .bind(MAX_STORED_SESSIONS)
    .execute(pg)
    .await?;
    let rows =
        sqlx::query("SELECT session, turns, seq FROM model_turns ORDER BY seq DESC LIMIT $1")
            .bind(MAX_STORED_SESSIONS)
            .fetch_all(pg)
            .await?;
    let mut stored = StoredTurns::default();
    for row in rows {
        let seq: i64 = row.try_get("seq")?;
        stored.last_seq = stored.last_seq.max(seq);
        let session: String = row.try_get("session")?;
        let text: String = row.try_get("turns")?;
        match serde_json::from_str::<Vec<Value>>(&text) {
            Ok(turns) => stored.sessions.push((session, turns)),
            Err(e) => {
                tracing::warn!(session = %session, error = %e, "Stored model turns could not be read; they are skipped.");
            }
        }
    }
    Ok((
        TurnStore {
            pool: Pool::Postgres(pg.clone()),
        },
        stored,
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn turns_survive_a_reopen_and_an_older_write_never_wins() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).await.unwrap();
        let (store, stored) = TurnStore::open(&db).await.unwrap();
        assert!(stored.sessions.is_empty());
        store
            .save("s1", &[json!({"prompt": "a"})], 1)
            .await
            .unwrap();
        store
            .save("s1", &[json!({"prompt": "a"}), json!({"prompt": "b"})], 3)
            .await
            .unwrap();
        store
            .save("s1", &[json!({"prompt": "stale"})], 2)
            .await
            .unwrap();
        store
            .save("s2", &[json!({"prompt": "c"})], 4)
            .await
            .unwrap();
        db.close().await;

        let db = StateDb::open(dir.path()).await.unwrap();
        let (_, stored) = TurnStore::open(&db).await.unwrap();
        assert_eq!(stored.last_seq, 4);
        assert_eq!(
            stored.sessions,
            [
                ("s2".to_owned(), vec![json!({"prompt": "c"})]),
                (
                    "s1".to_owned(),
                    vec![json!({"prompt": "a"}), json!({"prompt": "b"})]
                ),
            ]
        );
        db.close().await;
    }
}
