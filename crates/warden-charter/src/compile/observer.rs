//! Compiling the observer's settings: the baseline and learning windows and the detectors.

use std::collections::BTreeSet;
use std::time::Duration;

use super::collect::{Collected, Item};
use super::{duration_or_report, rules};
use crate::compiled::{
    DEFAULT_HEARTBEAT_DEADLINE, DataPolicy, Detector, DetectorKind, Intervention, ObserverSettings,
};
use crate::diagnostic::{Diagnostic, Diagnostics, suggest};
use crate::raw::{RawDetectorKind, RawResponse};

pub(super) fn observer(
    c: &Collected<'_>,
    data: &DataPolicy,
    diags: &mut Diagnostics,
) -> ObserverSettings {
    let window = |item: &Option<Item<'_, String>>, diags: &mut Diagnostics| {
        item.as_ref()
            .and_then(|i| duration_or_report(&i.raw, i.at(), diags))
    };
    let baseline_window = window(&c.baseline_window, diags);
    let learning_window = window(&c.learning_window, diags);
    let mut ids = BTreeSet::new();
    let mut detectors = Vec::new();
    for item in &c.detectors {
        let raw = &item.raw;
        if !ids.insert(raw.id.as_str()) {
            diags.push(Diagnostic::error(
                item.at_path(&["id"]),
                format!("duplicate detector `{}`", raw.id),
            ));
        }
        let mut labels = Vec::new();
        for l in &raw.labels {
            match data.labels.iter().find(|x| ***x == **l) {
                Some(x) => labels.push(x.clone()),
                None => diags.push(
                    Diagnostic::error(item.at_path(&["labels"]), format!("unknown label `{l}`"))
                        .with_hint_opt(suggest(l, data.labels.iter().map(|x| &**x))),
                ),
            }
        }
        for t in &raw.tools {
            if let Err(e) = rules::tool_glob(t) {
                diags.push(Diagnostic::error(
                    item.at_path(&["tools"]),
                    format!("invalid tool pattern `{}`: {e}", super::matcher::shorten(t)),
                ));
            }
        }
        if raw.threshold.is_some_and(|t| !t.is_finite() || t <= 0.0) {
            diags.push(Diagnostic::error(
                item.at_path(&["threshold"]),
                "`threshold` must be a positive number",
            ));
        }
        let window = raw
            .window
            .as_ref()
            .and_then(|w| duration_or_report(w, item.at_path(&["window"]), diags));
        let kind = match raw.kind {
            RawDetectorKind::IntentMismatch => DetectorKind::IntentMismatch,
            RawDetectorKind::NewResourceBurst => DetectorKind::NewResourceBurst,
            RawDetectorKind::Rate => DetectorKind::Rate,
            RawDetectorKind::DenialStorm => DetectorKind::DenialStorm,
            RawDetectorKind::SensitiveThenSend => DetectorKind::SensitiveThenSend,
        };
        if kind == DetectorKind::SensitiveThenSend
            && (raw.labels.is_empty() || raw.tools.is_empty())
        {
            diags.push(Diagnostic::error(
                item.at(),
                "a `sensitive_then_send` detector needs `labels` and `tools`",
            ));
        }
        detectors.push(Detector {
            id: raw.id.clone(),
            kind,
            threshold: raw.threshold,
            window,
            labels,
            tools: raw.tools.clone(),
            response: match raw.response {
                RawResponse::Alert => Intervention::Alert,
                RawResponse::Conservative => Intervention::Conservative,
                RawResponse::FreezeTool => Intervention::FreezeTool,
                RawResponse::RevokeSession => Intervention::RevokeSession,
            },
        });
    }
    let (required, heartbeat_deadline) = dead_mans_switch(c, diags);
    ObserverSettings {
        baseline_window,
        learning_window,
        detectors,
        required,
        heartbeat_deadline,
    }
}

/// The dead man's switch: `observer.required` (default false) and
/// `observer.heartbeat_deadline` (default 10s; 1s to 10m).
fn dead_mans_switch(c: &Collected<'_>, diags: &mut Diagnostics) -> (bool, Duration) {
    let required = c.observer_required.as_ref().is_some_and(|r| r.raw);
    let deadline = c.heartbeat_deadline.as_ref().and_then(|i| {
        let d = duration_or_report(&i.raw, i.at(), diags)?;
        if (MIN_HEARTBEAT_DEADLINE..=MAX_HEARTBEAT_DEADLINE).contains(&d) {
            Some(d)
        } else {
            diags.push(Diagnostic::error(
                i.at(),
                format!(
                    "`observer.heartbeat_deadline` `{}` must be 1s to 10m",
                    i.raw
                ),
            ));
            None
        }
    });
    (required, deadline.unwrap_or(DEFAULT_HEARTBEAT_DEADLINE))
}

const MIN_HEARTBEAT_DEADLINE: Duration = Duration::from_secs(1);
const MAX_HEARTBEAT_DEADLINE: Duration = Duration::from_secs(600);
