//! The governor's recording of what is not a decision: attempts refused before any decision
//! (outside the inventory, unroutable, arguments that cannot be recorded), results and the
//! labels they carry, and results that never came (`unknown`).

use std::sync::Arc;

use serde_json::{Value, json};
use uuid::Uuid;
use warden_audit::{NewRecord, RecordKind};
use warden_core::gate::{ActionOutcome, Allowed, ContentPart, RefusalReason, Refused, Via};
use warden_pdp::result_labels;
use warden_provenance::Origin;
use warden_provenance::recorded::untrusted_labels;
use warden_session::Session;

use super::{Governor, MAX_ERROR_BYTES};
use crate::capture::{capture_content, json_len, too_large};
use crate::outstanding::OutstandingAction;

impl Governor {
    /// Refuses (and records, small) an action whose arguments the ledger cannot take: larger
    /// than one record captures, or past the session's capture quota (which is charged with
    /// them otherwise).
    pub(super) async fn check_capture(
        &self,
        session: &Arc<Session>,
        tool: &str,
        called_as: Option<&str>,
        args: &Value,
        via: Via,
    ) -> Result<(), Refused> {
        // Record before forward needs arguments the ledger can take: over the record limit,
        // or past the session's quota, the call is refused (recorded small).
        let args_bytes = json_len(args);
        let limits = self.capture.limits();
        if args_bytes > limits.max_record_bytes {
            let why = format!(
                "its arguments are too large to record ({args_bytes} bytes; at most {} per record)",
                limits.max_record_bytes
            );
            let summary = too_large(args, args_bytes);
            return Err(self
                .record_refused_attempt(
                    session,
                    (tool, called_as),
                    &summary,
                    via,
                    RefusalReason::ArgumentsTooLarge,
                    &why,
                )
                .await);
        }
        if let Err(e) = self.capture.try_charge(&session.id, args_bytes) {
            let summary = too_large(args, args_bytes);
            let summary = json!({ "not_recorded": summary.get("too_large") });
            return Err(self
                .record_refused_attempt(
                    session,
                    (tool, called_as),
                    &summary,
                    via,
                    RefusalReason::CaptureQuotaExhausted,
                    &e.to_string(),
                )
                .await);
        }
        Ok(())
    }

    /// Records, as `unknown`, the forwarded actions whose result is overdue at `now`: the
    /// MCP client went away and the call was cut off, or a decide-API agent never reported it.
    pub async fn record_unreported(&self, now: std::time::Instant) {
        let overdue = self.outstanding.take_overdue(now);
        if !overdue.is_empty() {
            self.record_unknown(overdue, "no result was recorded within the deadline")
                .await;
        }
    }

    /// Records, as `unknown`, every forwarded action whose result was not recorded before the
    /// gateway stopped (after the drain, before the ledger closes).
    pub async fn record_cut_off_at_shutdown(&self) {
        let cut_off = self.outstanding.take_all();
        if !cut_off.is_empty() {
            self.record_unknown(
                cut_off,
                "the gateway stopped before the action's result was recorded",
            )
            .await;
        }
    }

    pub(super) async fn record_unknown(&self, actions: Vec<OutstandingAction>, reason: &str) {
        let batch = actions.iter().map(|a| a.unknown_result(reason)).collect();
        if let Err(e) = self.ledger.append_batch(batch).await {
            tracing::error!(error = %e, count = actions.len(), "The ledger cannot record actions whose result is unknown.");
        }
    }

    /// Records an attempt refused before any decision: a tool no upstream server offers
    /// (`called_as`: the name the agent sent, when it is not `tool`).
    pub async fn record_unroutable(
        &self,
        session: &Arc<Session>,
        tool: &str,
        called_as: Option<&str>,
        args: &Value,
        why: &str,
    ) -> Refused {
        if let Err(refused) = self
            .check_capture(session, tool, called_as, args, Via::Mcp)
            .await
        {
            return refused;
        }
        self.record_refused_attempt(
            session,
            (tool, called_as),
            args,
            Via::Mcp,
            RefusalReason::Denied,
            why,
        )
        .await
    }

