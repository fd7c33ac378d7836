use std::ffi::OsString;

use warden_charter::{HttpAuth, PerPrincipal, SecretTemplate};

use super::*;

fn t(s: &str) -> SecretTemplate {
    SecretTemplate::parse(s).unwrap()
}

fn env(name: &str) -> Option<OsString> {
    match name {
        "GITHUB_TOKEN" => Some("ghp-secret-value-1".into()),
        "EMPTY" => Some(OsString::new()),
        _ => None,
    }
}

/// Issue 11, point 3: a header value is assembled from the environment and a file; both
/// values, and the whole header, are secrets; `Debug` shows names only.
#[test]
fn issue_11_headers_resolve_from_env_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let team = dir.path().join("team");
    std::fs::write(&team, "team-secret-42\n").unwrap();
    let auth = HttpAuth {
        headers: vec![
            ("authorization".into(), t("Bearer ${GITHUB_TOKEN}")),
            ("x-team".into(), t(&format!("${{file:{}}}", team.display()))),
        ],
        ..HttpAuth::default()
    };
    let c = HttpCredentials::resolve("gh", &auth, &env).unwrap();
    assert_eq!(c.shared["authorization"], "Bearer ghp-secret-value-1");
    assert_eq!(c.shared["x-team"], "team-secret-42");
    for s in [
        "ghp-secret-value-1",
        "Bearer ghp-secret-value-1",
        "team-secret-42",
    ] {
        assert!(c.secret_values().iter().any(|v| v == s), "{s}");
    }
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("ghp-secret") && !debug.contains("team-secret"),
        "{debug}"
    );
}

/// An unset or empty variable, and a missing file, stop start-up naming the server and the
/// variable or file.
#[test]
fn issue_11_unresolvable_references_are_named_errors() {
    for (value, expect) in [
        ("Bearer ${MISSING}", "`MISSING`"),
        ("${EMPTY}", "`EMPTY`"),
        (
            "${file:/nonexistent/warden-token}",
            "`/nonexistent/warden-token`",
        ),
    ] {
        let auth = HttpAuth {
            headers: vec![("authorization".into(), t(value))],
            ..HttpAuth::default()
        };
        let e = HttpCredentials::resolve("gh", &auth, &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server `gh`") && e.contains(expect), "{e}");
    }
    // A value that would smuggle a second header is refused, without echoing it.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t");
    std::fs::write(&f, "abc\r\nX-Evil: 1\n").unwrap();
    let auth = HttpAuth {
        headers: vec![(
            "authorization".into(),
            t(&format!("${{file:{}}}", f.display())),
        )],
        ..HttpAuth::default()
    };
    let e = HttpCredentials::resolve("gh", &auth, &env)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a valid HTTP header value") && !e.contains("X-Evil"),
        "{e}"
    );
}

/// Per-principal credentials: a listed principal gets its own, an unlisted one is refused
/// unless the server falls back to the shared headers.
#[test]
fn issue_11_per_principal_choice_fails_closed() {
    let mut principals = std::collections::BTreeMap::new();
    principals.insert(
        "alice".to_owned(),
        vec![("authorization".to_owned(), t("Bearer alice-token-1"))],
    );
    let mut auth = HttpAuth {
        headers: vec![("x-team".into(), t("eng"))],
        per_principal: Some(PerPrincipal {
            principals,
            fallback: CredentialFallback::Refuse,
        }),
        oauth: None,
    };
    let c = HttpCredentials::resolve("gh", &auth, &env).unwrap();
    match c.choice("alice") {
        Choice::Principal(h) => {
            assert_eq!(h["authorization"], "Bearer alice-token-1");
            assert_eq!(h["x-team"], "eng");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(c.choice("carol"), Choice::Refused));
    if let Some(p) = auth.per_principal.as_mut() {
        p.fallback = CredentialFallback::Shared;
    }
    let c = HttpCredentials::resolve("gh", &auth, &env).unwrap();
    assert!(matches!(c.choice("carol"), Choice::Shared));
}
