//! The charter compiler: sources in, a [`CompiledCharter`] (and its warnings) or every
//! diagnostic out.

mod collect;
mod lint;
mod matcher;
mod rules;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use globset::GlobBuilder;
use warden_core::{CharterHash, SourceLocation, Tier};

use crate::compiled::{
    ApprovalSettings, Authority, BudgetScope, CompiledCharter, Context, DataPolicy, DataSource,
    DefaultPosture, Detector, DetectorKind, Identity, Intervention, Inventory, Model, ModelRoute,
    ObserverSettings, Principal, Provider, Role, Server, TokenBudget, Transport,
};
use crate::diagnostic::{Diagnostic, Diagnostics, suggest};
use crate::raw::{RawBudgetScope, RawDefaultPosture, RawDetectorKind, RawProvider, RawResponse};
use crate::source::{ParsedFile, Source, read_sources};
use collect::{Collected, Item, collect_file};
pub use rules::{CEL_VARIABLES, DEFAULT_RULE_ID};

/// The tool name, under every server, that stands for reading one of its resources
/// (`fs.resources/read`, with the argument `uri`).
pub const RESOURCE_READ_TOOL: &str = "resources/read";
/// The charter format version this compiler reads.
pub const CHARTER_VERSION: u32 = 1;
/// Approval timeout when the charter sets none.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Model request timeout when the charter sets none.
pub const DEFAULT_MODEL_TIMEOUT: Duration = Duration::from_secs(60);

/// A compiled charter and the warnings its compilation raised.
#[derive(Debug)]
pub struct Compiled {
    /// The charter.
    pub charter: CompiledCharter,
    /// Warnings: conflicting, shadowed or unreachable rules, unclassified tools, and the like.
    pub warnings: Diagnostics,
}

/// Reads and compiles the charter at `path` (a file or a directory of `*.yaml` files).
pub fn load(path: &Path) -> Result<Compiled, Diagnostics> {
    let sources = read_sources(path)?;
    compile(&sources)
}

/// Compiles charter sources. On failure, every error (and warning) found is returned, sorted
/// by location.
pub fn compile(sources: &[Source]) -> Result<Compiled, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut parsed = Vec::with_capacity(sources.len());
    for source in sources {
        match ParsedFile::parse(source) {
            Ok(p) => parsed.push(p),
            Err(d) => diags.push(d),
        }
    }
    let mut c = Collected::default();
    for file in &parsed {
        collect_file(file, &mut c, &mut diags);
    }
    let unreadable = parsed.len() < sources.len();
    let charter = build(&c, sources, unreadable, &mut diags);
    let mut result = match charter {
        Some(charter) if !diags.has_errors() => {
            let mut warnings = diags;
            warnings.extend(lint::lint(&charter));
            warnings.sort();
            return Ok(Compiled { charter, warnings });
        }
        _ => diags,
    };
    result.sort();
    Err(result)
}

fn first_location(sources: &[Source]) -> SourceLocation {
    SourceLocation {
        file: sources
            .first()
            .map_or_else(|| Arc::from("<charter>"), |s| s.name.clone()),
        line: 1,
        column: 1,
    }
}

