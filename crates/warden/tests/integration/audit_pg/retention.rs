//! Retention and search with a PostgreSQL store, as the real binary: `archive --store
//! --instance` copies one instance's chain through its last signed checkpoint (the copy then
//! verifies on its own with that instance's key) and never continues another instance's
//! export; `prune` and `search` refuse a store by name, from the flag or from WARDEN_STORE.

use super::signed::{json_line, signed_fleet};
use super::{audit, err, out};
use warden_testkit::postgres::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archive_copies_one_instances_chain_and_the_copy_verifies_with_its_key() {
    let db = TestDb::new().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (pub_a, pub_b) = signed_fleet(db.url(), keys.path()).await;
    let url = Some(db.url());
    let exports = tempfile::tempdir().unwrap();
    let to_a = exports.path().join("gw-a");
    let to_a = to_a.to_str().unwrap();

    let o = audit(&["archive", "--instance", "gw-a", "--to", to_a], url);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert!(out(&o).starts_with("archived records 1 to "), "{}", out(&o));
    // The export verifies by itself with A's key (no store involved) ...
    let o = audit(
        &[
            "verify", "--file", to_a, "--pubkey", &pub_a, "--format", "json",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    let report = json_line(&out(&o));
    assert!(report["checkpoints"].as_u64().unwrap() >= 2, "{report}");
    // ... and not with B's.
    let o = audit(&["verify", "--file", to_a, "--pubkey", &pub_b], None);
    assert_eq!(o.status.code(), Some(3), "{}{}", out(&o), err(&o));

    // Run again: nothing new to archive.
    let o = audit(&["archive", "--instance", "gw-a", "--to", to_a], url);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).starts_with("nothing to archive"), "{}", out(&o));

    // B's chain into A's export directory: refused, nothing written.
    let before = std::fs::read_dir(to_a).unwrap().count();
    let o = audit(&["archive", "--instance", "gw-b", "--to", to_a], url);
    assert_eq!(o.status.code(), Some(3), "{}{}", out(&o), err(&o));
    assert!(
        err(&o).contains("does not continue this ledger"),
        "{}",
        err(&o)
    );
    assert_eq!(std::fs::read_dir(to_a).unwrap().count(), before);

    // Every instance at once: a usage error.
    let o = audit(&["archive", "--to", to_a], url);
    assert_eq!(o.status.code(), Some(64), "{}", err(&o));
    assert!(err(&o).contains("give `--instance ID`"), "{}", err(&o));
}

#[tokio::test]
async fn prune_and_search_refuse_a_store_by_flag_or_environment() {
    let db = TestDb::new().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    let store = db.url();
    for (args, env, needle) in [
        (
            vec![
                "prune",
                "--archive",
                "/tmp",
                "--pubkey",
                "k",
                "--data",
                data,
            ],
            Some(store),
            "the chains in the shared store are not pruned",
        ),
        (
            vec![
                "prune",
                "--archive",
                "/tmp",
                "--pubkey",
                "k",
                "--store",
                store,
            ],
            None,
            "the chains in the shared store are not pruned",
        ),
        (
            vec!["search", "hello", "--data", data],
            Some(store),
            "it does not search the chains in the shared store",
        ),
        (
            vec!["search", "hello", "--store", store, "--instance", "gw-a"],
            None,
            "it does not search the chains in the shared store",
        ),
        (
            vec!["search", "hello", "--instance", "gw-a", "--data", data],
            None,
            "give `--store URL`",
        ),
    ] {
        let o = audit(&args, env);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(needle), "{args:?}: {}", err(&o));
        // The password of the URL is never echoed.
        assert!(!err(&o).contains("@127.0.0.1"), "{}", err(&o));
    }
}
