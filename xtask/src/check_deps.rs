//! `cargo xtask check-deps`: the workspace's internal dependency graph against the crate map.
//!
//! [`CRATE_MAP`] says which workspace crates each crate may depend on. The check reads
//! `cargo metadata --no-deps`, prints the graph it found, and fails, naming the crate and the
//! edge, when:
//! - a normal or build dependency is not in the crate's row (dev-dependencies are free, except
//!   for the edges a row forbids outright with `never`);
//! - a workspace crate has no row;
//! - the normal and build dependencies form a cycle (dev-dependency cycles, such as a crate's
//!   tests using a test kit built on that crate, are allowed, as cargo allows them).
//!
//! Rows for crates that do not exist yet are fine.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::process::{Command, ExitCode};

use serde::Deserialize;

mod docs;

#[cfg(test)]
mod tests;

/// The crate map: the target dependency graph, a DAG with a small, pure core at the bottom.
/// One row per crate: the workspace crates it may use as normal or build dependencies. Edit a
/// row to change the architecture; a new workspace crate needs a row before the check passes.
const CRATE_MAP: &[Row] = &[
    only("warden-core", &[]),
    only("warden-charter", &["warden-core"]),
    only("warden-provenance", &["warden-core"]),
    only(
        "warden-pdp",
        &["warden-core", "warden-charter", "warden-provenance"],
    ),
    only("warden-audit", &["warden-core"]),
    only("warden-llm", &["warden-core"]),
    only(
        "warden-session",
        &[
            "warden-core",
            "warden-charter",
            "warden-pdp",
            "warden-provenance",
        ],
    ),
    // The ledger is reached through `warden_core::Recorder`, never `warden-audit`'s store.
    only("warden-approval", &["warden-core", "warden-charter"]),
    only(
        "warden-mcp",
        &["warden-core", "warden-charter", "warden-session"],
    ),
    only(
        "warden-models",
        &[
            "warden-core",
            "warden-charter",
            "warden-llm",
            "warden-pdp",
            "warden-session",
        ],
    ),
    only(
        "warden-operator",
        &[
            "warden-core",
            "warden-charter",
            "warden-session",
            "warden-approval",
        ],
    ),
    only("warden-telemetry", &["warden-core"]),
    only(
        "warden-console",
        &[
            "warden-core",
            "warden-charter",
            "warden-pdp",
            "warden-provenance",
            "warden-audit",
            "warden-session",
            "warden-approval",
            "warden-operator",
        ],
    ),
    only(
        "warden-otel",
        &["warden-core", "warden-audit", "warden-telemetry"],
    ),
    only(
        "warden-export",
        &["warden-core", "warden-audit", "warden-telemetry"],
    ),
    only(
        "warden-replay",
        &[
            "warden-core",
            "warden-charter",
            "warden-pdp",
            "warden-provenance",
            "warden-audit",
        ],
    ),
    // The observer and the gateway meet only through the ledger stream, the metrics and the
    // control API. It compiles the charter itself (its `observer` section).
    only(
        "warden-observer",
        &[
            "warden-core",
            "warden-charter",
            "warden-audit",
            "warden-telemetry",
        ],
    )
    .never(&[
        "warden-gateway",
        "warden-mcp",
        "warden-models",
        "warden-operator",
        "warden-session",
    ]),
    only(
        "warden-gateway",
        &[
            "warden-core",
            "warden-charter",
            "warden-pdp",
            "warden-provenance",
            "warden-audit",
            "warden-llm",
            "warden-session",
            "warden-approval",
            "warden-mcp",
            "warden-models",
            "warden-operator",
            "warden-telemetry",
            "warden-console",
            "warden-otel",
            "warden-export",
        ],
    ),
    // The binary never links the test kit.
    anything_except("warden", &["warden-testkit"]),
    anything_except("warden-testkit", &["warden"]),
    anything("warden-fuzz"),
    anything("xtask"),
];

/// Which workspace crates a crate may use as normal or build dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    /// These only.
    Only(&'static [&'static str]),
    /// Any but these.
    AnythingExcept(&'static [&'static str]),
}

impl Allowed {
    fn permits(self, dependency: &str) -> bool {
        match self {
            Allowed::Only(crates) => crates.contains(&dependency),
            Allowed::AnythingExcept(crates) => !crates.contains(&dependency),
        }
    }
}

/// One row of the crate map.
#[derive(Debug, Clone, Copy)]
struct Row {
    krate: &'static str,
    allowed: Allowed,
    /// Crates it never depends on, not even as a dev-dependency.
    never: &'static [&'static str],
}

impl Row {
    const fn never(self, crates: &'static [&'static str]) -> Row {
        Row {
            never: crates,
            ..self
        }
    }
}

const fn only(krate: &'static str, crates: &'static [&'static str]) -> Row {
    Row {
        krate,
        allowed: Allowed::Only(crates),
        never: &[],
    }
}

const fn anything_except(krate: &'static str, crates: &'static [&'static str]) -> Row {
    Row {
        krate,
        allowed: Allowed::AnythingExcept(crates),
        never: &[],
    }
}

const fn anything(krate: &'static str) -> Row {
    anything_except(krate, &[])
}

/// The section of the manifest a dependency is declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Normal,
    Build,
    Dev,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Normal => "dependency",
            Kind::Build => "build-dependency",
            Kind::Dev => "dev-dependency",
        })
    }
}

