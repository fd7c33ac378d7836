//! Signed checkpoints, in-process against the real ledger: the gateway signs at start, every N
//! records, when the interval finds the tree grown, and at shutdown after the last records;
//! each note verifies with the verifier key and its root is the reader's tree root of its
//! size; a key file others may read (or a bad one) stops the start.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_audit::checkpoint::{Checkpoint, SigningKey, VerifierKey};
use warden_audit::{LedgerReader, Record, RecordKind};
use warden_core::SystemClock;
use warden_gateway::config::checkpoints::CheckpointConfig;
use warden_gateway::{Config, Gateway};
use warden_testkit::harness::test_config;

use super::{Harness, Start as _, charter};

/// A fresh signing key in its own 0600 file; the directory (kept alive by the caller), the
/// file and the verifier key.
fn key_file() -> (tempfile::TempDir, PathBuf, VerifierKey) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.key");
    let key = SigningKey::generate("test.example/warden").unwrap();
    key.write_new(&path).unwrap();
    (dir, path, key.verifier())
}

async fn start(key: &Path, every_records: u64, every: Duration) -> Harness {
    let key = key.to_owned();
    Harness::start_configured(Arc::new(SystemClock), "", move |c| {
        c.checkpoints = Some(CheckpointConfig {
            every_records,
            every,
            ..CheckpointConfig::with_key(key)
        });
    })
    .await
}

/// The `checkpoint_signed` records, each opened with `key` and checked against its payload.
fn checkpoints(records: &[Record], key: &VerifierKey) -> Vec<(u64, Checkpoint)> {
    records
        .iter()
        .filter(|r| r.kind == RecordKind::CheckpointSigned)
        .map(|r| {
            assert_eq!(r.session, None);
            (
                r.seq,
                Checkpoint::from_record_payload(&r.payload, key).unwrap(),
            )
        })
        .collect()
}

/// Every checkpoint's root is the root the ledger's reader computes for its size, and it
/// signed records that came before it.
async fn assert_roots(h: &Harness, found: &[(u64, Checkpoint)]) {
    let reader = LedgerReader::open(&h.data).await.unwrap();
    let id = reader.id().await.unwrap();
    for (seq, checkpoint) in found {
        assert!(checkpoint.size < *seq, "{checkpoint:?} at {seq}");
        assert_eq!(checkpoint.origin, format!("warden/ledger/{id}"));
        assert!(checkpoint.time.is_some());
        assert_eq!(
            reader.tree_root(checkpoint.size).await.unwrap(),
            checkpoint.root,
            "size {}",
            checkpoint.size
        );
    }
    reader.close().await;
}

