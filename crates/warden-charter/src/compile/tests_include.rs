//! `include:` (issue 17): what an included document may hold, one level, the hash and
//! `files`, and every error at its own file:line:col — including the adversarial ones (a FIFO,
//! a huge file, the charter itself, an include from an include, a file that is not YAML).

use std::path::Path;

use super::test_support::header;
use crate::{Diagnostics, load};

const ORG: &str = "\
authority:
  principals:
    - { id: dana, name: Dana }
data:
  labels:
    - { id: confidential }
context:
  organisation: Acme
";

fn write(dir: &Path, name: &str, text: &str) {
    if let Some(parent) = dir.join(name).parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(dir.join(name), text).expect("write");
}

fn charter(include: &str) -> String {
    format!("{}include: {include}\n", header!())
}

/// The errors of loading `dir/a/charter.yaml`, one line each, with paths relative to `dir`.
fn errors(dir: &Path) -> String {
    let diags: Diagnostics = load(&dir.join("a/charter.yaml")).expect_err("must not load");
    let prefix = format!("{}/", dir.display());
    diags
        .errors()
        .map(|d| d.to_string().replace(&prefix, ""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn an_included_document_merges_and_the_hash_and_files_cover_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "org.yaml", ORG);
    write(dir.path(), "a/charter.yaml", &charter("[../org.yaml]"));
    let compiled = load(&dir.path().join("a/charter.yaml")).unwrap_or_else(|d| panic!("{d}"));
    let c = compiled.charter;
    assert!(c.authority.principals.contains_key("dana"));
    assert_eq!(c.data.labels.len(), 1);
    assert_eq!(c.context.organisation.as_deref(), Some("Acme"));
    let files: Vec<String> = c.files.iter().map(ToString::to_string).collect();
    assert_eq!(
        files,
        [
            format!("{}/a/charter.yaml", dir.path().display()),
            format!("{}/org.yaml", dir.path().display()),
        ]
    );
    // Editing the included document changes the charter's hash.
    write(dir.path(), "org.yaml", &ORG.replace("Acme", "Acme Ltd"));
    let edited = load(&dir.path().join("a/charter.yaml")).expect("loads");
    assert_ne!(edited.charter.hash, c.hash);
}

#[test]
fn an_included_document_holds_only_authority_data_and_context() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "org.yaml",
        "context: { organisation: Acme }\nactions:\n  default_posture: deny\nautority: {}\ninclude: [other.yaml]\n",
    );
    write(dir.path(), "a/charter.yaml", &charter("[../org.yaml]"));
    assert_eq!(
        errors(dir.path()),
        "org.yaml:2:1: error: `actions` cannot be in an included document\n  hint: an included document holds only `authority`, `data`, `context`\n\
org.yaml:4:1: error: unknown section `autority`\n  hint: did you mean `authority`?\n\
org.yaml:5:1: error: an included document cannot include (includes are one level deep)\n  hint: include the document from the charter itself"
    );
}

#[test]
fn an_error_inside_an_included_document_is_at_its_own_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "org.yaml",
        "authority:\n  principals:\n    - { id: dana, roles: [nobody] }\n",
    );
    write(dir.path(), "a/charter.yaml", &charter("[../org.yaml]"));
    let e = errors(dir.path());
    assert!(e.starts_with("org.yaml:3:"), "{e}");
    assert!(e.contains("nobody"), "{e}");
}

#[test]
fn a_principal_in_the_charter_and_its_include_is_an_error_naming_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "org.yaml", ORG);
    let text = format!(
        "{}authority:\n  principals:\n    - {{ id: dana }}\n",
        charter("[../org.yaml]")
    );
    write(dir.path(), "a/charter.yaml", &text);
    assert_eq!(
        errors(dir.path()),
        "org.yaml:3:13: error: duplicate principal `dana`\n  hint: first declared at a/charter.yaml:10:13"
    );
}

