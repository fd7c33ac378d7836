use super::test_support::{errors, header, src};
use super::*;
use crate::compiled::BudgetScope;

const MINIMAL: &str = concat!(
    header!(),
    "\
inventory:
  servers:
    - id: fs
      command: [node, fs.js]
      tools: [read_file, write_file]
actions:
  rules:
    - id: read
      tool: fs.read_file
      tier: autonomous
    - id: write
      tool: fs.write_file
      tier: approval
"
);

#[test]
fn minimal_charter_compiles() {
    let c = compile(&src(MINIMAL)).unwrap();
    assert_eq!(c.charter.rules.len(), 2);
    assert_eq!(c.charter.identity.id, "demo");
    let read = c.charter.rule("read").unwrap();
    assert_eq!((read.location().line, read.location().column), (14, 7));
    assert_eq!(&*c.charter.candidate_rules("fs.read_file"), &[0]);
    assert!(c.charter.hash.to_prefixed_hex().starts_with("blake3:"));
}

#[test]
fn every_problem_is_reported_at_once_with_locations() {
    let text = concat!(
        header!(),
        "\
inventory:
  servers:
    - id: fs
      command: [node, fs.js]
      tools: [read_file]
actions:
  rules:
    - id: a
      tool: fs.read_file
      tier: autonomus
    - id: b
      tool: fs.read_fil
      tier: approval
      toool: x
    - id: c
      tool: fs.read_file
      tier: approval
      args:
        path: { glob: '/srv/[' }
        q: { regex: '(' }
      when: 'args.x >'
    - id: c
      tool: fs.read_file
      tier: prohibited
      principal: { roles: [admin] }
authority:
  principals:
    - id: alice
      roles: [nobody]
"
    );
    let d = errors(text);
    let rendered = d.to_string();
    let expect = [
        "charter.yaml:16:13: error: `actions.rules[0].tier`: unknown variant `autonomus`",
        "charter.yaml:20:7: error: `actions.rules[1].toool`: unknown field `toool`",
        "charter.yaml:25:23: error: invalid path glob `/srv/[`",
        "charter.yaml:26:21: error: invalid regex `(`: unclosed group",
        "charter.yaml:27:13: error: invalid CEL expression in `when` at 1:9: Syntax error",
        "charter.yaml:28:11: error: duplicate rule id `c`",
        "charter.yaml:35:15: error: unknown role `nobody`",
    ];
    for e in expect {
        assert!(rendered.contains(e), "missing {e:?} in:\n{rendered}");
    }
    assert!(
        rendered.contains("did you mean `autonomous`?"),
        "{rendered}"
    );
    assert!(rendered.contains("did you mean `tool`?"), "{rendered}");
}

#[test]
fn unknown_tools_and_labels_get_suggestions() {
    let text = MINIMAL.replace("tool: fs.write_file", "tool: fs.writ_file")
        + "data:\n  labels:\n    - id: secret\n";
    let d = errors(&text);
    let r = d.to_string();
    assert!(
        r.contains(
            "charter.yaml:18:13: error: unknown tool `fs.writ_file`: it is not in the inventory"
        ),
        "{r}"
    );
    assert!(r.contains("did you mean `fs.write_file`?"), "{r}");
}

/// Issue 10, point 1: rules can name the model proxy's provider-side actions (`model.*`,
/// implicit in every charter) without a warning, and no server may take the id `model`.
#[test]
fn provider_side_actions_are_named_by_the_reserved_model_server() {
    let text = MINIMAL.to_owned()
        + "    - { id: search, tool: model.web_search, tier: autonomous }\n"
        + "    - { id: docs-mcp, tool: model.mcp, tier: preapproved, args: { url: { prefix: \"https://docs.example/\" } } }\n"
        + "    - { id: betas, tool: [model.beta, \"model.*\"], tier: prohibited }\n";
    let c = compile(&src(&text)).unwrap();
    assert_eq!(c.charter.rules_for("model.web_search").len(), 2);
    assert_eq!(c.charter.rules_for("model.mcp").len(), 2);
    assert!(CompiledCharter::is_model_tool("model.fetch_url"));
    assert!(
        !c.charter.is_inventoried("model.web_search"),
        "not an MCP tool"
    );
    let warnings = c.warnings.to_string();
    assert!(!warnings.contains("can never match"), "{warnings}");
    let d = errors(&text.replace("tool: model.web_search", "tool: model.web_serch"));
    assert!(
        d.to_string().contains("unknown tool `model.web_serch`"),
        "{d}"
    );
    let d = errors(&MINIMAL.replace("- id: fs", "- id: model"));
    assert!(
        d.to_string().contains("server id `model` is reserved"),
        "{d}"
    );
}