fn build(
    c: &Collected<'_>,
    sources: &[Source],
    unreadable: bool,
    diags: &mut Diagnostics,
) -> Option<CompiledCharter> {
    // A file that did not parse may hold the missing sections: do not report them twice.
    match &c.version {
        None if unreadable => {}
        None => diags.push(
            Diagnostic::error(first_location(sources), "the charter has no `version`")
                .with_hint(format!("add `version: {CHARTER_VERSION}` at the top")),
        ),
        Some(v) if v.raw != CHARTER_VERSION => diags.push(
            Diagnostic::error(v.at(), format!("unsupported charter version `{}`", v.raw))
                .with_hint(format!("this warden reads version {CHARTER_VERSION}")),
        ),
        Some(_) => {}
    }
    let identity = identity(c, sources, unreadable, diags);
    let labels = labels(c, diags);
    let inventory = inventory(c, diags);
    let default_approval = ApprovalSettings {
        timeout: c
            .approval
            .as_ref()
            .and_then(|a| {
                a.raw
                    .timeout
                    .as_ref()
                    .and_then(|t| duration_or_report(t, a.at_path(&["timeout"]), diags))
            })
            .unwrap_or(DEFAULT_APPROVAL_TIMEOUT),
        quorum: c
            .approval
            .as_ref()
            .and_then(|a| a.raw.quorum.map(|q| (q, a.at_path(&["quorum"]))))
            .map_or(1, |(q, at)| {
                if q == 0 {
                    diags.push(Diagnostic::error(at, "`quorum` must be at least 1"));
                }
                q.max(1)
            }),
    };
    let authority = authority(c, diags);
    let (rules, index) =
        rules::compile_rules(c, &inventory, &authority, &labels, default_approval, diags);
    rules::check_approve_patterns(c, &rules, diags);
    let data = data_policy(c, &inventory, labels, diags);
    let context = c.context.as_ref().map(|ctx| Context {
        organisation: ctx.raw.organisation.clone(),
        mission: ctx.raw.mission.clone(),
        environment: ctx.raw.environment.clone(),
        state: ctx.raw.state.clone(),
        system_message: ctx.raw.system_message.unwrap_or(false),
    });
    let observer = observer(c, &data, diags);
    let default_posture = match c.default_posture.as_ref().map(|p| p.raw) {
        None | Some(RawDefaultPosture::Ask) => DefaultPosture::Ask,
        Some(RawDefaultPosture::Deny) => DefaultPosture::Deny,
    };
    let identity = identity?;
    Some(CompiledCharter {
        hash: content_hash(sources),
        files: sources.iter().map(|s| s.name.clone()).collect(),
        identity,
        inventory,
        rules,
        default_posture,
        default_approval,
        authority,
        data,
        context: context.unwrap_or_default(),
        observer,
        index,
    })
}

/// BLAKE3 over the file base names and contents, length-prefixed, in compile order.
fn content_hash(sources: &[Source]) -> CharterHash {
    let mut h = blake3::Hasher::new();
    h.update(b"warden-charter-v1\0");
    for s in sources {
        let base = Path::new(&*s.name)
            .file_name()
            .map_or_else(|| s.name.to_string(), |n| n.to_string_lossy().into_owned());
        h.update(&(base.len() as u64).to_le_bytes());
        h.update(base.as_bytes());
        h.update(&(s.text.len() as u64).to_le_bytes());
        h.update(s.text.as_bytes());
    }
    CharterHash(*h.finalize().as_bytes())
}

/// Whether an id is made of safe characters: `[A-Za-z0-9][A-Za-z0-9_.:@-]*`.
pub(crate) fn valid_id(id: &str, allow_dot: bool) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '-' | ':' | '@')
                || (allow_dot && c == '.')
        })
        && id.len() <= 128
}

pub use warden_core::text::parse_duration;

pub(crate) fn duration_or_report(
    text: &str,
    at: SourceLocation,
    diags: &mut Diagnostics,
) -> Option<Duration> {
    let d = parse_duration(text);
    if d.is_none() {
        diags.push(
            Diagnostic::error(at, format!("invalid duration `{text}`"))
                .with_hint("write a positive whole number and a unit: `90s`, `15m`, `2h`, `7d`"),
        );
    }
    d
}

