//! Data labels a result carries, by the charter's `data.sources`.

use std::sync::Arc;

use serde_json::Value;
use warden_charter::CompiledCharter;
use warden_core::path::canonicalize;

use crate::eval::lookup;

/// The labels that the result of `tool(args)`, with text `result_text`, attaches to the
/// session: every source whose conditions (tool, path, pattern) all hold. Sorted, no duplicates.
pub fn result_labels(
    charter: &CompiledCharter,
    tool: &str,
    args: &Value,
    result_text: &str,
) -> Vec<Arc<str>> {
    let mut out: Vec<Arc<str>> = Vec::new();
    for source in &charter.data.sources {
        if source.tools.as_ref().is_some_and(|t| !t.is_match(tool)) {
            continue;
        }
        if let Some(globs) = &source.paths {
            let path = lookup(args, &[source.path_argument.clone()])
                .and_then(Value::as_str)
                .and_then(|p| canonicalize(p).ok());
            if !path.is_some_and(|p| globs.iter().any(|g| g.is_match(&p))) {
                continue;
            }
        }
        if source
            .pattern
            .as_ref()
            .is_some_and(|re| !re.is_match(result_text))
        {
            continue;
        }
        if !out.contains(&source.label) {
            out.push(source.label.clone());
        }
    }
    out.sort();
    out
}
