//! The charter as written: `Raw*` types mirror the YAML, reject unknown fields, and carry a doc
//! comment on every field. Nothing outside this crate sees them; [`crate::compile`] turns them
//! into the compiled forms.
//!
//! A charter is one file or a directory of files. In each file every section is optional;
//! lists (servers, models, rules, roles, principals, labels, sources, detectors) are
//! concatenated across files and single-valued settings may be written once. Sections are
//! taken apart key by key in [`crate::compile`], so each list item is deserialized alone and
//! one bad item does not hide the next.

use std::collections::BTreeMap;

use serde::Deserialize;
use warden_core::Tier;

mod observer;
pub(crate) use observer::*;

/// The agent's identity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    /// Stable agent id, used in sessions and the ledger (`[a-z0-9][a-z0-9_.-]*`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// What the agent is for, in a sentence or two.
    pub purpose: String,
    /// Whom the agent serves (a team, a customer group, an organisation).
    pub serves: String,
    /// Values the agent holds to, in priority order.
    #[serde(default)]
    pub values: Vec<String>,
    /// Behavioural boundaries in plain language (the rules enforce; these explain).
    #[serde(default)]
    pub boundaries: Vec<String>,
}

/// One upstream tool server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    /// Server id, the namespace of its tools (`[a-z0-9][a-z0-9_-]*`, no dots).
    pub id: String,
    /// Human description.
    #[serde(default)]
    pub description: Option<String>,
    /// MCP over stdio: the command and its arguments, spawned by the gateway.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Environment for the stdio command. Values `${NAME}` are read from the gateway's
    /// environment at start-up.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Kernel confinement of the stdio command (Landlock on Linux).
    #[serde(default)]
    pub sandbox: Option<RawSandbox>,
    /// MCP over Streamable HTTP: the server's URL (`http` or `https`).
    #[serde(default)]
    pub url: Option<String>,
    /// HTTP headers sent with every request to a Streamable HTTP server. A value may hold
    /// `${NAME}` (a variable of the gateway's environment) and `${file:/path}` (a file's
    /// text), resolved once at start-up; they are secrets, never recorded.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Credentials of a Streamable HTTP server by on-behalf-of principal.
    #[serde(default)]
    pub credentials: Option<RawCredentials>,
    /// OAuth 2.0 client credentials for a Streamable HTTP server: the gateway fetches a
    /// token and sends it as `Authorization: Bearer`.
    #[serde(default)]
    pub oauth: Option<RawOAuth>,
    /// The agent of the set this server is (an agent exposed as an MCP server through
    /// `command` or `url`): a call to its tools is a delegation to that agent.
    #[serde(default)]
    pub agent: Option<String>,
    /// The tools this server offers, as the server names them. Rules refer to them as
    /// `server.tool`. With neither `command` nor `url`, the server stands for an API whose
    /// calls the agent reports through the decide API.
    pub tools: Vec<String>,
}

/// A Streamable HTTP server's credentials by on-behalf-of principal.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCredentials {
    /// Each principal's own headers, sent on its sessions' calls (after the server-wide
    /// `headers`, which they override).
    pub per_principal: BTreeMap<String, RawPrincipalCredentials>,
    /// What a principal not listed gets: `refuse` (the default: the call is refused and
    /// recorded) or `shared` (the server-wide `headers` only).
    #[serde(default)]
    pub fallback: Option<RawFallback>,
}

/// One principal's credentials for a server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrincipalCredentials {
    /// Its headers; values as in the server's `headers`.
    pub headers: BTreeMap<String, String>,
}

/// What a principal without credentials of its own gets.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawFallback {
    /// Its calls are refused.
    Refuse,
    /// Its calls carry the server-wide headers.
    Shared,
}

