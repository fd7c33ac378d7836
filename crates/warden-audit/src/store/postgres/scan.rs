//! Verifying one instance's chain in the shared store: the chain alone ([`PgReader::verify`])
//! or the chain, its Merkle tree and the signed checkpoints among its records
//! ([`PgReader::verify_signed`]), both in one streaming pass over the instance's rows.

use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row as _};

use super::super::{LedgerError, VerifyReport};
use super::pg_error;
use super::reader::{COLUMNS, PgReader, Stored, stored};
use crate::chain::{Problem, RecordRef, Verifier};
use crate::signed::{Checker, Finding, OpenNote, Report};

/// Records read per query while a chain is verified.
const VERIFY_BATCH: i64 = 10_000;

impl PgReader {
    /// Recomputes the instance's chain from record 1, in `seq` order, in one read-only
    /// repeatable-read transaction (a consistent snapshot while its writer appends), in
    /// batches (memory does not grow with the chain).
    pub(in crate::store) async fn verify(&self) -> Result<VerifyReport, LedgerError> {
        let mut verifier = Verifier::new();
        self.scan("verifying every instance as one chain", |row| {
            let problem = match row {
                Ok(stored) => verifier.push(&stored).err(),
                Err(problem) => Some(verifier.fail(problem)),
            };
            problem.is_none()
        })
        .await?;
        Ok(VerifyReport {
            records: verifier.records(),
            head: verifier.head(),
            first_problem: verifier.problem().cloned(),
        })
    }

    /// Checks the instance's chain, its Merkle tree and every `checkpoint_signed` record in
    /// it against `key`, and the anchor checkpoint `anchor` (the text of a signed note) if
    /// there is one, as [`crate::signed::verify_ledger`] checks a data directory's ledger:
    /// the same [`Checker`], over the same snapshot as [`PgReader::verify`]. A chain in the
    /// shared store is never pruned, so it is read from record 1.
    ///
    /// `Err` means the chain could not be read; one that reads but does not verify is an
    /// `Ok` report with a `finding`.
    pub(in crate::store) async fn verify_signed(
        &self,
        key: &(dyn OpenNote + Sync),
        anchor: Option<&str>,
    ) -> Result<Report, LedgerError> {
        let mut checker = Checker::new(key, anchor);
        if checker.finding().is_none() {
            self.scan("verifying every instance as one chain", |row| {
                let found = match row {
                    Ok(stored) => checker.push(&stored).err(),
                    Err(problem) => Some(checker.fail(Finding::from(problem))),
                };
                found.is_none()
            })
            .await?;
        }
        Ok(checker.finish())
    }

    /// Gives the instance's rows to `each`, from record 1 in `seq` order (a row that is not a
    /// record as its [`Problem`]), until it answers `false` or the chain ends: in one
    /// read-only repeatable-read transaction, [`VERIFY_BATCH`] rows per query.
    async fn scan(
        &self,
        what: &'static str,
        mut each: impl FnMut(Result<RecordRef<'_>, Problem>) -> bool,
    ) -> Result<(), LedgerError> {
        let instance = self.one(what)?;
        let mut tx = self.pool().begin().await.map_err(pg_error)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(pg_error)?;
        let sql = format!(
            "SELECT {COLUMNS} FROM ledger_records WHERE instance = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
        );
        let mut after = i64::MIN;
        'scan: loop {
            let rows = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(instance)
                .bind(after)
                .bind(VERIFY_BATCH)
                .fetch_all(&mut *tx)
                .await
                .map_err(pg_error)?;
            let Some(last) = rows.last() else {
                break;
            };
            after = last.try_get(0).map_err(pg_error)?;
            for row in &rows {
                let checked = record_ref(row);
                let go_on = match &checked {
                    Ok(owned) => each(Ok(owned.as_ref())),
                    Err(problem) => each(Err(problem.clone())),
                };
                if !go_on {
                    break 'scan;
                }
            }
        }
        let _ = tx.rollback().await;
        Ok(())
    }
}

/// Checks a row as the verifier reads it; a row that is not a record is a
/// [`Problem::Malformed`].
fn record_ref(row: &PgRow) -> Result<OwnedRef, Problem> {
    let s = stored(row).map_err(|e| Problem::Malformed {
        seq: row.try_get::<i64, _>(0).unwrap_or(-1),
        detail: e.to_string(),
    })?;
    if s.seq < 1 {
        return Err(Problem::Malformed {
            seq: s.seq,
            detail: "sequence numbers start at 1".to_owned(),
        });
    }
    Ok(OwnedRef(s))
}

/// A checked row, lent to the verifier.
struct OwnedRef(Stored);

impl OwnedRef {
    fn as_ref(&self) -> RecordRef<'_> {
        let s = &self.0;
        RecordRef {
            seq: u64::try_from(s.seq).unwrap_or(0),
            time: &s.time,
            session: s.session.as_deref(),
            kind: &s.kind,
            payload: &s.payload,
            prev_hash: &s.prev_hash,
            hash: &s.hash,
        }
    }
}
