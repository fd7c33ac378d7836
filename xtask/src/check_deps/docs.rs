//! The crate map as the documentation tells it, held against `cargo metadata`: every
//! workspace crate has a row in the README's crate map and in `docs/architecture.md`, and the
//! "depends on" column of `docs/architecture.md` names exactly a crate's normal internal
//! dependencies (written without the `warden-` prefix; a row whose column is prose, such as
//! "all of the above", is not compared).

use std::collections::BTreeSet;

use super::{Graph, Kind};

/// The README and the architecture page, as text.
pub(super) struct Docs<'a> {
    pub(super) readme: &'a str,
    pub(super) architecture: &'a str,
}

/// The crate named in a table row's first cell: `` | `crates/warden-x` | … `` or
/// `` | `warden-x` | … ``.
fn row_crate(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("| `")?;
    let name = rest.split('`').next()?;
    Some(name.strip_prefix("crates/").unwrap_or(name))
}

/// The cells of a table row.
fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_matches('|')
        .split(" | ")
        .map(str::trim)
        .collect()
}

/// A dependency list written as `core, charter, session` (or `—` for none), as crate names;
/// `None` when the cell is prose.
fn listed(cell: &str) -> Option<BTreeSet<String>> {
    if cell == "—" || cell == "-" {
        return Some(BTreeSet::new());
    }
    let names: Vec<&str> = cell.split(", ").map(str::trim).collect();
    names
        .iter()
        .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .then(|| names.iter().map(|n| format!("warden-{n}")).collect())
}

/// The problems found; empty when the documents match the graph.
pub(super) fn check(graph: &Graph, docs: &Docs<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    let in_readme: BTreeSet<&str> = docs.readme.lines().filter_map(row_crate).collect();
    for krate in graph.keys() {
        // The fuzz crate's directory is `fuzz`.
        let shown = if krate == "warden-fuzz" {
            "fuzz"
        } else {
            krate
        };
        if !in_readme.contains(shown) {
            problems.push(format!("README.md: the crate map has no row for `{shown}`"));
        }
    }
    let mut in_architecture = BTreeSet::new();
    for line in docs.architecture.lines() {
        let Some(krate) = row_crate(line) else {
            continue;
        };
        in_architecture.insert(krate.to_owned());
        let Some(edges) = graph.get(krate) else {
            problems.push(format!(
                "docs/architecture.md: `{krate}` is not a crate of the workspace"
            ));
            continue;
        };
        let Some(written) = cells(line).get(2).and_then(|c| listed(c)) else {
            continue;
        };
        let actual: BTreeSet<String> = edges
            .iter()
            .filter(|(_, kind)| *kind == Kind::Normal)
            .map(|(to, _)| to.clone())
            .collect();
        if written != actual {
            problems.push(format!(
                "docs/architecture.md: `{krate}` is said to depend on {written:?}, but it depends on {actual:?}"
            ));
        }
    }
    for krate in graph.keys() {
        if krate != "warden-fuzz" && !in_architecture.contains(krate.as_str()) {
            problems.push(format!(
                "docs/architecture.md: the crate table has no row for `{krate}`"
            ));
        }
    }
    problems
}
