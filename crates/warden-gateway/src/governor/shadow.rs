//! Shadow mode: a candidate charter decides every action the live charter decides, beside
//! it, and enforces nothing.
//!
//! `shadow_charter = "PATH"` (`warden serve --shadow-charter PATH`, `WARDEN_SHADOW_CHARTER`)
//! is compiled at start-up with the live charter (its errors stop the start; a shadow of
//! another agent is refused). Then, for each tool action the live charter decides — an MCP
//! call or a decide-API call, both through the governor — the shadow decides it with the
//! very inputs the live decision had: the arguments as decided (paths resolved), the
//! principal, labels, provenance and controls, and the scope usage the live decision read
//! (the same snapshot, inside the same counting step). Its decision is recorded as one
//! `shadow_decided` in the same ledger batch as the attempt and the live decision (no
//! extra durable write), and counted in `warden_shadow_decisions_total{verdict, diverged}`.
//!
//! What it never changes: what is enforced (the live decision alone is), the scope counters
//! (the shadow never counts a use), approvals (it never raises one), and the forward (it
//! adds only its own evaluation, in memory). An error while the shadow decides is its deny,
//! as in the PDP; a tool the shadow's inventory does not name is its deny too. Actions
//! refused before any decision (a tool outside the live inventory, a path argument refused,
//! arguments too large to record, an expired session) get no shadow record: there is no live
//! decision to compare with (`warden replay` re-decides those under a candidate).
//!
//! The shadow is its own charter: a live reload does not change it.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};
use warden_audit::{NewRecord, RecordKind};
use warden_charter::{CharterSet, CompiledCharter, Diagnostics};
use warden_core::{Decision, Reason, Tier, Verdict};
use warden_pdp::{Request, decide};

use super::Governor;
use crate::config::Config;

/// Why the shadow charter stops the start.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    /// It does not compile.
    #[error("the shadow charter does not compile")]
    Compile(Diagnostics),
    /// It governs no agent of the live set.
    #[error(
        "the shadow charter governs agent `{shadow}`, which is not an agent of this gateway ({live}): a shadow charter decides the actions of the live agent with its `identity.id`"
    )]
    OtherAgent {
        /// The live set's agents, each in backticks, comma-separated.
        live: String,
        /// The shadow's.
        shadow: String,
    },
}

/// Compiles the shadow charter the configuration names, if any (start-up phase 1, beside the
/// live charters): refused when it does not compile, or governs no agent of `live`. It
/// decides beside the live charter of its own agent only.
pub fn load(
    config: &Config,
    live: &CharterSet,
) -> Result<Option<Arc<CompiledCharter>>, ShadowError> {
    let Some(path) = &config.shadow_charter else {
        return Ok(None);
    };
    let compiled = warden_charter::load(path).map_err(ShadowError::Compile)?;
    for w in compiled.warnings.warnings() {
        tracing::warn!(diagnostic = %w, "Shadow charter warning.");
    }
    let shadow = compiled.charter;
    if live.get(&shadow.identity.id).is_none() {
        return Err(ShadowError::OtherAgent {
            live: live
                .agents()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", "),
            shadow: shadow.identity.id.clone(),
        });
    }
    tracing::info!(charter = %shadow.hash, "Shadow charter loaded: every action is decided under it too, and nothing it decides is enforced.");
    Ok(Some(Arc::new(shadow)))
}

/// One action's shadow decision, taken inside the live decision's counting step (which may
/// decide more than once: the last one stands, as the live decision's does).
#[derive(Debug)]
pub(super) struct ShadowRun<'a> {
    charter: Option<&'a CompiledCharter>,
    decided: Mutex<Option<Decision>>,
}

impl<'a> ShadowRun<'a> {
    pub(super) fn new(charter: Option<&'a CompiledCharter>) -> ShadowRun<'a> {
        ShadowRun {
            charter,
            decided: Mutex::new(None),
        }
    }

    /// Decides `request` under the shadow (nothing without one). Called with the live
    /// decision's request, so with the same inputs and the same scope usage snapshot.
    pub(super) fn decide(&self, request: &Request<'_>) {
        let Some(charter) = self.charter else {
            return;
        };
        let decision = if charter.is_inventoried(request.tool) {
            decide(charter, request)
        } else {
            outside_inventory(charter, request)
        };
        *self.decided.lock().unwrap_or_else(PoisonError::into_inner) = Some(decision);
    }

    /// The `shadow_decided` record beside `live`, the live decision of action `action`, and
    /// what the metric counts (`verdict`, `diverged`); `None` without a shadow.
    pub(super) fn record(
        self,
        session: &str,
        action: &str,
        live: &Decision,
    ) -> Option<(NewRecord, Verdict, bool)> {
        let charter = self.charter?;
        let decision = self
            .decided
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or_else(|| not_decided(charter, live));
        let diverged = decision.verdict != live.verdict || decision.tier != live.tier;
        let verdict = decision.verdict;
        let payload = json!({
            "action": action,
            "charter": charter.hash,
            "decision": decision,
            "live": { "verdict": live.verdict, "tier": live.tier },
            "diverged": diverged,
        });
        let record = NewRecord {
            session: Some(session.to_owned()),
            kind: RecordKind::ShadowDecided,
            payload,
        };
        Some((record, verdict, diverged))
    }
}

/// The shadow's decision on a tool its inventory does not name: a deny (the live gateway
/// would refuse it before any rule).
fn outside_inventory(charter: &CompiledCharter, request: &Request<'_>) -> Decision {
    let why = format!(
        "`{}` is not in the shadow charter's inventory",
        request.tool
    );
    deny(charter, request.controls.posture, why)
}

/// Never: the live decision always runs the shadow. Fail closed all the same: a deny.
fn not_decided(charter: &CompiledCharter, live: &Decision) -> Decision {
    deny(
        charter,
        live.posture,
        "the shadow charter did not decide this action".to_owned(),
    )
}

/// A prohibited decision of `charter` for `why` (an evaluation that could not decide: fail
/// closed), shared by the shadow and the delegated decision.
pub(super) fn deny(
    charter: &CompiledCharter,
    posture: warden_core::Posture,
    why: String,
) -> Decision {
    Decision {
        tier: Tier::Prohibited,
        verdict: Verdict::Deny,
        reason: Reason::EvaluationError,
        detail: Some(why.clone()),
        rules: Vec::new(),
        posture,
        charter: charter.hash,
        errors: vec![why],
        approval: None,
        provenance: Vec::new(),
    }
}

impl Governor {
    /// Decides every action under `shadow` too, recording and counting its decisions and
    /// enforcing none (see the module).
    #[must_use]
    pub fn with_shadow(mut self, shadow: Option<Arc<CompiledCharter>>) -> Governor {
        self.shadow = shadow;
        self
    }

    /// The shadow charter, when the gateway runs one.
    pub fn shadow(&self) -> Option<&Arc<CompiledCharter>> {
        self.shadow.as_ref()
    }

    /// Counts a committed shadow decision.
    pub(super) fn count_shadow(&self, verdict: Verdict, diverged: bool) {
        self.telemetry.shadow_decision(verdict.as_str(), diverged);
    }
}

/// The `shadow` field of the start-up `charter_loaded`: the shadow's hash, or nothing.
pub(crate) fn loaded_field(shadow: Option<&Arc<CompiledCharter>>) -> Option<Value> {
    shadow.map(|s| json!(s.hash))
}
