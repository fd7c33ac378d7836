use std::collections::HashMap;

use warden_charter::{Source, compile};

use super::*;

fn charter(sandbox: &str) -> CompiledCharter {
    let text = format!(
        r#"version: 1
identity: {{ id: a, name: A, purpose: tests, serves: tests }}
inventory:
  servers:
    - id: fs
      command: [/usr/bin/env, node, /nonexistent/server.js]
      tools: [read, write, other]
{sandbox}    - id: plain
      command: [cat]
      tools: [echo]
actions:
  rules:
    - {{ id: r, tool: fs.read, tier: autonomous, args: {{ path: {{ glob: [/srv/data/**, /srv/docs/*.md, "relative/**"] }} }} }}
    - {{ id: w, tool: fs.write, tier: approval, args: {{ path: {{ glob: /srv/out/file.txt }} }} }}
    - {{ id: n, tool: fs.write, tier: prohibited, args: {{ path: {{ glob: /etc/** }} }} }}
    - {{ id: o, tool: fs.other, tier: autonomous, args: {{ path: {{ not: {{ glob: /home/** }} }} }} }}
    - {{ id: e, tool: plain.echo, tier: autonomous }}
"#
    );
    compile(&[Source::new("charter.yaml", text)])
        .unwrap()
        .charter
}

fn server<'a>(c: &'a CompiledCharter, id: &str) -> &'a Server {
    c.inventory.servers.iter().find(|s| s.id == id).unwrap()
}

#[test]
fn the_roots_are_the_literal_directories_of_the_globs_that_can_let_a_call_through() {
    let c = charter("");
    assert_eq!(
        roots(&c, server(&c, "fs")),
        ["/srv/data", "/srv/docs", "/srv/out/file.txt"],
        "not the prohibited rule's /etc, not a `not` glob, not a relative glob"
    );
    assert!(roots(&c, server(&c, "plain")).is_empty());
}

#[test]
fn auto_confines_a_server_whose_rules_name_roots_to_them_and_the_system_paths() {
    let c = charter("");
    let env = ChildEnv::resolve("fs", &[], &|_| None).unwrap();
    let Outcome::Confined(plan) = outcome(&c, server(&c, "fs"), &env, &Support::Available).unwrap()
    else {
        panic!("not confined");
    };
    assert!(!plan.required);
    for root in ["/srv/data", "/srv/docs", "/srv/out/file.txt", "/dev/null"] {
        assert!(
            plan.write.contains(&PathBuf::from(root)),
            "{root}: {plan:?}"
        );
    }
    assert!(!plan.write.contains(&PathBuf::from("/etc")), "{plan:?}");
    assert!(
        !plan.write.iter().any(|p| p.starts_with("/tmp")),
        "{plan:?}"
    );
    for system in ["/usr", "/etc", "/proc"] {
        assert!(plan.read.contains(&PathBuf::from(system)), "{plan:?}");
    }
    // `/usr/bin/env` is installed under `/usr`.
    assert_eq!(
        plan.read.iter().filter(|p| *p == Path::new("/usr")).count(),
        1
    );

    // No roots, no sandbox paths: unconfined, silently.
    assert_eq!(
        outcome(&c, server(&c, "plain"), &env, &Support::Available).unwrap(),
        Outcome::Unconfined(None)
    );
}

#[test]
fn required_without_landlock_stops_the_start_and_auto_warns() {
    let no = Support::Unavailable("Landlock is not enabled (EOPNOTSUPP)".to_owned());
    let env = ChildEnv::default();

    let c = charter("      sandbox: { mode: required }\n");
    let err = outcome(&c, server(&c, "fs"), &env, &no).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("server `fs` must run confined"),
        "{message}"
    );
    assert!(message.contains("EOPNOTSUPP"), "{message}");
    // Through `prepare`: nothing is prepared, the error names the server.
    let e = crate::Upstreams::prepare_with(&c, |_| None, &no).unwrap_err();
    assert!(
        matches!(&e, crate::PrepareError::Sandbox(s) if s.server == "fs"),
        "{e}"
    );

    let c = charter("");
    let Outcome::Unconfined(Some(warning)) = outcome(&c, server(&c, "fs"), &env, &no).unwrap()
    else {
        panic!("auto without Landlock warns");
    };
    assert!(warning.contains("without kernel confinement"), "{warning}");
    assert!(warning.contains("/srv/data"), "{warning}");
}

#[test]
fn off_is_never_confined_and_always_warned() {
    let c = charter("      sandbox: { mode: off }\n");
    let Outcome::Unconfined(Some(warning)) = outcome(
        &c,
        server(&c, "fs"),
        &ChildEnv::default(),
        &Support::Available,
    )
    .unwrap() else {
        panic!("off is unconfined, with a warning");
    };
    assert!(warning.contains("mode: off"), "{warning}");
}

#[test]
fn the_charters_sandbox_paths_are_added() {
    let c = charter("      sandbox: { read: [/opt/tools], write: [/var/cache/fs] }\n");
    let Outcome::Confined(plan) = outcome(
        &c,
        server(&c, "fs"),
        &ChildEnv::default(),
        &Support::Available,
    )
    .unwrap() else {
        panic!("not confined");
    };
    assert!(plan.read.contains(&PathBuf::from("/opt/tools")));
    assert!(plan.write.contains(&PathBuf::from("/var/cache/fs")));
}

#[test]
fn a_program_on_the_path_brings_its_installation_and_a_script_its_package() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let bin = base.join("node-22/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("mynode"), "").unwrap();
    let pkg = base.join("app/node_modules/@scope/server/dist");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("index.js"), "").unwrap();
    let script = pkg.join("index.js").display().to_string();
    let env: HashMap<&str, OsString> = [("PATH", OsString::from(bin.as_os_str()))].into();
    let env = ChildEnv::resolve("fs", &[], &|n| env.get(n).cloned()).unwrap();
    let found = installation(&["mynode".to_owned(), script, "/srv".to_owned()], &env);
    assert_eq!(
        found,
        [
            base.join("node-22"),
            base.join("node-22"),
            base.join("app/node_modules")
        ]
    );

    let home = ChildEnv::resolve("fs", &[], &|n| (n == "HOME").then(|| "/home/w".into())).unwrap();
    let npx = ["npx".to_owned(), "-y".to_owned(), "server".to_owned()];
    assert_eq!(npx_cache(&npx, &home), Some(PathBuf::from("/home/w/.npm")));
    assert_eq!(npx_cache(&["node".to_owned()], &home), None);
}

/// The kernel's part, with plain programs as the confined children: a confined child reads its
/// root, and neither a file outside it nor one through a link out of it; nor can it make a hard
/// link to an outside file inside its root.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confined_child_cannot_reach_outside_its_roots() {
    if landlock_support() != Support::Available {
        panic!(
            "this test needs a kernel with Landlock: {:?}",
            landlock_support()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("in.txt"), "inside").unwrap();
    std::fs::write(base.join("outside.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(base.join("outside.txt"), root.join("link")).unwrap();
    let plan = Plan {
        server: "t".to_owned(),
        required: true,
        read: SYSTEM_READ.iter().map(PathBuf::from).collect(),
        write: vec![PathBuf::from("/dev/null"), root.clone()],
    };
    let run = |program: &str, args: Vec<PathBuf>| {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args);
        let plan = plan.clone();
        async move {
            let (child, _stderr) = spawn(cmd, Some(&plan)).await.unwrap();
            let mut inner = child.into_inner().unwrap();
            inner.wait().await.unwrap().success()
        }
    };
    // `cp` to the null device reads the whole file and writes nothing to the stdout pipe.
    let null = || PathBuf::from("/dev/null");
    assert!(
        run("cp", vec![root.join("in.txt"), null()]).await,
        "its root"
    );
    assert!(
        !run("cp", vec![base.join("outside.txt"), null()]).await,
        "outside"
    );
    assert!(
        !run("cp", vec![root.join("link"), null()]).await,
        "through a link"
    );
    let made = root.join("hard");
    assert!(
        !run("ln", vec![base.join("outside.txt"), made.clone()]).await,
        "a hard link to an outside file"
    );
    assert!(!made.exists());
    // The same children unconfined do all of it.
    let mut cmd = tokio::process::Command::new("ln");
    cmd.args([base.join("outside.txt"), made.clone()]);
    let (child, _stderr) = spawn(cmd, None).await.unwrap();
    assert!(child.into_inner().unwrap().wait().await.unwrap().success());
    assert!(made.exists());
}
