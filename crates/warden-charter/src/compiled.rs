//! The compiled charter: immutable, validated, content-hashed, with source locations kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use globset::{GlobMatcher, GlobSet};
use regex::Regex;
use serde::Serialize;
use time::OffsetDateTime;
use warden_core::{CharterHash, RuleRef, SourceLocation, Tier};

use crate::amount::Amount;
use crate::index::ToolIndex;

mod authority;
mod observer;
mod spans;
pub use authority::{Authority, Enrolment, NotifyTarget, Principal, Role};
pub use observer::{
    CorrelateOn, Correlation, DEFAULT_HEARTBEAT_DEADLINE, Detector, DetectorKind, Escalation,
    Intervention, ObserverSettings,
};
pub(crate) use spans::Spans;

/// A charter compiled and ready to decide with. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct CompiledCharter {
    /// BLAKE3 hash of the charter's sources.
    pub hash: CharterHash,
    /// The files the charter was compiled from.
    pub files: Vec<Arc<str>>,
    /// Who the agent is.
    pub identity: Identity,
    /// What the agent is provisioned with.
    pub inventory: Inventory,
    /// Every rule, in source order (order never affects a decision).
    pub rules: Vec<Rule>,
    /// What an action no rule matches gets.
    pub default_posture: DefaultPosture,
    /// Approval settings for actions that no rule overrides.
    pub default_approval: ApprovalSettings,
    /// Principals, roles, direction and approval authority.
    pub authority: Authority,
    /// Labels and their sources.
    pub data: DataPolicy,
    /// The situation.
    pub context: Context,
    /// Observer settings.
    pub observer: ObserverSettings,
    /// Which agents this one may hand work to, which may hand work to it, and the bounds.
    pub delegation: Delegation,
    pub(crate) index: ToolIndex,
    /// Locations the set's checks point at.
    pub(crate) spans: Spans,
}

/// The charter's `delegation` section: whom the agent may open child sessions for, whom it
/// accepts them from, and how deep and wide a delegation may grow.
///
/// What it guarantees: the default (no section) delegates to nobody and accepts from nobody,
/// so delegation exists only where two charters both say so — `to` in the parent's and
/// `from` in the child's. Bounds are inclusive maxima: with a section, `max_depth` is 1 to
/// [`MAX_DELEGATION_DEPTH`](crate::MAX_DELEGATION_DEPTH) (default 1) and `max_children` 1 to
/// [`MAX_DELEGATION_CHILDREN`](crate::MAX_DELEGATION_CHILDREN) (default 8); without one, both
/// are 0 and both lists empty. Entries are valid agent ids, never the charter's own agent,
/// each once; a set checks that they name agents it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Delegation {
    /// Agents this agent may open child sessions for (agent ids of the set).
    pub to: Vec<String>,
    /// Agents that may open child sessions for this agent.
    pub from: Vec<String>,
    /// The longest delegation chain a session of this agent may stand at the end of: a
    /// child's depth is its chain's length (a root session has depth 0), and a child is
    /// refused when its depth exceeds this bound in its own charter or in any ancestor's.
    pub max_depth: u32,
    /// Child sessions one session of this agent may have live (not revoked, not expired) at
    /// once.
    pub max_children: u32,
    /// Where the section is declared (`None` without one).
    #[serde(skip)]
    pub location: Option<SourceLocation>,
}

