//! The charter compiler: sources in, a [`CompiledCharter`] (and its warnings) or every
//! diagnostic out.

mod authority;
mod collect;
mod condition;
mod data;
mod delegation;
mod identity;
mod inventory;
mod lint;
mod matcher;
mod observer;
mod rules;
mod sandbox;
mod upstream_auth;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use warden_core::{CharterHash, SourceLocation};

use crate::compiled::{ApprovalSettings, CompiledCharter, Context, DefaultPosture};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::include::read_sources;
use crate::raw::RawDefaultPosture;
use crate::source::{ParsedFile, Source};
use authority::authority;
use collect::{Collected, collect_file};
use data::data_policy;
pub use delegation::{
    DEFAULT_DELEGATION_CHILDREN, DEFAULT_DELEGATION_DEPTH, MAX_DELEGATION_CHILDREN,
    MAX_DELEGATION_DEPTH,
};
use identity::{identity, labels};
use inventory::inventory;
use observer::observer;
pub use rules::{CEL_VARIABLES, DEFAULT_RULE_ID};

/// The tool name, under every server, that stands for reading one of its resources
/// (`fs.resources/read`, with the argument `uri`).
pub const RESOURCE_READ_TOOL: &str = "resources/read";
/// The reserved server id of the model proxy's provider-side actions: what a model request
/// asks the provider itself to do. No server of the inventory may take this id.
pub const MODEL_SERVER: &str = "model";
/// The tools of [`MODEL_SERVER`], implicit in every charter: rules may name them like
/// inventoried tools (the model proxy decides them; see `warden_llm::provider_actions`).
pub const MODEL_TOOLS: &[&str] = &[
    "model.web_search",
    "model.web_fetch",
    "model.code_execution",
    "model.computer_use",
    "model.file_search",
    "model.image_generation",
    "model.mcp",
    "model.fetch_url",
    "model.read_file",
    "model.tool",
    "model.beta",
];
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
    crate::include::check_read(&parsed.iter().collect::<Vec<_>>(), &mut diags);
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
        None if unreadable || c.incomplete.contains("version") => {}
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
    let untrusted = data::untrusted_labels(c, &labels);
    let inventory = inventory(c, &labels, diags);
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
    if let Some(a) = c.approval.as_ref().filter(|a| a.raw.remember.is_some()) {
        diags.push(
            Diagnostic::error(
                a.at_path(&["remember"]),
                "`remember` applies only to a rule's `approval` (of tier `approval`)",
            )
            .with_hint("move it to the rules whose approvers may confirm a value for the session"),
        );
    }
    let authority = authority(c, diags);
    let (rules, index) = rules::compile_rules(
        c,
        &inventory,
        &authority,
        &labels,
        &untrusted,
        default_approval,
        diags,
    );
    rules::check_approve_patterns(c, &rules, diags);
    let data = data_policy(c, &inventory, labels, untrusted, diags);
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
    let (delegation, spans) =
        delegation::delegation(c, identity.as_ref().map(|i| i.id.as_str()), diags);
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
        delegation,
        index,
        spans,
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

/// Whether an id is made of safe characters: `[A-Za-z0-9][A-Za-z0-9_.:@-]*`, at most 128.
/// (Server ids are narrower: see [`crate::names`].)
pub(crate) fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '@' | '.'))
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

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dead_mans_switch;
#[cfg(test)]
mod tests_delegation;
#[cfg(test)]
mod tests_include;
#[cfg(test)]
mod tests_names;
#[cfg(test)]
mod tests_observer;
#[cfg(test)]
mod tests_papercuts;
#[cfg(test)]
mod tests_provenance;
