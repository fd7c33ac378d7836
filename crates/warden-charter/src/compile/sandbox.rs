//! Compiling a stdio server's `sandbox`: its mode and the paths it adds to the confinement.

use warden_core::path::canonicalize;

use super::collect::Item;
use crate::compiled::{Sandbox, SandboxMode};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::raw::{RawSandboxMode, RawServer};

/// The server's sandbox: the defaults when it writes none. `sandbox` on a server without
/// `command` is an error, and so is a path that is not absolute and canonical (at its own
/// position in the list).
pub(super) fn sandbox(item: &Item<'_, RawServer>, diags: &mut Diagnostics) -> Sandbox {
    let Some(raw) = &item.raw.sandbox else {
        return Sandbox::default();
    };
    if item.raw.command.is_none() {
        diags.push(
            Diagnostic::error(
                item.at_path(&["sandbox"]),
                "`sandbox` applies only to a stdio server (`command`)",
            )
            .with_hint("a server reached over HTTP runs elsewhere; confine it where it runs"),
        );
    }
    let mode = match raw.mode {
        None | Some(RawSandboxMode::Auto) => SandboxMode::Auto,
        Some(RawSandboxMode::Required) => SandboxMode::Required,
        Some(RawSandboxMode::Off) => SandboxMode::Off,
    };
    Sandbox {
        mode,
        read: paths(item, "read", &raw.read, diags),
        write: paths(item, "write", &raw.write, diags),
        location: Some(item.at_path(&["sandbox"])),
    }
}

/// The paths of `sandbox.<key>`, each absolute and in canonical form.
fn paths(
    item: &Item<'_, RawServer>,
    key: &str,
    paths: &[String],
    diags: &mut Diagnostics,
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let at = item
            .node
            .get("sandbox")
            .and_then(|(_, n)| n.get(key))
            .and_then(|(_, n)| n.items().get(i))
            .map_or_else(|| item.at_path(&["sandbox", key]), |n| item.file.at(n));
        if !path.starts_with('/') {
            diags.push(
                Diagnostic::error(at, format!("sandbox path `{path}` is not absolute"))
                    .with_hint("the kernel confines by absolute paths; write it from `/`"),
            );
            continue;
        }
        if canonicalize(path).as_deref() != Ok(path.as_str()) {
            diags.push(
                Diagnostic::error(
                    at,
                    format!("sandbox path `{path}` is not in canonical form"),
                )
                .with_hint(
                    "no `.`, `..`, `//`, trailing `/`, percent-encoding or look-alike characters",
                ),
            );
            continue;
        }
        if !out.contains(path) {
            out.push(path.clone());
        }
    }
    out
}