fn identity(
    c: &Collected<'_>,
    sources: &[Source],
    unreadable: bool,
    diags: &mut Diagnostics,
) -> Option<Identity> {
    let Some(item) = &c.identity else {
        if unreadable {
            return None;
        }
        diags.push(
            Diagnostic::error(
                first_location(sources),
                "the charter has no `identity` section",
            )
            .with_hint("add `identity:` with `id`, `name`, `purpose` and `serves`"),
        );
        return None;
    };
    let raw = &item.raw;
    if !valid_id(&raw.id, true) {
        diags.push(
            Diagnostic::error(
                item.at_path(&["id"]),
                format!("invalid agent id `{}`", raw.id),
            )
            .with_hint(
                "ids start with a letter or digit and use letters, digits, `_`, `-`, `.`, `:`, `@`",
            ),
        );
    }
    Some(Identity {
        id: raw.id.clone(),
        name: raw.name.clone(),
        purpose: raw.purpose.clone(),
        serves: raw.serves.clone(),
        values: raw.values.clone(),
        boundaries: raw.boundaries.clone(),
    })
}

fn labels(c: &Collected<'_>, diags: &mut Diagnostics) -> Vec<Arc<str>> {
    let mut seen: HashMap<&str, SourceLocation> = HashMap::new();
    for item in &c.labels {
        if !valid_id(&item.raw.id, true) {
            diags.push(Diagnostic::error(
                item.at_path(&["id"]),
                format!("invalid label id `{}`", item.raw.id),
            ));
        }
        if let Some(first) = seen.get(item.raw.id.as_str()) {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["id"]),
                    format!("duplicate label `{}`", item.raw.id),
                )
                .with_hint(format!("first declared at {first}")),
            );
        } else {
            seen.insert(&item.raw.id, item.at_path(&["id"]));
        }
    }
    let set: BTreeSet<&str> = seen.into_keys().collect();
    set.into_iter().map(Arc::from).collect()
}