impl CompiledCharter {
    /// Indices into [`CompiledCharter::rules`] of the rules whose tool pattern matches `tool`.
    /// Only these can match; the cost does not grow with rules about other tools.
    pub fn candidate_rules(&self, tool: &str) -> std::borrow::Cow<'_, [u32]> {
        self.index.candidates(tool)
    }

    /// The rules whose tool pattern matches `tool` (those of [`Self::candidate_rules`]), in
    /// charter order.
    pub fn rules_for(&self, tool: &str) -> Vec<&Rule> {
        self.candidate_rules(tool)
            .iter()
            .filter_map(|idx| usize::try_from(*idx).ok().and_then(|i| self.rules.get(i)))
            .collect()
    }

    /// The roots of `server`'s kernel confinement that its rules give it: the literal
    /// directory of every path glob in a rule for one of its tools that can let a call
    /// through (not `prohibited`), outside any `not`. A glob without glob characters is its
    /// own root; a relative glob names none. Sorted, without duplicates. The gateway confines
    /// a stdio server to these at start-up, and a charter set checks that two charters sharing
    /// a server give it the same ones — one computation for both.
    pub fn sandbox_roots(&self, server: &Server) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for tool in &server.tools {
            for rule in self.rules_for(&format!("{}.{tool}", server.id)) {
                if rule.tier == Tier::Prohibited {
                    continue;
                }
                let globs = rule
                    .args
                    .iter()
                    .filter_map(|a| a.matcher.globs.as_ref())
                    .flatten();
                for g in globs {
                    let pattern = g.glob().glob();
                    let root = if pattern.contains(['*', '?', '[', '{']) {
                        warden_core::path::glob_root(pattern)
                    } else {
                        pattern
                    };
                    if root.starts_with('/') && !out.iter().any(|r| r == root) {
                        out.push(root.to_owned());
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// A rule by id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.id == id)
    }

    /// Whether `tool` is a tool of the inventory (`server.tool`).
    pub fn is_inventoried(&self, tool: &str) -> bool {
        self.inventory.tools.contains_key(tool)
    }

    /// Whether `tool` is one of the model proxy's provider-side actions
    /// ([`crate::MODEL_TOOLS`]): implicit in every charter, decided by the model proxy only.
    pub fn is_model_tool(tool: &str) -> bool {
        crate::MODEL_TOOLS.contains(&tool)
    }
}

/// Who the agent is (served to the agent as an MCP resource).
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    /// Agent id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What the agent is for.
    pub purpose: String,
    /// Whom it serves.
    pub serves: String,
    /// Values in priority order.
    pub values: Vec<String>,
    /// Behavioural boundaries.
    pub boundaries: Vec<String>,
}

/// Tool servers and model providers.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Servers in source order.
    pub servers: Vec<Server>,
    /// Every tool, `server.tool` → index of its server.
    pub tools: HashMap<String, usize>,
    /// Model aliases.
    pub models: Vec<Model>,
    /// Token budgets of the model proxy.
    pub token_budgets: Vec<TokenBudget>,
}

/// Whose tokens a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// One session.
    Session,
    /// The agent, across its sessions.
    Agent,
    /// The on-behalf-of principal, across sessions.
    Principal,
}

impl BudgetScope {
    /// `session`, `agent` or `principal`.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetScope::Session => "session",
            BudgetScope::Agent => "agent",
            BudgetScope::Principal => "principal",
        }
    }
}

/// A token budget: at most `tokens` (input and output) per `scope` and window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBudget {
    /// Whose tokens are counted together.
    pub per: BudgetScope,
    /// Tokens allowed per window.
    pub tokens: u64,
    /// Fixed windows of this length (aligned to the Unix epoch); `None` for a session's whole
    /// life.
    pub window: Option<Duration>,
    /// Where it is declared.
    pub location: SourceLocation,
}

/// How the gateway reaches a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// MCP over stdio: a child process.
    Stdio {
        /// Program and arguments.
        command: Vec<String>,
        /// Extra environment.
        env: Vec<(String, String)>,
    },
    /// MCP over Streamable HTTP.
    StreamableHttp {
        /// Endpoint URL.
        url: url::Url,
    },
    /// No transport: the agent reports these actions through the decide API.
    DecideApi,
}

/// An upstream tool server.
#[derive(Debug, Clone)]
pub struct Server {
    /// Server id (namespace of its tools).
    pub id: String,
    /// Description.
    pub description: Option<String>,
    /// How to reach it.
    pub transport: Transport,
    /// Tool names as the server names them.
    pub tools: Vec<String>,
    /// Kernel confinement of its child process (stdio servers only; the default for others).
    pub sandbox: Sandbox,
    /// How the gateway authenticates to it (Streamable HTTP servers only; empty for others).
    pub http_auth: crate::HttpAuth,
    /// The agent of the set this server is (an agent exposed as an MCP server): a call to
    /// its tools through warden is a delegation to that agent, and the callee acts in a
    /// child session whose context travels in the call's `_meta`. `None` for a tool server.
    /// When set: a valid agent id, not the charter's own agent, on a server with a transport
    /// (`command` or `url`); a set checks that it names one of its agents.
    pub agent: Option<String>,
    /// Where it is declared.
    pub location: SourceLocation,
}

/// When a stdio server's child process is confined by the kernel (Landlock on Linux).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// Confined when the server's rules name path roots; where the kernel cannot confine, the
    /// server runs unconfined with a warning.
    #[default]
    Auto,
    /// Always confined; a kernel without Landlock stops start-up.
    Required,
    /// Never confined; written explicitly, and warned about at start-up.
    Off,
}

