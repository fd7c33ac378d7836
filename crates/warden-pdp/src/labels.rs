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
            // A list of paths carries the label when any of them matches.
            let matches = |v: &Value| {
                v.as_str()
                    .and_then(|p| canonicalize(p).ok())
                    .is_some_and(|p| globs.iter().any(|g| g.is_match(&p)))
            };
            let hit = match lookup(args, &source.path_argument_path) {
                Some(Value::Array(items)) => items.iter().any(matches),
                Some(v) => matches(v),
                None => false,
            };
            if !hit {
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

#[cfg(test)]
mod tests {
    use warden_charter::{Source, compile};

    use super::*;

    #[test]
    fn labels_follow_tool_path_and_pattern() {
        let text = "\
version: 1
identity: { id: t, name: T, purpose: p, serves: s }
inventory:
  servers:
    - { id: fs, command: [x], tools: [read_file, write_file] }
    - { id: crm, command: [x], tools: [lookup] }
data:
  labels: [{ id: confidential }, { id: pii }, { id: finance }]
  sources:
    - { label: confidential, tool: \"fs.read_*\", path: \"/secret/**\" }
    - { label: pii, tool: crm.lookup }
    - { label: pii, pattern: \"\\\\b\\\\d{3}-\\\\d{2}-\\\\d{4}\\\\b\" }
    - { label: finance, path: \"/finance/**\", path_argument: file }
    - { label: confidential, tool: fs.read_file, path: \"/vault/**\", path_argument: req.paths }
";
        let c = compile(&[Source::new("c.yaml", text)]).unwrap().charter;
        let labels = |tool: &str, args: serde_json::Value, text: &str| -> Vec<String> {
            result_labels(&c, tool, &args, text)
                .iter()
                .map(|l| l.to_string())
                .collect()
        };
        assert_eq!(
            labels(
                "fs.read_file",
                serde_json::json!({"path": "/secret/a"}),
                "x"
            ),
            ["confidential"]
        );
        assert_eq!(
            labels(
                "fs.read_file",
                serde_json::json!({"path": "/secret/../pub/a"}),
                "x"
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            labels(
                "fs.write_file",
                serde_json::json!({"path": "/secret/a"}),
                "x"
            ),
            Vec::<String>::new()
        );
        assert_eq!(labels("crm.lookup", serde_json::json!({}), "name"), ["pii"]);
        assert_eq!(
            labels(
                "fs.read_file",
                serde_json::json!({"path": "/pub"}),
                "ssn 123-45-6789"
            ),
            ["pii"]
        );
        assert_eq!(
            labels(
                "fs.read_file",
                serde_json::json!({"path": "/secret/x", "file": "/finance/q3"}),
                "123-45-6789"
            ),
            ["confidential", "finance", "pii"]
        );
        assert_eq!(
            labels(
                "fs.read_file",
                serde_json::json!({"req": {"paths": ["/pub/a", "/vault/b"]}}),
                "x"
            ),
            ["confidential"]
        );
    }
}
