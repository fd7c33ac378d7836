use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_example_set_loads() {
    let dir = repo().join("examples/agents");
    let paths = set_directory(&dir).expect("a set directory");
    let loaded = load_set(&paths).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        loaded.set.agents().collect::<Vec<_>>(),
        ["coordinator", "support", "worker"]
    );
    assert!(loaded.warnings.is_empty(), "{}", loaded.warnings);
}

fn charter(id: &str, rest: &str) -> String {
    format!(
        "version: 1\nidentity:\n  id: {id}\n  name: A\n  purpose: test\n  serves: tests\n{rest}"
    )
}

/// Writes `charters` (name, text) as `DIR/name/charter.yaml` and loads them as a set.
fn load(charters: &[(&str, String)]) -> (tempfile::TempDir, Result<CompiledSet, Diagnostics>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths = Vec::new();
    for (name, text) in charters {
        let path = dir.path().join(name);
        std::fs::create_dir_all(&path).expect("mkdir");
        std::fs::write(path.join("charter.yaml"), text).expect("write");
        paths.push(path);
    }
    let loaded = load_set(&paths);
    (dir, loaded)
}

/// Every diagnostic, with the temporary directory's prefix dropped.
fn text(dir: &tempfile::TempDir, diags: &Diagnostics) -> String {
    diags
        .to_string()
        .replace(&format!("{}/", dir.path().display()), "")
}

#[test]
fn two_charters_for_one_agent_are_an_error_at_the_second_identity() {
    let (dir, loaded) = load(&[("a", charter("same", "")), ("b", charter("same", ""))]);
    let diags = loaded.expect_err("duplicate");
    assert_eq!(
        text(&dir, &diags),
        "b/charter.yaml:3:7: error: agent `same` is governed by two charters\n  hint: the first is at a/charter.yaml:3:7; each agent of a set has one charter\n"
    );
}

#[test]
fn unknown_agents_in_delegation_and_server_agent_are_errors_at_the_entry() {
    let a = charter(
        "a",
        "delegation:\n  to: [b, wroker]\n  from: [nobody]\ninventory:\n  servers:\n    - { id: x, command: [x], agent: ghost, tools: [t] }\n",
    );
    let b = charter("b", "delegation:\n  from: [a]\n");
    let (dir, loaded) = load(&[("a", a), ("b", b)]);
    assert_eq!(
        text(&dir, &loaded.expect_err("unknown agents")),
        "a/charter.yaml:8:11: error: `delegation.to` names agent `wroker`, which has no charter in the set\n  hint: the set's agents are `a`, `b`\n\
a/charter.yaml:9:10: error: `delegation.from` names agent `nobody`, which has no charter in the set\n  hint: the set's agents are `a`, `b`\n\
a/charter.yaml:12:7: warning: tool `x.t` is classified by no rule; its calls fall to the default posture\n  hint: add a rule for it, even `tier: approval`, so the intent is written down\n\
a/charter.yaml:12:37: error: server `x` names agent `ghost`, which has no charter in the set\n  hint: the set's agents are `a`, `b`\n"
    );
}

#[test]
fn a_one_charter_set_still_refuses_a_delegation_to_an_agent_not_loaded() {
    let (dir, loaded) = load(&[("a", charter("a", "delegation:\n  to: [worker]\n"))]);
    assert_eq!(
        text(&dir, &loaded.expect_err("worker is not loaded")),
        "a/charter.yaml:8:8: error: `delegation.to` names agent `worker`, which has no charter in the set\n  hint: the set's agents are `a`\n"
    );
}

#[test]
fn a_delegation_only_one_side_declares_is_a_warning() {
    let a = charter("a", "delegation:\n  to: [b]\n");
    let b = charter("b", "delegation:\n  to: [a]\n");
    let (dir, loaded) = load(&[("a", a), ("b", b)]);
    let loaded = loaded.unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        text(&dir, &loaded.warnings),
        "a/charter.yaml:8:8: warning: `delegation.to` names `b`, whose charter does not accept `a` (`delegation.from`): this delegation can never happen\n  hint: add `a` to `delegation.from` in the charter of `b`, or remove `b` here\n\
b/charter.yaml:8:8: warning: `delegation.to` names `a`, whose charter does not accept `b` (`delegation.from`): this delegation can never happen\n  hint: add `b` to `delegation.from` in the charter of `a`, or remove `a` here\n"
    );
    let a = charter("a", "delegation:\n  from: [b]\n");
    let b = charter("b", "");
    let (dir, loaded) = load(&[("a", a), ("b", b)]);
    let loaded = loaded.unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        text(&dir, &loaded.warnings),
        "a/charter.yaml:8:10: warning: `delegation.from` names `b`, whose charter does not delegate to `a` (`delegation.to`): this delegation can never happen\n  hint: add `a` to `delegation.to` in the charter of `b`, or remove `b` here\n"
    );
}

#[test]
fn a_server_id_declared_differently_by_two_charters_is_an_error_at_the_second() {
    let server = |tools: &str| {
        format!(
            "inventory:\n  servers:\n    - {{ id: fs, command: [fs-server], tools: [{tools}] }}\nactions:\n  rules:\n    - {{ id: r, tool: \"fs.*\", tier: autonomous }}\n"
        )
    };
    let (_dir, loaded) = load(&[
        ("a", charter("a", &server("read"))),
        ("b", charter("b", &server("read"))),
    ]);
    assert!(loaded.is_ok(), "the same declaration is fine");
    let (dir, loaded) = load(&[
        ("a", charter("a", &server("read"))),
        ("b", charter("b", &server("read, write"))),
    ]);
    assert_eq!(
        text(&dir, &loaded.expect_err("differs")),
        "b/charter.yaml:9:13: error: server `fs` is declared differently by the charters of `a` and `b`\n  hint: a server id names one upstream for the whole gateway: declare it alike (transport, tools, sandbox, auth, agent) or give it another id; the first is at a/charter.yaml:9:13\n"
    );
}

#[test]
fn a_shared_stdio_server_confined_differently_by_two_charters_is_an_error() {
    let rules = |glob: &str| {
        format!(
            "inventory:\n  servers:\n    - {{ id: fs, command: [fs-server], tools: [write] }}\nactions:\n  rules:\n    - {{ id: w, tool: fs.write, tier: autonomous, args: {{ path: {{ glob: \"{glob}\" }} }} }}\n"
        )
    };
    // Different globs with one root are fine: the process is confined alike.
    let (_dir, loaded) = load(&[
        ("a", charter("a", &rules("/srv/work/{plans,notes}/**"))),
        ("b", charter("b", &rules("/srv/work/{src,tests}/**"))),
    ]);
    assert!(loaded.is_ok(), "{:?}", loaded.err());
    let (dir, loaded) = load(&[
        ("a", charter("a", &rules("/srv/work/plans/**"))),
        ("b", charter("b", &rules("/srv/work/src/**"))),
    ]);
    assert_eq!(
        text(&dir, &loaded.expect_err("confined differently")),
        "b/charter.yaml:9:13: error: server `fs` is confined differently by the charters of `a` and `b`: the path roots their rules give it are `/srv/work/plans` and `/srv/work/src`\n  hint: the gateway runs one process per server id, confined to the literal directories of the path globs in the rules for its tools that are not `prohibited`: write those globs with the same roots in both charters (`/srv/work/{src,tests}/**` has the root `/srv/work`), or give each agent its own server id\n"
    );
}
