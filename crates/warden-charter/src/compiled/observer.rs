//! The compiled `observer` section: the windows, the detectors, the correlation rules and the
//! escalation policy the observer's engine applies.

use std::time::Duration;

use globset::GlobSet;
use serde::Serialize;

/// The observer's settings. Everything here was validated at compile time: ids are unique
/// across detectors and correlation rules, every rule names declared detectors, windows are
/// positive.
#[derive(Debug, Clone)]
pub struct ObserverSettings {
    /// History a baseline covers (records older than this age out of the profiles).
    pub baseline_window: Option<Duration>,
    /// After a charter change, how long the observer only alerts while it learns.
    pub learning_window: Option<Duration>,
    /// Detectors.
    pub detectors: Vec<Detector>,
    /// Correlation rules.
    pub correlate: Vec<Correlation>,
    /// Escalation of repeated firings, when configured.
    pub escalation: Option<Escalation>,
    // The dead man's switch.
    /// Whether the gateway requires an observer: without its heartbeat within
    /// `heartbeat_deadline`, the gateway puts itself in the conservative posture.
    pub required: bool,
    /// How long the gateway waits for the observer's heartbeat (default 10s; 1s to 10m).
    pub heartbeat_deadline: Duration,
}

/// The heartbeat deadline when the charter names none.
pub const DEFAULT_HEARTBEAT_DEADLINE: Duration = Duration::from_secs(10);

impl Default for ObserverSettings {
    fn default() -> ObserverSettings {
        ObserverSettings {
            baseline_window: None,
            learning_window: None,
            detectors: Vec::new(),
            correlate: Vec::new(),
            escalation: None,
            required: false,
            heartbeat_deadline: DEFAULT_HEARTBEAT_DEADLINE,
        }
    }
}

/// Detector kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// Intent without action or action without intent.
    IntentMismatch,
    /// Reads under a never-seen prefix.
    NewResourceBurst,
    /// Rate far off the baseline.
    Rate,
    /// Many denials.
    DenialStorm,
    /// Sensitive read then outbound send.
    SensitiveThenSend,
    /// A model turn far above the baseline's tokens per turn.
    TokenSpike,
    /// The ledger's hash chain does not verify.
    LedgerIntegrity,
}

impl DetectorKind {
    /// The kind's stable name, as the charter spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::IntentMismatch => "intent_mismatch",
            DetectorKind::NewResourceBurst => "new_resource_burst",
            DetectorKind::Rate => "rate",
            DetectorKind::DenialStorm => "denial_storm",
            DetectorKind::SensitiveThenSend => "sensitive_then_send",
            DetectorKind::TokenSpike => "token_spike",
            DetectorKind::LedgerIntegrity => "ledger_integrity",
        }
    }

    /// Whether a signal of this kind may act on its own when the charter does not say:
    /// `ledger_integrity` and `sensitive_then_send` may; the statistical kinds only alert
    /// alone and act through correlation.
    pub fn alone_by_default(self) -> bool {
        matches!(
            self,
            DetectorKind::LedgerIntegrity | DetectorKind::SensitiveThenSend
        )
    }
}

/// Interventions, mildest first (the order escalation follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intervention {
    /// Alert.
    Alert,
    /// Conservative posture.
    Conservative,
    /// Freeze the tool.
    FreezeTool,
    /// Revoke the session.
    RevokeSession,
    /// The frozen posture: every action is denied.
    Frozen,
}

/// An observer detector.
#[derive(Debug, Clone)]
pub struct Detector {
    /// Detector id.
    pub id: String,
    /// Kind.
    pub kind: DetectorKind,
    /// Threshold.
    pub threshold: Option<f64>,
    /// Window.
    pub window: Option<Duration>,
    /// Sensitive labels.
    pub labels: Vec<std::sync::Arc<str>>,
    /// Outbound tool globs as written.
    pub tools: Vec<String>,
    /// The outbound tool globs, compiled (empty when `tools` is).
    pub tool_set: GlobSet,
    /// Response.
    pub response: Intervention,
    /// Whether its signal may act alone (the charter's `alone`, or the kind's default); when
    /// not, a signal alone is raised as an alert and only a correlation rule acts on it.
    pub alone: bool,
}

/// What correlated signals must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrelateOn {
    /// The same session (the default).
    Session,
    /// The same agent.
    Agent,
}

/// A correlation rule: at least `min` distinct detectors of `signals` signalled about the same
/// session (or agent) within `within` → `response`.
#[derive(Debug, Clone)]
pub struct Correlation {
    /// Rule id.
    pub id: String,
    /// The detector ids whose signals count (each declared in `detectors`).
    pub signals: Vec<String>,
    /// Distinct detectors needed (2 by default; 1..=len(signals)).
    pub min: usize,
    /// The window.
    pub within: Duration,
    /// What the signals must share.
    pub on: CorrelateOn,
    /// Response.
    pub response: Intervention,
}

/// Escalation: a detector or rule firing again for the same target within `within` escalates
/// one step from its previous response, never above `ceiling`.
#[derive(Debug, Clone)]
pub struct Escalation {
    /// The window.
    pub within: Duration,
    /// The strongest response escalation reaches.
    pub ceiling: Intervention,
}