/// The workspace's crates, each with its internal (workspace) dependencies.
type Graph = BTreeMap<String, BTreeSet<(String, Kind)>>;

/// What the check found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Violation {
    /// `from` depends on `to`, which its row does not allow.
    Forbidden {
        from: String,
        to: String,
        kind: Kind,
        allowed: Allowed,
    },
    /// `from` depends on `to`, which its row forbids even as a dev-dependency.
    Never {
        from: String,
        to: String,
        kind: Kind,
    },
    /// A workspace crate without a row in the crate map.
    Unknown { krate: String },
    /// Normal and build dependencies that lead from the first crate back to it.
    Cycle { path: Vec<String> },
}

/// `a`, `b` and `c`, each in backticks.
fn list(crates: &[&str]) -> String {
    let quoted: Vec<String> = crates.iter().map(|c| format!("`{c}`")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Forbidden {
                from,
                to,
                kind,
                allowed,
            } => {
                write!(
                    f,
                    "forbidden edge `{from}` -> `{to}` ({kind}): the crate map lets `{from}` \
                     depend on "
                )?;
                match allowed {
                    Allowed::Only([]) => f.write_str("no workspace crate"),
                    Allowed::Only(crates) => write!(f, "{} only", list(crates)),
                    Allowed::AnythingExcept(crates) => {
                        write!(f, "any workspace crate except {}", list(crates))
                    }
                }
            }
            Violation::Never { from, to, kind } => write!(
                f,
                "forbidden edge `{from}` -> `{to}` ({kind}): `{from}` never depends on `{to}`, \
                 not even as a dev-dependency"
            ),
            Violation::Unknown { krate } => write!(
                f,
                "`{krate}` is a workspace crate without a row in the crate map: add one to \
                 `CRATE_MAP` in xtask/src/check_deps.rs"
            ),
            Violation::Cycle { path } => {
                let path: Vec<String> = path.iter().map(|c| format!("`{c}`")).collect();
                write!(f, "dependency cycle: {}", path.join(" -> "))
            }
        }
    }
}

/// Everything in `graph` that `map` does not allow.
fn check(map: &[Row], graph: &Graph) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (krate, edges) in graph {
        let Some(row) = map.iter().find(|r| r.krate == krate) else {
            violations.push(Violation::Unknown {
                krate: krate.clone(),
            });
            continue;
        };
        for (to, kind) in edges {
            if row.never.contains(&to.as_str()) {
                violations.push(Violation::Never {
                    from: krate.clone(),
                    to: to.clone(),
                    kind: *kind,
                });
            } else if *kind != Kind::Dev && !row.allowed.permits(to) {
                violations.push(Violation::Forbidden {
                    from: krate.clone(),
                    to: to.clone(),
                    kind: *kind,
                    allowed: row.allowed,
                });
            }
        }
    }
    violations.extend(
        cycles(graph)
            .into_iter()
            .map(|path| Violation::Cycle { path }),
    );
    violations
}

