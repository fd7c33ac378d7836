//! The rows of the controls page: a control in force, an observer alert.

use serde::Serialize;
use serde_json::Value;
use warden_audit::Record;
use warden_core::text::rfc3339;
use warden_session::Control;

use crate::page::{Clip, clip};

/// How many characters of a reason are shown before it is clipped.
const REASON_CLIP: usize = 200;
/// Most evidence links shown per row (the rest are counted).
const MAX_EVIDENCE_SHOWN: usize = 50;

/// A control in force.
pub(super) struct ControlRow {
    pub(super) id: String,
    pub(super) action: String,
    pub(super) scope: String,
    pub(super) target: String,
    pub(super) tool: String,
    pub(super) reason: Clip,
    pub(super) set_by: String,
    pub(super) set_at: String,
    pub(super) expires_at: String,
    pub(super) evidence: Vec<u64>,
    pub(super) more_evidence: usize,
}

/// An observer alert, from its ledger record.
pub(super) struct AlertRow {
    pub(super) seq: u64,
    pub(super) at: String,
    pub(super) detector: String,
    pub(super) scope: String,
    pub(super) target: String,
    pub(super) reason: Clip,
    pub(super) evidence: Vec<u64>,
    pub(super) more_evidence: usize,
}

/// A serialisable enum's name (`freeze_tool`, `session`, ...).
fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

fn evidence(seqs: &[u64]) -> (Vec<u64>, usize) {
    let shown: Vec<u64> = seqs.iter().take(MAX_EVIDENCE_SHOWN).copied().collect();
    let more = seqs.len().saturating_sub(shown.len());
    (shown, more)
}

impl ControlRow {
    pub(super) fn of(c: &Control) -> ControlRow {
        let (evidence, more_evidence) = evidence(&c.evidence);
        ControlRow {
            id: c.id.clone(),
            action: c.action.as_str().to_owned(),
            scope: name_of(&c.scope),
            target: c.target.clone().unwrap_or_default(),
            tool: c.tool.clone().unwrap_or_default(),
            reason: clip(&c.reason, REASON_CLIP),
            set_by: format!("{} ({})", c.set_by.name, c.set_by.role),
            set_at: rfc3339(c.set_at),
            expires_at: c.expires_at.map(rfc3339).unwrap_or_default(),
            evidence,
            more_evidence,
        }
    }
}

impl AlertRow {
    pub(super) fn of(r: &Record) -> AlertRow {
        let p = &r.payload;
        let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
        let seqs: Vec<u64> = p
            .get("evidence")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let (evidence, more_evidence) = evidence(&seqs);
        AlertRow {
            seq: r.seq,
            at: rfc3339(r.time),
            detector: text("detector").to_owned(),
            scope: text("scope").to_owned(),
            target: text("target").to_owned(),
            reason: clip(text("reason"), REASON_CLIP),
            evidence,
            more_evidence,
        }
    }
}