/// OAuth 2.0 client credentials grant (RFC 6749, section 4.4).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOAuth {
    /// The token endpoint (`https`, or `http` on a loopback address).
    pub token_url: String,
    /// The client id (`${NAME}` and `${file:/path}` allowed).
    pub client_id: String,
    /// The client secret (`${NAME}` and `${file:/path}` allowed; never written in clear).
    pub client_secret: String,
    /// Scopes asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// The kernel confinement of a stdio server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSandbox {
    /// `auto` (the default), `required` or `off`.
    #[serde(default)]
    pub mode: Option<RawSandboxMode>,
    /// Further paths the server may read (and execute), beyond the default system paths.
    #[serde(default)]
    pub read: Vec<String>,
    /// Further paths the server may read and write.
    #[serde(default)]
    pub write: Vec<String>,
}

/// When a stdio server is confined.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawSandboxMode {
    /// Confined when its rules name path roots, where the kernel can.
    Auto,
    /// Always confined; the gateway does not start without kernel support.
    Required,
    /// Never confined (warned at start-up).
    Off,
}

/// A model alias.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModel {
    /// The name the agent asks for.
    pub alias: String,
    /// Providers in fallback order.
    pub routes: Vec<RawModelRoute>,
    /// Data labels that keep a session from this alias: a session carrying any of them may
    /// not call it. Each must be declared under `data.labels`.
    #[serde(default)]
    pub deny_labels: Vec<String>,
}

/// One provider behind a model alias.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModelRoute {
    /// Wire protocol of the provider.
    pub provider: RawProvider,
    /// Base URL of the provider's API.
    pub base_url: String,
    /// The provider's model name.
    pub model: String,
    /// Environment variable holding the provider key (never written in the charter).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Request timeout, as a duration (`30s`, `2m`). Default `60s`.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A token budget of the model proxy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTokenBudget {
    /// Whose tokens are counted together.
    pub per: RawBudgetScope,
    /// Tokens (input and output) allowed per window.
    pub tokens: u64,
    /// The window (`1h`, `1d`); default: the session's life for `session`, `1d` otherwise.
    #[serde(default)]
    pub window: Option<String>,
}

/// Whose tokens a budget counts.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawBudgetScope {
    /// One session.
    Session,
    /// The agent, across its sessions.
    Agent,
    /// The on-behalf-of principal, across sessions.
    Principal,
}

/// Provider wire protocols.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawProvider {
    /// OpenAI chat completions.
    Openai,
    /// Anthropic messages.
    Anthropic,
}

/// The posture for unmatched actions. There is deliberately no `allow`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawDefaultPosture {
    /// Unmatched actions need approval.
    Ask,
    /// Unmatched actions are denied.
    Deny,
}

/// Approval settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApproval {
    /// How long an action may wait for approval before it is denied (`90s`, `15m`, `2h`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Distinct approvers needed.
    #[serde(default)]
    pub quorum: Option<u32>,
    /// Arguments (dotted names) whose value an approver may confirm "for this session"
    /// (approval-tier rules only).
    #[serde(default)]
    pub remember: Option<Vec<String>>,
}

/// One rule: when it matches an action, the action is (at least) in this rule's tier.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    /// Unique rule id; approvals and decisions name it.
    pub id: String,
    /// Why the rule exists.
    #[serde(default)]
    pub description: Option<String>,
    /// Tool name or glob (`fs.read_*`), or a list of them; any may match.
    pub tool: OneOrMany<String>,
    /// The tier of matching actions.
    pub tier: Tier,
    /// Argument constraints by argument name (dotted for nested objects); all must hold.
    #[serde(default)]
    pub args: BTreeMap<String, RawMatcher>,
    /// Constraint on the on-behalf-of principal.
    #[serde(default)]
    pub principal: Option<RawPrincipalMatch>,
    /// Constraint on the data labels the session has accumulated.
    #[serde(default)]
    pub labels: Option<RawLabelMatch>,
    /// A CEL expression that must be true, for what the typed matchers cannot say.
    #[serde(default)]
    pub when: Option<String>,
    /// The scope of a preapproved rule.
    #[serde(default)]
    pub scope: Option<RawScope>,
    /// Approval overrides for actions this rule sends to approval.
    #[serde(default)]
    pub approval: Option<RawApproval>,
}