fn inventory(c: &Collected<'_>, diags: &mut Diagnostics) -> Inventory {
    let mut inv = Inventory::default();
    let mut seen: HashMap<&str, SourceLocation> = HashMap::new();
    for item in &c.servers {
        let raw = &item.raw;
        let at_id = item.at_path(&["id"]);
        if !valid_id(&raw.id, false) {
            diags.push(
                Diagnostic::error(at_id.clone(), format!("invalid server id `{}`", raw.id))
                    .with_hint("server ids are the namespace of their tools and hold no `.`"),
            );
        }
        if let Some(first) = seen.get(raw.id.as_str()) {
            diags.push(
                Diagnostic::error(at_id.clone(), format!("duplicate server `{}`", raw.id))
                    .with_hint(format!("first declared at {first}")),
            );
            continue;
        }
        seen.insert(&raw.id, at_id);
        let transport = match (&raw.command, &raw.url) {
            (Some(_), Some(_)) => {
                diags.push(
                    Diagnostic::error(item.at(), format!("server `{}` has both `command` and `url`", raw.id))
                        .with_hint("a server is reached over stdio (`command`) or Streamable HTTP (`url`), not both"),
                );
                Transport::DecideApi
            }
            (Some(command), None) => {
                if command.is_empty() || command.iter().any(String::is_empty) {
                    diags.push(Diagnostic::error(
                        item.at_path(&["command"]),
                        "`command` must be a non-empty list of non-empty strings",
                    ));
                }
                Transport::Stdio {
                    command: command.clone(),
                    env: raw
                        .env
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                }
            }
            (None, Some(u)) => match url::Url::parse(u) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {
                    Transport::StreamableHttp { url }
                }
                Ok(url) => {
                    diags.push(Diagnostic::error(
                        item.at_path(&["url"]),
                        format!(
                            "server url scheme `{}` is not `http` or `https`",
                            url.scheme()
                        ),
                    ));
                    Transport::DecideApi
                }
                Err(e) => {
                    diags.push(Diagnostic::error(
                        item.at_path(&["url"]),
                        format!("invalid url `{u}`: {e}"),
                    ));
                    Transport::DecideApi
                }
            },
            (None, None) => Transport::DecideApi,
        };
        if !raw.env.is_empty() && raw.command.is_none() {
            diags.push(Diagnostic::error(
                item.at_path(&["env"]),
                "`env` applies only to a stdio server (`command`)",
            ));
        }
        let server_index = inv.servers.len();
        let mut tools_seen = BTreeSet::new();
        for (i, tool) in raw.tools.iter().enumerate() {
            let at = item
                .node
                .get("tools")
                .and_then(|(_, n)| n.items().get(i))
                .map_or_else(|| item.at(), |n| item.file.at(n));
            if tool.is_empty() || tool.contains(['*', '?', '[', '{', ' ']) {
                diags.push(Diagnostic::error(at, format!("invalid tool name `{tool}`")));
                continue;
            }
            if !tools_seen.insert(tool.as_str()) {
                diags.push(Diagnostic::error(
                    at,
                    format!("tool `{tool}` is listed twice"),
                ));
                continue;
            }
            inv.tools.insert(format!("{}.{tool}", raw.id), server_index);
        }
        // Reading a server's resources is an action too: `server.resources/read`.
        inv.tools
            .insert(format!("{}.{RESOURCE_READ_TOOL}", raw.id), server_index);
        inv.servers.push(Server {
            id: raw.id.clone(),
            description: raw.description.clone(),
            transport,
            tools: raw.tools.clone(),
            location: item.at(),
        });
    }
    let mut aliases: HashMap<&str, SourceLocation> = HashMap::new();
    for item in &c.models {
        let raw = &item.raw;
        if let Some(first) = aliases.get(raw.alias.as_str()) {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["alias"]),
                    format!("duplicate model alias `{}`", raw.alias),
                )
                .with_hint(format!("first declared at {first}")),
            );
            continue;
        }
        aliases.insert(&raw.alias, item.at_path(&["alias"]));
        if raw.routes.is_empty() {
            diags.push(Diagnostic::error(
                item.at_path(&["routes"]),
                format!("model `{}` has no routes", raw.alias),
            ));
        }
        let mut routes = Vec::new();
        for (i, r) in raw.routes.iter().enumerate() {
            let route_node = item.node.get("routes").and_then(|(_, n)| n.items().get(i));
            let at = |key: &str| {
                route_node
                    .and_then(|n| n.get(key))
                    .map_or_else(|| item.at(), |(_, n)| item.file.at(n))
            };
            let base_url = match url::Url::parse(&r.base_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => u,
                Ok(_) | Err(_) => {
                    diags.push(Diagnostic::error(
                        at("base_url"),
                        format!("invalid provider base url `{}`", r.base_url),
                    ));
                    continue;
                }
            };
            let timeout = match &r.timeout {
                Some(t) => {
                    duration_or_report(t, at("timeout"), diags).unwrap_or(DEFAULT_MODEL_TIMEOUT)
                }
                None => DEFAULT_MODEL_TIMEOUT,
            };
            routes.push(ModelRoute {
                provider: match r.provider {
                    RawProvider::Openai => Provider::Openai,
                    RawProvider::Anthropic => Provider::Anthropic,
                },
                base_url,
                model: r.model.clone(),
                api_key_env: r.api_key_env.clone(),
                timeout,
            });
        }
        inv.models.push(Model {
            alias: raw.alias.clone(),
            routes,
        });
    }
    for item in &c.token_budgets {
        let raw = &item.raw;
        if raw.tokens == 0 {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["tokens"]),
                    "a token budget of 0 refuses every model call",
                )
                .with_hint("remove the model aliases instead, or give at least 1 token"),
            );
            continue;
        }
        let per = match raw.per {
            RawBudgetScope::Session => BudgetScope::Session,
            RawBudgetScope::Agent => BudgetScope::Agent,
            RawBudgetScope::Principal => BudgetScope::Principal,
        };
        let window = match (&raw.window, per) {
            (Some(w), _) => match duration_or_report(w, item.at_path(&["window"]), diags) {
                Some(d) => Some(d),
                None => continue,
            },
            (None, BudgetScope::Session) => None,
            (None, _) => Some(Duration::from_secs(24 * 3600)),
        };
        inv.token_budgets.push(TokenBudget {
            per,
            tokens: raw.tokens,
            window,
            location: item.at(),
        });
    }
    inv
}

