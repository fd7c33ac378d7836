//! Start-up reconciliation: every forwarded action ends in the ledger.
//!
//! An action's result is queued to the ledger without waiting for its commit (see
//! [`warden_audit::Ledger::append_queued`]), and a gateway can stop at any point (a crash, a
//! `kill -9`, a power loss). So at start-up, before anything is served, every
//! `action_forwarded` of this ledger (on PostgreSQL: this instance's chain) that has no
//! `action_result` gets one with status `unknown` and [`REASON`], appended and committed
//! before the gateway serves. Provider-side actions of model calls (their `action_forwarded`
//! names the `call`) are not closed here: their outcome is the call's completion.
//!
//! On a fleet (PostgreSQL), a decide-API action allowed here may be closed elsewhere: its
//! result report is taken by whichever instance it reaches (recorded in that instance's
//! chain), or by the deadline sweep while its row waits in `pending_results`. So an action
//! open in this chain is closed here only when no row waits for it (checked first: a report
//! deletes the row only after its result has committed) and no other instance's chain holds a
//! result for it in its session.
//!
//! Bounded: the `gateway_started` record of each start holds [`CLOSED_THROUGH`], the head
//! below which (inclusive) every forwarded action was closed at that start; the next start
//! reads only the forwarded actions and results after the newest such mark (a ledger started
//! by an older version, without one, is read whole once). The records are read newest first,
//! by the ledger's kind index, in pages of [`PAGE`]; what is held meanwhile is the results
//! whose forwarding is not reached yet and the actions left open, both as small as the
//! actions in flight when the gateway stopped.

use std::collections::HashSet;

use serde_json::{Value, json};
use warden_audit::{Ledger, LedgerError, LedgerReader, LedgerSource, NewRecord, RecordKind};

/// The field of `gateway_started` holding the head through which every forwarded action is
/// closed.
pub const CLOSED_THROUGH: &str = "results_closed_through";

/// The reason recorded on the `unknown` results reconciliation appends.
pub const REASON: &str =
    "the gateway stopped before the action's result was recorded (closed at the next start)";

/// Records read (and unknown results appended) at a time.
const PAGE: u64 = 512;

/// What reconciliation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// The mark read: forwarded actions up to it were closed at an earlier start.
    pub from: u64,
    /// Forwarded actions and results read past it.
    pub scanned: u64,
    /// Forwarded actions given an `unknown` result now.
    pub closed: u64,
    /// The committed head after: every forwarded action up to it is closed (the value for
    /// [`CLOSED_THROUGH`] in this start's `gateway_started`).
    pub through: u64,
}

/// Closes, as `unknown`, every forwarded action of `ledger` without a result, past the mark of
/// the last start; returns what it did. Any error stops the start: a ledger that cannot be
/// read or written is not served.
pub async fn close_forwarded(ledger: &Ledger) -> Result<Reconciled, LedgerError> {
    let reader = LedgerReader::open_source(&ledger.source()).await?;
    let done = scan(ledger, &reader).await;
    reader.close().await;
    if let Ok(done) = &done
        && done.closed > 0
    {
        tracing::warn!(
            closed = done.closed,
            "Forwarded actions the last stop left without a result were recorded as unknown."
        );
    }
    done
}

async fn scan(ledger: &Ledger, reader: &LedgerReader) -> Result<Reconciled, LedgerError> {
    let source = ledger.source();
    let from = reader
        .newest_of_kinds(&[RecordKind::GatewayStarted.as_str()], None, 1)
        .await?
        .first()
        .and_then(|r| r.payload.get(CLOSED_THROUGH))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let kinds = [
        RecordKind::ActionForwarded.as_str(),
        RecordKind::ActionResult.as_str(),
    ];
    // Results whose forwarding is further back (not read yet).
    let mut results: HashSet<String> = HashSet::new();
    let mut open = Vec::new();
    let (mut scanned, mut closed) = (0, 0);
    let mut before = None;
    'pages: loop {
        let page = reader.newest_of_kinds(&kinds, before, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        before = Some(last.seq);
        for record in page {
            if record.seq <= from {
                break 'pages;
            }
            scanned += 1;
            let Some(action) = record.payload.get("action").and_then(Value::as_str) else {
                continue;
            };
            if record.kind == RecordKind::ActionResult {
                results.insert(action.to_owned());
            } else if !results.remove(action)
                && record.payload.get("call").is_none()
                && !closed_elsewhere(&source, &record, action).await?
            {
                open.push(unknown(&record, action));
            }
        }
        if open.len() >= PAGE as usize {
            closed += append(ledger, &mut open).await?;
        }
    }
    closed += append(ledger, &mut open).await?;
    let through = *ledger.watch_head().borrow();
    Ok(Reconciled {
        from,
        scanned,
        closed,
        through,
    })
}

/// Whether the action `record` forwarded in this instance's chain is closed, or will be, by
/// another instance of the fleet: its result report waits in `pending_results`, or another
/// chain holds its result. Always `false` on SQLite (one ledger, no report elsewhere).
async fn closed_elsewhere(
    source: &LedgerSource,
    record: &warden_audit::Record,
    action: &str,
) -> Result<bool, LedgerError> {
    let LedgerSource::Postgres {
        pool,
        instance: Some(me),
    } = source
    else {
        return Ok(false);
    };
    let failed = |e: sqlx::Error| LedgerError::Postgres(std::sync::Arc::new(e));
    let waiting: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM pending_results WHERE action = $1")
            .bind(action)
            .fetch_optional(pool)
            .await
            .map_err(failed)?;
    if waiting.is_some() {
        return Ok(true);
    }
    let Some(session) = &record.session else {
        return Ok(false);
    };
    // The result's canonical payload holds `"action":"<id>"`; the id is a UUID the gateway
    // made (no `%`, `_` or quote to escape), and the session index bounds the rows read.
    let needle = format!("%\"action\":{}%", Value::String(action.to_owned()));
    let elsewhere: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM ledger_records WHERE session = $1 AND kind = $2 AND instance <> $3 \
         AND payload LIKE $4 LIMIT 1",
    )
    .bind(session)
    .bind(RecordKind::ActionResult.as_str())
    .bind(me.as_str())
    .bind(needle)
    .fetch_optional(pool)
    .await
    .map_err(failed)?;
    Ok(elsewhere.is_some())
}

/// The `unknown` result of the forwarded action `record` (of `action`), shaped as the ones
/// the gateway records when a result never comes ([`crate::outstanding`]).
fn unknown(record: &warden_audit::Record, action: &str) -> NewRecord {
    let tool = record.payload.get("tool").cloned().unwrap_or(Value::Null);
    NewRecord {
        session: record.session.clone(),
        kind: RecordKind::ActionResult,
        payload: json!({
            "action": action,
            "tool": tool,
            "status": "unknown",
            "reason": REASON,
        }),
    }
}

/// Appends (durably) the `unknown` results in `open` (read newest first), oldest first;
/// empties it.
async fn append(ledger: &Ledger, open: &mut Vec<NewRecord>) -> Result<u64, LedgerError> {
    let mut batch = std::mem::take(open);
    batch.reverse();
    let n = batch.len() as u64;
    ledger.append_batch(batch).await?;
    Ok(n)
}
