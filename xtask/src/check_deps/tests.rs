//! The checker against hand-built graphs, and the crate map against itself.

use super::*;

/// A graph from `(crate, [(dependency, kind)])` rows.
fn graph(rows: &[(&str, &[(&str, Kind)])]) -> Graph {
    rows.iter()
        .map(|(krate, edges)| {
            let edges = edges.iter().map(|(to, kind)| ((*to).to_owned(), *kind));
            ((*krate).to_owned(), edges.collect())
        })
        .collect()
}

/// A workspace that keeps the crate map: the gateway on everything below it, the approval
/// crate on the core and the charter (with the ledger for its tests only).
fn today() -> Graph {
    use Kind::{Dev, Normal};
    graph(&[
        ("warden-core", &[]),
        ("warden-charter", &[("warden-core", Normal)]),
        (
            "warden-pdp",
            &[("warden-core", Normal), ("warden-charter", Normal)],
        ),
        ("warden-audit", &[("warden-core", Normal)]),
        ("warden-llm", &[]),
        (
            "warden-approval",
            &[
                ("warden-core", Normal),
                ("warden-charter", Normal),
                ("warden-audit", Dev),
            ],
        ),
        (
            "warden-gateway",
            &[
                ("warden-core", Normal),
                ("warden-charter", Normal),
                ("warden-pdp", Normal),
                ("warden-audit", Normal),
                ("warden-approval", Normal),
                ("warden-llm", Normal),
                ("warden-testkit", Dev),
            ],
        ),
        (
            "warden",
            &[("warden-gateway", Normal), ("warden-pdp", Normal)],
        ),
        ("warden-testkit", &[]),
        (
            "warden-fuzz",
            &[("warden-charter", Normal), ("warden-core", Normal)],
        ),
        ("xtask", &[]),
    ])
}

#[test]
fn todays_workspace_passes() {
    assert_eq!(check(CRATE_MAP, &today()), []);
}

#[test]
fn an_edge_outside_the_row_is_forbidden() {
    let mut g = today();
    g.get_mut("warden-pdp")
        .unwrap()
        .insert(("warden-audit".to_owned(), Kind::Normal));
    let violations = check(CRATE_MAP, &g);
    assert_eq!(
        violations,
        [Violation::Forbidden {
            from: "warden-pdp".to_owned(),
            to: "warden-audit".to_owned(),
            kind: Kind::Normal,
            allowed: Allowed::Only(&["warden-core", "warden-charter", "warden-provenance"]),
        }]
    );
    assert_eq!(
        violations[0].to_string(),
        "forbidden edge `warden-pdp` -> `warden-audit` (dependency): the crate map lets \
         `warden-pdp` depend on `warden-core`, `warden-charter` and `warden-provenance` only"
    );
}

#[test]
fn a_build_dependency_is_checked_like_a_normal_one() {
    let g = graph(&[
        ("warden-core", &[("warden-charter", Kind::Build)]),
        ("warden-charter", &[]),
    ]);
    let violations = check(CRATE_MAP, &g);
    assert_eq!(violations.len(), 1);
    assert_eq!(
        violations[0].to_string(),
        "forbidden edge `warden-core` -> `warden-charter` (build-dependency): the crate map \
         lets `warden-core` depend on no workspace crate"
    );
}

#[test]
fn dev_dependencies_are_free() {
    let g = graph(&[
        ("warden-pdp", &[("warden-audit", Kind::Dev)]),
        ("warden-audit", &[]),
    ]);
    assert_eq!(check(CRATE_MAP, &g), []);
}

#[test]
fn the_testkit_never_depends_on_the_binary() {
    let g = graph(&[
        ("warden-testkit", &[("warden", Kind::Normal)]),
        ("warden", &[]),
    ]);
    let violations = check(CRATE_MAP, &g);
    assert_eq!(violations.len(), 1);
    assert_eq!(
        violations[0].to_string(),
        "forbidden edge `warden-testkit` -> `warden` (dependency): the crate map lets \
         `warden-testkit` depend on any workspace crate except `warden`"
    );
}

#[test]
fn a_crate_without_a_row_is_reported() {
    let mut g = today();
    g.insert(
        "warden-dashboard".to_owned(),
        [("warden-core".to_owned(), Kind::Normal)].into(),
    );
    let violations = check(CRATE_MAP, &g);
    assert_eq!(
        violations,
        [Violation::Unknown {
            krate: "warden-dashboard".to_owned()
        }]
    );
    assert!(
        violations[0]
            .to_string()
            .starts_with("`warden-dashboard` is a workspace crate without a row")
    );
}

#[test]
fn the_observer_never_depends_on_the_gateway_not_even_for_tests() {
    for kind in [Kind::Normal, Kind::Dev] {
        let mut g = today();
        g.insert(
            "warden-observer".to_owned(),
            [
                ("warden-core".to_owned(), Kind::Normal),
                ("warden-audit".to_owned(), Kind::Normal),
                ("warden-gateway".to_owned(), kind),
            ]
            .into(),
        );
        let violations = check(CRATE_MAP, &g);
        assert_eq!(
            violations,
            [Violation::Never {
                from: "warden-observer".to_owned(),
                to: "warden-gateway".to_owned(),
                kind,
            }],
            "{kind}"
        );
        assert_eq!(
            violations[0].to_string(),
            format!(
                "forbidden edge `warden-observer` -> `warden-gateway` ({kind}): \
                 `warden-observer` never depends on `warden-gateway`, not even as a \
                 dev-dependency"
            )
        );
    }
}

