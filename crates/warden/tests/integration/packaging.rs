//! packaging/systemd: the unit is checked twice — by systemd itself (`systemd-analyze verify`,
//! which reports unknown keys and bad values, and `systemd-analyze security --offline`, its
//! exposure score), and by parsing it here and asserting every sandboxing directive
//! docs/deployment.md promises, so a directive dropped or weakened fails a test. The example
//! configuration is read by this build's `warden serve`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

use super::common;

use common::repo;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn unit_text() -> String {
    std::fs::read_to_string(repo().join("packaging/systemd/warden.service")).unwrap()
}

/// `section -> key -> values` (a key may be given more than once).
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// Reads a unit file: sections, `Key=value` lines, comments; no line continuations (the unit
/// has none, and this parser refuses them rather than misreading them).
fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(!line.ends_with('\\'), "line {}: a continuation", n + 1);
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not `Key=value`: {line}", n + 1));
        assert!(!section.is_empty(), "line {}: outside a section", n + 1);
        unit.entry(section.clone())
            .or_default()
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    unit
}

fn systemd_analyze() -> PathBuf {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join("systemd-analyze"))
        .find(|p| p.is_file());
    found.expect(
        "systemd-analyze is not installed: install Debian's `systemd` package \
         (scripts/test.sh does)",
    )
}

/// The unit as systemd reads it, with `ExecStart=` naming this build's binary (verify checks
/// that the program exists).
fn unit_for_this_build(dir: &Path) -> PathBuf {
    let text = unit_text().replace("/usr/local/bin/warden", env!("CARGO_BIN_EXE_warden"));
    let path = dir.join("warden.service");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(tmp.path());
    let out = Command::new(systemd_analyze())
        .arg("verify")
        .arg(&unit)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 for an unknown key or a value it cannot parse; it only says so.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {:?}\n{stderr}",
        out.status
    );

    let out = Command::new(systemd_analyze())
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&unit)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze security: the exposure is above 2.0:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn systemd_unit_has_every_sandboxing_directive() {
    let unit = parse_unit(&unit_text());
    let service = &unit["Service"];
    let one = |key: &str| -> &str {
        let values = service
            .get(key)
            .unwrap_or_else(|| panic!("[Service] has no {key}="));
        assert_eq!(values.len(), 1, "{key}= is given more than once");
        &values[0]
    };
    for (key, want) in [
        ("User", "warden"),
        ("Group", "warden"),
        ("UMask", "0077"),
        ("StateDirectory", "warden"),
        ("StateDirectoryMode", "0700"),
        ("ReadWritePaths", "/var/lib/warden"),
        ("EnvironmentFile", "/etc/warden/warden.env"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("KillMode", "mixed"),
        ("RestartPreventExitStatus", "64"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("SystemCallArchitectures", "native"),
        ("SystemCallErrorNumber", "EPERM"),
    ] {
        assert_eq!(one(key), want, "{key}=");
    }
    assert!(
        !service.contains_key("DynamicUser"),
        "a fixed `warden` user"
    );
    assert!(
        one("ExecStart").starts_with("/usr/local/bin/warden serve --config /etc/warden/"),
        "{}",
        one("ExecStart")
    );
    // Allowed: the service set and Landlock, whose calls @system-service lacks; then denied:
    // @privileged.
    let filters = &service["SystemCallFilter"];
    let allowed: Vec<&str> = filters[0].split_whitespace().collect();
    for call in [
        "@system-service",
        "landlock_create_ruleset",
        "landlock_add_rule",
        "landlock_restrict_self",
    ] {
        assert!(allowed.contains(&call), "SystemCallFilter= lacks {call}");
    }
    assert!(filters.iter().any(|f| f == "~@privileged"), "{filters:?}");
    assert_eq!(
        unit["Install"]["WantedBy"],
        ["multi-user.target"],
        "[Install]"
    );
}

#[test]
fn sysusers_file_makes_the_service_user() {
    let text = std::fs::read_to_string(repo().join("packaging/systemd/warden.sysusers")).unwrap();
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[..3], ["u", "warden", "-"], "{line}");
    // The home is `/` (the default): $HOME must not be the data directory.
    assert!(!line.contains("/var/lib/warden"), "{line}");
}

#[test]
fn example_configuration_is_read_by_warden_serve() {
    // Every key is one `warden serve` knows (unknown keys are errors); the charter it names does
    // not exist here, so start-up stops there, before anything is opened or bound.
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--config"])
        .arg(repo().join("packaging/systemd/warden.toml"))
        .env_remove("WARDEN_CHARTER")
        .env_remove("WARDEN_DATA")
        .env_remove("WARDEN_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("/etc/warden/charter"), "{stderr}");
    assert!(!stderr.contains("unknown"), "{stderr}");
}
