//! The provenance syntax of issue 13: untrusted labels, `in_task`, `provenance`, `optional`,
//! `approval.remember`, and the CEL variable `task`.

use super::test_support::{error_text, header, src};
use super::*;

/// Inventory, labels (one untrusted, one not) and `{rules}` after `actions: rules:`.
fn charter(rules: &str) -> String {
    // A `\` line continuation eats the first item's indentation.
    let rules = match rules.strip_prefix("- ") {
        Some(rest) => format!("    - {rest}"),
        None => rules.to_owned(),
    };
    format!(
        "{}{}{rules}{}",
        header!(),
        "\
inventory:
  servers:
    - id: bank
      command: [node, bank.js]
      tools: [transfer]
actions:
  rules:
",
        "\
data:
  labels:
    - id: untrusted_mail
      untrusted: true
    - id: untrusted_web
      description: web pages
      untrusted: true
    - id: secret
"
    )
}

const GOOD: &str = "    - id: pay-named
      tool: bank.transfer
      tier: autonomous
      args:
        iban: { in_task: true }
        memo: { optional: true, provenance: { not_from: [untrusted_mail] } }
      when: 'task.contains(\"pay\")'
    - id: planted
      tool: bank.transfer
      tier: approval
      args:
        iban: { provenance: { from: [untrusted_mail, untrusted_web] } }
      approval:
        remember: [iban, payee.name]
";

