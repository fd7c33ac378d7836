//! Path arguments resolved again just before forwarding, and the data directory's protection.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use warden_audit::{NewRecord, RecordKind};
use warden_core::gate::{Allowed, RefusalReason, Refused};
use warden_session::Session;

use super::{Governed, Governor};

impl Governor {
    /// The same governor, refusing (and recording) before any rule every action whose
    /// arguments name a place inside `data_dir`, whatever the charter allows (this charter's
    /// and every charter installed later).
    #[must_use]
    pub fn protecting_data_dir(mut self, data_dir: &Path) -> Governor {
        self.governed.protect(data_dir.to_path_buf());
        self
    }

    /// Resolves the path arguments of an allowed action again, just before it is forwarded
    /// (after an approval wait, a link may have been changed). When they are refused now, or
    /// no longer resolve to what was decided, the action is refused, and recorded as an
    /// `action_result` with status `refused`; the refusal stands when the ledger cannot take it.
    pub(super) async fn recheck_paths(
        &self,
        governed: &Governed,
        session: &Arc<Session>,
        tool: &str,
        raw: &Value,
        allowed: &Allowed,
    ) -> Result<(), Refused> {
        let Err(why) = governed
            .paths
            .recheck(tool, raw, governed.is_local(tool), &allowed.args)
            .await
        else {
            return Ok(());
        };
        let record = NewRecord {
            session: Some(session.id.clone()),
            kind: RecordKind::ActionResult,
            payload: json!({
                "action": allowed.action_id,
                "tool": tool,
                "status": "refused",
                "reason": format!("not forwarded: {why}"),
            }),
        };
        if let Err(e) = self.ledger.append(record).await {
            tracing::error!(error = %e, "The ledger cannot record an action refused before forwarding.");
        }
        Err(Refused {
            action_id: Some(allowed.action_id.clone()),
            reason: RefusalReason::Denied,
            decision: Some(allowed.decision.clone()),
            message: format!("warden refused `{tool}` before forwarding it: {why}"),
            approval: None,
        })
    }
}