/// A stdio server's `sandbox`: the mode and the paths it may use beyond the default system
/// paths and its rules' roots. Every path is absolute and canonical (checked at compile time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// When it applies.
    pub mode: SandboxMode,
    /// Further paths it may read (files and directories, and execute programs in them).
    pub read: Vec<String>,
    /// Further paths it may read and write.
    pub write: Vec<String>,
    /// Where `sandbox` is written (`None`: not written, the defaults).
    pub location: Option<SourceLocation>,
}

/// A model alias and its providers.
#[derive(Debug, Clone)]
pub struct Model {
    /// The alias the agent asks for.
    pub alias: String,
    /// Providers in fallback order.
    pub routes: Vec<ModelRoute>,
    /// Declared data labels that keep a session from this alias: a session carrying any of
    /// them may not call it. Empty: no label restriction.
    pub deny_labels: Vec<Arc<str>>,
}

impl Model {
    /// The labels among `session_labels` that keep a session from this alias (empty: the
    /// session may call it).
    pub fn denied_labels<'a>(&self, session_labels: &'a [Arc<str>]) -> Vec<&'a Arc<str>> {
        session_labels
            .iter()
            .filter(|l| self.deny_labels.contains(l))
            .collect()
    }
}

/// Wire protocols of model providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// OpenAI chat completions.
    Openai,
    /// Anthropic messages.
    Anthropic,
}

/// One provider of a model alias.
#[derive(Debug, Clone)]
pub struct ModelRoute {
    /// Wire protocol.
    pub provider: Provider,
    /// Base URL.
    pub base_url: url::Url,
    /// Provider model name.
    pub model: String,
    /// Environment variable holding the key.
    pub api_key_env: Option<String>,
    /// Request timeout.
    pub timeout: Duration,
}

/// What unmatched actions get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultPosture {
    /// Approval.
    Ask,
    /// Deny.
    Deny,
}

/// Approval settings after defaults are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalSettings {
    /// Wait this long, then deny.
    pub timeout: Duration,
    /// Distinct approvers needed.
    pub quorum: u32,
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Rule id.
    pub id: Arc<str>,
    /// Why the rule exists.
    pub description: Option<String>,
    /// Tier of matching actions.
    pub tier: Tier,
    /// The reference put in decisions (id, tier, location), prebuilt.
    pub reference: RuleRef,
    /// Tool patterns as written.
    pub tools: Vec<String>,
    /// Argument constraints; all must hold.
    pub args: Vec<ArgConstraint>,
    /// Principal constraint.
    pub principal: Option<PrincipalMatch>,
    /// Label constraint.
    pub labels: Option<LabelMatch>,
    /// CEL condition.
    pub when: Option<Condition>,
    /// Scope (preapproved rules only).
    pub scope: Option<Scope>,
    /// Approval settings for actions this rule sends to approval.
    pub approval: ApprovalSettings,
    /// Arguments whose approved value an approver may confirm "for this session" (the rule's
    /// `approval.remember`): on such a grant the value becomes trusted text of the session.
    pub remember: Vec<RememberArg>,
    /// Canonical text of each condition, for the shadowing and conflict checks.
    pub(crate) fingerprints: Vec<String>,
}

impl Rule {
    /// Where the rule starts.
    pub fn location(&self) -> &SourceLocation {
        &self.reference.location
    }
}

/// An argument named by a rule's `approval.remember`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberArg {
    /// The argument name as written (dotted for nested objects).
    pub argument: String,
    /// The argument path split at dots.
    pub path: Vec<String>,
}

/// A constraint on one argument.
#[derive(Debug)]
pub struct ArgConstraint {
    /// The argument name as written (dotted for nested objects).
    pub argument: String,
    /// The argument path split at dots.
    pub path: Vec<String>,
    /// `optional: true`: an absent or `null` argument satisfies the constraint (otherwise it
    /// satisfies none).
    pub optional: bool,
    /// What the value must satisfy.
    pub matcher: Matcher,
}

/// Compiled value constraints; every one present must hold.
#[derive(Debug, Default)]
pub struct Matcher {
    /// Path globs (any may match), against the canonicalised path.
    pub globs: Option<Vec<GlobMatcher>>,
    /// Allowed URL schemes, lowercase.
    pub schemes: Option<Vec<String>>,
    /// Allowed URL hosts.
    pub hosts: Option<Vec<HostPattern>>,
    /// Allowed values.
    pub one_of: Option<Vec<serde_json::Value>>,
    /// Inclusive lower bound.
    pub min: Option<serde_json::Number>,
    /// Inclusive upper bound.
    pub max: Option<serde_json::Number>,
    /// Anchored regular expression.
    pub regex: Option<Regex>,
    /// String prefix.
    pub prefix: Option<String>,
    /// String suffix.
    pub suffix: Option<String>,
    /// SQL statement kind.
    pub sql: Option<SqlKind>,
    /// `in_task`: `Some(true)` holds when trusted text (the task, instructions, confirmed
    /// values) states the value; `Some(false)` when it does not.
    pub in_task: Option<bool>,
    /// Where the value may (not) have been found.
    pub provenance: Option<ProvenanceMatch>,
    /// Negated matcher.
    pub not: Option<Box<Matcher>>,
}

