//! The agent inventory computed from what is enforced: the charters in force, the sessions,
//! the controls in force and the reload times. Pure: the caller reads those once and passes
//! them in ([`Sources`]), so the API and the console compute the same answer.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warden_charter::{CharterSet, CompiledCharter, DEFAULT_RULE_ID, DefaultPosture, Transport};
use warden_core::Tier;
use warden_session::{Control, ControlScope, SessionInfo};

/// The most agents one answer lists (beyond: `capped`).
pub const MAX_AGENTS: usize = 1000;
/// The most tools (inventoried and provider-side) one agent's answer lists.
pub const MAX_TOOLS: usize = 500;
/// The most rule ids listed for one tool and tier, and the most principals listed for one
/// approval rule or role.
pub const MAX_IDS: usize = 32;
/// The most live session ids one agent's answer lists (newest first).
pub const MAX_LIVE_IDS: usize = 100;
/// The most controls one agent's answer lists.
pub const MAX_CONTROLS: usize = 100;
/// The most approval rules (and roles) one agent's answer lists.
pub const MAX_RULES: usize = 500;

/// What the inventory is computed from, read once by the caller.
pub struct Sources<'a> {
    /// The charters in force.
    pub set: &'a CharterSet,
    /// The sessions the gateway knows (in memory), newest first.
    pub sessions: &'a [SessionInfo],
    /// The controls in force.
    pub controls: &'a [Control],
    /// When an agent's charter in force was put in force.
    pub loaded_at: &'a dyn Fn(&str) -> Option<OffsetDateTime>,
}

/// A list cut at a bound: `total` says how many there were, `capped` whether some were left
/// out.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Capped<T> {
    /// The items kept.
    pub items: Vec<T>,
    /// How many there were.
    pub total: usize,
    /// Whether some were left out.
    pub capped: bool,
}

impl<T> Capped<T> {
    fn new(mut all: Vec<T>, max: usize) -> Capped<T> {
        let total = all.len();
        all.truncate(max);
        Capped {
            items: all,
            total,
            capped: total > max,
        }
    }
}

/// The charter an agent is governed by.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CharterInfo {
    /// Its hash.
    pub hash: String,
    /// The files it was compiled from (included documents too).
    pub files: Vec<String>,
    /// How many rules it has.
    pub rules: usize,
    /// When it was put in force (start-up or its last reload; RFC 3339), if known.
    pub loaded_at: Option<String>,
    /// What an action no rule matches gets: `deny` or `ask`.
    pub default_posture: &'static str,
}

/// One tier a tool falls into, and the rules that put it there.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TierRules {
    /// The tier.
    pub tier: Tier,
    /// The rule ids (`default` for the default posture), at most [`MAX_IDS`].
    pub rules: Vec<String>,
    /// Whether this is the default posture (no rule covers the tool).
    pub default: bool,
}

/// A tool and the tiers its rules give it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ToolEntry {
    /// `server.tool`.
    pub tool: String,
    /// Each tier a covering rule gives it, the least strict first; the default posture alone
    /// when no rule covers it.
    pub tiers: Vec<TierRules>,
    /// What an action on it gets when no covering rule matches (every covering rule has a
    /// condition: arguments, principal, labels, `when`): the default posture's tier; `None`
    /// when a rule without condition covers it, or when no rule covers it at all.
    pub unmatched: Option<Tier>,
}

/// A server of the inventory.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServerEntry {
    /// Its id.
    pub id: String,
    /// `stdio`, `http` or `decide_api`.
    pub transport: &'static str,
    /// The agent of the set this server is, when it is one (a call to it is a delegation).
    pub agent: Option<String>,
    /// How many tools it has.
    pub tools: usize,
}

/// A model alias.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ModelEntry {
    /// The alias the agent asks for.
    pub alias: String,
    /// Its routes in fallback order, as `provider:model`.
    pub routes: Vec<String>,
    /// Labels that keep a session from it.
    pub deny_labels: Vec<String>,
}

/// The models an agent may call.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Models {
    /// The aliases (not tiered: any session may call one unless a label keeps it away).
    pub aliases: Vec<ModelEntry>,
    /// The provider-side actions (`model.*`) by tier, as the model proxy decides them.
    pub tools: Vec<ToolEntry>,
}

/// Who may approve one approval-tier rule.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ApproverEntry {
    /// The rule (`default` for the default posture `ask`).
    pub rule: String,
    /// The principals who may approve it ([`warden_charter::Authority::may_approve`]).
    pub principals: Vec<String>,
    /// Distinct approvers needed.
    pub quorum: u32,
}

/// A role that may direct the agent.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DirectorEntry {
    /// The role.
    pub role: String,
    /// The highest tier its holders may direct.
    pub direct: Tier,
    /// The principals holding it.
    pub principals: Vec<String>,
}

/// The charter's delegation section.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DelegationEntry {
    /// Agents this one may open child sessions for.
    pub to: Vec<String>,
    /// Agents that may open child sessions for this one.
    pub from: Vec<String>,
    /// The longest chain.
    pub max_depth: u32,
    /// Live children per session.
    pub max_children: u32,
}

