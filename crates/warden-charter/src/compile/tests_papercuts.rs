//! The diagnostics of a half-written charter (issue 11, point 6): one error for a section
//! with a missing field, and the hint to quote a value that YAML reads as an alias.

use super::test_support::{error_text as errors, header};

const SERVER: &str = concat!(
    header!(),
    "\
inventory:
  servers:
    - id: fs
      tools: [read]
"
);

#[test]
fn an_identity_with_a_missing_field_is_one_error_not_two() {
    let text = "version: 1\nidentity:\n  id: demo\n  name: Demo\n  purpose: test\n";
    let r = errors(text);
    assert!(r.contains("serves"), "{r}");
    assert!(!r.contains("has no `identity` section"), "{r}");
    let r = errors("version: x\nidentity: { id: d, name: D, purpose: p, serves: s }\n");
    assert!(!r.contains("has no `version`"), "{r}");
}

#[test]
fn an_unquoted_star_value_gets_the_hint_to_quote_it() {
    let text = format!(
        "{SERVER}actions:\n  rules:\n    - {{ id: r, tool: fs.read, tier: autonomous, args: {{ url: {{ host: *.example.com }} }} }}\n"
    );
    let r = errors(&text);
    assert!(r.contains("invalid YAML"), "{r}");
    assert!(r.contains("quote a value that starts with `*`"), "{r}");
}