/// `provenance: { from: [...], not_from: [...] }`: labels are untrusted labels of
/// `data.labels`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProvenanceMatch {
    /// Holds when the value, or a meaningful part of it, was found in content carrying one of
    /// these labels and not in trusted text (or the index is incomplete and trusted text does
    /// not state the value).
    pub from: Option<Vec<Arc<str>>>,
    /// Holds when `from` with these labels would not.
    pub not_from: Option<Vec<Arc<str>>>,
}

/// A host pattern: exact, or every subdomain of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host (lowercase, no trailing dot).
    Exact(String),
    /// Any subdomain of this domain (from `*.domain`), not the domain itself.
    Subdomains(String),
}

/// SQL statement kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlKind {
    /// Every statement only reads.
    ReadOnly,
    /// At least one statement writes.
    Writing,
}

/// Constraint on the on-behalf-of principal.
#[derive(Debug, Default)]
pub struct PrincipalMatch {
    /// Holds any of these roles.
    pub roles: Option<Vec<Arc<str>>>,
    /// Is one of these principals.
    pub ids: Option<Vec<Arc<str>>>,
}

/// Constraint on the session's labels.
#[derive(Debug, Default)]
pub struct LabelMatch {
    /// At least one of these.
    pub any: Option<Vec<Arc<str>>>,
    /// All of these.
    pub all: Option<Vec<Arc<str>>>,
    /// None of these.
    pub none: Option<Vec<Arc<str>>>,
}

/// A compiled CEL condition.
pub struct Condition {
    /// The expression as written.
    pub source: String,
    /// The compiled program.
    pub program: cel::Program,
    /// The variables the program reads (a subset of [`crate::CEL_VARIABLES`]); only these are
    /// bound when it runs.
    pub variables: Vec<String>,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition")
            .field("source", &self.source)
            .finish()
    }
}

/// The scope of a preapproved rule.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Uses per session.
    pub per_session: Option<u32>,
    /// Uses per UTC day.
    pub per_day: Option<u32>,
    /// Spend limits.
    pub spend: Option<Spend>,
    /// End of the preapproval.
    pub expires: Option<OffsetDateTime>,
}

/// Spend limits over a numeric argument.
#[derive(Debug, Clone)]
pub struct Spend {
    /// The argument as written.
    pub argument: String,
    /// The argument path split at dots.
    pub path: Vec<String>,
    /// Total per session.
    pub per_session: Option<Amount>,
    /// Total per UTC day.
    pub per_day: Option<Amount>,
}

/// Data labels and where they come from.
#[derive(Debug, Default)]
pub struct DataPolicy {
    /// Declared labels, sorted.
    pub labels: Vec<Arc<str>>,
    /// The declared labels marked `untrusted: true`, sorted: results carrying one are indexed
    /// for argument provenance.
    pub untrusted: Vec<Arc<str>>,
    /// What each label means, where the charter says.
    pub descriptions: std::collections::BTreeMap<Arc<str>, String>,
    /// Label sources.
    pub sources: Vec<DataSource>,
    /// Patterns of secrets: every match in content captured into the ledger (tool results'
    /// content) is replaced by `[REDACTED]` before it is recorded.
    pub redact: Vec<Regex>,
}

/// A label source: matching action results attach the label.
#[derive(Debug)]
pub struct DataSource {
    /// The label.
    pub label: Arc<str>,
    /// Tools whose results carry it (none: any tool).
    pub tools: Option<GlobSet>,
    /// Path globs the path argument must match.
    pub paths: Option<Vec<GlobMatcher>>,
    /// The argument holding the path (or a list of paths), as written.
    pub path_argument: String,
    /// The same, split at dots.
    pub path_argument_path: Vec<String>,
    /// A pattern found in the result text.
    pub pattern: Option<Regex>,
    /// Where it is declared.
    pub location: SourceLocation,
}

/// The situation the agent works in.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Context {
    /// Organisation.
    pub organisation: Option<String>,
    /// Mission.
    pub mission: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// State facts.
    pub state: std::collections::BTreeMap<String, serde_json::Value>,
    /// Whether the model proxy adds identity and context as a system message.
    pub system_message: bool,
}