    /// Records an attempt refused before any decision (`action_attempted` with `refused`:
    /// why, and `refusal`: the reason's stable code, such as `not_inventoried`) and makes its
    /// refusal. The refusal stands when the ledger cannot record it.
    /// `(tool, called_as)`: the charter's name, and the name the agent sent when it differs.
    pub(super) async fn record_refused_attempt(
        &self,
        session: &Arc<Session>,
        (tool, called_as): (&str, Option<&str>),
        args: &Value,
        via: Via,
        reason: RefusalReason,
        why: &str,
    ) -> Refused {
        let action_id = Uuid::now_v7().to_string();
        let mut payload = json!({
            "action": action_id,
            "via": via.as_str(),
            "tool": tool,
            "arguments": args,
            "refused": why,
            "refusal": reason.as_str(),
        });
        if let (Some(sent), Some(obj)) = (called_as, payload.as_object_mut()) {
            obj.insert("called_as".to_owned(), Value::String(sent.to_owned()));
        }
        let record = NewRecord {
            session: Some(session.id.clone()),
            kind: RecordKind::ActionAttempted,
            payload,
        };
        if let Err(e) = self.ledger.append(record).await {
            tracing::error!(error = %e, "The ledger cannot record a refused attempt.");
        }
        Refused {
            action_id: Some(action_id),
            reason,
            decision: None,
            message: format!("warden refused `{tool}`: {why}"),
            approval: None,
        }
    }

    /// Records how a forwarded action ended, and the labels its result carries — as the
    /// charter in force when the result arrives labels it (a reload meanwhile labels it
    /// under the new charter's data section).
    ///
    /// Returns once the result is queued to the ledger when it changes nothing the next
    /// decision sees ([`warden_audit::Ledger::append_queued`]: committed with the next group,
    /// in order); when it adds labels or carries untrusted content (indexed under its record's
    /// `seq`), once it is durable. `Err`: it could not be recorded (queued).
    pub async fn record_result(
        &self,
        session: &Arc<Session>,
        tool: &str,
        allowed: &Allowed,
        outcome: &ActionOutcome,
    ) -> Result<Vec<Arc<str>>, warden_audit::LedgerError> {
        let closes = Closes {
            action_id: &allowed.action_id,
            args: &allowed.args,
            elapsed: allowed.started.elapsed(),
            allowed_on: None,
        };
        self.record_closing(session, tool, closes, outcome).await
    }

    /// Stops tracking the deadline of a decide-API action kept in the fleet's store: its
    /// result, or `unknown`, is recorded by whoever takes its row (see
    /// `crate::pending_results::shared`).
    pub(crate) fn leave_result_to_the_store(&self, action_id: &str) {
        self.outstanding.remove(action_id);
    }

    /// Cancelled when the gateway stops.
    pub(crate) fn stopping(&self) -> tokio_util::sync::CancellationToken {
        self.shutdown.clone()
    }

