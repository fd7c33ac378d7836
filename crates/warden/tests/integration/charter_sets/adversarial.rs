//! Hostile includes through `warden check`: a FIFO (refused without blocking), a file over the
//! size limit, the charter itself, an included document that includes (a cycle attempt), and
//! a `../../etc/passwd`-style path (refused before it is read; a passwd-like file behind a
//! `.yaml` name is an error whose output never echoes its content).

use super::{charter, stdout, warden_in, write};

#[test]
fn a_fifo_and_a_huge_include_are_refused_at_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(dir.path().join("fifo.yaml"))
        .status()
        .unwrap();
    assert!(made.success());
    let huge = std::fs::File::create(dir.path().join("huge.yaml")).unwrap();
    huge.set_len(warden_charter::MAX_FILE_BYTES * 4).unwrap();
    write(
        dir.path(),
        "a/charter.yaml",
        &charter("a", "include: [../fifo.yaml, ../huge.yaml]\n"),
    );
    let out = warden_in(dir.path(), &["check", "a"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        stdout(&out),
        format!(
            "a/charter.yaml:7:11: error: included document `fifo.yaml` is a FIFO, not a regular file\n\
a/charter.yaml:7:25: error: included document `huge.yaml` is larger than the limit of {} bytes\n\
a: invalid charter: 2 error(s), 0 warning(s)\n",
            warden_charter::MAX_FILE_BYTES
        )
    );
}

#[test]
fn an_include_of_itself_and_an_include_from_an_include_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a/charter.yaml",
        &charter("a", "include: [charter.yaml, ../org.yaml]\n"),
    );
    // The cycle attempt: the included document names the charter back.
    write(dir.path(), "org.yaml", "include: [a/charter.yaml]\n");
    let out = warden_in(dir.path(), &["check", "a"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        stdout(&out),
        "a/charter.yaml:7:11: error: include `charter.yaml` is a file of this charter (`a/charter.yaml`)\n  hint: a charter cannot include itself or one of its own files\n\
a: invalid charter: 1 error(s), 0 warning(s)\n"
    );
    write(
        dir.path(),
        "a/charter.yaml",
        &charter("a", "include: [../org.yaml]\n"),
    );
    let out = warden_in(dir.path(), &["check", "a"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        stdout(&out),
        "org.yaml:1:1: error: an included document cannot include (includes are one level deep)\n  hint: include the document from the charter itself\n\
a: invalid charter: 1 error(s), 0 warning(s)\n"
    );
}

#[test]
fn a_path_to_a_system_file_is_refused_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a/charter.yaml",
        &charter("a", "include: [../../../../../../etc/passwd]\n"),
    );
    let out = warden_in(dir.path(), &["check", "a"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        stdout(&out),
        "a/charter.yaml:7:11: error: include `../../../../../../etc/passwd` is not a `.yaml` or `.yml` file\n  hint: an included document is a YAML file of `authority`, `data` and `context`\n\
a: invalid charter: 1 error(s), 0 warning(s)\n"
    );
    // The same content behind a `.yaml` name: an error, the content never printed.
    write(
        dir.path(),
        "passwd.yaml",
        "root:x:0:0:root:/root:/bin/bash\nhidden-user:x:1000:1000:Secret Name:/home/h:/bin/sh\n",
    );
    write(
        dir.path(),
        "a/charter.yaml",
        &charter("a", "include: [../passwd.yaml]\n"),
    );
    let out = warden_in(dir.path(), &["check", "a"]);
    assert_eq!(out.status.code(), Some(64));
    let text = stdout(&out);
    assert!(text.starts_with("passwd.yaml:1:1: error: "), "{text}");
    assert!(
        !text.contains("hidden-user") && !text.contains("Secret Name"),
        "{text}"
    );
}