fn authority(c: &Collected<'_>, diags: &mut Diagnostics) -> Authority {
    let mut roles: HashMap<Arc<str>, Role> = HashMap::new();
    for item in &c.roles {
        let raw = &item.raw;
        let id: Arc<str> = Arc::from(raw.id.as_str());
        if !valid_id(&raw.id, true) {
            diags.push(Diagnostic::error(
                item.at_path(&["id"]),
                format!("invalid role id `{}`", raw.id),
            ));
        }
        if let Some(first) = roles.get(&id) {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["id"]),
                    format!("duplicate role `{}`", raw.id),
                )
                .with_hint(format!("first declared at {}", first.location)),
            );
            continue;
        }
        let direct = raw.direct.unwrap_or(Tier::Approval);
        if direct == Tier::Prohibited {
            diags.push(
                Diagnostic::error(
                    item.at_path(&["direct"]),
                    "a role cannot direct prohibited actions",
                )
                .with_hint("`direct` is `autonomous`, `preapproved` or `approval`"),
            );
        }
        let mut approve = Vec::new();
        for (i, pattern) in raw.approve.iter().enumerate() {
            match GlobBuilder::new(pattern).build() {
                Ok(g) => approve.push(g.compile_matcher()),
                Err(e) => {
                    let at = item
                        .node
                        .get("approve")
                        .and_then(|(_, n)| n.items().get(i))
                        .map_or_else(|| item.at(), |n| item.file.at(n));
                    diags.push(Diagnostic::error(
                        at,
                        format!("invalid rule pattern `{pattern}`: {}", e.kind()),
                    ));
                }
            }
        }
        roles.insert(
            id.clone(),
            Role {
                id,
                description: raw.description.clone(),
                direct,
                approve_patterns: raw.approve.clone(),
                approve,
                location: item.at(),
            },
        );
    }
    let mut principals: HashMap<Arc<str>, Principal> = HashMap::new();
    let roles_complete = !c.incomplete.contains("authority.roles");
    for item in &c.principals {
        let raw = &item.raw;
        let id: Arc<str> = Arc::from(raw.id.as_str());
        if raw.id.is_empty() || raw.id.len() > 256 || raw.id.chars().any(char::is_control) {
            diags.push(Diagnostic::error(
                item.at_path(&["id"]),
                format!("invalid principal id `{}`", raw.id),
            ));
        }
        if principals.contains_key(&id) {
            diags.push(Diagnostic::error(
                item.at_path(&["id"]),
                format!("duplicate principal `{}`", raw.id),
            ));
            continue;
        }
        let mut held = Vec::new();
        let mut max_direct = Tier::Autonomous;
        for (i, r) in raw.roles.iter().enumerate() {
            match roles.get(r.as_str()) {
                Some(role) => {
                    max_direct = max_direct.max(role.direct);
                    held.push(role.id.clone());
                }
                None if roles_complete => {
                    let at = item
                        .node
                        .get("roles")
                        .and_then(|(_, n)| n.items().get(i))
                        .map_or_else(|| item.at(), |n| item.file.at(n));
                    diags.push(
                        Diagnostic::error(at, format!("unknown role `{r}`"))
                            .with_hint_opt(suggest(r, roles.keys().map(|k| &**k))),
                    );
                }
                None => {}
            }
        }
        principals.insert(
            id.clone(),
            Principal {
                id,
                name: raw.name.clone(),
                roles: held,
                max_direct: max_direct.min(Tier::Approval),
            },
        );
    }
    Authority {
        separation_of_duties: c.separation_of_duties.as_ref().is_none_or(|s| s.raw),
        roles,
        principals,
    }
}