/// Cycles among the normal and build dependencies: one for each edge that closes a loop in a
/// depth-first walk, listed from a crate back to it.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mark {
        OnPath,
        Done,
    }

    fn visit<'g>(
        graph: &'g Graph,
        krate: &'g str,
        marks: &mut BTreeMap<&'g str, Mark>,
        path: &mut Vec<&'g str>,
        found: &mut Vec<Vec<String>>,
    ) {
        marks.insert(krate, Mark::OnPath);
        path.push(krate);
        let edges = graph.get(krate).into_iter().flatten();
        for (to, _) in edges.filter(|(_, kind)| *kind != Kind::Dev) {
            match marks.get(to.as_str()) {
                Some(Mark::Done) => {}
                Some(Mark::OnPath) => {
                    let start = path.iter().position(|c| c == to).unwrap_or_default();
                    let mut cycle: Vec<String> =
                        path.iter().skip(start).map(|c| (*c).to_owned()).collect();
                    cycle.push(to.clone());
                    found.push(cycle);
                }
                None => visit(graph, to, marks, path, found),
            }
        }
        path.pop();
        marks.insert(krate, Mark::Done);
    }

    let mut marks = BTreeMap::new();
    let mut found = Vec::new();
    for krate in graph.keys() {
        if !marks.contains_key(krate.as_str()) {
            visit(graph, krate, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found
}

/// The graph as a table, crates in crate-map order: internal dependencies, build-dependencies
/// marked, dev-dependencies in brackets.
fn render(map: &[Row], graph: &Graph) -> String {
    let position = |krate: &str| map.iter().position(|r| r.krate == krate);
    let mut crates: Vec<&String> = graph.keys().collect();
    crates.sort_by_key(|c| (position(c).unwrap_or(usize::MAX), c.as_str()));
    let width = crates.iter().map(|c| c.len()).max().unwrap_or_default();
    let mut out = String::from("crate map checked (internal dependencies, [dev-dependencies]):\n");
    for krate in crates {
        let edges = graph.get(krate).into_iter().flatten();
        let mut names = Vec::new();
        let mut dev = Vec::new();
        for (to, kind) in edges {
            match kind {
                Kind::Normal => names.push(to.clone()),
                Kind::Build => names.push(format!("{to} (build)")),
                Kind::Dev => dev.push(to.clone()),
            }
        }
        let mut line = if names.is_empty() {
            "-".to_owned()
        } else {
            names.join(", ")
        };
        if !dev.is_empty() {
            line.push_str(&format!(" [{}]", dev.join(", ")));
        }
        if position(krate).is_none() {
            line.push_str(" (no row)");
        }
        out.push_str(&format!("  {krate:width$}  {line}\n"));
    }
    out
}

/// What `cargo metadata --format-version 1 --no-deps` says, as far as the check needs it.
#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    dependencies: Vec<Dependency>,
}

#[derive(Deserialize)]
struct Dependency {
    /// The package name, also when the manifest renames it.
    name: String,
    /// `null` for a normal dependency, `"build"` or `"dev"`.
    kind: Option<String>,
    /// Set for a path dependency.
    path: Option<String>,
}

/// The internal dependency graph in `cargo metadata --no-deps` output, where the packages are
/// the workspace's crates. A dependency is internal when it is a path dependency on one of them.
fn graph_from_metadata(json: &str) -> Result<Graph, serde_json::Error> {
    let metadata: Metadata = serde_json::from_str(json)?;
    let members: BTreeSet<&str> = metadata.packages.iter().map(|p| p.name.as_str()).collect();
    let mut graph = Graph::new();
    for package in &metadata.packages {
        let edges = graph.entry(package.name.clone()).or_default();
        for dep in &package.dependencies {
            if dep.path.is_none() || !members.contains(dep.name.as_str()) {
                continue;
            }
            let kind = match dep.kind.as_deref() {
                Some("dev") => Kind::Dev,
                Some("build") => Kind::Build,
                _ => Kind::Normal,
            };
            edges.insert((dep.name.clone(), kind));
        }
    }
    Ok(graph)
}

/// Why the workspace's graph could not be read.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error("cannot run `cargo metadata`")]
    Spawn(#[source] std::io::Error),
    #[error("`cargo metadata` failed ({status}): {stderr}")]
    Failed {
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("cannot read the output of `cargo metadata`")]
    Parse(#[source] serde_json::Error),
}

/// The graph of the workspace this xtask belongs to: `cargo run` says where its manifest is (read
/// at run time: a binary in a shared target directory may have been built from another
/// checkout); run without cargo, the workspace of the current directory.
fn load() -> Result<Graph, LoadError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["metadata", "--format-version", "1", "--no-deps"]);
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        let manifest = Path::new(&dir).join("..").join("Cargo.toml");
        command.arg("--manifest-path").arg(manifest);
    }
    let output = command.output().map_err(LoadError::Spawn)?;
    if !output.status.success() {
        return Err(LoadError::Failed {
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    graph_from_metadata(&String::from_utf8_lossy(&output.stdout)).map_err(LoadError::Parse)
}

/// README.md and docs/architecture.md of the workspace this xtask belongs to.
fn read_docs() -> std::io::Result<(String, String)> {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(|d| Path::new(&d).join(".."))
        .unwrap_or_else(|| Path::new(".").to_path_buf());
    Ok((
        std::fs::read_to_string(root.join("README.md"))?,
        std::fs::read_to_string(root.join("docs").join("architecture.md"))?,
    ))
}

/// `cargo xtask check-deps`.
pub(crate) fn run() -> ExitCode {
    let graph = match load() {
        Ok(graph) => graph,
        Err(e) => {
            let cause = std::error::Error::source(&e).map(|s| format!(": {s}"));
            eprintln!("error: {e}{}", cause.unwrap_or_default());
            return ExitCode::FAILURE;
        }
    };
    print!("{}", render(CRATE_MAP, &graph));
    let mut violations: Vec<String> = check(CRATE_MAP, &graph)
        .iter()
        .map(ToString::to_string)
        .collect();
    match read_docs() {
        Ok((readme, architecture)) => violations.extend(docs::check(
            &graph,
            &docs::Docs {
                readme: &readme,
                architecture: &architecture,
            },
        )),
        Err(e) => violations.push(format!("cannot read the crate map's documents: {e}")),
    }
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    if violations.is_empty() {
        println!(
            "check-deps: {} crates, {edges} internal edges, all allowed by the crate map and as README.md and docs/architecture.md describe them",
            graph.len()
        );
        return ExitCode::SUCCESS;
    }
    for v in &violations {
        eprintln!("error: {v}");
    }
    eprintln!(
        "check-deps: {} problem(s); the crate map is `CRATE_MAP` in xtask/src/check_deps.rs, described in README.md and docs/architecture.md",
        violations.len()
    );
    ExitCode::FAILURE
}