#[test]
fn missing_malformed_self_and_twice_includes_are_errors_at_their_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "org.yaml", ORG);
    write(
        dir.path(),
        "a/charter.yaml",
        &charter(
            "\n  - ../missing.yaml\n  - charter.yaml\n  - ../org.yaml\n  - ./../org.yaml\n  - /etc/org.yaml\n  - ../notes.txt\n  - 3\n",
        ),
    );
    assert_eq!(
        errors(dir.path()),
        "a/charter.yaml:8:5: error: cannot read included document `missing.yaml`: No such file or directory (os error 2)\n\
a/charter.yaml:9:5: error: include `charter.yaml` is a file of this charter (`a/charter.yaml`)\n  hint: a charter cannot include itself or one of its own files\n\
a/charter.yaml:11:5: error: `org.yaml` is included twice\n  hint: first included at a/charter.yaml:10:5\n\
a/charter.yaml:12:5: error: invalid include `/etc/org.yaml`\n  hint: an include is a path relative to the including file\n\
a/charter.yaml:13:5: error: include `../notes.txt` is not a `.yaml` or `.yml` file\n  hint: an included document is a YAML file of `authority`, `data` and `context`\n\
a/charter.yaml:14:5: error: an `include` entry must be a path"
    );
}

#[test]
fn a_fifo_a_huge_file_and_a_file_that_is_not_yaml_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let huge = std::fs::File::create(dir.path().join("huge.yaml")).expect("create");
    huge.set_len(crate::MAX_FILE_BYTES + 1).expect("grow");
    // A passwd-like file behind a `.yaml` name: an error, its content never echoed.
    write(
        dir.path(),
        "passwd.yaml",
        "root:x:0:0:root:/root:/bin/bash\nsecret-user:x:1000:1000::/home/s:/bin/sh\n",
    );
    write(
        dir.path(),
        "a/charter.yaml",
        &charter("[../fifo.yaml, ../huge.yaml, ../../../etc/passwd]"),
    );
    assert_eq!(
        errors(dir.path()),
        format!(
            "a/charter.yaml:7:11: error: included document `fifo.yaml` is a FIFO, not a regular file\n\
a/charter.yaml:7:25: error: included document `huge.yaml` is larger than the limit of {} bytes\n\
a/charter.yaml:7:39: error: include `../../../etc/passwd` is not a `.yaml` or `.yml` file\n  hint: an included document is a YAML file of `authority`, `data` and `context`",
            crate::MAX_FILE_BYTES
        )
    );
    write(dir.path(), "a/charter.yaml", &charter("[../passwd.yaml]"));
    let e = errors(dir.path());
    assert!(e.starts_with("passwd.yaml:1:1: error: "), "{e}");
    assert!(!e.contains("secret-user"), "{e}");
}

#[test]
fn an_include_compiled_from_memory_without_its_document_is_an_error() {
    let text = charter("[org.yaml]");
    let e = crate::compile(&[crate::Source::new("charter.yaml", text.clone())])
        .expect_err("the include was not read")
        .to_string();
    assert_eq!(
        e,
        "charter.yaml:7:11: error: included document `org.yaml` was not read\n  hint: load the charter from its files (`warden check PATH`) so its includes are read\n"
    );
    let both = [
        crate::Source::new("charter.yaml", text),
        crate::Source::included("org.yaml", ORG),
    ];
    assert!(crate::compile(&both).is_ok());
}

#[test]
fn a_charter_and_its_includes_hold_at_most_max_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names: Vec<String> = (0..crate::MAX_FILES)
        .map(|i| format!("d{i}.yaml"))
        .collect();
    for name in &names {
        write(dir.path(), name, "context: {}\n");
    }
    let list = names
        .iter()
        .map(|n| format!("\n  - ../{n}"))
        .collect::<String>();
    write(dir.path(), "a/charter.yaml", &charter(&list));
    let last = 7 + crate::MAX_FILES;
    assert_eq!(
        errors(dir.path()),
        format!(
            "a/charter.yaml:{last}:5: error: a charter and its includes hold at most 256 files"
        )
    );
}