/// A single value or a list of values.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany<T> {
    /// One value.
    One(T),
    /// Several values.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub(crate) fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Constraints on one argument value. Every key given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatcher {
    /// Path glob(s), matched after canonicalisation; any may match.
    #[serde(default)]
    pub glob: Option<OneOrMany<String>>,
    /// Allowed URL schemes (the value is parsed as a URL).
    #[serde(default)]
    pub scheme: Option<Vec<String>>,
    /// Allowed URL hosts; `*.example.com` matches subdomains only.
    #[serde(default)]
    pub host: Option<Vec<String>>,
    /// The value equals one of these (strings, numbers or booleans).
    #[serde(default)]
    pub one_of: Option<Vec<serde_json::Value>>,
    /// Inclusive lower bound of a number.
    #[serde(default)]
    pub min: Option<serde_json::Number>,
    /// Inclusive upper bound of a number.
    #[serde(default)]
    pub max: Option<serde_json::Number>,
    /// A regular expression the whole string must match (anchored).
    #[serde(default)]
    pub regex: Option<String>,
    /// A prefix of the string.
    #[serde(default)]
    pub prefix: Option<String>,
    /// A suffix of the string.
    #[serde(default)]
    pub suffix: Option<String>,
    /// SQL statement kind: `read_only` (every statement only reads) or `writing` (at least
    /// one statement writes or changes schema).
    #[serde(default)]
    pub sql: Option<RawSqlKind>,
    /// The value (every element of a list) is (`true`) or is not (`false`) stated in the
    /// session's trusted text.
    #[serde(default)]
    pub in_task: Option<bool>,
    /// Where the value may (`from`) or may not (`not_from`) have been found.
    #[serde(default)]
    pub provenance: Option<RawProvenanceMatch>,
    /// Not a value constraint: an absent or `null` argument satisfies the constraint
    /// (top level of an argument's matcher only).
    #[serde(default)]
    pub optional: Option<bool>,
    /// The negation of another matcher (applied to a present value).
    #[serde(default)]
    pub not: Option<Box<RawMatcher>>,
}

/// `provenance: {from: [..], not_from: [..]}`: untrusted labels of `data.labels`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProvenanceMatch {
    /// Holds when the value was found in content carrying one of these labels.
    #[serde(default)]
    pub from: Option<Vec<String>>,
    /// Holds when it was not.
    #[serde(default)]
    pub not_from: Option<Vec<String>>,
}

/// SQL statement kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawSqlKind {
    /// Every statement only reads.
    ReadOnly,
    /// At least one statement writes.
    Writing,
}

/// Constraint on the on-behalf-of principal.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrincipalMatch {
    /// The principal holds at least one of these roles.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// The principal is one of these.
    #[serde(default)]
    pub ids: Option<Vec<String>>,
}

/// Constraint on the session's data labels.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLabelMatch {
    /// The session carries at least one of these.
    #[serde(default)]
    pub any: Option<Vec<String>>,
    /// The session carries all of these.
    #[serde(default)]
    pub all: Option<Vec<String>>,
    /// The session carries none of these.
    #[serde(default)]
    pub none: Option<Vec<String>>,
}

/// The scope of a preapproved rule. Outside it, the action escalates to approval.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScope {
    /// Uses allowed per session.
    #[serde(default)]
    pub per_session: Option<u32>,
    /// Uses allowed per UTC day, across sessions.
    #[serde(default)]
    pub per_day: Option<u32>,
    /// Spend limits, summed over a numeric argument.
    #[serde(default)]
    pub spend: Option<RawSpend>,
    /// The preapproval ends at this RFC 3339 time.
    #[serde(default)]
    pub expires: Option<String>,
}

