//! The checks a charter set makes across its charters: one charter per agent, references to
//! agents that exist, one declaration per server id, and delegations both sides agree on.

use std::collections::BTreeMap;
use std::sync::Arc;

use warden_core::SourceLocation;

use crate::compiled::{CompiledCharter, SandboxMode, Server, Transport};
use crate::diagnostic::{Diagnostic, Diagnostics, suggest};

/// Every error and warning of the set as a whole (each charter compiled on its own already).
/// Errors: a second charter for an agent id (at its `identity.id`, the hint naming the
/// first); a `delegation.to`/`from` entry or a server's `agent` naming an agent with no
/// charter in the set (at the entry); a server id declared differently by two charters (at
/// the second's `id`). Warnings: a `to` whose target does not list this agent in `from`, and a
/// `from` whose source does not list this agent in `to` (that delegation can never happen).
pub(crate) fn check(charters: &[Arc<CompiledCharter>]) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let mut agents: BTreeMap<&str, &CompiledCharter> = BTreeMap::new();
    for charter in charters {
        let id = charter.identity.id.as_str();
        match agents.get(id) {
            Some(first) => diags.push(
                Diagnostic::error(
                    identity_at(charter),
                    format!("agent `{id}` is governed by two charters"),
                )
                .with_hint(format!(
                    "the first is at {}; each agent of a set has one charter",
                    identity_at(first)
                )),
            ),
            None => {
                agents.insert(id, charter);
            }
        }
    }
    for charter in agents.values() {
        references(charter, &agents, &mut diags);
    }
    servers(agents.values().copied(), &mut diags);
    diags
}

fn identity_at(charter: &CompiledCharter) -> SourceLocation {
    charter
        .spans
        .identity
        .clone()
        .unwrap_or_else(|| SourceLocation {
            file: charter
                .files
                .first()
                .cloned()
                .unwrap_or_else(|| Arc::from("<charter>")),
            line: 1,
            column: 1,
        })
}

fn unknown(
    at: &SourceLocation,
    what: String,
    name: &str,
    agents: &BTreeMap<&str, &CompiledCharter>,
) -> Diagnostic {
    let known: Vec<String> = agents.keys().map(|a| format!("`{a}`")).collect();
    Diagnostic::error(
        at.clone(),
        format!("{what} names agent `{name}`, which has no charter in the set"),
    )
    .with_hint_opt(
        suggest(name, agents.keys().copied())
            .or_else(|| Some(format!("the set's agents are {}", known.join(", ")))),
    )
}

/// The references of one charter to other agents.
fn references(
    charter: &CompiledCharter,
    agents: &BTreeMap<&str, &CompiledCharter>,
    diags: &mut Diagnostics,
) {
    let me = charter.identity.id.as_str();
    let d = &charter.delegation;
    for (name, at) in d.to.iter().zip(&charter.spans.to) {
        match agents.get(name.as_str()) {
            None => diags.push(unknown(at, "`delegation.to`".to_owned(), name, agents)),
            Some(other) if !other.delegation.from.iter().any(|f| f == me) => diags.push(
                Diagnostic::warning(
                    at.clone(),
                    format!(
                        "`delegation.to` names `{name}`, whose charter does not accept `{me}` (`delegation.from`): this delegation can never happen"
                    ),
                )
                .with_hint(format!("add `{me}` to `delegation.from` in the charter of `{name}`, or remove `{name}` here")),
            ),
            Some(_) => {}
        }
    }
    for (name, at) in d.from.iter().zip(&charter.spans.from) {
        match agents.get(name.as_str()) {
            None => diags.push(unknown(at, "`delegation.from`".to_owned(), name, agents)),
            Some(other) if !other.delegation.to.iter().any(|t| t == me) => diags.push(
                Diagnostic::warning(
                    at.clone(),
                    format!(
                        "`delegation.from` names `{name}`, whose charter does not delegate to `{me}` (`delegation.to`): this delegation can never happen"
                    ),
                )
                .with_hint(format!("add `{me}` to `delegation.to` in the charter of `{name}`, or remove `{name}` here")),
            ),
            Some(_) => {}
        }
    }
    for server in &charter.inventory.servers {
        let Some(name) = &server.agent else { continue };
        if !agents.contains_key(name.as_str()) {
            let at = charter
                .spans
                .server_agent(&server.id)
                .unwrap_or(&server.location);
            diags.push(unknown(at, format!("server `{}`", server.id), name, agents));
        }
    }
}