/// The agent's sessions.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionsEntry {
    /// Active (not revoked, not expired).
    pub live: usize,
    /// Every session the gateway knows for the agent (expired ones are forgotten after a
    /// while).
    pub known: usize,
    /// The newest session's opening time (RFC 3339).
    pub last_activity: Option<String>,
    /// The live sessions' ids, newest first.
    pub live_ids: Capped<String>,
}

/// One agent in full.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AgentDetail {
    /// Agent id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it is for.
    pub purpose: String,
    /// Whom it serves.
    pub serves: String,
    /// Its values, in priority order.
    pub values: Vec<String>,
    /// Its boundaries.
    pub boundaries: Vec<String>,
    /// The charter governing it.
    pub charter: CharterInfo,
    /// Its tools by tier.
    pub tools: Capped<ToolEntry>,
    /// How many tools fall into each tier (a tool with several tiers counts in each).
    pub tiers: BTreeMap<Tier, usize>,
    /// Its models.
    pub models: Models,
    /// Its servers.
    pub servers: Vec<ServerEntry>,
    /// Who may approve each approval-tier rule.
    pub approvers: Capped<ApproverEntry>,
    /// The roles that may direct it.
    pub directors: Capped<DirectorEntry>,
    /// Its delegation section.
    pub delegation: DelegationEntry,
    /// Its sessions.
    pub sessions: SessionsEntry,
    /// The controls in force that apply to it: gateway-wide, on this agent, on one of its
    /// sessions, on a principal one of its live sessions acts for.
    pub controls: Capped<Control>,
}

/// One agent, short.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AgentSummary {
    /// Agent id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it is for.
    pub purpose: String,
    /// Whom it serves.
    pub serves: String,
    /// Its charter's hash.
    pub charter: String,
    /// How many tools fall into each tier.
    pub tiers: BTreeMap<Tier, usize>,
    /// Live sessions.
    pub live_sessions: usize,
    /// Controls in force that apply to it.
    pub controls: usize,
}

impl From<&AgentDetail> for AgentSummary {
    fn from(d: &AgentDetail) -> AgentSummary {
        AgentSummary {
            id: d.id.clone(),
            name: d.name.clone(),
            purpose: d.purpose.clone(),
            serves: d.serves.clone(),
            charter: d.charter.hash.clone(),
            tiers: d.tiers.clone(),
            live_sessions: d.sessions.live,
            controls: d.controls.total,
        }
    }
}

fn rfc3339(t: OffsetDateTime) -> Option<String> {
    t.format(&Rfc3339).ok()
}

fn posture_tier(p: DefaultPosture) -> Tier {
    match p {
        DefaultPosture::Ask => Tier::Approval,
        DefaultPosture::Deny => Tier::Prohibited,
    }
}

/// The tiers `tool`'s rules give it, as enforced.
fn tool_entry(charter: &CompiledCharter, tool: &str) -> ToolEntry {
    let rules = charter.rules_for(tool);
    let mut by_tier: BTreeMap<Tier, Vec<String>> = BTreeMap::new();
    for r in &rules {
        by_tier.entry(r.tier).or_default().push(r.id.to_string());
    }
    let default_tier = posture_tier(charter.default_posture);
    if by_tier.is_empty() {
        return ToolEntry {
            tool: tool.to_owned(),
            tiers: vec![TierRules {
                tier: default_tier,
                rules: vec![DEFAULT_RULE_ID.to_owned()],
                default: true,
            }],
            unmatched: None,
        };
    }
    let unconditional = rules.iter().any(|r| {
        r.args.is_empty() && r.principal.is_none() && r.labels.is_none() && r.when.is_none()
    });
    ToolEntry {
        tool: tool.to_owned(),
        tiers: by_tier
            .into_iter()
            .map(|(tier, mut rules)| {
                rules.truncate(MAX_IDS);
                TierRules {
                    tier,
                    rules,
                    default: false,
                }
            })
            .collect(),
        unmatched: (!unconditional).then_some(default_tier),
    }
}

fn transport(t: &Transport) -> &'static str {
    match t {
        Transport::Stdio { .. } => "stdio",
        Transport::StreamableHttp { .. } => "http",
        Transport::DecideApi => "decide_api",
    }
}

fn ids(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.truncate(MAX_IDS);
    v
}

