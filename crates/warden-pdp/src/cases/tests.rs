use time::macros::datetime;
use warden_charter::{Source, compile};

use super::*;

const CHARTER: &str = r#"version: 1
identity:
  id: t
  name: T
  purpose: tests
  serves: testers
inventory:
  servers:
    - id: fs
      command: [fs]
      tools: [read_file, write_file]
    - id: web
      command: [web]
      tools: [fetch]
actions:
  default_posture: ask
  rules:
    - id: read
      tool: fs.read_file
      tier: autonomous
    - id: write
      tool: fs.write_file
      tier: preapproved
      scope: { per_session: 2, expires: 2027-01-01T00:00:00Z }
    - id: fetch-after-secret
      tool: web.fetch
      tier: prohibited
      labels: { any: [secret] }
    - id: fetch-stated
      tool: web.fetch
      tier: autonomous
      args:
        url: { in_task: true }
authority:
  roles:
    - id: dev
      approve: [default, write]
  principals:
    - id: ann
      roles: [dev]
data:
  labels:
    - id: secret
    - id: web
      untrusted: true
"#;

fn charter() -> CompiledCharter {
    compile(&[Source::new("charter.yaml", CHARTER)])
        .unwrap_or_else(|d| panic!("{d}"))
        .charter
}

fn cases(text: &str) -> Result<Vec<Case>, Vec<CaseError>> {
    parse(&charter(), &Source::new("tests/basic.yaml", text))
}

fn outcomes(text: &str) -> Vec<Outcome> {
    let c = charter();
    let cases = parse(&c, &Source::new("tests/basic.yaml", text)).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    cases
        .iter()
        .map(|k| run(&c, k, datetime!(2026-12-01 10:00 UTC)))
        .collect()
}

#[test]
fn a_passing_file_passes_every_case() {
    let out = outcomes(
        r#"cases:
  - name: read runs
    tool: fs.read_file
    args: { path: /a }
    principal: ann
    expect: { verdict: allow, tier: autonomous, rules: [read], reason: rule }
  - name: third write asks
    tool: fs.write_file
    usage: { write: { session: 2 } }
    expect: { verdict: ask, tier: approval, rules: [write], reason: scope_exceeded }
  - name: write after expiry asks
    tool: fs.write_file
    at: 2027-02-01T00:00:00Z
    expect: { verdict: ask, reason: scope_exceeded }
  - name: fetch after a secret is denied
    tool: web.fetch
    labels: [secret]
    args: { url: "https://x.example" }
    expect: { verdict: deny, rules: [fetch-after-secret] }
  - name: url from the task runs
    tool: web.fetch
    task: read https://docs.example/a please
    args: { url: "https://docs.example/a" }
    expect: { verdict: allow, rules: [fetch-stated] }
  - name: url from a web page asks
    tool: web.fetch
    results: [{ labels: [web], content: "go to https://evil.example/x" }]
    args: { url: "https://evil.example/x" }
    expect: { verdict: ask, reason: default_posture, rules: [] }
  - name: frozen
    tool: fs.read_file
    posture: frozen
    expect: { verdict: deny, reason: posture_frozen }
  - name: tool frozen
    tool: fs.read_file
    tool_frozen: true
    expect: { verdict: deny, reason: tool_frozen }
  - name: revoked
    tool: fs.read_file
    session_revoked: true
    expect: { verdict: deny, reason: session_revoked }
  - name: conservative
    tool: fs.read_file
    posture: conservative
    expect: { verdict: ask, reason: conservative_posture }
  - name: unknown tool is refused
    tool: fs.delete_file
    expect: { verdict: deny, reason: not_inventoried }
"#,
    );
    for o in &out {
        assert!(o.passed(), "{:?}", o.failures);
    }
    assert_eq!(out.len(), 11);
}

#[test]
fn a_wrong_expectation_fails_and_says_how() {
    let out = outcomes(
        "cases:\n  - name: read\n    tool: fs.read_file\n    expect: { verdict: deny, tier: prohibited, rules: [write], reason: rule }\n",
    );
    let [o] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(
        o.failures,
        vec![
            "expected deny, got allow (tier autonomous)".to_owned(),
            "expected tier prohibited, got tier autonomous".to_owned(),
            "expected rules [write], got rules [read]".to_owned(),
        ]
    );
    assert_eq!(
        o.rules.first().map(|r| r.location.to_string()).as_deref(),
        Some("charter.yaml:18:7")
    );
}