/// Whether two declarations of a server id name the same upstream the same way (where the
/// `sandbox` section is written does not matter; what it says does).
fn same_server(a: &Server, b: &Server) -> bool {
    a.transport == b.transport
        && a.tools == b.tools
        && (a.sandbox.mode, &a.sandbox.read, &a.sandbox.write)
            == (b.sandbox.mode, &b.sandbox.read, &b.sandbox.write)
        && a.http_auth == b.http_auth
        && a.agent == b.agent
}

/// The kernel confinement roots a charter's rules give a stdio server (`None` for another
/// server, or one with `sandbox.mode: off`; see [`CompiledCharter::sandbox_roots`]). The
/// gateway confines the one process of a shared server to these, so two charters sharing it
/// must give it the same ones.
fn confinement_roots(charter: &CompiledCharter, server: &Server) -> Option<Vec<String>> {
    if !matches!(server.transport, Transport::Stdio { .. })
        || server.sandbox.mode == SandboxMode::Off
    {
        return None;
    }
    Some(charter.sandbox_roots(server))
}

fn backticked(roots: Option<&[String]>) -> String {
    match roots {
        Some([]) | None => "none".to_owned(),
        Some(roots) => roots
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A server id names one upstream for the whole gateway: every charter declaring it declares
/// it alike.
fn servers<'a>(charters: impl Iterator<Item = &'a CompiledCharter>, diags: &mut Diagnostics) {
    let mut first: BTreeMap<&str, (&CompiledCharter, &Server)> = BTreeMap::new();
    for charter in charters {
        for server in &charter.inventory.servers {
            match first.get(server.id.as_str()) {
                None => {
                    first.insert(&server.id, (charter, server));
                }
                Some((other, declared)) if !same_server(declared, server) => {
                    let at = |c: &CompiledCharter, s: &Server| {
                        c.spans.server_id(&s.id).unwrap_or(&s.location).clone()
                    };
                    diags.push(
                        Diagnostic::error(
                            at(charter, server),
                            format!(
                                "server `{}` is declared differently by the charters of `{}` and `{}`",
                                server.id, other.identity.id, charter.identity.id
                            ),
                        )
                        .with_hint(format!(
                            "a server id names one upstream for the whole gateway: declare it alike (transport, tools, sandbox, auth, agent) or give it another id; the first is at {}",
                            at(other, declared)
                        )),
                    );
                }
                Some((other, declared)) => {
                    let (theirs, ours) = (
                        confinement_roots(other, declared),
                        confinement_roots(charter, server),
                    );
                    if theirs != ours {
                        let at = charter
                            .spans
                            .server_id(&server.id)
                            .unwrap_or(&server.location)
                            .clone();
                        diags.push(
                            Diagnostic::error(
                                at,
                                format!(
                                    "server `{}` is confined differently by the charters of `{}` and `{}`: the path roots their rules give it are {} and {}",
                                    server.id,
                                    other.identity.id,
                                    charter.identity.id,
                                    backticked(theirs.as_deref()),
                                    backticked(ours.as_deref())
                                ),
                            )
                            .with_hint("the gateway runs one process per server id, confined to the literal directories of the path globs in the rules for its tools that are not `prohibited`: write those globs with the same roots in both charters (`/srv/work/{src,tests}/**` has the root `/srv/work`), or give each agent its own server id"),
                        );
                    }
                }
            }
        }
    }
}