fn data_policy(
    c: &Collected<'_>,
    inventory: &Inventory,
    labels: Vec<Arc<str>>,
    diags: &mut Diagnostics,
) -> DataPolicy {
    let labels_complete = !c.incomplete.contains("data.labels");
    let mut sources = Vec::new();
    for item in &c.sources {
        let raw = &item.raw;
        let label = match labels.iter().find(|l| ***l == *raw.label) {
            Some(l) => l.clone(),
            None => {
                if labels_complete {
                    diags.push(
                        Diagnostic::error(
                            item.at_path(&["label"]),
                            format!("unknown label `{}`", raw.label),
                        )
                        .with_hint_opt(
                            suggest(&raw.label, labels.iter().map(|l| &**l))
                                .or_else(|| Some("declare it under `data.labels`".to_owned())),
                        ),
                    );
                }
                continue;
            }
        };
        let tools = raw.tool.clone().map(|t| {
            let mut set = globset::GlobSetBuilder::new();
            for pattern in t.into_vec() {
                match rules::tool_glob(&pattern) {
                    Ok(g) => {
                        if !inventory
                            .tools
                            .keys()
                            .any(|k| g.compile_matcher().is_match(k))
                            && !inventory.tools.is_empty()
                        {
                            diags.push(
                                Diagnostic::warning(
                                    item.at_path(&["tool"]),
                                    format!("tool pattern `{pattern}` matches no inventoried tool"),
                                )
                                .with_hint_opt(suggest(
                                    &pattern,
                                    inventory.tools.keys().map(String::as_str),
                                )),
                            );
                        }
                        set.add(g);
                    }
                    Err(e) => diags.push(Diagnostic::error(
                        item.at_path(&["tool"]),
                        format!("invalid tool pattern `{pattern}`: {}", e.kind()),
                    )),
                }
            }
            set.build().unwrap_or_else(|_| globset::GlobSet::empty())
        });
        let paths = raw.path.clone().map(|p| {
            p.into_vec()
                .iter()
                .filter_map(|g| matcher::path_glob(g, item.at_path(&["path"]), diags))
                .collect()
        });
        let pattern = raw
            .pattern
            .as_ref()
            .and_then(|p| matcher::regex(p, false, item.at_path(&["pattern"]), diags));
        if raw.tool.is_none() && raw.path.is_none() && raw.pattern.is_none() {
            diags.push(
                Diagnostic::error(
                    item.at(),
                    "a label source needs `tool`, `path` or `pattern`",
                )
                .with_hint("without one it would label every result"),
            );
        }
        let path_argument = raw
            .path_argument
            .clone()
            .unwrap_or_else(|| "path".to_owned());
        if path_argument.is_empty() || path_argument.split('.').any(str::is_empty) {
            diags.push(Diagnostic::error(
                item.at_path(&["path_argument"]),
                format!("invalid argument name `{path_argument}`"),
            ));
        }
        sources.push(DataSource {
            label,
            tools,
            paths,
            path_argument_path: path_argument.split('.').map(str::to_owned).collect(),
            path_argument,
            pattern,
            location: item.at(),
        });
    }
    let descriptions = c
        .labels
        .iter()
        .filter_map(|l| {
            let desc = l.raw.description.clone()?;
            let id = labels.iter().find(|x| ***x == *l.raw.id)?.clone();
            Some((id, desc))
        })
        .collect();
    DataPolicy {
        labels,
        descriptions,
        sources,
    }
}

fn observer(c: &Collected<'_>, data: &DataPolicy, diags: &mut Diagnostics) -> ObserverSettings {
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
                    format!("invalid tool pattern `{t}`: {}", e.kind()),
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
    ObserverSettings {
        baseline_window,
        learning_window,
        detectors,
    }
}

#[cfg(test)]
mod tests;
