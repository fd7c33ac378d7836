//! Compiling the observer's settings: the baseline and learning windows, the detectors, the
//! correlation rules and the escalation policy.

use std::collections::BTreeSet;
use std::time::Duration;

use super::collect::{Collected, Item};
use super::{duration_or_report, rules};
use globset::GlobSetBuilder;

use crate::compiled::{
    CorrelateOn, Correlation, DEFAULT_HEARTBEAT_DEADLINE, DataPolicy, Detector, DetectorKind,
    Escalation, Intervention, ObserverSettings,
};
use crate::diagnostic::{Diagnostic, Diagnostics, suggest};
use crate::raw::{RawCorrelateOn, RawDetectorKind, RawResponse};

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
        let mut tool_set = GlobSetBuilder::new();
        for t in &raw.tools {
            match rules::tool_glob(t) {
                Ok(g) => {
                    tool_set.add(g);
                }
                Err(e) => diags.push(Diagnostic::error(
                    item.at_path(&["tools"]),
                    format!("invalid tool pattern `{}`: {e}", super::matcher::shorten(t)),
                )),
            }
        }
        let tool_set = tool_set.build().unwrap_or_default();
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
            RawDetectorKind::TokenSpike => DetectorKind::TokenSpike,
            RawDetectorKind::LedgerIntegrity => DetectorKind::LedgerIntegrity,
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
            tool_set,
            response: intervention(raw.response),
            alone: raw.alone.unwrap_or(kind.alone_by_default()),
        });
    }
    let correlate = correlations(c, &detectors, &mut ids, diags);
    let escalation = escalation(c, diags);
    let (required, heartbeat_deadline) = dead_mans_switch(c, diags);
    ObserverSettings {
        baseline_window,
        learning_window,
        detectors,
        correlate,
        escalation,
        required,
        heartbeat_deadline,
    }
}

fn intervention(raw: RawResponse) -> Intervention {
    match raw {
        RawResponse::Alert => Intervention::Alert,
        RawResponse::Conservative => Intervention::Conservative,
        RawResponse::FreezeTool => Intervention::FreezeTool,
        RawResponse::RevokeSession => Intervention::RevokeSession,
        RawResponse::Frozen => Intervention::Frozen,
    }
}

/// The `correlate` rules: ids unique among detectors and rules, every signal a declared
/// detector (listed once), `min` within 1..=len(signals), `within` a positive duration.
fn correlations<'a>(
    c: &'a Collected<'_>,
    detectors: &[Detector],
    ids: &mut BTreeSet<&'a str>,
    diags: &mut Diagnostics,
) -> Vec<Correlation> {
    let mut out = Vec::new();
    for item in &c.correlate {
        let raw = &item.raw;
        if !ids.insert(raw.id.as_str()) {
            diags.push(Diagnostic::error(
                item.at_path(&["id"]),
                format!("duplicate detector or correlation id `{}`", raw.id),
            ));
        }
        let mut seen = BTreeSet::new();
        for s in &raw.signals {
            if !detectors.iter().any(|d| d.id == *s) {
                diags.push(
                    Diagnostic::error(
                        item.at_path(&["signals"]),
                        format!("unknown detector `{s}`"),
                    )
                    .with_hint_opt(suggest(s, detectors.iter().map(|d| d.id.as_str()))),
                );
            }
            if !seen.insert(s.as_str()) {
                diags.push(Diagnostic::error(
                    item.at_path(&["signals"]),
                    format!("detector `{s}` is listed twice"),
                ));
            }
        }
        if raw.signals.is_empty() {
            diags.push(Diagnostic::error(
                item.at_path(&["signals"]),
                "a correlation rule needs at least one detector in `signals`",
            ));
        }
        let min = raw.min.map_or(2.min(raw.signals.len()), |m| {
            usize::try_from(m).unwrap_or(usize::MAX)
        });
        if raw.min.is_some() && (min == 0 || min > raw.signals.len()) {
            diags.push(Diagnostic::error(
                item.at_path(&["min"]),
                format!(
                    "`min` must be between 1 and the number of `signals` ({})",
                    raw.signals.len()
                ),
            ));
        }
        let within = duration_or_report(&raw.within, item.at_path(&["within"]), diags);
        if within.is_some_and(|w| w.is_zero()) {
            diags.push(Diagnostic::error(
                item.at_path(&["within"]),
                "`within` must be a positive duration",
            ));
        }
        out.push(Correlation {
            id: raw.id.clone(),
            signals: raw.signals.clone(),
            min: min.max(1),
            within: within.unwrap_or_default(),
            on: match raw.on {
                Some(RawCorrelateOn::Agent) => CorrelateOn::Agent,
                Some(RawCorrelateOn::Session) | None => CorrelateOn::Session,
            },
            response: intervention(raw.response),
        });
    }
    out
}

/// `escalate_within` and `ceiling`: escalation is on when `escalate_within` is set; `ceiling`
/// defaults to `revoke_session` and needs `escalate_within`.
fn escalation(c: &Collected<'_>, diags: &mut Diagnostics) -> Option<Escalation> {
    let within = c
        .escalate_within
        .as_ref()
        .and_then(|i| duration_or_report(&i.raw, i.at(), diags));
    if let Some(i) = &c.ceiling
        && c.escalate_within.is_none()
    {
        diags.push(
            Diagnostic::error(i.at(), "`ceiling` has no effect without `escalate_within`")
                .with_hint("add `escalate_within: 30m` (or remove `ceiling`)"),
        );
    }
    if let (Some(w), Some(i)) = (within, &c.escalate_within)
        && w.is_zero()
    {
        diags.push(Diagnostic::error(
            i.at(),
            "`escalate_within` must be a positive duration",
        ));
    }
    within.map(|within| Escalation {
        within,
        ceiling: c
            .ceiling
            .as_ref()
            .map_or(Intervention::RevokeSession, |i| intervention(i.raw)),
    })
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
