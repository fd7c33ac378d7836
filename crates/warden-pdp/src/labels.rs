//! Data labels, by the charter's `data.sources`.
//!
//! A source without a `pattern` depends only on the action (its tool and path arguments), so
//! it is applied when the action is allowed, before it is forwarded
//! ([`action_labels`]): a concurrent call of the same session decided after that moment sees
//! the label. A source with a `pattern` needs the result's text ([`result_labels`]).
//!
//! Fail closed: a path argument that cannot be canonicalised (or is not a string) counts as
//! matching, so the label is attached rather than missed.

use std::sync::Arc;

use serde_json::Value;
use warden_charter::{CompiledCharter, DataSource};
use warden_core::path::canonicalize;

use crate::request::lookup;

/// The labels that `tool(args)` attaches to the session as soon as it is allowed: every source
/// without a `pattern` whose tool and path conditions hold. Sorted, no duplicates.
pub fn action_labels(charter: &CompiledCharter, tool: &str, args: &Value) -> Vec<Arc<str>> {
    labels_where(charter, tool, args, |source| source.pattern.is_none())
}

/// The labels that the result of `tool(args)`, with text `result_text`, attaches to the
/// session: every source whose conditions (tool, path, pattern) all hold, those without a
/// pattern included. Sorted, no duplicates.
pub fn result_labels(
    charter: &CompiledCharter,
    tool: &str,
    args: &Value,
    result_text: &str,
) -> Vec<Arc<str>> {
    labels_where(charter, tool, args, |source| {
        source
            .pattern
            .as_ref()
            .is_none_or(|re| re.is_match(result_text))
    })
}

fn labels_where(
    charter: &CompiledCharter,
    tool: &str,
    args: &Value,
    pattern_holds: impl Fn(&DataSource) -> bool,
) -> Vec<Arc<str>> {
    let mut out: Vec<Arc<str>> = Vec::new();
    for source in &charter.data.sources {
        if source.tools.as_ref().is_some_and(|t| !t.is_match(tool)) {
            continue;
        }
        if let Some(globs) = &source.paths {
            // A list of paths carries the label when any of them matches. A value that is not
            // a path warden can canonicalise carries it too: a label is never missed because
            // the path could not be read.
            let matches = |v: &Value| match v.as_str().map(canonicalize) {
                Some(Ok(p)) => globs.iter().any(|g| g.is_match(&p)),
                Some(Err(_)) | None => true,
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
        if !pattern_holds(source) {
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

    /// Issue 10 point 18: a path argument that cannot be canonicalised (percent-encoded, a
    /// NUL byte, not a string) used to carry no label; it carries it now.
    #[test]
    fn issue_10_a_path_that_cannot_be_canonicalised_attaches_the_label() {
        let text = "\
version: 1
identity: { id: t, name: T, purpose: p, serves: s }
inventory:
  servers:
    - { id: fs, command: [x], tools: [read_file] }
data:
  labels: [{ id: confidential }, { id: pii }]
  sources:
    - { label: confidential, tool: fs.read_file, path: \"/secret/**\" }
    - { label: pii, tool: fs.read_file, pattern: \"ssn\" }
";
        let c = compile(&[Source::new("c.yaml", text)]).unwrap().charter;
        for args in [
            serde_json::json!({"path": "/secret/%2e%2e/a"}),
            serde_json::json!({"path": "/secret/a\u{0}b"}),
            serde_json::json!({"path": 7}),
            serde_json::json!({"path": ["/pub/a", {"p": 1}]}),
        ] {
            let labels: Vec<String> = result_labels(&c, "fs.read_file", &args, "x")
                .iter()
                .map(|l| l.to_string())
                .collect();
            assert_eq!(labels, ["confidential"], "{args}");
        }
        // Applied when the action is allowed: the path source, not the pattern source.
        let labels = action_labels(
            &c,
            "fs.read_file",
            &serde_json::json!({"path": "/secret/a"}),
        );
        assert_eq!(labels.len(), 1);
        assert!(
            action_labels(&c, "fs.read_file", &serde_json::json!({"path": "/pub/a"})).is_empty()
        );
    }
}
