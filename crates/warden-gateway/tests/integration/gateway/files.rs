//! The data directory holds every prompt, argument and result, and the secrets: it is the
//! owner's only (0700, every file in it 0600), and a secret others may read stops the start.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use warden_core::SystemClock;
use warden_gateway::Gateway;
use warden_testkit::harness::{Harness, test_config};

use super::{Start as _, charter};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every entry of `dir`: its name and mode; each must be a regular file.
fn files_of(dir: &Path) -> Vec<(String, u32)> {
    let mut files: Vec<(String, u32)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            assert!(e.file_type().unwrap().is_file(), "{:?}", e.path());
            (
                e.file_name().to_string_lossy().into_owned(),
                mode(&e.path()),
            )
        })
        .collect();
    files.sort();
    files
}

fn assert_private(dir: &Path, must_hold: &[&str]) {
    assert_eq!(format!("{:04o}", mode(dir)), "0700", "the data directory");
    let files = files_of(dir);
    for name in must_hold {
        assert!(files.iter().any(|(n, _)| n == name), "{name}: {files:?}");
    }
    let loose: Vec<String> = files
        .iter()
        .filter(|(_, m)| *m != 0o600)
        .map(|(n, m)| format!("{n} {m:04o}"))
        .collect();
    assert!(loose.is_empty(), "not 0600: {loose:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_every_file_in_it_are_the_owners_only() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    h.call(&token, "hello world").await;
    // While it runs: the databases with their WAL and shared-memory files, the lock, the keys.
    assert_private(
        &h.data,
        &[
            "ledger.db",
            "ledger.db-wal",
            "ledger.db-shm",
            "ledger.lock",
            "state.db",
            "state.db-wal",
            "state.db-shm",
            "operator.token",
            "approval.key",
        ],
    );
    h.stop().await;
    // The search index, made later by `warden audit search`.
    let mut index = warden_audit::SearchIndex::open(&h.data).unwrap();
    index.update().unwrap();
    assert_private(&h.data, &["ledger.db", "state.db", "search.db"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_others_may_read_stops_the_start() {
    let (echo_url, _) = warden_testkit::echo::spawn().await.unwrap();
    for key in ["approval.key", "operator.token"] {
        let tmp = tempfile::tempdir().unwrap();
        let charter_path = tmp.path().join("charter.yaml");
        std::fs::write(&charter_path, charter(&echo_url, "", "")).unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = data.join(key);
        // A well-formed key (32 bytes, base64url), so only its mode is wrong.
        std::fs::write(&path, format!("{}\n", "A".repeat(43))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();

        let started =
            Gateway::start(test_config(&data, &charter_path), Arc::new(SystemClock)).await;
        let Err(e) = started else {
            started.unwrap().shutdown().await;
            panic!("{key}: the gateway started with a group-readable key");
        };
        let message = format!("{e:#}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
        assert_eq!(
            format!("{:04o}", mode(&path)),
            "0640",
            "{key}: a secret is not silently tightened"
        );
        assert!(
            !data.join("ledger.db").exists(),
            "{key}: refused before anything is opened"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_data_directory_with_loose_modes_is_tightened() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    // As an earlier warden (or a permissive umask) left them.
    for (path, m) in [
        (h.data.clone(), 0o755),
        (h.data.join("ledger.db"), 0o644),
        (h.data.join("state.db"), 0o644),
        (h.data.join("ledger.lock"), 0o664),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
    }
    h.restart().await;
    assert_private(&h.data, &["ledger.db", "state.db", "ledger.lock"]);
    h.stop().await;
}