#[test]
fn a_cycle_is_reported_even_where_every_edge_is_allowed() {
    let g = graph(&[
        ("warden-fuzz", &[("xtask", Kind::Normal)]),
        ("xtask", &[("warden-fuzz", Kind::Build)]),
    ]);
    let violations = check(CRATE_MAP, &g);
    assert_eq!(
        violations,
        [Violation::Cycle {
            path: vec!["warden-fuzz".into(), "xtask".into(), "warden-fuzz".into()]
        }]
    );
    assert_eq!(
        violations[0].to_string(),
        "dependency cycle: `warden-fuzz` -> `xtask` -> `warden-fuzz`"
    );
}

#[test]
fn a_dev_dependency_may_close_a_loop() {
    // The gateway's tests use the test kit, which is built on the gateway.
    let mut g = today();
    g.insert(
        "warden-testkit".to_owned(),
        [("warden-gateway".to_owned(), Kind::Normal)].into(),
    );
    assert_eq!(check(CRATE_MAP, &g), []);
}

#[test]
fn internal_dependencies_are_the_path_dependencies_on_members() {
    let json = r#"{"packages": [
        {"name": "warden-core", "dependencies": [
            {"name": "serde", "kind": null, "path": null}
        ]},
        {"name": "warden-audit", "dependencies": [
            {"name": "warden-core", "kind": null, "path": "/w/crates/warden-core"},
            {"name": "warden-core", "kind": "dev", "path": "/w/crates/warden-core"},
            {"name": "xtask", "kind": "build", "path": null},
            {"name": "vendored", "kind": null, "path": "/elsewhere/vendored"}
        ]}
    ], "workspace_members": [], "version": 1}"#;
    assert_eq!(
        graph_from_metadata(json).unwrap(),
        graph(&[
            ("warden-core", &[]),
            (
                "warden-audit",
                &[("warden-core", Kind::Normal), ("warden-core", Kind::Dev)]
            ),
        ])
    );
}

#[test]
fn the_rendered_map_lists_crates_in_map_order() {
    let g = graph(&[
        ("zebra", &[]),
        (
            "warden-gateway",
            &[("warden-core", Kind::Normal), ("warden-testkit", Kind::Dev)],
        ),
        ("warden-core", &[]),
        ("warden-charter", &[("warden-core", Kind::Build)]),
    ]);
    assert_eq!(
        render(CRATE_MAP, &g),
        "crate map checked (internal dependencies, [dev-dependencies]):\n\
         \x20 warden-core     -\n\
         \x20 warden-charter  warden-core (build)\n\
         \x20 warden-gateway  warden-core [warden-testkit]\n\
         \x20 zebra           - (no row)\n"
    );
}

#[test]
fn every_crate_the_map_names_has_one_row() {
    let rows: Vec<&str> = CRATE_MAP.iter().map(|r| r.krate).collect();
    let unique: BTreeSet<&str> = rows.iter().copied().collect();
    assert_eq!(rows.len(), unique.len(), "a crate has two rows");
    for row in CRATE_MAP {
        let (Allowed::Only(named) | Allowed::AnythingExcept(named)) = row.allowed;
        for name in named.iter().chain(row.never) {
            assert!(
                unique.contains(name),
                "the row of `{}` names `{name}`, which has no row",
                row.krate
            );
        }
    }
}

#[test]
fn the_approval_crate_may_not_link_the_ledger() {
    let mut g = today();
    g.insert(
        "warden-approval".to_owned(),
        [
            ("warden-core".to_owned(), Kind::Normal),
            ("warden-audit".to_owned(), Kind::Normal),
        ]
        .into_iter()
        .collect(),
    );
    let problems = check(CRATE_MAP, &g);
    assert!(
        problems.iter().any(|p| matches!(p, Violation::Forbidden { from, to, .. } if from == "warden-approval" && to == "warden-audit")),
        "{problems:?}"
    );
}

mod documents {
    use super::super::docs::{Docs, check};
    use super::*;

    const README: &str = "| crate | what |\n|---|---|\n| `crates/warden-core` | v |\n| `crates/warden-charter` | c |\n";

    fn two() -> Graph {
        graph(&[
            ("warden-core", &[]),
            (
                "warden-charter",
                &[("warden-core", Kind::Normal), ("warden-pdp", Kind::Dev)],
            ),
        ])
    }

    #[test]
    fn documents_that_match_the_graph_pass() {
        let architecture = "| `warden-core` | v | — |\n| `warden-charter` | c | core |\n";
        let docs = Docs {
            readme: README,
            architecture,
        };
        assert_eq!(check(&two(), &docs), Vec::<String>::new());
    }

    #[test]
    fn a_wrong_dependency_list_or_a_missing_row_is_reported() {
        let architecture = "| `warden-charter` | c | core, pdp |\n| `warden-ghost` | g | — |\n";
        let docs = Docs {
            readme: "| `crates/warden-core` | v |\n",
            architecture,
        };
        let problems = check(&two(), &docs);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("README.md") && p.contains("warden-charter")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`warden-charter` is said to depend on")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`warden-ghost` is not a crate")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("no row for `warden-core`")),
            "{problems:?}"
        );
    }

    #[test]
    fn prose_in_the_dependency_column_is_not_compared() {
        let architecture =
            "| `warden-core` | v | — |\n| `warden-charter` | c | all of the above |\n";
        let docs = Docs {
            readme: README,
            architecture,
        };
        assert_eq!(check(&two(), &docs), Vec::<String>::new());
    }
}