    /// Records how the action `closes` ended, as [`Governor::record_result`] does (with
    /// `allowed_on`: the instance that allowed it, when known).
    pub(crate) async fn record_closing(
        &self,
        session: &Arc<Session>,
        tool: &str,
        closes: Closes<'_>,
        outcome: &ActionOutcome,
    ) -> Result<Vec<Arc<str>>, warden_audit::LedgerError> {
        // The charter of the session's agent in force now. Gone (a reload removed the agent
        // while the call ran): the result is recorded without its content or labels, since
        // the data section that redacts and labels them is gone too (nothing unredacted).
        let charter = self.charter_for(&session.agent);
        let duration_ms = u64::try_from(closes.elapsed.as_millis()).unwrap_or(u64::MAX);
        let mut payload = json!({
            "action": closes.action_id,
            "status": outcome.status,
            "size_bytes": outcome.size_bytes,
            "duration_ms": duration_ms,
        });
        if let Some(obj) = payload.as_object_mut() {
            if let Some(instance) = closes.allowed_on {
                obj.insert("allowed_on".to_owned(), Value::String(instance.to_owned()));
            }
            if let Some(e) = &outcome.error {
                obj.insert(
                    "error".to_owned(),
                    Value::String(warden_core::text::ellipsize(e, MAX_ERROR_BYTES)),
                );
            }
            // What the agent read, bounded and redacted (see `capture`).
            if let (false, None) = (outcome.content.is_empty(), &charter) {
                obj.insert(
                    "content_withheld".to_owned(),
                    Value::String("the agent has no charter in force".to_owned()),
                );
            }
            if let (false, Some(charter)) = (outcome.content.is_empty(), &charter) {
                let captured =
                    capture_content(&outcome.content, &charter.data, &self.capture, &session.id);
                obj.insert("content".to_owned(), Value::Array(captured.content));
                if let Some(t) = captured.truncated {
                    obj.insert("truncated".to_owned(), t);
                }
                if captured.redacted > 0 {
                    obj.insert("redacted".to_owned(), json!(captured.redacted));
                }
            }
        }
        let labels = match &charter {
            Some(charter) if outcome.status != "upstream_error" => {
                result_labels(charter, tool, closes.args, &outcome.text)
            }
            _ => Vec::new(),
        };
        // The untrusted labels the result carries: recorded with it (whether or not the
        // session had them already), so that the index can be rebuilt from the ledger.
        let untrusted = charter
            .as_ref()
            .map(|c| untrusted_labels(&c.data.untrusted, &labels))
            .unwrap_or_default();
        if let (false, Some(obj)) = (untrusted.is_empty(), payload.as_object_mut()) {
            obj.insert("untrusted".to_owned(), json!(untrusted));
            // The index gets text the recorded content does not hold (structured content, a
            // resource's URI): a rebuild from the ledger cannot be complete (fail closed).
            if beyond_content(outcome) {
                obj.insert("indexed_beyond_content".to_owned(), Value::Bool(true));
            }
        }
        let sid = Some(session.id.clone());
        let mut batch = vec![NewRecord {
            session: sid.clone(),
            kind: RecordKind::ActionResult,
            payload,
        }];
        let added = session.add_labels(&labels);
        if !added.is_empty() {
            batch.push(NewRecord {
                session: sid,
                kind: RecordKind::LabelsAdded,
                payload: json!({ "action": closes.action_id, "labels": added }),
            });
        }
        if added.is_empty() && untrusted.is_empty() && closes.allowed_on.is_none() {
            // Nothing the next decision sees waits on this record: it is queued, committed with
            // the next group, and the answer does not wait for its fsync. The action's attempt,
            // decision and forwarding are durable already; a crash before this commits leaves a
            // forwarded action without a result, which start-up records as `unknown`.
            self.ledger.append_queued(batch).await?;
            self.outstanding.remove(closes.action_id);
            return Ok(added);
        }
        // Labels gained, or untrusted content indexed under the record's `seq`, or a report
        // taken from the fleet's store (its row is deleted once this has committed, so that
        // the allowing instance's start-up never finds the action open with no row and no
        // result): durable before the answer.
        let appended = self.ledger.append_batch(batch).await?;
        self.outstanding.remove(closes.action_id);
        if !untrusted.is_empty() {
            index_untrusted(session, outcome, appended.first().map(|a| a.seq), untrusted);
        }
        self.persist_labels(session, &added).await;
        Ok(added)
    }

    /// Writes labels a session gained through to `state.db` (they are in force in memory
    /// already).
    pub(super) async fn persist_labels(&self, session: &Session, added: &[Arc<str>]) {
        if !added.is_empty()
            && let Err(e) = self.sessions.persist_labels(&session.id, added).await
        {
            tracing::warn!(error = %e, "Session labels could not be written through; they stay in memory.");
        }
    }
}

