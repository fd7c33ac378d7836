//! Kernel confinement of stdio servers, with the npm filesystem server: a directory swapped
//! for a link to outside between the decision and the read returns nothing from outside when
//! the server is confined (`sandbox` `auto`, the default), and an unconfined server (`off`)
//! still serves its roots.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use warden_testkit::harness::Harness;

const INSIDE: &str = "inside-content";
const OUTSIDE: &str = "OUTSIDE-SECRET";

fn fs_server() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    assert!(
        path.exists(),
        "{} is missing: run `npm ci` at the repository root",
        path.display()
    );
    path.canonicalize().unwrap()
}

/// `<base>/root` (the rules' root, holding `sub/file`) and `<base>/outside/file`. The server is
/// given `<base>` as its allowed directory, so only warden (and the kernel) keep it in `root`.
struct Tree {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/file"), INSIDE).unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("outside/file"), OUTSIDE).unwrap();
    Tree {
        _dir: dir,
        base,
        root,
    }
}

async fn gateway(t: &Tree, sandbox: &'static str) -> Harness {
    let server = fs_server();
    let (base, root) = (t.base.clone(), t.root.clone());
    Harness::builder(move |echo_url| {
        format!(
            r#"version: 1
identity: {{ id: agent-1, name: Agent, purpose: tests, serves: the test suite }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
    - id: fs
      command: [node, "{server}", "{base}"]
      tools: [read_text_file]
{sandbox}actions:
  default_posture: deny
  rules:
    - {{ id: read-root, tool: fs.read_text_file, tier: autonomous, args: {{ path: {{ glob: "{root}/**" }} }} }}
    - {{ id: echo-any, tool: echo.echo, tier: autonomous }}
authority:
  principals:
    - {{ id: alice }}
"#,
            server = server.display(),
            base = base.display(),
            root = root.display(),
        )
    })
    .start()
    .await
}

/// The text of a `tools/call` answer (result or error), for searching.
async fn read(h: &Harness, token: &str, path: &Path) -> String {
    let (_, body) = h
        .mcp(
            token,
            "tools/call",
            json!({ "name": "fs.read_text_file", "arguments": { "path": path } }),
        )
        .await;
    body.to_string()
}

async fn wait_until_up(h: &Harness, token: &str, path: &Path) -> String {
    for _ in 0..100 {
        let text = read(h, token, path).await;
        if !text.contains("unavailable") {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the filesystem server never came up");
}

/// Flips `<root>/sub` between the real directory and a link to `<base>/outside`, by renames,
/// until `stop`.
fn flip(t: &Tree, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let sub = t.root.join("sub");
    let real = t.root.join(".sub-real");
    let link = t.root.join(".sub-link");
    std::os::unix::fs::symlink(t.base.join("outside"), &link).unwrap();
    std::thread::spawn(move || {
        let mut flips = 0u64;
        while !stop.load(Ordering::Relaxed) {
            std::fs::rename(&sub, &real).unwrap();
            std::fs::rename(&link, &sub).unwrap();
            std::thread::yield_now();
            std::fs::rename(&sub, &link).unwrap();
            std::fs::rename(&real, &sub).unwrap();
            std::thread::yield_now();
            flips += 1;
        }
        flips
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_for_a_link_to_outside_returns_nothing_from_outside() {
    let t = tree();
    let h = gateway(&t, "").await;
    let (_, token) = h.open_session("1h").await;
    let file = t.root.join("sub/file");
    let first = wait_until_up(&h, &token, &file).await;
    assert!(first.contains(INSIDE), "{first}");

    let stop = Arc::new(AtomicBool::new(false));
    let flipper = flip(&t, stop.clone());
    let (mut inside, mut outside) = (0, 0);
    for _ in 0..200 {
        let text = read(&h, &token, &file).await;
        if text.contains(OUTSIDE) {
            outside += 1;
        }
        if text.contains(INSIDE) {
            inside += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    assert_eq!(
        outside, 0,
        "reads returned outside content ({inside} inside, {flips} flips)"
    );
    assert!(inside > 0, "no read succeeded at all ({flips} flips)");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfined_server_still_serves_its_roots() {
    let t = tree();
    let h = gateway(&t, "      sandbox: { mode: off }\n").await;
    let (_, token) = h.open_session("1h").await;
    let text = wait_until_up(&h, &token, &t.root.join("sub/file")).await;
    assert!(text.contains(INSIDE), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["result"]["isError"] != json!(true), "{v}");
    h.stop().await;
}
