//! Path arguments against the npm filesystem reference server: a decomposed-Unicode link out of
//! the root, a hard link to a file outside it, warden's own data directory, and a link changed
//! while a call waits for approval.
//! Each test checks warden's answer, that the outside content never comes back, and the ledger.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Harness, is_error, text_of};

const OUTSIDE_SECRET: &str = "the outside secret";

fn fs_server() -> PathBuf {
    let js = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    assert!(
        js.exists(),
        "the npm filesystem server is not installed ({}); run `npm ci`",
        js.display()
    );
    js
}

/// `base/ws` (read autonomously), `base/held` (read with approval), `base/outside` (holding
/// the secret; prohibited), the filesystem server running on `server_root`.
struct Files {
    _dir: tempfile::TempDir,
    base: PathBuf,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        for d in ["ws", "held", "outside"] {
            std::fs::create_dir(base.join(d)).unwrap();
        }
        std::fs::write(base.join("ws/readme.txt"), "inside").unwrap();
        std::fs::write(base.join("outside/secret.txt"), OUTSIDE_SECRET).unwrap();
        Files { _dir: dir, base }
    }

    /// A gateway in front of the server; `rules`: the charter's rules, or (`None`) those of
    /// `ws`, `held` and `outside` above.
    async fn gateway(&self, server_root: &Path, rules: Option<&str>) -> Harness {
        let (js, root, b) = (
            fs_server().display().to_string(),
            server_root.display().to_string(),
            self.base.display().to_string(),
        );
        let rules = rules.map_or_else(
            || {
                format!(
                    r#"    - {{ id: read-ws, tool: fs.read_text_file, tier: autonomous, args: {{ path: {{ glob: "{b}/ws/**" }} }} }}
    - {{ id: read-held, tool: fs.read_text_file, tier: approval, args: {{ path: {{ glob: "{b}/held/**" }} }} }}
    - {{ id: read-outside, tool: fs.read_text_file, tier: prohibited, args: {{ path: {{ not: {{ glob: ["{b}/ws/**", "{b}/held/**"] }} }} }} }}
"#
                )
            },
            str::to_owned,
        );
        Harness::builder(move |_| {
            format!(
                r#"version: 1
identity: {{ id: agent-1, name: Agent, purpose: tests, serves: the test suite }}
inventory:
  servers:
    - {{ id: fs, command: [node, "{js}", "{root}"], tools: [read_text_file, list_directory] }}
actions:
  default_posture: deny
  approval: {{ timeout: 60s }}
  rules:
{rules}authority:
  roles:
    - {{ id: approver, approve: [default, "read-*"] }}
    - {{ id: viewer }}
  principals:
    - {{ id: alice, roles: [viewer] }}
    - {{ id: bob, roles: [approver] }}
  enrolment:
    - {{ by: admin, principals: ["*"] }}
"#
            )
        })
        .start()
        .await
    }
}