#[test]
fn malformed_yaml_is_one_located_error() {
    let d = errors("version: 1\nidentity: [unclosed\n");
    assert_eq!(d.0.len(), 1, "{d}");
    assert!(d.0[0].message.starts_with("invalid YAML"), "{d}");
    assert_eq!(d.0[0].location.file.as_ref(), "charter.yaml");
    assert!(d.0[0].location.line >= 2, "{d}");
}

#[test]
fn duplicate_keys_and_unknown_sections_are_errors() {
    let d = errors(&format!("{MINIMAL}identity_x: 1\n"));
    assert!(
        d.to_string().contains("unknown section `identity_x`"),
        "{d}"
    );
    let d = errors("version: 1\nversion: 1\n");
    assert!(d.to_string().contains("invalid YAML"), "{d}");
}

#[test]
fn missing_version_and_identity() {
    let d = errors("actions:\n  rules: []\n");
    let r = d.to_string();
    assert!(
        r.contains("charter.yaml:1:1: error: the charter has no `version`"),
        "{r}"
    );
    assert!(r.contains("the charter has no `identity` section"), "{r}");
}

#[test]
fn warnings_for_shadowed_conflicting_unreachable_and_unclassified() {
    let text = "\
version: 1
identity: { id: demo, name: Demo, purpose: test, serves: tests }
inventory:
  servers:
    - id: fs
      command: [node, fs.js]
      tools: [read_file, write_file, delete_file]
actions:
  rules:
    - id: read-docs
      tool: fs.read_file
      tier: autonomous
      args: { path: { glob: /docs/** } }
    - id: no-reads
      tool: fs.read_*
      tier: prohibited
    - id: write-a
      tool: fs.write_file
      tier: autonomous
    - id: write-b
      tool: fs.write_file
      tier: approval
    - id: ghost
      tool: crm.*
      tier: approval
";
    let c = compile(&src(text)).unwrap();
    let w = c.warnings.to_string();
    assert!(
        w.contains("rule `read-docs` is shadowed by the stricter rule `no-reads`"),
        "{w}"
    );
    assert!(w.contains("rules `write-a` and `write-b` conflict"), "{w}");
    assert!(w.contains("rule `ghost` can never match"), "{w}");
    assert!(
        w.contains("tool `fs.delete_file` is classified by no rule"),
        "{w}"
    );
    assert!(!c.warnings.has_errors());
}

#[test]
fn directory_charters_merge_and_refuse_double_settings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("00-identity.yaml"),
        "version: 1\nidentity: { id: demo, name: Demo, purpose: p, serves: s }\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("10-tools.yaml"), "inventory:\n  servers:\n    - { id: fs, command: [x], tools: [read] }\nactions:\n  rules:\n    - { id: r1, tool: fs.read, tier: autonomous }\n").unwrap();
    std::fs::write(
        dir.path().join("20-more.yml"),
        "actions:\n  rules:\n    - { id: r2, tool: 'fs.*', tier: approval }\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let c = load(dir.path()).unwrap();
    assert_eq!(c.charter.rules.len(), 2);
    assert_eq!(c.charter.files.len(), 3);
    std::fs::write(dir.path().join("30-again.yaml"), "version: 1\n").unwrap();
    let d = load(dir.path()).unwrap_err();
    assert!(
        d.to_string()
            .contains("30-again.yaml:1:10: error: `version` is set twice"),
        "{d}"
    );
}

#[test]
fn content_hash_depends_on_content_only() {
    let a = compile(&src(MINIMAL)).unwrap().charter.hash;
    let b = compile(&[Source::new("/elsewhere/charter.yaml", MINIMAL)])
        .unwrap()
        .charter
        .hash;
    let c = compile(&src(&MINIMAL.replace("tier: approval", "tier: prohibited")))
        .unwrap()
        .charter
        .hash;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn globs_hosts_and_cel_variables_are_checked() {
    let text = MINIMAL.replace(
        "    - id: write\n      tool: fs.write_file\n      tier: approval\n",
        "    - id: write\n      tool: fs.write_file\n      tier: approval\n      args:\n        path: { glob: /srv/data/ }\n        url: { host: ['example.com:8443'] }\n        other: { glob: '/srv/%2e%2e/x/**' }\n      when: 'args.list.all(p, p > 1) && argz.x'\n",
    );
    let r = errors(&text).to_string();
    assert!(r.contains("path glob `/srv/data/` ends with `/`"), "{r}");
    assert!(r.contains("invalid host pattern `example.com:8443`"), "{r}");
    assert!(
        r.contains("path glob `/srv/%2e%2e/x/**` is not in canonical form"),
        "{r}"
    );
    // `p` is the macro's loop variable; `argz` is a typo.
    assert!(r.contains("`when` uses unknown variable `argz`"), "{r}");
    assert!(r.contains("did you mean `args`?"), "{r}");
    assert!(!r.contains("unknown variable `p`"), "{r}");
}

#[test]
fn token_budgets_compile_with_default_windows() {
    let text = MINIMAL.replace(
        "actions:",
        "  models:\n    - alias: fast\n      routes: [{ provider: openai, base_url: \"http://127.0.0.1:9\", model: m }]\n  token_budgets:\n    - { per: session, tokens: 1000 }\n    - { per: principal, tokens: 5000 }\n    - { per: agent, tokens: 9000, window: 1h }\nactions:",
    );
    let c = compile(&src(&text)).unwrap().charter;
    let b = &c.inventory.token_budgets;
    assert_eq!(b.len(), 3);
    assert_eq!(
        (b[0].per, b[0].tokens, b[0].window),
        (BudgetScope::Session, 1000, None)
    );
    assert_eq!(b[1].window, Some(Duration::from_secs(86_400)));
    assert_eq!(b[2].window, Some(Duration::from_secs(3600)));

    let zero = MINIMAL.replace(
        "actions:",
        "  token_budgets: [{ per: agent, tokens: 0 }]\nactions:",
    );
    let e = errors(&zero).to_string();
    assert!(e.contains("a token budget of 0"), "{e}");
    let bad = MINIMAL.replace(
        "actions:",
        "  token_budgets: [{ per: team, tokens: 5 }]\nactions:",
    );
    assert!(!errors(&bad).is_empty());
}

/// The fuzz seeds of the charter parser (inputs that once crashed `warden check`) compile to a
/// charter or to located diagnostics, and never panic or overflow the stack.
#[test]
fn fuzz_seeds_compile_without_crashing() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/charter_parser");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match compile(&[Source::new(name.clone(), text)]) {
            Ok(_) => {}
            Err(d) => assert!(
                d.errors()
                    .all(|e| e.location.line >= 1 && e.location.column >= 1),
                "{name}: {d:?}"
            ),
        }
        seen += 1;
    }
    assert!(seen >= 6, "found {seen} seeds in {}", dir.display());
}

#[test]
fn a_provider_key_in_a_servers_env_is_a_warning() {
    let text = MINIMAL
        .replace(
            "      command: [node, fs.js]\n",
            "      command: [node, fs.js]\n      env: { TOKEN: \"${MY_PROVIDER_KEY}\", OPENAI_API_KEY: literal, HOME: /srv, ANTHROPIC: \"${ANTHROPIC_API_KEY}\" }\n",
        )
        .replace(
            "actions:",
            "  models:\n    - alias: fast\n      routes: [{ provider: openai, base_url: \"http://127.0.0.1:9\", model: m, api_key_env: MY_PROVIDER_KEY }]\nactions:",
        );
    let c = compile(&src(&text)).unwrap();
    let w: Vec<String> = c.warnings.warnings().map(ToString::to_string).collect();
    let about_keys: Vec<&String> = w.iter().filter(|w| w.contains("provider key")).collect();
    assert_eq!(about_keys.len(), 3, "{w:#?}");
    // In the order of the charter, at the value of each entry.
    assert!(
        about_keys[0].starts_with(
            "charter.yaml:11:21: warning: server `fs` is given the provider key variable `MY_PROVIDER_KEY` in its `env`"
        ),
        "{about_keys:#?}"
    );
    assert!(
        about_keys[1].contains("`OPENAI_API_KEY`"),
        "{about_keys:#?}"
    );
    assert!(
        about_keys[2].contains("`ANTHROPIC_API_KEY`"),
        "{about_keys:#?}"
    );
}

#[test]
fn model_deny_labels_resolve_and_unknown_ones_are_located() {
    let models = "  models:\n    - alias: fast\n      routes: [{ provider: openai, base_url: \"http://127.0.0.1:9\", model: m }]\n      deny_labels: [secret, pii, secret]\n    - alias: local\n      routes: [{ provider: openai, base_url: \"http://127.0.0.1:9\", model: m }]\nactions:";
    let labels = "data:\n  labels:\n    - id: secret\n    - id: pii\n";
    let text = MINIMAL.replace("actions:", models) + labels;
    let c = compile(&src(&text)).unwrap().charter;
    let fast = &c.inventory.models[0];
    let deny: Vec<&str> = fast.deny_labels.iter().map(|l| &**l).collect();
    assert_eq!(deny, ["secret", "pii"]);
    assert!(c.inventory.models[1].deny_labels.is_empty());
    let carried: Vec<Arc<str>> = vec![Arc::from("other"), Arc::from("pii")];
    assert_eq!(fast.denied_labels(&carried), [&carried[1]]);
    assert!(fast.denied_labels(&carried[..1]).is_empty());

    let typo = MINIMAL.replace("actions:", &models.replace("pii, secret]", "pi]")) + labels;
    let r = errors(&typo).to_string();
    assert!(
        r.contains(
            "charter.yaml:15:29: error: unknown label `pi` in `deny_labels` of model `fast`"
        ),
        "{r}"
    );
    assert!(r.contains("did you mean `pii`?"), "{r}");
}

#[test]
fn a_servers_sandbox_is_compiled_and_defaults_to_auto() {
    let c = compile(&src(MINIMAL)).unwrap();
    let fs = &c.charter.inventory.servers[0];
    assert_eq!(fs.sandbox.mode, crate::SandboxMode::Auto);
    assert!(fs.sandbox.location.is_none());

    let text = MINIMAL.replace(
        "      command: [node, fs.js]\n",
        "      command: [node, fs.js]\n      sandbox: { mode: required, read: [/opt/tools], write: [/srv/out, /srv/out] }\n",
    );
    let c = compile(&src(&text)).unwrap();
    let s = &c.charter.inventory.servers[0].sandbox;
    assert_eq!(s.mode, crate::SandboxMode::Required);
    assert_eq!(s.read, ["/opt/tools"]);
    assert_eq!(s.write, ["/srv/out"], "a path written twice is kept once");

    let off = MINIMAL.replace(
        "      command: [node, fs.js]\n",
        "      command: [node, fs.js]\n      sandbox: { mode: off }\n",
    );
    let c = compile(&src(&off)).unwrap();
    assert_eq!(
        c.charter.inventory.servers[0].sandbox.mode,
        crate::SandboxMode::Off,
        "`off` is a string in this YAML, not a boolean"
    );
}

#[test]
fn a_bad_sandbox_is_an_error_at_its_position() {
    let text = MINIMAL.replace(
        "      command: [node, fs.js]\n",
        "      command: [node, fs.js]\n      sandbox:\n        mode: strict\n        read: [opt/tools, /srv/../etc]\n",
    );
    let r = errors(&text).to_string();
    assert!(
        r.contains("charter.yaml:12:15: error: `inventory.servers[0].sandbox.mode`: unknown variant `strict`"),
        "{r}"
    );
    let text = MINIMAL.replace(
        "      command: [node, fs.js]\n",
        "      command: [node, fs.js]\n      sandbox:\n        read: [opt/tools, /srv/../etc]\n",
    )
    .replace(
        "actions:\n",
        "    - id: api\n      url: http://127.0.0.1:9/mcp\n      tools: [x]\n      sandbox: { mode: required }\nactions:\n",
    );
    let r = errors(&text).to_string();
    for e in [
        "charter.yaml:12:16: error: sandbox path `opt/tools` is not absolute",
        "charter.yaml:12:27: error: sandbox path `/srv/../etc` is not in canonical form",
        "error: `sandbox` applies only to a stdio server (`command`)",
    ] {
        assert!(r.contains(e), "missing {e:?} in:\n{r}");
    }
}

#[test]
fn notify_targets_and_enrolment_compile_and_bad_ones_are_located() {
    let good = format!(
        "{MINIMAL}authority:
  roles:
    - {{ id: ctl, approve: [write] }}
  principals:
    - {{ id: bob, roles: [ctl], notify: \"https://hooks.example/bob\", notify_format: slack }}
    - {{ id: carol, roles: [ctl] }}
  enrolment:
    - {{ by: admin, principals: [bob] }}
    - {{ by: ctl, roles: [ctl] }}
"
    );
    let c = compile(&src(&good)).unwrap().charter;
    let bob = c.authority.principal("bob").unwrap();
    assert!(bob.notify.as_ref().is_some_and(|n| n.slack));
    assert!(c.authority.may_enrol(None, "bob"));
    assert!(!c.authority.may_enrol(None, "carol"));
    assert!(c.authority.may_enrol(Some("bob"), "carol"));
    assert!(!c.authority.may_enrol(Some("nobody"), "carol"));
    // No enrolment section: nobody may.
    let none = format!("{MINIMAL}authority:\n  principals:\n    - {{ id: bob }}\n");
    assert!(
        !compile(&src(&none))
            .unwrap()
            .charter
            .authority
            .may_enrol(None, "bob")
    );

    let bad = format!(
        "{MINIMAL}authority:
  principals:
    - {{ id: bob, notify: \"ftp://x\" }}
    - {{ id: carol, notify: \"https://x.example\", notify_format: xml }}
  enrolment:
    - {{ by: wizard, principals: [bob] }}
    - {{ by: admin, principals: [mallory] }}
"
    );
    let text = errors(&bad).to_string();
    for part in [
        "charter.yaml:23:",
        "not an absolute `http` or `https` URL",
        "unknown webhook format `xml`",
        "unknown issuer `wizard`",
        "unknown principal `mallory`",
    ] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    assert!(!text.contains("ftp://x"), "the URL is not echoed: {text}");
}

/// Issue 11, point 3: a Streamable HTTP server's credentials compile to references; a bad one
/// is an error at its position.
#[test]
fn issue_11_upstream_credentials_compile_and_bad_ones_are_located() {
    let server = "    - id: gh\n      url: https://gh.example/mcp\n      tools: [search]\n      headers: { Authorization: \"Bearer ${GITHUB_TOKEN}\", X-Team: \"${file:/run/secrets/team}\" }\n      credentials:\n        per_principal:\n          alice: { headers: { Authorization: \"Bearer ${ALICE_TOKEN}\" } }\n        fallback: shared\nactions:\n";
    let c = compile(&src(&MINIMAL.replace("actions:\n", server))).unwrap();
    let gh = c
        .charter
        .inventory
        .servers
        .iter()
        .find(|s| s.id == "gh")
        .unwrap();
    let auth = &gh.http_auth;
    assert_eq!(auth.headers.len(), 2);
    assert_eq!(auth.headers[0].0, "authorization");
    assert!(auth.headers.iter().all(|(_, t)| t.has_reference()));
    let per = auth.per_principal.as_ref().unwrap();
    assert_eq!(per.fallback, crate::CredentialFallback::Shared);
    assert!(per.principals.contains_key("alice"));

    let bad = "    - id: gh\n      url: https://gh.example/mcp\n      tools: [search]\n      headers: { \"Bad Name\": x, Accept: y, Authorization: \"Bearer ${TOKEN\" }\n      oauth: { token_url: \"http://auth.example/token\", client_id: warden, client_secret: in-clear, scopes: [\"a b\"] }\n    - id: local\n      command: [node, x.js]\n      tools: [x]\n      headers: { X-A: b }\nactions:\n";
    let r = errors(&MINIMAL.replace("actions:\n", bad)).to_string();
    for e in [
        "error: invalid header name `Bad Name`",
        "error: header `Accept` is set by the gateway and may not be configured",
        "error: `${` has no closing `}`",
        "error: invalid token url `http://auth.example/token`",
        "error: `client_secret` is written in clear in the charter",
        "error: invalid scope `a b`",
        "error: a server with `oauth` may not set an `Authorization` header",
        "error: `headers` applies only to a Streamable HTTP server (`url`)",
    ] {
        assert!(r.contains(e), "missing {e:?} in:\n{r}");
    }
    assert!(r.contains("charter.yaml:15:"), "not located:\n{r}");
}
