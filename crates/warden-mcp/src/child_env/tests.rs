use std::collections::HashMap;

use super::*;

fn gateway_env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
        .collect();
    move |name| map.get(name).cloned()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn names(e: &ChildEnv) -> Vec<&str> {
    e.vars().iter().map(|(k, _)| k.as_str()).collect()
}

#[test]
fn only_the_passed_through_variables_and_the_charters_reach_a_child() {
    let lookup = gateway_env(&[
        ("PATH", "/usr/bin"),
        ("HOME", "/home/w"),
        ("OPENAI_API_KEY", "sk-secret"),
        ("GIT_TOKEN", "ghp-secret"),
        ("RUST_LOG", "debug"),
    ]);
    let e = ChildEnv::resolve(
        "git",
        &env(&[("PUSH_TOKEN", "${GIT_TOKEN}"), ("MODE", "plain")]),
        &lookup,
    )
    .unwrap();
    assert_eq!(names(&e), ["PATH", "HOME", "PUSH_TOKEN", "MODE"]);
    assert_eq!(e.vars()[2].1, "ghp-secret");
    assert_eq!(e.vars()[3].1, "plain");
    // The values are secrets: `Debug` shows the names only.
    assert!(!format!("{e:?}").contains("ghp-secret"));
}

#[test]
fn the_charter_wins_over_a_passed_through_variable() {
    let lookup = gateway_env(&[("PATH", "/usr/bin"), ("LANG", "C.UTF-8")]);
    let e = ChildEnv::resolve("fs", &env(&[("PATH", "/opt/tools/bin")]), &lookup).unwrap();
    assert_eq!(names(&e), ["LANG", "PATH"]);
    assert_eq!(e.vars()[1].1, "/opt/tools/bin");
}

#[test]
fn an_empty_variable_is_set_but_a_missing_one_is_an_error_naming_server_and_variable() {
    let lookup = gateway_env(&[("EMPTY", "")]);
    let e = ChildEnv::resolve("s", &env(&[("A", "${EMPTY}")]), &lookup).unwrap();
    assert_eq!(e.vars(), [("A".to_owned(), OsString::new())]);

    let unset = ChildEnv::resolve(
        "git",
        &env(&[("PUSH_TOKEN", "${GIT_TOKEN}"), ("B", "${ALSO_MISSING}")]),
        &lookup,
    )
    .unwrap_err();
    let message = UnsetVariables(unset).to_string();
    assert_eq!(
        message,
        "server `git` needs the environment variable `GIT_TOKEN` (its `env` sets `PUSH_TOKEN: \"${GIT_TOKEN}\"`), which is not set; \
         server `git` needs the environment variable `ALSO_MISSING` (its `env` sets `B: \"${ALSO_MISSING}\"`), which is not set; \
         set it in the gateway's environment, or remove it from the charter"
    );
}

#[test]
fn only_a_whole_value_names_a_variable() {
    let lookup = gateway_env(&[("X", "secret")]);
    let e = ChildEnv::resolve(
        "s",
        &env(&[("A", "pre-${X}"), ("B", "${X"), ("C", "$X")]),
        &lookup,
    )
    .unwrap();
    let values: Vec<&OsString> = e.vars().iter().map(|(_, v)| v).collect();
    assert_eq!(values, ["pre-${X}", "${X", "$X"]);
}

/// A real child: the process started with the environment sees none of this process's
/// variables beyond the passed-through ones (under a test runner there are plenty, `CARGO_*`
/// among them), and sees the charter's.
#[tokio::test]
async fn a_real_child_sees_nothing_else_of_the_parents_environment() {
    let e = ChildEnv::resolve("s", &env(&[("FROM_CHARTER", "yes")]), &|name: &str| {
        std::env::var_os(name)
    })
    .unwrap();
    let mut cmd = tokio::process::Command::new("env");
    e.apply(&mut cmd);
    let out = cmd.output().await.unwrap();
    assert!(out.status.success());
    let mut seen: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_owned()))
        .collect();
    let mut expected: Vec<String> = PASSED_THROUGH
        .iter()
        .filter(|n| std::env::var_os(n).is_some())
        .map(|n| (*n).to_owned())
        .collect();
    expected.push("FROM_CHARTER".to_owned());
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
    assert!(
        std::env::vars_os().count() > expected.len(),
        "the test process has variables of its own to keep from the child"
    );
}
