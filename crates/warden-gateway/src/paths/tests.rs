use std::path::PathBuf;

use serde_json::json;

use super::resolve::{ResolveError, resolve};
use super::*;

fn real_tempdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    (dir, root)
}

fn resolved(p: &str) -> Result<String, ResolveError> {
    resolve(Path::new(p)).map(|p| p.into_os_string().into_string().unwrap())
}

#[test]
fn symlinks_resolve_to_their_target() {
    let (_dir, root) = real_tempdir();
    let r = root.display();
    std::fs::create_dir(root.join("allowed")).unwrap();
    std::fs::create_dir(root.join("secret")).unwrap();
    std::os::unix::fs::symlink(root.join("secret"), root.join("allowed/link")).unwrap();
    assert_eq!(
        resolved(&format!("{r}/allowed/link/key.pem")).unwrap(),
        format!("{r}/secret/key.pem")
    );
    // A dangling link is resolved to its (missing) target.
    std::os::unix::fs::symlink(root.join("secret/new.txt"), root.join("allowed/dangle")).unwrap();
    assert_eq!(
        resolved(&format!("{r}/allowed/dangle")).unwrap(),
        format!("{r}/secret/new.txt")
    );
    // Relative links, and a loop (refused, not left as written).
    std::os::unix::fs::symlink("../secret", root.join("allowed/rel")).unwrap();
    assert_eq!(
        resolved(&format!("{r}/allowed/rel/x")).unwrap(),
        format!("{r}/secret/x")
    );
    std::os::unix::fs::symlink(root.join("allowed/loop"), root.join("allowed/loop")).unwrap();
    assert_eq!(
        resolved(&format!("{r}/allowed/loop/x")),
        Err(ResolveError::TooManyLinks)
    );
    let plain = format!("{r}/allowed/notes.txt");
    assert_eq!(resolved(&plain).unwrap(), plain);
}

