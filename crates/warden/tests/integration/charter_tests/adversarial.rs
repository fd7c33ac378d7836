//! Hostile case files: each is refused with exit 64 and a message naming the file, without
//! blocking, without reading past the bound and without a panic.

use std::process::Command;

use super::{small_charter, text, warden};

fn refused(dir: &std::path::Path, want: &str) {
    let out = warden(&["test", dir.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(64), "{stdout}{stderr}");
    assert!(stderr.contains(want), "wanted {want:?} in {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_oversized_case_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    small_charter(dir.path());
    let big = format!("# {}\ncases: []\n", "x".repeat(5 * 1024 * 1024));
    std::fs::write(dir.path().join("tests/big.yaml"), big).unwrap();
    refused(dir.path(), "larger than the limit");
}

#[test]
fn a_fifo_named_like_a_case_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    small_charter(dir.path());
    let fifo = dir.path().join("tests/cases.yaml");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    refused(dir.path(), "not a regular file");
}

#[test]
fn too_many_case_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    small_charter(dir.path());
    for i in 0..=256 {
        std::fs::write(dir.path().join(format!("tests/{i:03}.yaml")), "cases: []\n").unwrap();
    }
    refused(dir.path(), "more than 256 case files");
}

#[test]
fn an_alias_bomb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    small_charter(dir.path());
    // Nine levels of ten aliases each: a billion strings if expanded.
    let mut bomb = String::from(
        "cases:\n  - name: a\n    tool: fs.write_file\n    args:\n      a: &a [x, x, x, x, x, x, x, x, x, x]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let (prev, next) = (w[0], w[1]);
        let refs = vec![format!("*{prev}"); 10].join(", ");
        bomb.push_str(&format!("      {next}: &{next} [{refs}]\n"));
    }
    bomb.push_str("    expect: { verdict: deny }\n");
    std::fs::write(dir.path().join("tests/bomb.yaml"), bomb).unwrap();
    refused(dir.path(), "invalid case file");
}

#[test]
fn deep_nesting_and_binary_content_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    small_charter(dir.path());
    let deep = format!(
        "cases:\n  - name: a\n    tool: fs.write_file\n    args: {{ x: {}{} }}\n    expect: {{ verdict: allow }}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    std::fs::write(dir.path().join("tests/deep.yaml"), deep).unwrap();
    refused(dir.path(), "invalid case file");
    std::fs::write(
        dir.path().join("tests/deep.yaml"),
        b"cases:\n  - \xff\xfe\n",
    )
    .unwrap();
    refused(dir.path(), "not UTF-8");
}

#[test]
fn trusted_text_past_its_bound_fails_the_case_rather_than_passing_it() {
    let dir = tempfile::tempdir().unwrap();
    small_charter(dir.path());
    let task = "t".repeat(1024 * 1024);
    std::fs::write(
        dir.path().join("tests/big_task.yaml"),
        format!("cases:\n  - name: huge task\n    tool: fs.write_file\n    task: {task}\n    args: {{ path: /tmp/x }}\n    expect: {{ verdict: ask }}\n"),
    )
    .unwrap();
    let out = warden(&["test", dir.path().to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("trusted text cannot be built"), "{stdout}");
}