/// Spend limits of a preapproved rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpend {
    /// The numeric argument that is spent (dotted for nested objects).
    pub argument: String,
    /// Total allowed per session, this action included.
    #[serde(default)]
    pub per_session: Option<serde_json::Number>,
    /// Total allowed per UTC day, this action included.
    #[serde(default)]
    pub per_day: Option<serde_json::Number>,
}

/// A role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    /// Role id.
    pub id: String,
    /// Human description.
    #[serde(default)]
    pub description: Option<String>,
    /// The highest tier a holder may direct the agent to run without a further approval:
    /// `autonomous`, `preapproved` or `approval` (default; no restriction). Actions above it
    /// escalate to approval.
    #[serde(default)]
    pub direct: Option<Tier>,
    /// Rule ids (globs allowed) this role may approve; `default` names the default posture.
    #[serde(default)]
    pub approve: Vec<String>,
}

/// A principal.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrincipal {
    /// Principal id (a user name, an email, a service id).
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Roles held.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Where this principal's approval links are delivered (an `http` or `https` webhook
    /// URL): only their own links go there. Principals with the same URL share it explicitly.
    #[serde(default)]
    pub notify: Option<String>,
    /// The body format of `notify`: `json` (default) or `slack`.
    #[serde(default)]
    pub notify_format: Option<String>,
}

/// Who may issue approver credentials for whom (`authority.enrolment`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEnrolment {
    /// The issuer: `admin` (an admin operator credential) or a role id (an approver holding
    /// it, with their own credential).
    pub by: String,
    /// Principals they may enrol (`*` for every principal).
    #[serde(default)]
    pub principals: Vec<String>,
    /// They may also enrol every principal holding one of these roles.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// A sensitivity label.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLabel {
    /// Label id.
    pub id: String,
    /// What the label means.
    #[serde(default)]
    pub description: Option<String>,
    /// Results carrying it are untrusted content, indexed for argument provenance.
    #[serde(default)]
    pub untrusted: bool,
}

/// A label source. Every key given must hold for the label to attach.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataSource {
    /// The label attached.
    pub label: String,
    /// Tool name or glob whose results carry the label.
    #[serde(default)]
    pub tool: Option<OneOrMany<String>>,
    /// Path glob(s) the action's path argument must match (after canonicalisation).
    #[serde(default)]
    pub path: Option<OneOrMany<String>>,
    /// The argument holding the path (default `path`).
    #[serde(default)]
    pub path_argument: Option<String>,
    /// A regular expression found anywhere in the result text.
    #[serde(default)]
    pub pattern: Option<String>,
}

/// The `delegation` section: which agents this one may hand work to and accept work from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDelegation {
    /// Agents (of the set) this agent may open child sessions for.
    #[serde(default)]
    pub to: Vec<String>,
    /// Agents (of the set) that may open child sessions for this agent.
    #[serde(default)]
    pub from: Vec<String>,
    /// The longest delegation chain a session of this agent may stand at the end of; default
    /// 1, at most 8.
    #[serde(default)]
    pub max_depth: Option<u32>,
    /// Child sessions one session of this agent may have live at once; default 8, at most 64.
    #[serde(default)]
    pub max_children: Option<u32>,
}

/// The situation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawContext {
    /// The organisation the agent works in.
    #[serde(default)]
    pub organisation: Option<String>,
    /// The mission the agent is part of.
    #[serde(default)]
    pub mission: Option<String>,
    /// The environment (`production`, `staging`, …).
    #[serde(default)]
    pub environment: Option<String>,
    /// Facts about the current state of the systems, as key-value pairs.
    #[serde(default)]
    pub state: BTreeMap<String, serde_json::Value>,
    /// Send identity and context to the model as a system message through the model proxy.
    #[serde(default)]
    pub system_message: Option<bool>,
}