/// The agent `charter` governs, in full.
pub fn detail(charter: &CompiledCharter, sources: &Sources<'_>) -> AgentDetail {
    let id = charter.identity.id.clone();
    let mut names: Vec<&String> = charter.inventory.tools.keys().collect();
    names.sort();
    let tools: Vec<ToolEntry> = names.iter().map(|t| tool_entry(charter, t)).collect();
    let model_tools: Vec<ToolEntry> = warden_charter::MODEL_TOOLS
        .iter()
        .map(|t| tool_entry(charter, t))
        .collect();
    let mut tiers: BTreeMap<Tier, usize> = Tier::ALL.iter().map(|t| (*t, 0)).collect();
    for t in &tools {
        for tr in &t.tiers {
            *tiers.entry(tr.tier).or_default() += 1;
        }
    }
    let authority = &charter.authority;
    let approver = |rule: &str, quorum: u32| ApproverEntry {
        rule: rule.to_owned(),
        principals: ids(authority
            .approvers(rule)
            .iter()
            .map(|p| p.id.to_string())
            .collect()),
        quorum,
    };
    let mut approvers: Vec<ApproverEntry> = charter
        .rules
        .iter()
        .filter(|r| r.tier == Tier::Approval)
        .map(|r| approver(&r.id, r.approval.quorum))
        .collect();
    if charter.default_posture == DefaultPosture::Ask {
        approvers.push(approver(DEFAULT_RULE_ID, charter.default_approval.quorum));
    }
    let mut directors: Vec<DirectorEntry> = authority
        .roles
        .values()
        .map(|role| DirectorEntry {
            role: role.id.to_string(),
            direct: role.direct,
            principals: ids(authority
                .principals
                .values()
                .filter(|p| p.roles.contains(&role.id))
                .map(|p| p.id.to_string())
                .collect()),
        })
        .collect();
    directors.sort_by(|a, b| a.role.cmp(&b.role));
    let mine: Vec<&SessionInfo> = sources.sessions.iter().filter(|s| s.agent == id).collect();
    let live: Vec<&SessionInfo> = mine
        .iter()
        .copied()
        .filter(|s| s.status == "active")
        .collect();
    let last_activity = mine
        .iter()
        .filter_map(|s| OffsetDateTime::parse(&s.opened_at, &Rfc3339).ok())
        .max()
        .and_then(rfc3339);
    let session_ids: BTreeSet<&str> = mine.iter().map(|s| s.id.as_str()).collect();
    let principals: BTreeSet<&str> = live.iter().map(|s| s.principal.as_str()).collect();
    let controls: Vec<Control> = sources
        .controls
        .iter()
        .filter(|c| {
            let target = c.target.as_deref().unwrap_or_default();
            match c.scope {
                ControlScope::Gateway => true,
                ControlScope::Agent => target == id,
                ControlScope::Session => session_ids.contains(target),
                ControlScope::Principal => principals.contains(target),
            }
        })
        .cloned()
        .collect();
    let d = &charter.delegation;
    AgentDetail {
        name: charter.identity.name.clone(),
        purpose: charter.identity.purpose.clone(),
        serves: charter.identity.serves.clone(),
        values: charter.identity.values.clone(),
        boundaries: charter.identity.boundaries.clone(),
        charter: CharterInfo {
            hash: charter.hash.to_string(),
            files: charter.files.iter().map(|f| f.to_string()).collect(),
            rules: charter.rules.len(),
            loaded_at: (sources.loaded_at)(&id).and_then(rfc3339),
            default_posture: match charter.default_posture {
                DefaultPosture::Ask => "ask",
                DefaultPosture::Deny => "deny",
            },
        },
        tools: Capped::new(tools, MAX_TOOLS),
        tiers,
        models: Models {
            aliases: charter
                .inventory
                .models
                .iter()
                .map(|m| ModelEntry {
                    alias: m.alias.clone(),
                    routes: m
                        .routes
                        .iter()
                        .map(|r| {
                            let p = match r.provider {
                                warden_charter::Provider::Openai => "openai",
                                warden_charter::Provider::Anthropic => "anthropic",
                            };
                            format!("{p}:{}", r.model)
                        })
                        .collect(),
                    deny_labels: m.deny_labels.iter().map(|l| l.to_string()).collect(),
                })
                .collect(),
            tools: model_tools,
        },
        servers: charter
            .inventory
            .servers
            .iter()
            .map(|s| ServerEntry {
                id: s.id.clone(),
                transport: transport(&s.transport),
                agent: s.agent.clone(),
                tools: s.tools.len(),
            })
            .collect(),
        approvers: Capped::new(approvers, MAX_RULES),
        directors: Capped::new(directors, MAX_RULES),
        delegation: DelegationEntry {
            to: d.to.clone(),
            from: d.from.clone(),
            max_depth: d.max_depth,
            max_children: d.max_children,
        },
        sessions: SessionsEntry {
            live: live.len(),
            known: mine.len(),
            last_activity,
            live_ids: Capped::new(live.iter().map(|s| s.id.clone()).collect(), MAX_LIVE_IDS),
        },
        controls: Capped::new(controls, MAX_CONTROLS),
        id,
    }
}

/// Every agent of the set, short, by id.
pub fn summaries(sources: &Sources<'_>) -> Capped<AgentSummary> {
    let all: Vec<AgentSummary> = sources
        .set
        .iter()
        .take(MAX_AGENTS)
        .map(|c| AgentSummary::from(&detail(c, sources)))
        .collect();
    Capped {
        items: all,
        total: sources.set.len(),
        capped: sources.set.len() > MAX_AGENTS,
    }
}