#[test]
fn provenance_syntax_compiles_to_the_skeleton_fields() {
    let c = compile(&src(&charter(GOOD))).unwrap().charter;
    let untrusted: Vec<&str> = c.data.untrusted.iter().map(|l| &**l).collect();
    assert_eq!(untrusted, ["untrusted_mail", "untrusted_web"]);
    let pay = c.rule("pay-named").unwrap();
    let iban = pay.args.iter().find(|a| a.argument == "iban").unwrap();
    assert_eq!(iban.matcher.in_task, Some(true));
    assert!(!iban.optional);
    let memo = pay.args.iter().find(|a| a.argument == "memo").unwrap();
    assert!(memo.optional);
    let p = memo.matcher.provenance.as_ref().unwrap();
    assert_eq!(p.from, None);
    assert_eq!(
        p.not_from.as_deref(),
        Some(&[Arc::from("untrusted_mail")][..])
    );
    assert!(pay.remember.is_empty());
    assert_eq!(
        pay.when.as_ref().unwrap().variables,
        vec!["task".to_owned()]
    );
    let planted = c.rule("planted").unwrap();
    let from = planted.args[0]
        .matcher
        .provenance
        .as_ref()
        .unwrap()
        .from
        .clone();
    assert_eq!(from.unwrap().len(), 2);
    let remember: Vec<(&str, Vec<&str>)> = planted
        .remember
        .iter()
        .map(|r| {
            (
                r.argument.as_str(),
                r.path.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        remember,
        [
            ("iban", vec!["iban"]),
            ("payee.name", vec!["payee", "name"])
        ]
    );
}

#[test]
fn provenance_labels_must_be_declared_and_untrusted() {
    let rules = "    - id: r
      tool: bank.transfer
      tier: approval
      args:
        iban: { provenance: { from: [secret, untrusted_mial] } }
";
    let r = error_text(&charter(rules));
    assert!(
        r.contains("charter.yaml:18:37: error: label `secret` is not marked untrusted"),
        "{r}"
    );
    assert!(r.contains("add `untrusted: true` to label `secret`"), "{r}");
    assert!(r.contains("unknown label `untrusted_mial`"), "{r}");
    assert!(r.contains("untrusted_mail"), "did you mean: {r}");
}

#[test]
fn provenance_needs_from_or_not_from_and_no_empty_list() {
    let rules = "    - id: r
      tool: bank.transfer
      tier: approval
      args:
        iban: { provenance: {} }
        memo: { provenance: { from: [] } }
";
    let r = error_text(&charter(rules));
    assert!(r.contains("`provenance` needs `from` or `not_from`"), "{r}");
    assert!(r.contains("`provenance.from` is empty"), "{r}");
}

#[test]
fn optional_alone_is_not_a_value_constraint() {
    let rules = "    - id: r
      tool: bank.transfer
      tier: autonomous
      args:
        memo: { optional: true }
";
    let r = error_text(&charter(rules));
    assert!(
        r.contains("charter.yaml:18:15: error: the constraint on argument `memo` is empty"),
        "{r}"
    );
    assert!(
        r.contains("`optional` only says what an absent argument does"),
        "{r}"
    );
}

#[test]
fn provenance_keys_are_refused_inside_not() {
    let rules = "    - id: r
      tool: bank.transfer
      tier: autonomous
      args:
        memo: { not: { optional: true, in_task: true, provenance: { from: [untrusted_mail] } } }
";
    let r = error_text(&charter(rules));
    for key in ["optional", "in_task", "provenance"] {
        assert!(
            r.contains(&format!("`{key}` is not allowed inside `not`")),
            "{r}"
        );
    }
}

#[test]
fn remember_only_on_approval_rules_and_valid_names() {
    let rules = "    - id: r
      tool: bank.transfer
      tier: autonomous
      approval:
        remember: [iban, 'a..b', iban]
";
    let r = error_text(&charter(rules));
    assert!(
        r.contains("charter.yaml:18:19: error: `approval.remember` applies only to rules of tier `approval`, and this rule is `autonomous`"),
        "{r}"
    );
    assert!(r.contains("invalid argument name `a..b`"), "{r}");
    assert!(r.contains("argument `iban` is named twice"), "{r}");
    let top = charter("    - id: r\n      tool: bank.transfer\n      tier: approval\n").replace(
        "actions:\n  rules:\n",
        "actions:\n  approval:\n    remember: [iban]\n  rules:\n",
    );
    let r = error_text(&top);
    assert!(
        r.contains("`remember` applies only to a rule's `approval`"),
        "{r}"
    );
}

#[test]
fn untrusted_must_be_a_boolean() {
    let text = charter("    - id: r\n      tool: bank.transfer\n      tier: approval\n").replace(
        "untrusted: true\n    - id: untrusted_web",
        "untrusted: yes please\n    - id: untrusted_web",
    );
    let r = error_text(&text);
    assert!(r.contains("charter.yaml:"), "{r}");
    assert!(r.contains("untrusted"), "{r}");
}

#[test]
fn task_is_a_cel_variable() {
    assert!(CEL_VARIABLES.contains(&"task"));
}

#[test]
fn lints_see_the_new_keys() {
    // Same conditions, one with `optional`: not duplicates (they differ on absent memos).
    let rules = "    - id: a
      tool: bank.transfer
      tier: autonomous
      args: { memo: { provenance: { not_from: [untrusted_mail] } } }
    - id: b
      tool: bank.transfer
      tier: autonomous
      args: { memo: { optional: true, provenance: { not_from: [untrusted_mail] } } }
    - id: c
      tool: bank.transfer
      tier: approval
      args: { iban: { in_task: false } }
      approval: { remember: [iban] }
    - id: d
      tool: bank.transfer
      tier: approval
      args: { iban: { in_task: false } }
    - id: e
      tool: bank.transfer
      tier: prohibited
      args: { iban: { in_task: false } }
";
    let c = compile(&src(&charter(rules))).unwrap();
    let w = c.warnings.to_string();
    assert!(!w.contains("`b` duplicates"), "{w}");
    assert!(!w.contains("`a` duplicates"), "{w}");
    // `remember` is not a condition: c and d are no duplicates, yet e shadows c as it
    // conflicts with d (same conditions).
    assert!(!w.contains("duplicates rule `c`"), "{w}");
    assert!(
        w.contains("rule `c` is shadowed by the stricter rule `e`"),
        "{w}"
    );
    assert!(w.contains("rules `d` and `e` conflict"), "{w}");
}