/// Issue 10, point 20: a name stored in decomposed form is never decided as its composed
/// twin. Before the fix, the composed spelling resolved to itself (no such entry, byte for
/// byte) while the filesystem server fell back to the decomposed entry, a link out of the
/// root.
#[test]
fn a_name_stored_in_another_unicode_form_is_refused() {
    let (_dir, root) = real_tempdir();
    let r = root.display();
    std::fs::create_dir(root.join("allowed")).unwrap();
    std::fs::write(root.join("outside.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(root.join("outside.txt"), root.join("allowed/cafe\u{301}")).unwrap();
    let composed = format!("{r}/allowed/caf\u{e9}");
    assert!(matches!(
        resolved(&composed),
        Err(ResolveError::StoredDifferently { .. })
    ));
    let paths = Arc::new(PathArguments::new(&charter()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Composed: the directory stores it decomposed. Decomposed: not NFC, refused lexically.
    for spelling in [composed, format!("{r}/allowed/cafe\u{301}")] {
        let why = rt
            .block_on(paths.prepare("fs.read_text_file", &json!({ "path": spelling }), true))
            .unwrap_err();
        assert!(why.contains("Unicode"), "{why}");
    }
    // A plain name next to it is fine.
    let plain = format!("{r}/allowed/plain.txt");
    let args = json!({ "path": plain });
    assert_eq!(
        rt.block_on(paths.prepare("fs.read_text_file", &args, true)),
        Ok(args)
    );
}

fn charter() -> CompiledCharter {
    let text = r#"version: 1
identity: { id: t, name: T, purpose: p, serves: s }
inventory:
  servers:
    - { id: fs, command: [x], tools: [read_text_file, write_file] }
actions:
  rules:
    - { id: read, tool: fs.read_text_file, tier: autonomous, args: { path: { glob: "/**" } } }
    - { id: write, tool: fs.write_file, tier: autonomous }
"#;
    warden_charter::compile(&[warden_charter::Source::new("charter.yaml", text)])
        .unwrap()
        .charter
}

#[test]
fn path_arguments_are_canonical_for_every_server() {
    let paths = Arc::new(PathArguments::new(&charter()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let args = json!({ "path": "/ws//a/./b/../c" });
    assert_eq!(
        rt.block_on(paths.prepare("fs.read_text_file", &args, false)),
        Ok(json!({ "path": "/ws/a/c" }))
    );
    // Not a path argument of this tool: untouched.
    let other = json!({ "path": "/ws//a/../c", "content": "x" });
    assert_eq!(
        rt.block_on(paths.prepare("fs.write_file", &other, false)),
        Ok(other.clone())
    );
    // Refused lexically: left for the decision to refuse, with its reason.
    let encoded = json!({ "path": "/ws/%2e%2e/etc" });
    assert_eq!(
        rt.block_on(paths.prepare("fs.read_text_file", &encoded, false)),
        Ok(encoded.clone())
    );
}

#[test]
fn nothing_inside_the_data_directory_passes_whatever_the_spelling() {
    let (_dir, root) = real_tempdir();
    let data = root.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::create_dir(root.join("ws")).unwrap();
    std::os::unix::fs::symlink(&data, root.join("ws/link")).unwrap();
    let paths = Arc::new(PathArguments::new(&charter()).protecting(&data));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let r = root.display();
    let refused = [
        json!({ "path": format!("{r}/data/operator.token") }),
        json!({ "path": format!("{r}/data") }),
        json!({ "path": format!("{r}/ws/../data/ledger.db") }),
        json!({ "path": format!("{r}/ws/link/approval.key") }),
        json!({ "path": format!("file://{r}/data/state.db") }),
    ];
    for args in &refused {
        for tool in ["fs.read_text_file", "fs.write_file"] {
            let why = rt.block_on(paths.prepare(tool, args, true)).unwrap_err();
            assert!(why.contains("data directory"), "{tool} {args}: {why}");
        }
    }
    // Lexically (a remote server): the link is not followed, the rest is refused.
    let why = rt
        .block_on(paths.prepare("fs.write_file", &refused[2], false))
        .unwrap_err();
    assert!(why.contains("data directory"), "{why}");
    // Nested and in lists too.
    let nested = json!({ "edits": [{ "file": format!("{r}/data/state.db") }] });
    assert!(
        rt.block_on(paths.prepare("fs.write_file", &nested, true))
            .is_err()
    );
    // Next to it is fine.
    let fine = json!({ "path": format!("{r}/database/x"), "content": format!("see {r}/data/x") });
    assert!(
        rt.block_on(paths.prepare("fs.write_file", &fine, true))
            .is_ok()
    );
    // Too many strings to check: refused.
    let many = json!({ "items": vec!["x"; MAX_CHECKED_STRINGS + 1] });
    assert!(
        rt.block_on(paths.prepare("fs.write_file", &many, true))
            .is_err()
    );
}

#[test]
fn a_changed_link_fails_the_recheck() {
    let (_dir, root) = real_tempdir();
    std::fs::create_dir(root.join("a")).unwrap();
    std::fs::create_dir(root.join("b")).unwrap();
    std::os::unix::fs::symlink(root.join("a"), root.join("link")).unwrap();
    let paths = Arc::new(PathArguments::new(&charter()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let raw = json!({ "path": format!("{}/link/x", root.display()) });
    let decided = rt
        .block_on(paths.prepare("fs.read_text_file", &raw, true))
        .unwrap();
    assert_eq!(decided["path"], format!("{}/a/x", root.display()));
    assert_eq!(
        rt.block_on(paths.recheck("fs.read_text_file", &raw, true, &decided)),
        Ok(())
    );
    std::fs::remove_file(root.join("link")).unwrap();
    std::os::unix::fs::symlink(root.join("b"), root.join("link")).unwrap();
    let why = rt
        .block_on(paths.recheck("fs.read_text_file", &raw, true, &decided))
        .unwrap_err();
    assert!(why.contains("resolve differently"), "{why}");
}

#[test]
fn a_file_uri_of_a_resource_read_is_resolved_like_a_path() {
    let (_dir, root) = real_tempdir();
    let r = root.display();
    std::fs::create_dir(root.join("ws")).unwrap();
    std::fs::create_dir(root.join("outside")).unwrap();
    std::os::unix::fs::symlink(root.join("outside"), root.join("ws/link")).unwrap();
    let paths = Arc::new(PathArguments::new(&charter()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let read = |uri: String, local: bool| {
        rt.block_on(paths.prepare("fs.resources/read", &json!({ "uri": uri }), local))
            .map(|v| v["uri"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        read(format!("file://{r}/ws/link/key.pem"), true),
        Ok(format!("file://{r}/outside/key.pem"))
    );
    assert_eq!(
        read(format!("file://{r}/ws/sub/../../outside/x"), false),
        Ok(format!("file://{r}/outside/x"))
    );
    assert_eq!(
        read("demo://resource/1".to_owned(), true),
        Ok("demo://resource/1".to_owned())
    );
    assert!(read(format!("file://{r}/ws/cafe\u{301}"), true).is_err());
}
