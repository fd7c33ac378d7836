//! The `observer` section as written: detectors and correlations.

use serde::Deserialize;

/// One observer detector.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDetector {
    /// Detector id.
    pub id: String,
    /// What it detects.
    pub kind: RawDetectorKind,
    /// Events within `window` that trigger it (for rate-like kinds), or a multiple of the
    /// baseline for `rate`.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Sliding window (`1m`).
    #[serde(default)]
    pub window: Option<String>,
    /// Labels that count as sensitive (for `sensitive_then_send`).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Tools (globs) that count as outbound sends (for `sensitive_then_send`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// The intervention.
    pub response: RawResponse,
    /// Whether this detector's signal may act on its own (otherwise it only alerts, and acts
    /// through a `correlate` rule).
    #[serde(default)]
    pub alone: Option<bool>,
}

/// Detector kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawDetectorKind {
    /// An action the model never proposed, or a proposal never attempted.
    IntentMismatch,
    /// Reads in a resource prefix the agent has not touched before.
    NewResourceBurst,
    /// An action rate far from the baseline.
    Rate,
    /// Many denials in a short window.
    DenialStorm,
    /// A sensitive read followed by an outbound send.
    SensitiveThenSend,
    /// A model turn using far more tokens than the baseline.
    TokenSpike,
    /// The ledger's hash chain does not verify.
    LedgerIntegrity,
}

/// Interventions, mildest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawResponse {
    /// Raise an alert.
    Alert,
    /// Switch the gateway to the conservative posture.
    Conservative,
    /// Freeze the tool involved.
    FreezeTool,
    /// Revoke the session.
    RevokeSession,
    /// The frozen posture: every action is denied.
    Frozen,
}

/// One observer correlation rule: several detectors agreeing within a window act together.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCorrelation {
    /// Rule id (unique among detectors and rules).
    pub id: String,
    /// The detectors whose signals count.
    pub signals: Vec<String>,
    /// How many distinct detectors of `signals` must agree.
    #[serde(default)]
    pub min: Option<u32>,
    /// The window they must agree within (`5m`).
    pub within: String,
    /// Whether they must be about the same session or the same agent.
    #[serde(default)]
    pub on: Option<RawCorrelateOn>,
    /// The intervention.
    pub response: RawResponse,
}

/// What correlated signals must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawCorrelateOn {
    /// The same session.
    Session,
    /// The same agent.
    Agent,
}