async fn read(h: &Harness, token: &str, path: &str) -> Value {
    let (status, body) = h
        .mcp(
            token,
            "tools/call",
            json!({ "name": "fs.read_text_file", "arguments": { "path": path } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until the filesystem server answers a plain read inside the root.
async fn until_up(h: &Harness, token: &str, inside: &str) {
    let started = Instant::now();
    loop {
        let body = read(h, token, inside).await;
        if !is_error(&body) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the filesystem server never answered: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The attempts of `fs.read_text_file` with `path`, and whether any of them was forwarded.
async fn attempts_of(h: &Harness, path: &str) -> (Vec<Value>, bool) {
    let attempts: Vec<Value> = h
        .records_of("action_attempted")
        .await
        .into_iter()
        .filter(|p| p["arguments"]["path"] == path)
        .collect();
    let ids: Vec<&Value> = attempts.iter().map(|a| &a["action"]).collect();
    let forwarded = h
        .records_of("action_forwarded")
        .await
        .iter()
        .any(|f| ids.contains(&&f["action"]));
    (attempts, forwarded)
}

/// Issue 10, point 20. Before the fix, both spellings were decided as the composed name inside
/// `ws` (which does not exist byte for byte), allowed, and forwarded; the filesystem server
/// fell back to the decomposed entry and followed the link out of the root: the outside
/// secret came back, and the ledger recorded the inside path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_a_decomposed_unicode_link_out_of_the_root_is_refused_and_recorded() {
    let files = Files::new();
    let base = &files.base;
    std::os::unix::fs::symlink(
        base.join("outside/secret.txt"),
        base.join("ws/cafe\u{301}.txt"),
    )
    .unwrap();
    let h = files.gateway(base, None).await;
    let (_, token) = h.open_session("1h").await;
    until_up(&h, &token, &format!("{}/ws/readme.txt", base.display())).await;

    for name in ["caf\u{e9}.txt", "cafe\u{301}.txt"] {
        let path = format!("{}/ws/{name}", base.display());
        let body = read(&h, &token, &path).await;
        assert!(is_error(&body), "{path:?} was allowed: {body}");
        assert!(text_of(&body).starts_with("warden refused"), "{body}");
        assert!(!body.to_string().contains(OUTSIDE_SECRET), "{body}");
        assert!(text_of(&body).contains("Unicode"), "{body}");
        let (attempts, forwarded) = attempts_of(&h, &path).await;
        assert_eq!(attempts.len(), 1, "{path:?} recorded once: {attempts:?}");
        assert!(
            attempts[0]["refused"].as_str().unwrap().contains("Unicode"),
            "{attempts:?}"
        );
        assert!(!forwarded, "{path:?} was forwarded");
    }
    h.stop().await;
}

/// Issue 10, point 4: warden's data directory is out of every action's reach, ahead of the
/// charter — here one that allows reading anything (`/**`) on a server rooted at `/`. Before
/// the fix, the bootstrap operator token was read and returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_nothing_inside_the_data_directory_is_reachable_even_when_the_charter_allows_everything()
 {
    let files = Files::new();
    let base = &files.base;
    let h = files
        .gateway(
            Path::new("/"),
            Some("    - { id: read-anything, tool: [fs.read_text_file, fs.list_directory], tier: autonomous, args: { path: { glob: \"/**\" } } }\n"),
        )
        .await;
    let (_, token) = h.open_session("1h").await;
    until_up(&h, &token, &format!("{}/ws/readme.txt", base.display())).await;
    std::os::unix::fs::symlink(&h.data, base.join("ws/data-link")).unwrap();
    let secret = std::fs::read_to_string(h.data.join("operator.token")).unwrap();
    let data = h.data.display().to_string();
    for path in [
        format!("{data}/operator.token"),
        format!("{data}/../data/approval.key"),
        format!("{}/ws/data-link/operator.token", base.display()),
    ] {
        let body = read(&h, &token, &path).await;
        assert!(is_error(&body), "{path:?} was allowed: {body}");
        assert!(!body.to_string().contains(secret.trim()), "{body}");
        assert!(text_of(&body).contains("data directory"), "{body}");
        let (attempts, forwarded) = attempts_of(&h, &path).await;
        assert_eq!(attempts.len(), 1, "{path:?}: {attempts:?}");
        assert!(
            attempts[0]["refused"]
                .as_str()
                .unwrap()
                .contains("data directory")
        );
        assert!(!forwarded, "{path:?} was forwarded");
    }
    let (status, body) = h
        .mcp(
            &token,
            "tools/call",
            json!({ "name": "fs.list_directory", "arguments": { "path": data } }),
        )
        .await;
    assert_eq!(status, 200);
    assert!(is_error(&body), "{body}");
    assert!(!body.to_string().contains("ledger.db"), "{body}");
    h.stop().await;
}

/// Issue 10, point 4: a directory replaced by a link while the call waited for approval. The
/// call was decided (and approved) as `held/inside/secret.txt`; `held/inside` now points
/// outside. Before the fix the path was not resolved again, the grant released the read, and
/// the server followed the new link to the outside secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_a_link_changed_during_the_approval_wait_is_refused_before_forwarding() {
    let files = Files::new();
    let base = &files.base;
    std::fs::create_dir(base.join("held/inside")).unwrap();
    let h = std::sync::Arc::new(files.gateway(base, None).await);
    let (_, token) = h.open_session("1h").await;
    until_up(&h, &token, &format!("{}/ws/readme.txt", base.display())).await;
    let bob = h.approver_token("bob").await;

    let path = format!("{}/held/inside/secret.txt", base.display());
    let (h2, t2, p2) = (h.clone(), token.clone(), path.clone());
    let call = tokio::spawn(async move { read(&h2, &t2, &p2).await });
    let id = h.wait_for_approval_id(&bob).await;
    // While it waits, the directory is replaced by a link to the outside folder.
    std::fs::remove_dir(base.join("held/inside")).unwrap();
    std::os::unix::fs::symlink(base.join("outside"), base.join("held/inside")).unwrap();
    let (status, body) = h.decide_approval(&bob, &id, "approve", None).await;
    assert_eq!(status, 200, "{body}");
    let body = call.await.unwrap();
    assert!(is_error(&body), "released after the link changed: {body}");
    assert!(!body.to_string().contains(OUTSIDE_SECRET), "{body}");
    assert!(text_of(&body).contains("resolve differently"), "{body}");
    let (attempts, _) = attempts_of(&h, &path).await;
    let action = attempts[0]["action"].clone();
    let results: Vec<Value> = h
        .records_of("action_result")
        .await
        .into_iter()
        .filter(|r| r["action"] == action)
        .collect();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["status"], "refused", "{results:?}");
    h.stop().await;
}

/// Issue 10, point 21: a hard link inside the root to a file outside it, made before the
/// gateway started (the kernel's confinement sees it as a file of the root). Before the fix it
/// was decided as the inside path, allowed and read: the outside content came back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_a_hard_link_to_a_file_outside_the_root_is_refused_and_recorded() {
    let files = Files::new();
    let base = &files.base;
    std::fs::hard_link(base.join("outside/secret.txt"), base.join("ws/linked.txt")).unwrap();
    let h = files.gateway(base, None).await;
    let (_, token) = h.open_session("1h").await;
    until_up(&h, &token, &format!("{}/ws/readme.txt", base.display())).await;

    let path = format!("{}/ws/linked.txt", base.display());
    let body = read(&h, &token, &path).await;
    assert!(is_error(&body), "the hard link was read: {body}");
    assert!(!body.to_string().contains(OUTSIDE_SECRET), "{body}");
    assert!(text_of(&body).contains("hard link"), "{body}");
    let (attempts, forwarded) = attempts_of(&h, &path).await;
    assert_eq!(attempts.len(), 1, "recorded once: {attempts:?}");
    assert!(
        attempts[0]["refused"]
            .as_str()
            .unwrap()
            .contains("hard link"),
        "{attempts:?}"
    );
    assert!(!forwarded, "the hard link was forwarded");
    // A file with one link in the same directory still reads.
    let body = read(&h, &token, &format!("{}/ws/readme.txt", base.display())).await;
    assert!(!is_error(&body), "{body}");
    h.stop().await;
}