/// The action a result closes: its id, the arguments it was allowed with, how long ago it
/// was allowed, and the instance that allowed it (a decide-API action kept in the fleet's
/// store).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Closes<'a> {
    /// The action id.
    pub action_id: &'a str,
    /// The arguments it was allowed with.
    pub args: &'a Value,
    /// How long ago it was allowed.
    pub elapsed: std::time::Duration,
    /// The instance that allowed it, recorded as `allowed_on`.
    pub allowed_on: Option<&'a str>,
}

/// Indexes the text of a result carrying untrusted labels, known by the sequence `seq` of its
/// recorded `action_result`. Fail closed: a result warden did not see in full (its text cut
/// before the label patterns, or parts that are not text, such as an image a model can read)
/// marks the session's index incomplete.
fn index_untrusted(
    session: &Session,
    outcome: &ActionOutcome,
    seq: Option<u64>,
    labels: Vec<Arc<str>>,
) {
    let Some(seq) = seq else {
        session.mark_provenance_incomplete();
        return;
    };
    session.add_untrusted(&outcome.text, Origin { seq, labels });
    if !seen_in_full(outcome) {
        session.mark_provenance_incomplete();
    }
}

/// Whether the result's text holds all of its content: every part is text, and every text
/// part is in it (the decide API cuts the text the label patterns see at 1 MiB).
fn seen_in_full(outcome: &ActionOutcome) -> bool {
    outcome.content.iter().all(|part| match part {
        ContentPart::Text(t) => outcome.text.contains(t.as_str()),
        ContentPart::Other { .. } => false,
    })
}

/// Whether the result's text (every string of the answer, one per line) holds anything
/// besides its text content parts and the names of its parts' types: text the ledger's
/// recorded content would not give back. The text parts appear in the text in their order,
/// so one pass from a cursor finds them.
pub(crate) fn beyond_content(outcome: &ActionOutcome) -> bool {
    let kinds: Vec<&str> = outcome
        .content
        .iter()
        .filter_map(|part| match part {
            ContentPart::Other { kind, .. } => Some(kind.as_str()),
            ContentPart::Text(_) => None,
        })
        .collect();
    let structural = |gap: &str| {
        gap.split('\n')
            .map(str::trim)
            .all(|line| line.is_empty() || line == "text" || kinds.contains(&line))
    };
    let text = outcome.text.as_str();
    let mut at = 0;
    for part in &outcome.content {
        let ContentPart::Text(t) = part else {
            continue;
        };
        let Some(found) = text.get(at..).and_then(|rest| rest.find(t.as_str())) else {
            // Not there in full (cut before the label patterns): `seen_in_full` marks it.
            return false;
        };
        if !text.get(at..at + found).is_some_and(structural) {
            return true;
        }
        at += found + t.len();
    }
    !text.get(at..).is_some_and(structural)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(text: &str, content: Vec<ContentPart>) -> ActionOutcome {
        ActionOutcome {
            status: "ok",
            size_bytes: text.len(),
            error: None,
            text: text.to_owned(),
            content,
        }
    }

    /// Issue 13: a result whose strings go beyond its text parts (structured content, a
    /// resource's URI) is flagged, so that the index rebuilt from the recorded content is
    /// incomplete; type names between parts are not content.
    #[test]
    fn text_beyond_the_content_parts_is_found() {
        let t = |s: &str| ContentPart::Text(s.to_owned());
        let plain = outcome("pay DE89\ntext\nhi\ntext\n", vec![t("pay DE89"), t("hi")]);
        assert!(!beyond_content(&plain));
        let image = ContentPart::Other {
            kind: "image".to_owned(),
            bytes: 3,
        };
        assert!(!beyond_content(&outcome(
            "a\ntext\nimage\n",
            vec![t("a"), image]
        )));
        let structured = outcome("pay\ntext\nNL91ABNA0417164300\n", vec![t("pay")]);
        assert!(beyond_content(&structured));
        let resource = outcome("text/plain\nbody\nfile:///x\n", vec![t("body")]);
        assert!(beyond_content(&resource));
        assert!(!beyond_content(&outcome("", vec![])));
    }
}