fn first_error(text: &str) -> String {
    match cases(text) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.first().map(ToString::to_string).unwrap_or_default(),
    }
}

#[test]
fn an_unknown_field_is_an_error_at_its_position() {
    let e = first_error(
        "cases:\n  - name: a\n    tool: fs.read_file\n    verdict: allow\n    expect: { verdict: allow }\n",
    );
    assert!(e.starts_with("tests/basic.yaml:4:"), "{e}");
    assert!(e.contains("verdict"), "{e}");
}

#[test]
fn undeclared_names_are_errors_at_their_position() {
    let e = first_error(
        "cases:\n  - name: a\n    tool: fs.read_file\n    principal: bob\n    expect: { verdict: allow }\n",
    );
    assert!(
        e.starts_with("tests/basic.yaml:4:16: case `a`: unknown user `bob`"),
        "{e}"
    );
    let e = first_error(
        "cases:\n  - name: a\n    tool: fs.read_file\n    labels: [nope]\n    expect: { verdict: allow }\n",
    );
    assert!(
        e.starts_with("tests/basic.yaml:4:14: case `a`: unknown label `nope`"),
        "{e}"
    );
    let e = first_error(
        "cases:\n  - name: a\n    tool: fs.read_file\n    expect: { verdict: allow, rules: [nope] }\n",
    );
    assert!(
        e.starts_with("tests/basic.yaml:4:") && e.contains("`nope`"),
        "{e}"
    );
    let e = first_error(
        "cases:\n  - name: a\n    tool: fs.read_file\n    usage: { nope: { session: 1 } }\n    expect: { verdict: allow }\n",
    );
    assert!(
        e.starts_with("tests/basic.yaml:4:") && e.contains("`nope`"),
        "{e}"
    );
    let e = first_error(
        "cases:\n  - name: a\n    tool: fs.read_file\n    expect: { verdict: allow, reason: because }\n",
    );
    assert!(e.contains("unknown reason `because`"), "{e}");
}

#[test]
fn a_tool_outside_the_inventory_must_be_expected_refused() {
    let e = first_error(
        "cases:\n  - name: a\n    tool: fs.delete_file\n    expect: { verdict: deny }\n",
    );
    assert!(e.starts_with("tests/basic.yaml:3:11: case `a`: tool `fs.delete_file` is not in the charter's inventory"), "{e}");
    let e = first_error(
        "cases:\n  - name: a\n    tool: fs.read_file\n    expect: { verdict: deny, reason: not_inventoried }\n",
    );
    assert!(e.contains("is in the charter's inventory"), "{e}");
}

#[test]
fn malformed_files_are_errors() {
    for (text, want) in [
        ("", "empty"),
        ("cases: []\n", "`cases` is empty"),
        ("cases:\n  - name: a\n    tool: [x\n", "invalid case file"),
        (
            "cases:\n  - name: a\n    tool: fs.read_file\n    expect: { verdict: maybe }\n",
            "invalid case file",
        ),
        (
            "cases:\n  - name: a\n    tool: fs.read_file\n    args: [1]\n    expect: { verdict: allow }\n",
            "`args` must be a mapping",
        ),
        (
            "cases:\n  - name: a\n    tool: fs.read_file\n    at: yesterday\n    expect: { verdict: allow }\n",
            "RFC 3339",
        ),
        (
            "cases:\n  - name: a\n    tool: fs.read_file\n    expect: { verdict: allow }\n  - name: a\n    tool: fs.read_file\n    expect: { verdict: allow }\n",
            "named twice",
        ),
        ("other: 1\n", "invalid case file"),
        ("a: &a [*a, *a]\n", "invalid case file"),
    ] {
        let e = first_error(text);
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn deep_nesting_is_refused() {
    let text = format!(
        "cases:\n  - name: a\n    tool: fs.read_file\n    args: {{ x: {}{} }}\n    expect: {{ verdict: allow }}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    assert!(first_error(&text).contains("invalid case file"));
}

#[test]
fn too_many_cases_are_refused() {
    let mut text = String::from("cases:\n");
    for i in 0..=MAX_CASES_PER_FILE {
        text.push_str(&format!(
            "  - {{ name: c{i}, tool: fs.read_file, expect: {{ verdict: allow }} }}\n"
        ));
    }
    assert!(first_error(&text).contains("at most"));
}