/// Polls the ledger (every 20 ms, at most 20 s) until `done` holds for its checkpoints.
async fn wait_for(
    h: &Harness,
    key: &VerifierKey,
    done: impl Fn(&[(u64, Checkpoint)]) -> bool,
) -> Vec<(u64, Checkpoint)> {
    let started = Instant::now();
    loop {
        let found = checkpoints(&h.records().await, key);
        if done(&found) {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "checkpoints so far: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_signed_at_start_every_n_records_and_at_shutdown() {
    let (_keys, key_path, vkey) = key_file();
    let h = start(&key_path, 10, Duration::from_secs(3600)).await;
    // At start: the ledger grew (its `charter_loaded`) since its last checkpoint (none).
    let first = wait_for(&h, &vkey, |c| !c.is_empty()).await;
    assert_eq!(first[0].1.size, 1);

    let (_session, token) = h.open_session("1h").await;
    for i in 0..12 {
        h.call(&token, &format!("hello {i}")).await;
    }
    let found = wait_for(&h, &vkey, |c| c.len() >= 3).await;
    // Every N records: each checkpoint after the first covers at least N more records.
    for pair in found.windows(2) {
        assert!(
            pair[1].1.size >= pair[0].1.size + 10,
            "{:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    assert_roots(&h, &found).await;
    // Counted: the checkpoints recorded, and the size of the last one.
    let text = h
        .http
        .get(format!("http://{}/metrics", h.operator_addr))
        .bearer_auth(&h.operator_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
    };
    assert!(value("warden_checkpoints_signed_total") >= found.len() as u64);
    assert!(value("warden_checkpoint_size") >= found.last().unwrap().1.size);
    assert_eq!(value("warden_checkpoint_failures_total"), 0);

    // At shutdown: the last record is a checkpoint of every record before it.
    h.stop().await;
    let records = h.records().await;
    let last = records.last().unwrap();
    assert_eq!(last.kind, RecordKind::CheckpointSigned);
    let all = checkpoints(&records, &vkey);
    let (seq, final_checkpoint) = all.last().unwrap();
    assert_eq!(*seq, last.seq);
    assert_eq!(final_checkpoint.size, last.seq - 1);
    assert_eq!(
        records[records.len() - 2].kind,
        RecordKind::GatewayStopped,
        "the final checkpoint follows the stop"
    );
    assert_roots(&h, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_continues_from_the_last_checkpoint() {
    let (_keys, key_path, vkey) = key_file();
    let h = start(&key_path, 1000, Duration::from_secs(3600)).await;
    wait_for(&h, &vkey, |c| !c.is_empty()).await;
    h.restart().await;
    // The restart's start-up checkpoint covers the first run's final checkpoint and the new
    // `charter_loaded`.
    let found = wait_for(&h, &vkey, |c| c.len() >= 3).await;
    let records = h.records().await;
    let restart_loaded = records
        .iter()
        .filter(|r| r.kind == RecordKind::CharterLoaded)
        .nth(1)
        .unwrap()
        .seq;
    assert_eq!(found[2].1.size, restart_loaded);
    h.stop().await;
    let all = checkpoints(&h.records().await, &vkey);
    assert_eq!(all.len(), 4, "{all:?}");
    assert_roots(&h, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interval_signs_growth_and_never_a_lone_checkpoint_record() {
    let (_keys, key_path, vkey) = key_file();
    let h = start(&key_path, 1000, Duration::from_secs(1)).await;
    let (_session, token) = h.open_session("1h").await;
    h.call(&token, "hello").await;
    // The tick signs the grown tree: a checkpoint covering the call's records.
    let head_after_call = h.records().await.last().unwrap().seq;
    let found = wait_for(&h, &vkey, |c| {
        c.last().is_some_and(|(_, cp)| cp.size >= head_after_call)
    })
    .await;
    let count = found.len();
    let head = h.records().await.last().unwrap().seq;
    // Idle: the only record after the last checkpoint is its own record, so two more ticks
    // sign nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let records = h.records().await;
    assert_eq!(records.last().unwrap().seq, head, "the idle ledger grew");
    assert_eq!(checkpoints(&records, &vkey).len(), count);
    h.stop().await;
}

/// Starts a gateway directly (not through the harness, which expects a start to succeed).
async fn try_start(adjust: impl FnOnce(&mut Config)) -> Result<(), String> {
    let (echo_url, _calls) = warden_testkit::echo::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let charter_path = dir.path().join("charter.yaml");
    std::fs::write(&charter_path, charter(&echo_url, "", "")).unwrap();
    let mut config = test_config(&dir.path().join("data"), &charter_path);
    adjust(&mut config);
    match Gateway::start(config, Arc::new(SystemClock)).await {
        Ok(gw) => {
            gw.shutdown().await;
            Ok(())
        }
        Err(e) => Err(format!("{:#}", anyhow::Error::from(e))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_others_may_read_or_a_bad_key_stops_the_start() {
    let (_keys, key_path, _) = key_file();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = key_path.clone();
    let err = try_start(move |c| c.checkpoints = Some(CheckpointConfig::with_key(path)))
        .await
        .unwrap_err();
    assert!(err.contains("checkpoint signing key"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");

    let missing = key_path.with_file_name("missing.key");
    let err = try_start(move |c| c.checkpoints = Some(CheckpointConfig::with_key(missing)))
        .await
        .unwrap_err();
    assert!(err.contains("missing.key"), "{err}");

    let junk = key_path.with_file_name("junk.key");
    std::fs::write(&junk, "PRIVATE+KEY+x+00000000+AAAA\n").unwrap();
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = try_start(move |c| c.checkpoints = Some(CheckpointConfig::with_key(junk)))
        .await
        .unwrap_err();
    assert!(
        err.contains("junk.key") || err.contains("malformed key"),
        "{err}"
    );

    // A public key is not a signing key.
    let public = key_path.with_file_name("checkpoint.key.pub");
    let (_other, other_key, vkey) = key_file();
    drop(other_key);
    std::fs::write(&public, format!("{vkey}\n")).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = try_start(move |c| c.checkpoints = Some(CheckpointConfig::with_key(public)))
        .await
        .unwrap_err();
    assert!(err.contains("PRIVATE+KEY+"), "{err}");

    // With the mode fixed, the same key starts.
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    try_start(move |c| c.checkpoints = Some(CheckpointConfig::with_key(key_path)))
        .await
        .unwrap();
}

/// `GET path` on the operator plane with `token`: the status, the content type and the body.
pub(super) async fn get(h: &Harness, path: &str, token: &str) -> (u16, String, String) {
    let resp = h
        .http
        .get(format!("http://{}{path}", h.operator_addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, resp.text().await.unwrap())
}

fn hashes(body: &serde_json::Value) -> Vec<warden_audit::merkle::Hash> {
    use base64::Engine as _;
    body["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            base64::engine::general_purpose::STANDARD
                .decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_serve_the_latest_note_and_proofs_that_verify_against_it() {
    use warden_audit::merkle;
    let (_keys, key_path, vkey) = key_file();
    let h = start(&key_path, 5, Duration::from_secs(3600)).await;
    let first = wait_for(&h, &vkey, |c| !c.is_empty()).await;
    let (_session, token) = h.open_session("1h").await;
    for i in 0..8 {
        h.call(&token, &format!("hello {i}")).await;
    }
    wait_for(&h, &vkey, |c| c.len() >= 2).await;

    // The note served is one the ledger recorded, no older than the second, and it verifies
    // with the verifier key.
    let (status, content_type, note) = get(&h, "/v1/audit/checkpoint", &h.operator_token).await;
    assert_eq!(status, 200, "{note}");
    assert_eq!(content_type, "text/plain; charset=utf-8");
    let served = Checkpoint::open(&note, &vkey).unwrap();
    let recorded = checkpoints(&h.records().await, &vkey);
    let at = recorded.iter().position(|(_, c)| *c == served).unwrap();
    assert!(at >= 1, "{recorded:?}");

    // Consistency from the first checkpoint to the latest, against their signed roots.
    let old = &first[0].1;
    let (status, _, body) = get(
        &h,
        &format!("/v1/audit/consistency?old={}&new={}", old.size, served.size),
        &h.operator_token,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    merkle::verify_consistency(
        old.size,
        served.size,
        &old.root,
        &served.root,
        &hashes(&body),
    )
    .unwrap();

    // Inclusion of every record in the latest checkpoint's tree.
    let records = h.records().await;
    for record in records.iter().take(usize::try_from(served.size).unwrap()) {
        let (status, _, body) = get(
            &h,
            &format!(
                "/v1/audit/inclusion?seq={}&size={}",
                record.seq, served.size
            ),
            &h.operator_token,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["leaf_index"], record.seq - 1);
        merkle::verify_inclusion(
            record.seq - 1,
            served.size,
            &merkle::leaf_hash(&record.hash),
            &hashes(&body),
            &served.root,
        )
        .unwrap();
    }
    h.stop().await;
}
